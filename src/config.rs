//! Everything a server can be told at construction, with the defaults of the daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::event_loop::MAX_CONNECTIONS;
use crate::hooks::Hooks;

/// Which cross-origin pages may read the stream and publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers; `OPTIONS` is answered `405`.
    #[default]
    Off,
    /// `Access-Control-Allow-Origin: *` (no credentials).
    Any,
    /// Only these origins, each echoed back with credentials allowed.
    Origins(Vec<String>),
}

impl Cors {
    /// Parses `*` or a comma-separated list of origins.
    pub fn parse(text: &str) -> Result<Cors, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(Cors::Any);
        }
        let origins: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect();
        if origins.is_empty() {
            return Err("expected * or a comma-separated list of origins".into());
        }
        if let Some(bad) = origins
            .iter()
            .find(|o| o.bytes().any(|b| b.is_ascii_control() || b == b' '))
        {
            return Err(format!("invalid origin '{bad}'"));
        }
        Ok(Cors::Origins(origins))
    }
}

/// When the history file is synced to the device: what a power cut can lose (see the README's
/// "Durable history").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every write, before its events are delivered and acknowledged.
    #[default]
    Always,
    /// At most once per interval; events are delivered once written to the OS.
    Interval(Duration),
    /// Left to the OS (and done at compaction and stop).
    Never,
}

/// How much the server says on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Quiet,
    /// Start, bind, refused clients, slow clients dropped.
    #[default]
    Info,
    /// Also every connection accepted and closed.
    Verbose,
}

/// The longest heartbeat or head timeout: a day, far from any overflow of the clock.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Server settings. `Config::default()` is the daemon's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Events kept for `Last-Event-ID` replay.
    pub history: usize,
    /// Interval between heartbeat comments; zero turns them off.
    pub heartbeat: Duration,
    /// `retry:` sent at the start of every stream.
    pub retry: Option<u32>,
    /// Most open event streams. Other requests (publishes, `/health`, `/metrics`, the viewer)
    /// keep a reserve of connections on top (see [`Config::connection_reserve`]).
    pub max_clients: usize,
    /// Most bytes waiting for one subscriber before it is dropped.
    pub max_queue: usize,
    /// Largest publish body.
    pub max_body: usize,
    /// Time a client has to send a whole request head.
    pub head_timeout: Duration,
    /// Most events waiting between publishing threads and the loop.
    pub publish_queue: usize,
    /// CORS policy.
    pub cors: Cors,
    /// When set, publishing needs `Authorization: Bearer <token>`.
    pub publish_token: Option<String>,
    /// When set, subscribing needs the bearer token or `?token=`.
    pub subscribe_token: Option<String>,
    /// How much is logged on stderr.
    pub log: LogLevel,
    /// When set, every accepted event is appended to this file before it is delivered, and the
    /// retained history is loaded from it at start.
    pub history_file: Option<PathBuf>,
    /// When the history file is synced.
    pub fsync: FsyncPolicy,
    /// The HS256 secret publishers' JSON Web Tokens are signed with (at least 32 bytes, used as
    /// written). With it, a publish needs a token whose `mercure.publish` selectors match every
    /// topic of the event (or the `publish_token`). Needs the cargo feature `jwt`.
    pub publisher_jwt_key: Option<String>,
    /// The HS256 secret subscribers' tokens are signed with. With it, subscribing needs a token
    /// (unless `anonymous`), and private events reach the streams whose token's
    /// `mercure.subscribe` selectors match one of their topics. Needs the feature `jwt`.
    pub subscriber_jwt_key: Option<String>,
    /// With a `subscriber_jwt_key`: subscribers without a token are let in, to public events.
    pub anonymous: bool,
    /// When set, the URL of the Redis (7 or later) or Valkey server whose stream this node
    /// shares with the other nodes of a cluster: `redis://[:PASSWORD@]HOST[:PORT][/DB]` or
    /// `unix:///PATH`. Needs the cargo feature `redis`; excludes `history_file` (the stream is
    /// the durable history).
    pub redis: Option<String>,
    /// The key of the cluster's stream.
    pub redis_stream: String,
    /// Entries the stream keeps for replay (`XADD ... MAXLEN ~ N`); `None` keeps `history`,
    /// and at least [`MIN_REDIS_HISTORY`].
    pub redis_history: Option<usize>,

    // ---- the host's say and view, and how the server listens -------------------------------
    /// What a program embedding the server hears from it and decides for it (see [`Hooks`]).
    pub hooks: Hooks,
    /// `/metrics` lists the open streams per topic (`ssed_topic_subscribers{topic="..."}`).
    /// Off by default: every topic listened to is one more series.
    pub metrics_topics: bool,
    /// A listening TCP socket to serve instead of binding `listen`, such as one systemd passes
    /// (socket activation); the server owns it from then on.
    pub listen_fd: Option<i32>,
    /// A Unix-domain socket created at this path (mode 0660) for local publishers: requests on
    /// it need no token (the file's permissions are its access control), may only publish or
    /// read `/health` and `/metrics`, and have connections of their own that no TCP client can
    /// take.
    pub publish_socket: Option<PathBuf>,
    /// A listening Unix-domain socket to serve as the publish socket instead of creating one
    /// (socket activation); the server owns it from then on.
    pub publish_socket_fd: Option<i32>,
    /// With `tls_key`: the listener speaks HTTPS, presenting this PEM certificate chain (the
    /// server's certificate first). Reread by [`Handle::reload_tls`](crate::Handle::reload_tls).
    /// Needs the cargo feature `tls`.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, ECDSA or Ed25519) of
    /// `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Mercure 1.0: the hub's public URL, as browsers and publishers reach it (behind a proxy,
    /// the proxy's). Relative topics and URL patterns are resolved against it, its path roots
    /// the namespace reserved to the hub, and discovery names it. `None`: `http://` and the
    /// bound address, then `/.well-known/mercure`.
    pub hub_url: Option<String>,
    /// Mercure 1.0: the hub's resource identifier, which access tokens' `aud` must contain;
    /// `None`: the hub URL.
    pub resource_identifier: Option<String>,
    /// Mercure 1.0: the issuers whose access tokens (`typ` `at+jwt`) the hub trusts, each with
    /// its own keys. Needs the cargo feature `jwt`.
    pub issuers: Vec<Issuer>,
    /// Mercure 1.0's active subscriptions: subscription events and the subscription API.
    pub subscriptions: bool,
    /// Event loops, each on a thread of its own (see `loops.rs`): the first serves every
    /// request, and the streams are spread over all of them. 1 (the default here and in the C
    /// library; the daemon's is [`Config::default_loops`]) is the single-loop server. Needs
    /// the cargo feature `loops` beyond 1.
    pub loops: usize,
}

