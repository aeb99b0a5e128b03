//! The callbacks a C host sets in `sse_config` (`sse_log_callback`, `sse_access_callback`,
//! `sse_stream_callback`), what the stream callback is told (`sse_stream_event`), and the
//! hooks (src/hooks.rs) made of them.

#[cfg(feature = "host")]
use std::ffi::CString;
use std::ffi::{c_char, c_int, c_void};
#[cfg(feature = "host")]
use std::sync::Arc;

use super::request::sse_request;
#[cfg(feature = "host")]
use crate::config::LogLevel;
use crate::hooks::Hooks;
#[cfg(feature = "host")]
use crate::hooks::{Access, AccessHook, AccessRequest, LogHook, StreamEvent, StreamHook};

/// Receives one log line: its level (an `sse_log_level`: 1 for an error, 2 for information, 3
/// for every connection), the line (NUL-terminated UTF-8, without a trailing newline or a
/// "ssed: " prefix), its length in bytes, and the config's `callback_data`.
/// Called on a thread of the library's own, one line at a time, in order: never on the loop's
/// thread, never concurrently with itself. A slow callback holds up only that thread: lines
/// wait (up to 1024) and are then dropped and counted, and the callback is told how many with
/// its next line. The line is the library's, valid during the call: copy it to keep it.
pub type sse_log_callback =
    Option<unsafe extern "C" fn(level: c_int, line: *const c_char, len: usize, data: *mut c_void)>;

/// Decides whether a stream may open or a publish be accepted, once the request has passed the
/// server's tokens and JSON Web Tokens (a request must pass both). Returns 0 to allow, or an
/// HTTP status from 400 to 599 to refuse (401, 403, 429...): the client gets that status and
/// nothing is published (`sse_request_set_reason` sets the answer's body). Any other value
/// refuses with 500 and is logged.
/// `request` and every string read from it are valid only during the call (see
/// `sse_request_*`). Called on the loop's thread, synchronously: while it runs no other
/// client is served, so it must be fast (a lookup in memory, not a network round trip). Events
/// published meanwhile wait in the publish queue and none is lost; a call that takes more than
/// 100 ms is logged. It must not call `sse_server_stop`, `sse_server_free` or
/// `sse_server_run*` on its own server.
pub type sse_access_callback =
    Option<unsafe extern "C" fn(request: *mut sse_request, data: *mut c_void) -> c_int>;

/// A stream that opened or closed, as `sse_stream_callback` is told. The library's; valid,
/// with every string it points to, only during the call. Fields may be added at the end.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sse_stream_event {
    /// 1 when the stream opened (its head and any replay are queued), 0 when it closed.
    pub opened: i32,
    /// The stream's id: the same when it opens and when it closes, unique among open streams.
    pub stream_id: u64,
    /// The topics (or selectors) the stream asked for, as sent; `topic_count` of them, none
    /// when it asked for every topic.
    pub topics: *const *const c_char,
    pub topic_count: usize,
    /// The client's address ("127.0.0.1:51234"), or NULL when unknown.
    pub peer: *const c_char,
}

/// Told of every stream that opens and closes (for hosts that keep presence themselves; the
/// counts alone are `sse_server_topic_subscribers`). Called on the loop's thread,
/// synchronously, so it must be fast: while it runs no other client is served. With several
/// `loops`, a stream's close is heard on the thread of the loop that holds it, so the callback
/// may run on several threads at once; a stream's open and close carry the same id. It must not
/// call `sse_server_stop`, `sse_server_free` or `sse_server_run*` on its own server.
pub type sse_stream_callback =
    Option<unsafe extern "C" fn(event: *const sse_stream_event, data: *mut c_void)>;

/// Receives one topic and how many open streams asked for it, from `sse_server_each_topic`, on
/// the thread that called it; `topic` is valid during the call.
pub type sse_topic_callback =
    Option<unsafe extern "C" fn(topic: *const c_char, subscribers: u64, data: *mut c_void)>;

