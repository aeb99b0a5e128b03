//! Counters the loop updates and any thread reads, and their Prometheus rendering.
//!
//! Only the loop thread writes them, so relaxed atomics are enough: readers want a recent
//! value, not a consistent snapshot across counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::store::FileHealth;

/// Why a request or connection was refused, for `ssed_requests_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    NotFound,
    MethodNotAllowed,
    TooLarge,
    Timeout,
    MaxClients,
    Unauthorized,
    Forbidden,
    QueueFull,
    Storage,
    /// A TLS handshake that failed, or bytes that are not TLS on an HTTPS port.
    Tls,
}

impl Refusal {
    const ALL: [Refusal; 11] = [
        Refusal::BadRequest,
        Refusal::NotFound,
        Refusal::MethodNotAllowed,
        Refusal::TooLarge,
        Refusal::Timeout,
        Refusal::MaxClients,
        Refusal::Unauthorized,
        Refusal::Forbidden,
        Refusal::QueueFull,
        Refusal::Storage,
        Refusal::Tls,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad_request",
            Refusal::NotFound => "not_found",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::TooLarge => "too_large",
            Refusal::Timeout => "timeout",
            Refusal::MaxClients => "max_clients",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
            Refusal::QueueFull => "queue_full",
            Refusal::Storage => "storage",
            Refusal::Tls => "tls",
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open client connections.
    pub connections: u64,
    /// Open event streams.
    pub subscribers: u64,
    /// Events published since start, counted when they are acknowledged: when `Handle::publish`
    /// (or `sse_publish`) returns the id, or `POST /publish` is answered `200`.
    pub events_published: u64,
    /// Bytes written to clients since start.
    pub bytes_sent: u64,
    /// Subscribers dropped for falling more than `max_queue` bytes behind.
    pub subscribers_dropped_slow: u64,
    /// Events retained for replay.
    pub history_events: u64,
    /// Requests and connections refused, all reasons together.
    pub requests_refused: u64,
    /// Events the loop has handed to its subscribers (queued for every stream that wants them)
    /// since start: in a cluster, those published on every node.
    pub events_delivered: u64,
}

/// The live counters of one loop. With several loops (`--loops`), each counts its own, and the
/// first loop's add the others' up when read: no counter is written by two loops.
#[derive(Debug, Default)]
// Each loop's on cache lines of their own.
#[cfg_attr(feature = "loops", repr(align(128)))]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub subscribers: AtomicU64,
    pub events_published: AtomicU64,
    pub events_delivered: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub history_events: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    /// On the first loop, the other loops' counters.
    #[cfg(feature = "loops")]
    pub others: std::sync::OnceLock<Vec<std::sync::Arc<Counters>>>,
}

impl Counters {
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Relaxed);
    }

    /// The server's counters: this loop's and the other loops'.
    pub fn snapshot(&self) -> Stats {
        #[cfg(feature = "loops")]
        if let Some(others) = self.others.get() {
            let mut sum = self.own();
            for other in others {
                let o = other.own();
                sum.connections += o.connections;
                sum.subscribers += o.subscribers;
                sum.events_published += o.events_published;
                sum.bytes_sent += o.bytes_sent;
                sum.subscribers_dropped_slow += o.subscribers_dropped_slow;
                sum.history_events += o.history_events;
                sum.requests_refused += o.requests_refused;
                sum.events_delivered += o.events_delivered;
            }
            return sum;
        }
        self.own()
    }

    /// Refusals for `why`, on every loop.
    fn refused_total(&self, why: Refusal) -> u64 {
        let n = self.refused[why as usize].load(Relaxed);
        #[cfg(feature = "loops")]
        if let Some(others) = self.others.get() {
            return n + others
                .iter()
                .map(|o| o.refused[why as usize].load(Relaxed))
                .sum::<u64>();
        }
        n
    }

    fn own(&self) -> Stats {
        Stats {
            connections: self.connections.load(Relaxed),
            subscribers: self.subscribers.load(Relaxed),
            events_published: self.events_published.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            subscribers_dropped_slow: self.dropped_slow.load(Relaxed),
            history_events: self.history_events.load(Relaxed),
            requests_refused: self.refused.iter().map(|c| c.load(Relaxed)).sum(),
            events_delivered: self.events_delivered.load(Relaxed),
        }
    }

    /// The `/metrics` body, Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "ssed_connections",
            "gauge",
            "Open client connections.",
            s.connections,
        );
        metric(
            "ssed_subscribers",
            "gauge",
            "Open event streams.",
            s.subscribers,
        );
        metric(
            "ssed_events_published_total",
            "counter",
            "Events published (acknowledged to their publishers).",
            s.events_published,
        );
        metric(
            "ssed_events_delivered_total",
            "counter",
            "Events handed to the subscribers that want them.",
            s.events_delivered,
        );
        metric(
            "ssed_bytes_sent_total",
            "counter",
            "Bytes written to clients.",
            s.bytes_sent,
        );
        metric(
            "ssed_subscribers_dropped_slow_total",
            "counter",
            "Subscribers dropped for falling too far behind.",
            s.subscribers_dropped_slow,
        );
        metric(
            "ssed_history_events",
            "gauge",
            "Events retained for replay.",
            s.history_events,
        );
        out.push_str(
            "# HELP ssed_requests_refused_total Requests and connections refused, by reason.\n",
        );
        out.push_str("# TYPE ssed_requests_refused_total counter\n");
        for why in Refusal::ALL {
            let n = self.refused_total(why);
            let _ = writeln!(
                out,
                "ssed_requests_refused_total{{reason=\"{}\"}} {n}",
                why.label()
            );
        }
        #[cfg(feature = "loops")]
        self.render_loops(&mut out);
        out
    }

    /// How the streams are spread over the loops, when there are several.
    #[cfg(feature = "loops")]
    fn render_loops(&self, out: &mut String) {
        let Some(others) = self.others.get() else {
            return;
        };
        out.push_str("# HELP ssed_loop_subscribers Open event streams, by event loop.\n");
        out.push_str("# TYPE ssed_loop_subscribers gauge\n");
        let loops = std::iter::once(self).chain(others.iter().map(|o| &**o));
        for (index, counters) in loops.enumerate() {
            let n = counters.subscribers.load(Relaxed);
            let _ = writeln!(out, "ssed_loop_subscribers{{loop=\"{index}\"}} {n}");
        }
    }
}

