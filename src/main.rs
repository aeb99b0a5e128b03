//! `ssed`, the daemon: a command line over the library.
//!
//! The loop runs on the main thread. SIGINT and SIGTERM are blocked in every thread and taken by
//! one small thread with `sigwait`, which asks the loop to stop; nothing runs in a signal
//! handler. `--stdin` and `--demo` publish from threads of their own through the same handle any
//! library user gets.

mod hints;

use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hints::Credential;
use ssed::{Config, Cors, Event, Handle, LogLevel, PublishError, Server};

const HELP: &str = "\
ssed: a tiny, fast Server-Sent Events server

Usage: ssed [OPTIONS]

Options:
  --listen ADDR          address to listen on [default: 127.0.0.1:8080] (port 0 picks one)
  --history N            events kept for Last-Event-ID replay [default: 1024]
  --heartbeat SECS       comment sent on every stream this often, 0 = off [default: 15]
  --retry MS             reconnection delay sent at the start of every stream
  --max-clients N        most open event streams; other requests keep a reserve on top [default: 10000]
  --max-queue BYTES      most bytes pending for one subscriber before it is dropped [default: 1048576]
  --max-body BYTES       largest publish body [default: 1048576]
  --cors-origin ORIGIN   * or a comma-separated list of allowed origins
  --publish-token T      publishing needs 'Authorization: Bearer T' (env SSED_PUBLISH_TOKEN)
  --subscribe-token T    subscribing needs the bearer token or ?token=T (env SSED_SUBSCRIBE_TOKEN)
  --publisher-jwt-key K  HS256 secret of publishers' JSON Web Tokens, 32 bytes or more: publishing
                         needs a token whose mercure.publish allows the topics
                         (env SSED_PUBLISHER_JWT_KEY)
  --subscriber-jwt-key K HS256 secret of subscribers' tokens: subscribing needs one, and its
                         mercure.subscribe says which private events it reads
                         (env SSED_SUBSCRIBER_JWT_KEY)
  --anonymous            with --subscriber-jwt-key, let subscribers without a token read public events
  --hub-url URL          Mercure 1.0: the hub's public URL (base of relative topics and URL
                         patterns) [default: http://ADDR/.well-known/mercure]
  --resource-identifier ID  Mercure 1.0: what access tokens' aud must name [default: --hub-url]
  --issuer ISS           Mercure 1.0: trust access tokens whose iss is ISS, with the keys of
                         the --issuer-*key flags after it (repeatable)
  --issuer-key K         the issuer's key for publishers and subscribers alike: HS256:SECRET
                         (or the bare secret), RS256:PEM or ES256:PEM; @PATH reads it from a file
  --issuer-publisher-key K, --issuer-subscriber-key K  one role's key only
  --subscriptions        Mercure 1.0 active subscriptions: subscription events and the API
  --history-file PATH    keep the history in this file, so that it survives a restart
  --fsync WHEN           when the history file is synced: always, never, or every MS milliseconds
                         [default: always]
  --redis URL            join a cluster: share the stream of this Redis (redis://HOST:PORT)
                         with other nodes; excludes --history-file (needs the feature redis)
  --redis-stream KEY     the cluster's stream key [default: ssed]
  --redis-history N      entries the stream keeps for replay [default: --history, at least 1024]
  --tls-cert FILE        speak HTTPS on --listen with this PEM certificate chain
                         (env SSED_TLS_CERT; needs --tls-key; SIGHUP rereads both)
  --tls-key FILE         the PEM private key of --tls-cert (env SSED_TLS_KEY)
  --stdin                publish every line of standard input as one event
    --topic T            ... to this topic [default: the empty topic]
    --event TYPE         ... with this event type
  --demo                 publish the time every second to topic 'demo'
  -q, --quiet            log errors only
  -v, --verbose          log every connection too
  -h, --help             print this help
  -V, --version          print the version

Endpoints: GET /events[?topic=A&topic=B], POST /publish, GET / (live viewer), GET /health,
GET /metrics; a Mercure hub at GET and POST /.well-known/mercure. Example:
  curl -N http://127.0.0.1:8080/events
  curl -d topic=news -d data=hello http://127.0.0.1:8080/publish

";

/// The help of the flags of the cargo features `sockets` and `host` (the tiny daemon has
/// neither), printed after `HELP` when the build has them.
const HELP_SOCKETS: &str = "\
  --publish-socket PATH  also listen on a Unix-domain socket at PATH (mode 0660) where local
                         programs publish without a token: its permissions are its access control
Started by systemd with sockets (LISTEN_FDS, see examples/systemd/ssed.socket), ssed serves the
TCP socket it is given instead of --listen, and a Unix-domain one as its publish socket.
";
const HELP_HOST: &str = "\
  --metrics-topics       /metrics lists the open streams per topic (one series per topic)
";
/// The help of `--loops` (cargo feature `loops`; the tiny daemon has one loop).
const HELP_LOOPS: &str = "\
  --loops N              event loops, one thread each; the first serves requests, streams are
                         spread over all [default: the number of cores, at most 8]
";

/// What the command line asked for, beyond the server's own settings.
struct Options {
    config: Config,
    stdin: bool,
    stdin_topic: String,
    stdin_event: String,
    demo: bool,
    /// Where each static token came from: its flag, or else its environment variable.
    publish_token_flag: bool,
    subscribe_token_flag: bool,
}

enum Parsed {
    Run(Box<Options>),
    Exit(&'static str),
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Exit(text)) => {
            print!("{text}");
            if std::ptr::eq(text, HELP) {
                if cfg!(feature = "sockets") {
                    print!("{HELP_SOCKETS}");
                }
                if cfg!(feature = "host") {
                    print!("{HELP_HOST}");
                }
                if cfg!(feature = "loops") {
                    print!("{HELP_LOOPS}");
                }
            }
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("ssed: {message}");
            eprintln!("Try 'ssed --help' for more information.");
            return ExitCode::from(2);
        }
    };
    run(*options)
}

fn run(options: Options) -> ExitCode {
    if options.config.history_file.is_some() {
        ssed::sys::ignore_file_size_signal();
    }
    if let Err(e) = ssed::sys::block_termination_signals() {
        eprintln!("ssed: cannot block termination signals: {e}");
        return ExitCode::FAILURE;
    }
    let log = options.config.log;
    let mut options = options;
    let activated = match take_systemd_sockets(&mut options.config) {
        Ok(activated) => activated,
        Err(why) => {
            eprintln!("ssed: {why}");
            return ExitCode::FAILURE;
        }
    };
    let config = &options.config;
    let open_to_all =
        config.subscribe_token.is_none() && (!config.has_subscriber_key() || config.anonymous);
    let access = hints_access(&options);
    let server = match Server::bind(options.config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("ssed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if server.is_tls() { "https" } else { "http" };
    if log > LogLevel::Off {
        let from = if activated {
            " (socket from systemd)"
        } else {
            ""
        };
        eprintln!(
            "ssed: listening on {scheme}://{}{from}",
            server.local_addr()
        );
    }
    if log >= LogLevel::Info {
        let hints = hints::where_to_look(scheme, server.local_addr(), &access, options.demo);
        let _ = io::stderr().write_all(hints.as_bytes());
    }
    if log >= LogLevel::Quiet && open_to_all && !server.local_addr().ip().is_loopback() {
        eprintln!(
            "ssed: warning: {} is not a loopback address and no --subscribe-token (or \
             --subscriber-jwt-key without --anonymous) is set: anyone who can reach it can read \
             every public event",
            server.local_addr()
        );
    }
    let handle = server.handle();
    let stopper = handle.clone();
    std::thread::spawn(move || {
        let mut signal = ssed::sys::wait_for_termination();
        while signal == ssed::sys::RELOAD_SIGNAL {
            // The handle logs what it loaded, or why it keeps the pair in use.
            if let Err(e) = stopper.reload_tls()
                && e.kind() == io::ErrorKind::InvalidInput
                && log >= LogLevel::Info
            {
                let _ = writeln!(io::stderr(), "ssed: SIGHUP: nothing to reload: {e}");
            }
            signal = ssed::sys::wait_for_termination();
        }
        if log >= LogLevel::Info {
            // Not eprintln!, which panics when stderr is gone (a closed pipe): this thread
            // must live on to stop the loop.
            let _ = writeln!(io::stderr(), "ssed: signal {signal}: stopping");
        }
        stopper.stop();
        // A second signal means: do not wait for the flush.
        while ssed::sys::wait_for_termination() == ssed::sys::RELOAD_SIGNAL {}
        std::process::exit(1);
    });
    if options.stdin {
        let handle = handle.clone();
        std::thread::spawn(move || {
            publish_stdin(&handle, &options.stdin_topic, &options.stdin_event, log)
        });
    }
    if options.demo {
        let handle = handle.clone();
        std::thread::spawn(move || publish_demo(&handle));
    }
    match server.run() {
        Ok(()) => {
            if log >= LogLevel::Info {
                eprintln!("ssed: stopped");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ssed: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Takes the sockets systemd passed (socket activation): a TCP one replaces `--listen`, a
/// Unix-domain one is the publish socket. True when there were some.
#[cfg(feature = "sockets")]
fn take_systemd_sockets(config: &mut Config) -> Result<bool, String> {
    let Some(activated) = ssed::sockets::systemd_sockets()? else {
        return Ok(false);
    };
    if activated.tcp.is_none() {
        return Err("systemd passed sockets but no TCP one to serve HTTP on".into());
    }
    config.listen_fd = activated.tcp;
    if activated.unix.is_some() {
        config.publish_socket = None;
        config.publish_socket_fd = activated.unix;
    }
    Ok(true)
}

/// Built without sockets handed over (the tiny daemon): `--listen` it is.
#[cfg(not(feature = "sockets"))]
fn take_systemd_sockets(_: &mut Config) -> Result<bool, String> {
    Ok(false)
}

/// What the lines printed at start must say a request carries.
fn hints_access(options: &Options) -> hints::Access {
    let config = &options.config;
    let subscribe = if config.subscribe_token.is_some() {
        if options.subscribe_token_flag {
            Credential::TokenFromFlag("--subscribe-token")
        } else {
            Credential::TokenFromEnv("SSED_SUBSCRIBE_TOKEN")
        }
    } else if cfg!(feature = "jwt") && config.subscriber_jwt_key.is_some() && !config.anonymous {
        Credential::Jwt("the subscriber key (--subscriber-jwt-key)")
    } else if cfg!(feature = "jwt") && config.has_subscriber_key() && !config.anonymous {
        Credential::AccessToken
    } else {
        Credential::Nothing
    };
    let publish = if config.publish_token.is_some() {
        if options.publish_token_flag {
            Credential::TokenFromFlag("--publish-token")
        } else {
            Credential::TokenFromEnv("SSED_PUBLISH_TOKEN")
        }
    } else if cfg!(feature = "jwt") && config.publisher_jwt_key.is_some() {
        Credential::Jwt("the publisher key (--publisher-jwt-key)")
    } else if cfg!(feature = "jwt") && config.issuers.iter().any(|i| i.publisher_key.is_some()) {
        Credential::AccessToken
    } else {
        Credential::Nothing
    };
    let publish_socket = match (&config.publish_socket, config.publish_socket_fd) {
        _ if !cfg!(feature = "sockets") => None,
        (Some(path), _) => Some(path.clone()),
        (None, Some(_)) => Some(PathBuf::from("PATH")),
        (None, None) => None,
    };
    hints::Access {
        subscribe,
        publish,
        publish_socket,
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut options = Options {
        config: Config::default(),
        stdin: false,
        stdin_topic: String::new(),
        stdin_event: String::new(),
        demo: false,
        publish_token_flag: false,
        subscribe_token_flag: false,
    };
    #[cfg(feature = "loops")]
    {
        options.config.loops = Config::default_loops();
    }
    options.config.publish_token = std::env::var("SSED_PUBLISH_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    options.config.subscribe_token = std::env::var("SSED_SUBSCRIBE_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    for (variable, path) in [
        ("SSED_TLS_CERT", &mut options.config.tls_cert),
        ("SSED_TLS_KEY", &mut options.config.tls_key),
    ] {
        *path = std::env::var_os(variable)
            .filter(|p| !p.is_empty())
            .map(Into::into);
    }
    for (variable, key) in [
        (
            "SSED_PUBLISHER_JWT_KEY",
            &mut options.config.publisher_jwt_key,
        ),
        (
            "SSED_SUBSCRIBER_JWT_KEY",
            &mut options.config.subscriber_jwt_key,
        ),
    ] {
        if let Some(value) = std::env::var(variable).ok().filter(|k| !k.is_empty()) {
            *key = Some(jwt_key(variable, value)?);
        }
    }
    let mut args = args.peekable();
    let mut topic_or_event_given = false;
    #[cfg_attr(not(feature = "history-file"), allow(unused_mut))]
    let mut fsync_given = false;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        let config = &mut options.config;
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Exit(HELP)),
            "-V" | "--version" => {
                return Ok(Parsed::Exit(concat!(
                    "ssed ",
                    env!("CARGO_PKG_VERSION"),
                    "\n"
                )));
            }
            "--listen" => config.listen = parse_addr(&flag, &value()?)?,
            "--history" => config.history = number(&flag, &value()?)?,
            "--heartbeat" => {
                let secs: u64 = number(&flag, &value()?)?;
                if secs > ssed::MAX_INTERVAL.as_secs() {
                    return Err(format!(
                        "{flag}: at most {} seconds",
                        ssed::MAX_INTERVAL.as_secs()
                    ));
                }
                config.heartbeat = Duration::from_secs(secs);
            }
            "--retry" => config.retry = Some(number(&flag, &value()?)?),
            "--max-clients" => config.max_clients = max_clients(&flag, &value()?)?,
            "--max-queue" => config.max_queue = positive(&flag, &value()?)?,
            "--max-body" => config.max_body = number(&flag, &value()?)?,
            "--cors-origin" => {
                config.cors = Cors::parse(&value()?).map_err(|e| format!("{flag}: {e}"))?
            }
            "--publish-token" => {
                config.publish_token = Some(token(&flag, value()?)?);
                options.publish_token_flag = true;
            }
            "--subscribe-token" => {
                config.subscribe_token = Some(token(&flag, value()?)?);
                options.subscribe_token_flag = true;
            }
            #[cfg(feature = "jwt")]
            "--publisher-jwt-key" => config.publisher_jwt_key = Some(jwt_key(&flag, value()?)?),
            #[cfg(feature = "jwt")]
            "--subscriber-jwt-key" => config.subscriber_jwt_key = Some(jwt_key(&flag, value()?)?),
            #[cfg(feature = "jwt")]
            "--anonymous" => config.anonymous = true,
            #[cfg(feature = "history-file")]
            "--history-file" => config.history_file = Some(path_value(&flag, value()?)?),
            #[cfg(feature = "history-file")]
            "--fsync" => {
                config.fsync = fsync(&flag, &value()?)?;
                fsync_given = true;
            }
            #[cfg(not(feature = "history-file"))]
            "--history-file" | "--fsync" => {
                return Err(without(
                    &flag,
                    "the history file (cargo feature history-file)",
                ));
            }
            #[cfg(feature = "sockets")]
            "--publish-socket" => config.publish_socket = Some(path_value(&flag, value()?)?),
            #[cfg(not(feature = "sockets"))]
            "--publish-socket" => {
                return Err(without(&flag, "the publish socket (cargo feature sockets)"));
            }
            #[cfg(feature = "loops")]
            "--loops" => config.loops = loops(&flag, &value()?)?,
            #[cfg(not(feature = "loops"))]
            "--loops" => {
                if value()? != "1" {
                    return Err(without(&flag, "more than one loop (cargo feature loops)"));
                }
            }
            #[cfg(feature = "host")]
            "--metrics-topics" => config.metrics_topics = true,
            #[cfg(not(feature = "host"))]
            "--metrics-topics" => {
                return Err(without(&flag, "the counts per topic (cargo feature host)"));
            }
            #[cfg(feature = "jwt")]
            "--hub-url" => config.hub_url = Some(non_empty(&flag, value()?)?),
            #[cfg(feature = "jwt")]
            "--resource-identifier" => {
                config.resource_identifier = Some(non_empty(&flag, value()?)?)
            }
            #[cfg(feature = "jwt")]
            "--issuer" => config.issuers.push(ssed::Issuer {
                issuer: non_empty(&flag, value()?)?,
                ..ssed::Issuer::default()
            }),
            #[cfg(feature = "jwt")]
            "--issuer-key" | "--issuer-publisher-key" | "--issuer-subscriber-key" => {
                let key = issuer_key(&flag, value()?)?;
                let Some(issuer) = config.issuers.last_mut() else {
                    return Err(format!("{flag}: name its issuer first with --issuer"));
                };
                if flag != "--issuer-subscriber-key" {
                    issuer.publisher_key = Some(key.clone());
                }
                if flag != "--issuer-publisher-key" {
                    issuer.subscriber_key = Some(key);
                }
            }
            #[cfg(feature = "jwt")]
            "--subscriptions" => config.subscriptions = true,
            #[cfg(not(feature = "jwt"))]
            "--publisher-jwt-key"
            | "--subscriber-jwt-key"
            | "--anonymous"
            | "--hub-url"
            | "--resource-identifier"
            | "--issuer"
            | "--issuer-key"
            | "--issuer-publisher-key"
            | "--issuer-subscriber-key"
            | "--subscriptions" => {
                return Err(without(&flag, "JWT support (cargo feature jwt)"));
            }
            #[cfg(feature = "redis")]
            "--redis" => config.redis = Some(non_empty(&flag, value()?)?),
            #[cfg(feature = "redis")]
            "--redis-stream" => config.redis_stream = non_empty(&flag, value()?)?,
            #[cfg(feature = "redis")]
            "--redis-history" => config.redis_history = Some(positive(&flag, &value()?)?),
            #[cfg(not(feature = "redis"))]
            "--redis" | "--redis-stream" | "--redis-history" => {
                return Err(without(&flag, "the cluster (cargo feature redis)"));
            }
            #[cfg(feature = "tls")]
            "--tls-cert" => config.tls_cert = Some(path_value(&flag, value()?)?),
            #[cfg(feature = "tls")]
            "--tls-key" => config.tls_key = Some(path_value(&flag, value()?)?),
            #[cfg(not(feature = "tls"))]
            "--tls-cert" | "--tls-key" => {
                return Err(without(&flag, "TLS (cargo feature tls)"));
            }
            "--stdin" => options.stdin = true,
            "--topic" => {
                options.stdin_topic = value()?;
                topic_or_event_given = true;
            }
            "--event" => {
                let event = value()?;
                if event.contains(['\r', '\n', '\0']) {
                    return Err(format!(
                        "{flag}: the event type must not contain CR, LF or NUL"
                    ));
                }
                options.stdin_event = event;
                topic_or_event_given = true;
            }
            "--demo" => options.demo = true,
            "-q" | "--quiet" => config.log = LogLevel::Quiet,
            "-v" | "--verbose" => config.log = LogLevel::Verbose,
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    if options.config.redis.is_none()
        && (options.config.redis_history.is_some() || options.config.redis_stream != "ssed")
    {
        return Err("--redis-stream and --redis-history go with --redis".into());
    }
    if options.config.redis.is_some() && options.config.history_file.is_some() {
        return Err(
            "--redis and --history-file exclude each other: in a cluster the Redis \
                    stream is the durable history"
                .into(),
        );
    }
    if options.config.tls_cert.is_some() != options.config.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together: a certificate needs its key".into());
    }
    if topic_or_event_given && !options.stdin {
        return Err("--topic and --event go with --stdin".into());
    }
    if fsync_given && options.config.history_file.is_none() {
        return Err(
            "--fsync goes with --history-file: without a history file nothing is synced".into(),
        );
    }
    if options.config.anonymous && !options.config.has_subscriber_key() {
        return Err(
            "--anonymous goes with --subscriber-jwt-key (or --issuer and its key): without a \
             subscriber key every subscriber is let in already"
                .into(),
        );
    }
    options
        .config
        .validate()
        .map_err(|e| format!("invalid settings: {e}"))?;
    Ok(Parsed::Run(Box::new(options)))
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    ssed::resolve_listen(value).map_err(|why| format!("{flag}: {why}"))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{flag}: expected a whole number, got '{value}'"));
    }
    value
        .parse()
        .map_err(|_| format!("{flag}: '{value}' is out of range"))
}

fn positive(flag: &str, value: &str) -> Result<usize, String> {
    match number(flag, value)? {
        0 => Err(format!("{flag}: must be at least 1")),
        n => Ok(n),
    }
}

/// At least 1, and no more connections than a server can tell apart on this target.
fn max_clients(flag: &str, value: &str) -> Result<usize, String> {
    let n = positive(flag, value)?;
    let most = Config::max_clients_limit();
    if n > most {
        return Err(format!("{flag}: at most {most} on this machine"));
    }
    Ok(n)
}

/// From 1 to `MAX_LOOPS`.
#[cfg(feature = "loops")]
fn loops(flag: &str, value: &str) -> Result<usize, String> {
    let n = positive(flag, value)?;
    if n > ssed::MAX_LOOPS {
        return Err(format!("{flag}: at most {}", ssed::MAX_LOOPS));
    }
    Ok(n)
}

#[cfg(any(feature = "history-file", feature = "sockets", feature = "tls"))]
fn path_value(flag: &str, value: String) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err(format!("{flag}: expected a path"));
    }
    Ok(value.into())
}

/// The refusal of a flag whose cargo feature this build lacks.
#[cfg_attr(
    all(
        feature = "jwt",
        feature = "history-file",
        feature = "redis",
        feature = "tls",
        feature = "host",
        feature = "sockets",
        feature = "loops"
    ),
    allow(dead_code)
)]
fn without(flag: &str, what: &str) -> String {
    format!("{flag}: this ssed was built without {what}")
}

#[cfg(any(feature = "jwt", feature = "redis"))]
fn non_empty(flag: &str, value: String) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{flag}: expected a value"));
    }
    Ok(value)
}