/// The host's `callback_data`, handed back to every callback. The host promises, by setting
/// callbacks, that they may run on the threads their documentation names.
#[cfg(feature = "host")]
#[derive(Clone, Copy)]
struct Data(*mut c_void);

// SAFETY: the pointer is only ever passed back to the host's callbacks, which the host has
// declared callable from the library's threads (see each callback's documentation).
#[cfg(feature = "host")]
unsafe impl Send for Data {}
// SAFETY: as above; the library never dereferences it.
#[cfg(feature = "host")]
unsafe impl Sync for Data {}

#[cfg(feature = "host")]
impl Data {
    /// The pointer (a method, so that closures capture the whole `Data`, which is `Send`).
    fn get(self) -> *mut c_void {
        self.0
    }
}

/// The hooks the callbacks of a C config make.
#[cfg(feature = "host")]
pub(super) fn hooks(
    log: sse_log_callback,
    access: sse_access_callback,
    streams: sse_stream_callback,
    data: *mut c_void,
) -> Result<Hooks, &'static str> {
    let data = Data(data);
    Ok(Hooks {
        log: log.map(|callback| log_hook(callback, data)),
        access: access.map(|callback| access_hook(callback, data)),
        streams: streams.map(|callback| stream_hook(callback, data)),
    })
}

/// Without the cargo feature `host`, a library that calls no callback.
#[cfg(not(feature = "host"))]
pub(super) fn hooks(
    log: sse_log_callback,
    access: sse_access_callback,
    streams: sse_stream_callback,
    _: *mut c_void,
) -> Result<Hooks, &'static str> {
    if log.is_some() || access.is_some() || streams.is_some() {
        return Err("this libssed was built without callbacks (cargo feature host)");
    }
    Ok(Hooks::default())
}

#[cfg(feature = "host")]
/// A NUL-terminated copy of `text`, its NULs dropped.
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

#[cfg(feature = "host")]
fn log_hook(
    callback: unsafe extern "C" fn(c_int, *const c_char, usize, *mut c_void),
    data: Data,
) -> LogHook {
    Arc::new(move |level: LogLevel, text: &str| {
        let line = c_text(text);
        let level = match level {
            LogLevel::Off | LogLevel::Quiet => 1,
            LogLevel::Info => 2,
            LogLevel::Verbose => 3,
        };
        // SAFETY: the host's callback, called as its type says; `line` outlives the call.
        unsafe { callback(level, line.as_ptr(), line.as_bytes().len(), data.get()) };
    })
}

#[cfg(feature = "host")]
fn access_hook(
    callback: unsafe extern "C" fn(*mut sse_request, *mut c_void) -> c_int,
    data: Data,
) -> AccessHook {
    Arc::new(move |request: &AccessRequest<'_>| {
        let mut view = sse_request::new(request);
        // SAFETY: the host's callback, called as its type says; `view` outlives the call.
        let answer = unsafe { callback(&mut view, data.get()) };
        match answer {
            0 | 200 => Access::Allow,
            status => Access::Deny {
                status: u16::try_from(status).unwrap_or(0),
                reason: view.reason.take().unwrap_or_default(),
            },
        }
    })
}

#[cfg(feature = "host")]
fn stream_hook(
    callback: unsafe extern "C" fn(*const sse_stream_event, *mut c_void),
    data: Data,
) -> StreamHook {
    Arc::new(move |event: &StreamEvent<'_>| {
        let topics: Vec<CString> = event.topics.iter().map(|t| c_text(t)).collect();
        let pointers: Vec<*const c_char> = topics.iter().map(|t| t.as_ptr()).collect();
        let peer = event.peer.map(|peer| c_text(&peer.to_string()));
        let told = sse_stream_event {
            opened: i32::from(event.opened),
            stream_id: event.id,
            topics: if pointers.is_empty() {
                std::ptr::null()
            } else {
                pointers.as_ptr()
            },
            topic_count: pointers.len(),
            peer: peer.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
        };
        // SAFETY: the host's callback, called as its type says; `told` and the strings it
        // points to outlive the call.
        unsafe { callback(&told, data.get()) };
    })
}