/// Appends the history file's metrics to a `/metrics` body.
pub fn render_history_file(out: &mut String, status: &FileHealth) {
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "ssed_history_file_failing",
        "gauge",
        "1 while the history file cannot be written (publishing is refused), else 0.",
        u64::from(status.failing.is_some()),
    );
    metric(
        "ssed_history_file_bytes",
        "gauge",
        "Bytes in the history file.",
        status.file_bytes,
    );
    metric(
        "ssed_history_file_syncs_total",
        "counter",
        "fsyncs of the history file.",
        status.syncs,
    );
    metric(
        "ssed_history_file_compactions_total",
        "counter",
        "Rewrites of the history file down to the retained events.",
        status.compactions,
    );
    metric(
        "ssed_history_file_lost_total",
        "counter",
        "Accepted events a failed write lost (their HTTP publishers got 503).",
        status.lost,
    );
}

/// A cluster node's view of its Redis, for `/health` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct RedisStatus {
    /// Why Redis cannot be used now; `None` while it can.
    pub trouble: Option<String>,
    /// How long the last event delivered took from its publish (its id is Redis's clock then,
    /// in microseconds) to this node's fan-out, in milliseconds.
    pub delivery_lag_ms: u64,
    /// Entries read from the stream, waiting for the loop.
    pub queued: u64,
    /// Connections to Redis made again after a failure.
    pub reconnects: u64,
    /// Times the stream was found to end before what this node had delivered: entries lost.
    pub rewinds: u64,
    /// Stream entries skipped: not written by ssed, or they would corrupt a stream.
    pub refused_entries: u64,
    /// `Last-Event-ID`s older than the ring, looked up in Redis.
    pub lookups: u64,
}

/// Appends a cluster node's Redis metrics to a `/metrics` body.
pub fn render_redis(out: &mut String, status: &RedisStatus) {
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "ssed_redis_up",
        "gauge",
        "1 while Redis can be published to and read from, else 0 (publishing is refused).",
        u64::from(status.trouble.is_none()),
    );
    metric(
        "ssed_redis_delivery_lag_milliseconds",
        "gauge",
        "From the last delivered event's publish in Redis to its fan-out on this node.",
        status.delivery_lag_ms,
    );
    metric(
        "ssed_redis_tail_queued_entries",
        "gauge",
        "Entries read from the stream and not yet delivered by this node.",
        status.queued,
    );
    metric(
        "ssed_redis_reconnects_total",
        "counter",
        "Connections to Redis made again after a failure.",
        status.reconnects,
    );
    metric(
        "ssed_redis_stream_rewinds_total",
        "counter",
        "Times the stream ended before what this node had delivered (entries lost, e.g. a failover).",
        status.rewinds,
    );
    metric(
        "ssed_redis_refused_entries_total",
        "counter",
        "Stream entries skipped: not written by ssed, or they would corrupt a stream.",
        status.refused_entries,
    );
    metric(
        "ssed_redis_replay_lookups_total",
        "counter",
        "Last-Event-IDs older than the ring, looked up in Redis.",
        status.lookups,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_help_type_and_every_reason() {
        let c = Counters::default();
        c.refused(Refusal::TooLarge);
        Counters::add(&c.events_published, 3);
        let text = c.render();
        assert!(text.contains(
            "# TYPE ssed_events_published_total counter\nssed_events_published_total 3\n"
        ));
        assert!(text.contains("ssed_requests_refused_total{reason=\"too_large\"} 1\n"));
        assert!(text.contains("ssed_requests_refused_total{reason=\"max_clients\"} 0\n"));
        assert!(text.contains("# HELP ssed_connections "));
        assert_eq!(c.snapshot().requests_refused, 1);
    }
}