/// `always`, `never`, or a number of milliseconds between syncs.
#[cfg(feature = "history-file")]
fn fsync(flag: &str, value: &str) -> Result<ssed::FsyncPolicy, String> {
    use ssed::FsyncPolicy;
    match value {
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        ms => match number::<u64>(flag, ms) {
            Ok(0) | Err(_) => Err(format!(
                "{flag}: expected always, never, or milliseconds between syncs (1 or more), got '{ms}'"
            )),
            Ok(ms) => Ok(FsyncPolicy::Interval(Duration::from_millis(ms))),
        },
    }
}

fn token(flag: &str, value: String) -> Result<String, String> {
    if value.is_empty() || value.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!(
            "{flag}: a token must be non-empty printable text without spaces"
        ));
    }
    Ok(value)
}

#[cfg(feature = "jwt")]
/// An issuer's key, `[ALG:]TEXT`; `[ALG:]@PATH` reads the text from a file (a PEM public
/// key, or a secret kept out of the command line).
fn issuer_key(name: &str, value: String) -> Result<String, String> {
    let (algorithm, text) = match value.split_once(':') {
        Some((algorithm, text)) if ["HS256", "RS256", "ES256"].contains(&algorithm) => {
            (Some(algorithm), text.to_owned())
        }
        _ => (None, value.clone()),
    };
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{name}: cannot read {path}: {e}"))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        None => text,
    };
    Ok(match algorithm {
        Some(algorithm) => format!("{algorithm}:{text}"),
        None => text,
    })
}

