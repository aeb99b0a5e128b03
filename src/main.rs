//! `ssed`, the daemon: a command line over the library.
//!
//! The loop runs on the main thread. SIGINT and SIGTERM are blocked in every thread and taken by
//! one small thread with `sigwait`, which asks the loop to stop; nothing runs in a signal
//! handler. `--stdin` and `--demo` publish from threads of their own through the same handle any
//! library user gets.

use std::io::{self, BufRead, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ssed::{Config, Cors, Event, FsyncPolicy, Handle, LogLevel, PublishError, Server};

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

/// What the command line asked for, beyond the server's own settings.
struct Options {
    config: Config,
    stdin: bool,
    stdin_topic: String,
    stdin_event: String,
    demo: bool,
}

/// Which tokens are required, for the lines printed at start.
struct Tokens {
    publish: bool,
    subscribe: bool,
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
    let config = &options.config;
    let open_to_all = config.subscribe_token.is_none()
        && (config.subscriber_jwt_key.is_none() || config.anonymous);
    let tokens = Tokens {
        publish: config.publish_token.is_some(),
        subscribe: !open_to_all,
    };
    let server = match Server::bind(options.config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("ssed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if server.is_tls() { "https" } else { "http" };
    if log > LogLevel::Off {
        eprintln!("ssed: listening on {scheme}://{}", server.local_addr());
    }
    if log >= LogLevel::Info {
        let hints = where_to_look(server.local_addr(), &tokens, options.demo);
        let hints = hints.replace("http://", &format!("{scheme}://"));
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

/// What to open and what to paste, printed at start: the viewer, a subscriber and a publish,
/// with the bound port (on a wildcard address, through loopback). Tokens are named by their
/// environment variables, so that pasted lines work and the log never holds a secret.
fn where_to_look(addr: SocketAddr, tokens: &Tokens, demo: bool) -> String {
    let addr = reachable(addr);
    let pick = |yes: bool, text: &'static str| if yes { text } else { "" };
    let intro = pick(
        demo,
        "ssed: --demo publishes the current time every second to topic 'demo'\n",
    );
    let topic = pick(demo, "?topic=demo");
    let note = pick(tokens.subscribe, " (add the token as ?token=)");
    let token = match (tokens.subscribe, demo) {
        (false, _) => "",
        (true, false) => "?token=$SSED_SUBSCRIBE_TOKEN",
        (true, true) => "&token=$SSED_SUBSCRIBE_TOKEN",
    };
    let bearer = pick(
        tokens.publish,
        " -H \"Authorization: Bearer $SSED_PUBLISH_TOKEN\"",
    );
    let publish_topic = pick(demo, " -d topic=demo");
    format!(
        "{intro}ssed: viewer:    http://{addr}/{topic}{note}\n\
         ssed: subscribe: curl -N \"http://{addr}/events{topic}{token}\"\n\
         ssed: publish:   curl{bearer}{publish_topic} -d data=hello http://{addr}/publish\n"
    )
}

/// The address to show for reaching `addr` from this machine: a wildcard address is reached
/// through loopback.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut options = Options {
        config: Config::default(),
        stdin: false,
        stdin_topic: String::new(),
        stdin_event: String::new(),
        demo: false,
    };
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
            "--publish-token" => config.publish_token = Some(token(&flag, value()?)?),
            "--subscribe-token" => config.subscribe_token = Some(token(&flag, value()?)?),
            "--publisher-jwt-key" => config.publisher_jwt_key = Some(jwt_key(&flag, value()?)?),
            "--subscriber-jwt-key" => config.subscriber_jwt_key = Some(jwt_key(&flag, value()?)?),
            "--anonymous" => config.anonymous = true,
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
            "--hub-url"
            | "--resource-identifier"
            | "--issuer"
            | "--issuer-key"
            | "--issuer-publisher-key"
            | "--issuer-subscriber-key"
            | "--subscriptions" => {
                return Err(format!(
                    "{flag}: this ssed was built without Mercure 1.0 (cargo feature jwt)"
                ));
            }
            "--history-file" => config.history_file = Some(history_file(&flag, value()?)?),
            "--fsync" => config.fsync = fsync(&flag, &value()?)?,
            "--redis" => config.redis = Some(non_empty(&flag, value()?)?),
            "--redis-stream" => config.redis_stream = non_empty(&flag, value()?)?,
            "--redis-history" => config.redis_history = Some(positive(&flag, &value()?)?),
            "--tls-cert" => config.tls_cert = Some(tls_file(&flag, value()?)?),
            "--tls-key" => config.tls_key = Some(tls_file(&flag, value()?)?),
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
    options
        .config
        .validate()
        .map_err(|e| format!("invalid settings: {e}"))?;
    Ok(Parsed::Run(Box::new(options)))
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: expected an address such as 127.0.0.1:8080, got '{value}'"))
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

fn history_file(flag: &str, value: String) -> Result<std::path::PathBuf, String> {
    if value.is_empty() {
        return Err(format!("{flag}: expected a path"));
    }
    Ok(value.into())
}

/// A certificate or key file; refused at once in a build without TLS.
fn tls_file(flag: &str, value: String) -> Result<std::path::PathBuf, String> {
    if !ssed::TLS {
        return Err(format!(
            "{flag}: this ssed was built without TLS (cargo feature tls)"
        ));
    }
    if value.is_empty() {
        return Err(format!("{flag}: expected a path"));
    }
    Ok(value.into())
}

fn non_empty(flag: &str, value: String) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{flag}: expected a value"));
    }
    Ok(value)
}

/// `always`, `never`, or a number of milliseconds between syncs.
fn fsync(flag: &str, value: &str) -> Result<FsyncPolicy, String> {
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

/// A JWT key from `name` (a flag or an environment variable), refused with a message naming it
/// and never the key.
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