/// The most event loops a server runs.
pub const MAX_LOOPS: usize = 64;
/// The daemon's default is one loop per core, at most this many: past a few loops a fan-out is
/// bound by memory bandwidth rather than by cores, and each loop costs a thread and its share
/// of every event's entries.
pub const DEFAULT_LOOPS_CAP: usize = 8;

/// A trusted issuer of Mercure 1.0 access tokens: the `iss` its tokens carry, and the keys its
/// publishers' and subscribers' tokens are signed with (either may be absent). A key is
/// written `HS256:SECRET` (or the bare secret, 32 bytes or more), `RS256:PEM` or `ES256:PEM`
/// (with the features `jwt-rs256`, `jwt-es256`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Issuer {
    pub issuer: String,
    pub publisher_key: Option<String>,
    pub subscriber_key: Option<String>,
}

impl Issuer {
    /// An issuer whose publishers and subscribers sign with the same key.
    pub fn new(issuer: impl Into<String>, key: impl Into<String>) -> Issuer {
        let key = key.into();
        Issuer {
            issuer: issuer.into(),
            publisher_key: Some(key.clone()),
            subscriber_key: Some(key),
        }
    }
}

/// The fewest entries a cluster's stream keeps: a node that falls that far behind would miss
/// events trimmed before it read them.
pub const MIN_REDIS_HISTORY: usize = 1024;

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            history: 1024,
            heartbeat: Duration::from_secs(15),
            retry: None,
            max_clients: 10_000,
            max_queue: 1 << 20,
            max_body: 1 << 20,
            head_timeout: Duration::from_secs(10),
            publish_queue: 65_536,
            cors: Cors::Off,
            publish_token: None,
            subscribe_token: None,
            log: LogLevel::Info,
            history_file: None,
            fsync: FsyncPolicy::Always,
            publisher_jwt_key: None,
            subscriber_jwt_key: None,
            anonymous: false,
            redis: None,
            redis_stream: "ssed".into(),
            redis_history: None,
            hooks: Hooks::default(),
            metrics_topics: false,
            listen_fd: None,
            publish_socket: None,
            publish_socket_fd: None,
            tls_cert: None,
            tls_key: None,
            hub_url: None,
            resource_identifier: None,
            issuers: Vec::new(),
            subscriptions: false,
            loops: 1,
        }
    }
}