/// A JWT key from `name` (a flag or an environment variable), refused with a message naming it
/// and never the key.
fn jwt_key(name: &str, value: String) -> Result<String, String> {
    Config::check_jwt_key(&value).map_err(|why| format!("{name}: {why}"))?;
    Ok(value)
}

/// Publishes each line of standard input. A full queue is waited out, so no line is lost.
fn publish_stdin(handle: &Handle, topic: &str, event_type: &str, log: LogLevel) {
    // Longer lines are skipped rather than buffered without bound.
    const MAX_LINE: usize = 1 << 20;
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => return, // End of input: the server goes on.
            Ok(_) => {}
            Err(e) => {
                eprintln!("ssed: reading standard input failed: {e}");
                return;
            }
        }
        number += 1;
        if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
            if log >= LogLevel::Quiet {
                eprintln!("ssed: stdin line {number} is longer than {MAX_LINE} bytes; skipped");
            }
            skip_rest_of_line(&mut input);
            continue;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let Ok(text) = std::str::from_utf8(text) else {
            if log >= LogLevel::Quiet {
                eprintln!("ssed: stdin line {number} is not valid UTF-8; skipped");
            }
            continue;
        };
        let mut event = Event::new(text).event_type(event_type);
        if !topic.is_empty() {
            event = event.topic(topic);
        }
        if publish_patiently(handle, &event).is_err() {
            return;
        }
    }
}

