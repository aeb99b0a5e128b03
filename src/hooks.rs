//! What a program that embeds a server hears from it and decides for it: its log lines, the
//! streams that open and close, and who may subscribe or publish. Set in [`Config::hooks`];
//! the C API sets them from function pointers (src/ffi/callbacks.rs).
//!
//! Threads, and what a slow hook costs:
//! - [`Hooks::log`] runs on a thread of the server's own (`ssed-log`), one line at a time, in
//!   order. A slow hook only delays its own lines: lines queue (up to 1024), then are dropped and
//!   counted, and the hook hears how many (see src/log.rs). The loop never waits for it.
//! - [`Hooks::access`] and [`Hooks::streams`] run on the loop's thread, synchronously, because
//!   the loop cannot answer the request or go on before they return. They must be fast (a
//!   lookup in memory): while one runs, no other client of the server is served. Events
//!   published meanwhile wait in the publish queue (up to its size; beyond it publishers get
//!   "queue full") and are delivered, none lost, once the hook returns. An access hook that
//!   takes more than 100 ms is logged. With several loops (`Config::loops`), requests are all
//!   served by the first loop, but a stream closes on the loop that holds it: the stream hook
//!   may then run on several threads at once.
//!
//! [`Config::hooks`]: crate::Config::hooks

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::LogLevel;

/// Receives each log line (without the `ssed: ` prefix of stderr) and its level: `Quiet` for
/// errors, `Info`, `Verbose`.
pub type LogHook = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// Decides whether a stream may open or a publish be accepted.
pub type AccessHook = Arc<dyn Fn(&AccessRequest<'_>) -> Access + Send + Sync>;

/// Hears every stream that opens and closes.
pub type StreamHook = Arc<dyn Fn(&StreamEvent<'_>) + Send + Sync>;

/// The host's hooks; none is set by default, and then nothing is asked or told. (Without the
/// cargo feature `host`, as in the tiny daemon, there are none to set.)
#[derive(Clone, Default)]
pub struct Hooks {
    /// Where log lines go instead of stderr (up to `Config::log`).
    #[cfg(feature = "host")]
    pub log: Option<LogHook>,
    /// Asked before a stream opens and before a publish is accepted, once the request has
    /// passed the tokens and JSON Web Tokens the server is configured with: a request must pass
    /// both.
    #[cfg(feature = "host")]
    pub access: Option<AccessHook>,
    /// Told of every stream that opens (once its head and any replay are queued) and closes.
    #[cfg(feature = "host")]
    pub streams: Option<StreamHook>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Hooks");
        #[cfg(feature = "host")]
        out.field("log", &self.log.is_some())
            .field("access", &self.access.is_some())
            .field("streams", &self.streams.is_some());
        out.finish()
    }
}

impl PartialEq for Hooks {
    /// The same hooks: the same functions, not equal ones.
    #[cfg_attr(not(feature = "host"), allow(unused_variables))]
    fn eq(&self, other: &Hooks) -> bool {
        #[cfg(feature = "host")]
        {
            fn same<T: ?Sized>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
                match (a, b) {
                    (None, None) => true,
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                }
            }
            same(&self.log, &other.log)
                && same(&self.access, &other.access)
                && same(&self.streams, &other.streams)
        }
        #[cfg(not(feature = "host"))]
        true
    }
}

impl Eq for Hooks {}

/// A request the access hook decides on: read-only, valid only during the call.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// `GET` (a stream) or `POST` (a publish).
    pub method: &'a str,
    /// `/events`, `/publish` or `/.well-known/mercure`.
    pub path: &'a str,
    /// The query string, without the `?`.
    pub query: &'a str,
    /// The topics the stream asks for (none: every topic), or the event's topics (none: the
    /// empty topic).
    pub topics: &'a [String],
    /// The client's address; `None` over the publish socket.
    pub peer: Option<SocketAddr>,
    /// True for a publish, false for a stream.
    pub publish: bool,
    /// The request head as received, for its header lines.
    #[cfg_attr(not(feature = "host"), allow(dead_code))]
    pub(crate) head: &'a [u8],
}

#[cfg(feature = "host")]
impl<'a> AccessRequest<'a> {
    /// The value of the first header line named `name` (case-insensitive), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        request.parse(self.head).ok()?;
        let value = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))?
            .value;
        std::str::from_utf8(value).ok().map(str::trim)
    }

    /// The value of the cookie `name` (case-sensitive, as cookies are), from the first `Cookie`
    /// header line that has it, without the quotes RFC 6265 allows around it.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        request.parse(self.head).ok()?;
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .find_map(|h| crate::http::cookie(h.value, name))
    }
}

/// The access hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Open the stream, or accept the publish.
    Allow,
    /// Refuse with `status` (400 to 599; anything else is answered 500) and `reason` as the
    /// answer's body (a default one when empty). Nothing is published.
    Deny { status: u16, reason: String },
}

impl Access {
    /// A refusal with `status` and `reason`.
    pub fn deny(status: u16, reason: impl Into<String>) -> Access {
        Access::Deny {
            status,
            reason: reason.into(),
        }
    }
}

/// A stream that opened or closed, as the stream hook hears it; valid only during the call.
#[derive(Debug, Clone, Copy)]
pub struct StreamEvent<'a> {
    /// True when it opened, false when it closed.
    pub opened: bool,
    /// The stream's id: the same when it opens and when it closes, unique among open streams.
    pub id: u64,
    /// The topics (or selectors) it asked for; none: every topic.
    pub topics: &'a [&'a str],
    /// The client's address, when known.
    pub peer: Option<SocketAddr>,
}