impl Config {
    /// Connections kept beyond `max_clients` for requests that are not streams, so that a server
    /// full of subscribers can still be published to, checked and scraped: a tenth of
    /// `max_clients`, and at least 32.
    pub fn connection_reserve(&self) -> usize {
        (self.max_clients / 10).max(32)
    }

    /// The largest `max_clients`: with its reserve, as many connections as a server can tell
    /// apart in its poll tokens. That is about a million on a 32-bit target (where a token
    /// has 20 bits for the connection), and billions on a 64-bit one.
    pub fn max_clients_limit() -> usize {
        let fits = |n: usize| n.saturating_add((n / 10).max(32)) <= MAX_CONNECTIONS;
        let mut limit = MAX_CONNECTIONS / 11 * 10;
        while fits(limit + 1) {
            limit += 1;
        }
        while !fits(limit) {
            limit -= 1;
        }
        limit
    }

    /// Entries the cluster's stream keeps: `redis_history`, else `history`, at least
    /// [`MIN_REDIS_HISTORY`].
    pub fn redis_stream_length(&self) -> usize {
        self.redis_history
            .unwrap_or(self.history)
            .max(MIN_REDIS_HISTORY)
    }

    /// The hub's public URL: `hub_url`, else `http://`, the listening address and the hub's
    /// path.
    pub fn hub_url(&self) -> String {
        self.hub_url
            .clone()
            .unwrap_or_else(|| format!("http://{}{}", self.listen, crate::mercure::HUB_PATH))
    }

    /// The hub's identity as Mercure 1.0 sees it.
    #[cfg(feature = "jwt")]
    pub(crate) fn hub(&self) -> Result<crate::mercure::Hub, String> {
        crate::mercure::Hub::new(&self.hub_url(), self.resource_identifier.as_deref())
            .map_err(|e| e.to_string())
    }

