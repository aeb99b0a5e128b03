//! Everything a server can be told at construction, with the defaults of the daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
            redis: None,
            redis_stream: "ssed".into(),
            redis_history: None,
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

    /// Entries the cluster's stream keeps: `redis_history`, else `history`, at least
    /// [`MIN_REDIS_HISTORY`].
    pub fn redis_stream_length(&self) -> usize {
        self.redis_history
            .unwrap_or(self.history)
            .max(MIN_REDIS_HISTORY)
    }

    /// Refuses settings the server cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_clients == 0 {
            return Err("max_clients must be at least 1".into());
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
        for token in [&self.publish_token, &self.subscribe_token]
            .into_iter()
            .flatten()
        {
            if token.is_empty() || token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err("a token must be non-empty printable text without spaces".into());
            }
        }
        Ok(())
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

    #[test]
    fn defaults_validate() {
        assert_eq!(Config::default().validate(), Ok(()));
        let bad = Config {
            publish_token: Some("a b".into()),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }
}