fn skip_rest_of_line(input: &mut impl BufRead) {
    loop {
        let (done, used) = match input.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, buf.len()),
            },
        };
        input.consume(used);
        if done {
            return;
        }
    }
}

/// Publishes, waiting while the queue is full or the history file cannot be written. Fails
/// only when the server has stopped.
fn publish_patiently(handle: &Handle, event: &Event) -> Result<(), PublishError> {
    loop {
        match handle.publish(event) {
            Err(PublishError::QueueFull) => std::thread::sleep(Duration::from_millis(2)),
            Err(PublishError::Storage | PublishError::Unavailable) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(PublishError::Stopped) => return Err(PublishError::Stopped),
            Err(e @ PublishError::Invalid(_)) => {
                eprintln!("ssed: cannot publish: {e}");
                return Ok(());
            }
            Ok(_) => return Ok(()),
        }
    }
}

/// Publishes the current UTC time to topic `demo` every second, for the viewer page.
fn publish_demo(handle: &Handle) {
    loop {
        let event = Event::new(utc_now()).topic("demo");
        if publish_patiently(handle, &event).is_err() {
            return;
        }
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_millis())
            .unwrap_or(0);
        std::thread::sleep(Duration::from_millis(1000 - millis as u64));
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_and_values() {
        let Ok(Parsed::Run(o)) = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--history=5",
            "--heartbeat",
            "0",
            "--retry",
            "250",
        ]) else {
            panic!("should parse");
        };
        assert_eq!(o.config.listen.port(), 0);
        assert_eq!(o.config.history, 5);
        assert!(o.config.heartbeat.is_zero());
        assert_eq!(o.config.retry, Some(250));
    }

    #[test]
    fn bad_flags_name_the_flag() {
        for (args, needle) in [
            (&["--history", "ten"][..], "--history"),
            (&["--bogus"], "--bogus"),
            (&["--listen", "nowhere"], "--listen"),
            (&["--max-clients", "0"], "--max-clients"),
            (&["--heartbeat", "18446744073709551615"], "--heartbeat"),
            (&["--retry"], "--retry"),
            (&["--topic", "x"], "--topic"),
            (&["--stdin", "--event", "a\nb"], "--event"),
            (&["--redis", "http://x"], "redis"),
            (&["--redis-stream", "k"], "--redis"),
            (
                &["--redis", "redis://x", "--history-file", "f"],
                "--history-file",
            ),
            (
                &["--publisher-jwt-key", "!ChangeMe!"],
                "--publisher-jwt-key",
            ),
            (&["--subscriber-jwt-key="], "--subscriber-jwt-key"),
            (&["--fsync", "never"], "--history-file"),
            (&["--anonymous"], "--subscriber-jwt-key"),
            (&["--listen", "localhost"], "HOST:PORT"),
        ] {
            match parse(args) {
                Err(message) => assert!(message.contains(needle), "{message}"),
                Ok(_) => panic!("{args:?} should fail"),
            }
        }
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