    /// The daemon's default number of loops: one per core, at most [`DEFAULT_LOOPS_CAP`]; 1
    /// in a build without the cargo feature `loops`.
    pub fn default_loops() -> usize {
        if !cfg!(feature = "loops") {
            return 1;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(DEFAULT_LOOPS_CAP)
    }

    /// Refuses settings the server cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        #[cfg(feature = "loops")]
        if self.loops == 0 || self.loops > MAX_LOOPS {
            return Err(format!("loops must be from 1 to {MAX_LOOPS}"));
        }
        #[cfg(not(feature = "loops"))]
        if self.loops != 1 {
            return Err("this ssed was built with one event loop (cargo feature loops)".into());
        }
        #[cfg(feature = "jwt")]
        self.hub()?;
        if self.subscriptions && !cfg!(feature = "jwt") {
            return Err(
                "this ssed was built without active subscriptions (cargo feature jwt)".into(),
            );
        }
        if !self.issuers.is_empty() && !cfg!(feature = "jwt") {
            return Err("this ssed was built without JWT support (cargo feature jwt)".into());
        }
        #[cfg(feature = "jwt")]
        for issuer in &self.issuers {
            if issuer.publisher_key.is_none() && issuer.subscriber_key.is_none() {
                return Err(format!("issuer '{}' has no key", issuer.issuer));
            }
            crate::auth::access_token::TrustedIssuer::new(
                &issuer.issuer,
                issuer.publisher_key.as_deref(),
                issuer.subscriber_key.as_deref(),
            )
            .map_err(|why| format!("issuer '{}': {why}", issuer.issuer))?;
        }
        if self.max_clients == 0 {
            return Err("max_clients must be at least 1".into());
        }
        if self.max_clients > Config::max_clients_limit() {
            return Err(format!(
                "max_clients must be at most {} on this target",
                Config::max_clients_limit()
            ));
        }
        if self.max_queue == 0 {
            return Err("max_queue must be at least 1 byte".into());
        }
        if self.publish_queue == 0 {
            return Err("publish_queue must be at least 1".into());
        }
        if self.head_timeout.is_zero() || self.head_timeout > MAX_INTERVAL {
            return Err("head_timeout must be between 1 ms and one day".into());
        }
        if self.heartbeat > MAX_INTERVAL {
            return Err("heartbeat must be at most one day".into());
        }
        if self.history_file.is_some() && !cfg!(feature = "history-file") {
            return Err(
                "this ssed was built without the history file (cargo feature history-file)".into(),
            );
        }
        if let FsyncPolicy::Interval(every) = self.fsync
            && (every.is_zero() || every > MAX_INTERVAL)
        {
            return Err("the fsync interval must be between 1 ms and one day".into());
        }
        if let Some(url) = &self.redis {
            validate_redis(url, &self.redis_stream)?;
            if self.history_file.is_some() {
                return Err(
                    "redis and history_file exclude each other: in a cluster the \
                            Redis stream is the durable history"
                        .into(),
                );
            }
        }
        validate_tls(&self.tls_cert, &self.tls_key)?;
        for token in [&self.publish_token, &self.subscribe_token]
            .into_iter()
            .flatten()
        {
            if token.is_empty() || token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err("a token must be non-empty printable text without spaces".into());
            }
        }
        self.validate_host_settings()?;
        for (name, key) in [
            ("publisher_jwt_key", &self.publisher_jwt_key),
            ("subscriber_jwt_key", &self.subscriber_jwt_key),
        ] {
            if let Some(key) = key {
                Config::check_jwt_key(key).map_err(|why| format!("{name}: {why}"))?;
            }
        }
        Ok(())
    }

    /// Whether subscribers' tokens are checked with some key: the 0.x one, or a Mercure 1.0
    /// issuer's.
    pub fn has_subscriber_key(&self) -> bool {
        self.subscriber_jwt_key.is_some() || self.issuers.iter().any(|i| i.subscriber_key.is_some())
    }

    /// Refuses the settings of the host and listening sections that cannot work together, or
    /// that this build cannot serve.
    fn validate_host_settings(&self) -> Result<(), String> {
        if !cfg!(feature = "host") && self.metrics_topics {
            return Err("this ssed was built without counts per topic (cargo feature host)".into());
        }
        let handed_over = self.listen_fd.is_some() || self.publish_socket_fd.is_some();
        if !cfg!(feature = "sockets") && (handed_over || self.publish_socket.is_some()) {
            return Err(
                "this ssed was built without the publish socket or sockets handed over \
                 (cargo feature sockets)"
                    .into(),
            );
        }
        if self.anonymous && !self.has_subscriber_key() {
            return Err(
                "anonymous goes with subscriber_jwt_key or an issuer's subscriber key: without \
                 one every subscriber is let in already"
                    .into(),
            );
        }
        for (name, fd) in [
            ("listen_fd", self.listen_fd),
            ("publish_socket_fd", self.publish_socket_fd),
        ] {
            if fd.is_some_and(|fd| fd < 0) {
                return Err(format!("{name} must be a file descriptor (0 or more)"));
            }
        }
        if let Some(path) = &self.publish_socket {
            if path.as_os_str().is_empty() {
                return Err("publish_socket: an empty path".into());
            }
            if self.publish_socket_fd.is_some() {
                return Err("publish_socket and publish_socket_fd exclude each other".into());
            }
        }
        Ok(())
    }

    /// Refuses a JWT key ssed cannot verify with: an HS256 secret under 32 bytes (256 bits, as
    /// RFC 7518 asks), or any key when built without the feature `jwt`. The message never
    /// shows the key.
    pub fn check_jwt_key(key: &str) -> Result<(), String> {
        #[cfg(feature = "jwt")]
        return crate::auth::Key::new("HS256", key)
            .map(|_| ())
            .map_err(|e| e.to_string());
        #[cfg(not(feature = "jwt"))]
        {
            let _ = key;
            Err("this ssed was built without JWT support (cargo feature jwt)".into())
        }
    }
}

/// The address to listen on for `text`: an address (`127.0.0.1:8080`, `[::1]:8080`), or a host
/// name and a port (`localhost:8080`), resolved now to its first IPv4 address, else its first
/// address.
pub fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !cfg!(feature = "sockets") {
        return Err(
            "expected an address such as 127.0.0.1:8080 or [::1]:8080 (this small build \
                    resolves no host names)"
                .into(),
        );
    }
    let expected = || {
        format!(
            "expected HOST:PORT, such as 127.0.0.1:8080, [::1]:8080 or localhost:8080, got '{text}'"
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
    let port: u16 = port.parse().map_err(|_| expected())?;
    if host.is_empty() || host.contains([':', '[', ']', '/']) {
        return Err(expected());
    }
    let found: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .collect();
    found
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("'{host}' resolves to no address"))
}

/// Refuses half a certificate pair, and a pair in a build without TLS.
fn validate_tls(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Result<(), String> {
    match (cert, key) {
        (None, None) => Ok(()),
        (Some(_), None) | (None, Some(_)) => {
            Err("tls_cert and tls_key go together: a certificate needs its key".into())
        }
        (Some(_), Some(_)) if !cfg!(feature = "tls") => {
            Err("this ssed was built without TLS (cargo feature tls)".into())
        }
        (Some(cert), Some(key)) if cert.as_os_str().is_empty() || key.as_os_str().is_empty() => {
            Err("tls_cert and tls_key must be paths".into())
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// Refuses a Redis URL of a scheme the cluster cannot use, and an unusable stream key.
fn validate_redis(url: &str, stream: &str) -> Result<(), String> {
    if !cfg!(feature = "redis") {
        return Err("this ssed was built without Redis support (cargo feature redis)".into());
    }
    let schemes = ["redis://", "unix://", "redis+unix://"];
    if !schemes.iter().any(|scheme| url.starts_with(scheme)) {
        return Err(format!(
            "redis: expected a redis:// or unix:// URL, got '{url}' (TLS is not supported)"
        ));
    }
    if stream.is_empty() || stream.bytes().any(|b| b.is_ascii_control()) {
        return Err("redis_stream must be a non-empty key without control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_parses_star_and_lists() {
        assert_eq!(Cors::parse("*"), Ok(Cors::Any));
        assert_eq!(
            Cors::parse("https://a.test, https://b.test"),
            Ok(Cors::Origins(vec![
                "https://a.test".into(),
                "https://b.test".into()
            ]))
        );
        assert!(Cors::parse(" , ").is_err());
    }

    #[test]
    fn redis_settings_are_checked() {
        let with = |url: &str| Config {
            redis: Some(url.into()),
            ..Config::default()
        };
        assert!(with("http://127.0.0.1").validate().is_err());
        assert_eq!(
            with("redis://127.0.0.1:6379").validate().is_ok(),
            cfg!(feature = "redis")
        );
        let both = Config {
            history_file: Some("h".into()),
            ..with("redis://127.0.0.1:6379")
        };
        assert!(both.validate().is_err());
        assert_eq!(with("redis://x").redis_stream_length(), MIN_REDIS_HISTORY);
        let long = Config {
            history: 5000,
            ..with("redis://x")
        };
        assert_eq!(long.redis_stream_length(), 5000);
    }

    #[cfg(feature = "sockets")]
    #[test]
    fn listen_takes_addresses_and_host_names() {
        assert_eq!(
            resolve_listen("127.0.0.1:9000"),
            Ok("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            resolve_listen("localhost:9000").map(|a| (a.ip().is_loopback(), a.port())),
            Ok((true, 9000))
        );
        for bad in ["nowhere", "localhost", ":80", "localhost:http", "a:b:1"] {
            let why = resolve_listen(bad).unwrap_err();
            assert!(why.contains("expected HOST:PORT"), "{bad}: {why}");
        }
        let why = resolve_listen("no-such-host.invalid:80").unwrap_err();
        assert!(
            why.starts_with("cannot resolve 'no-such-host.invalid'"),
            "{why}"
        );
    }

    #[test]
    fn max_clients_and_their_reserve_fit_the_poll_tokens() {
        let limit = Config::max_clients_limit();
        let at = |max_clients| Config {
            max_clients,
            ..Config::default()
        };
        assert_eq!(at(limit).validate(), Ok(()));
        assert!(limit + at(limit).connection_reserve() <= MAX_CONNECTIONS);
        assert!(at(limit + 1).validate().is_err());
        assert!(at(usize::MAX).validate().is_err());
        // Where usize has 32 bits, a token has 20 bits for the connection: about a million.
        if usize::BITS == 32 {
            assert_eq!(limit, 953_249);
        }
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(Config::default().validate(), Ok(()));
        let bad = Config {
            publish_token: Some("a b".into()),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_jwt_key_under_32_bytes_is_refused_naming_the_field_not_the_key() {
        let short = Config {
            subscriber_jwt_key: Some("!ChangeMe!".into()),
            ..Config::default()
        };
        let why = short.validate().unwrap_err();
        assert!(why.starts_with("subscriber_jwt_key: "), "{why}");
        assert!(!why.contains("ChangeMe"), "{why}");
        let long = Config {
            publisher_jwt_key: Some("!ChangeThisMercureHubJWTSecretKey!".into()),
            ..Config::default()
        };
        assert_eq!(long.validate().is_ok(), cfg!(feature = "jwt"));
    }
}
