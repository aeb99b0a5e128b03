//! Who is listening: open streams per topic, readable from any thread.

use std::ffi::{CString, c_char, c_void};

use super::callbacks::sse_topic_callback;
use super::result::{fail, sse_result};
use super::server::sse_server;
use super::{guard, optional_str};

/// How many open streams asked for `topic` (as sent: an exact topic, or a selector such as
/// `https://example.com/books/{id}`); with `topic` NULL, how many asked for no topic and so
/// receive every topic. A stream that asked for several topics counts under each; the total of
/// open streams is `subscribers` in `sse_stats`. The same counts `/metrics` shows with
/// `metrics_topics`. Returns the count (0 or more), or a negative `sse_result`:
/// `SSE_RESULT_NULL_ARGUMENT` for a NULL `server`, `SSE_RESULT_INVALID_UTF8`.
/// Counting costs nothing per event: the counts change when a stream opens or closes.
/// Thread-safety: any thread, at any time until `sse_server_free`.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed; `topic` is NULL or
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_topic_subscribers(
    server: *const sse_server,
    topic: *const c_char,
) -> i64 {
    guard(sse_result::Panic as i64, || {
        // SAFETY: NULL or live (the caller's promise).
        let Some(server) = (unsafe { server.as_ref() }) else {
            return fail(sse_result::NullArgument, "server is NULL") as i64;
        };
        let topic = if topic.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated (the caller's promise).
            match unsafe { optional_str(topic, "topic") } {
                Ok(topic) => Some(topic),
                Err(code) => return code as i64,
            }
        };
        i64::try_from(server.handle().topic_subscribers(topic)).unwrap_or(i64::MAX)
    })
}

/// Calls `callback` once for each topic open streams asked for now, with how many did, in
/// the order of the topics' bytes; streams that asked for every topic are not among them (see
/// `sse_server_topic_subscribers` with NULL). The counts are taken first, then the callback
/// is called on the calling thread without any lock held, so it may call any function of the
/// library. `topic` is valid during its call only. Returns the number of topics (0 or more),
/// or a negative `sse_result`: `SSE_RESULT_NULL_ARGUMENT` for a NULL `server` or `callback`.
/// Thread-safety: any thread, at any time until `sse_server_free`.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_each_topic(
    server: *const sse_server,
    callback: sse_topic_callback,
    data: *mut c_void,
) -> i64 {
    guard(sse_result::Panic as i64, || {
        // SAFETY: NULL or live (the caller's promise).
        let Some(server) = (unsafe { server.as_ref() }) else {
            return fail(sse_result::NullArgument, "server is NULL") as i64;
        };
        let Some(callback) = callback else {
            return fail(sse_result::NullArgument, "callback is NULL") as i64;
        };
        let topics = server.handle().topics();
        for (topic, count) in &topics {
            let text = CString::new(topic.replace('\0', "")).unwrap_or_default();
            // SAFETY: the caller's callback, called as its type says; `text` outlives the call.
            unsafe { callback(text.as_ptr(), *count, data) };
        }
        i64::try_from(topics.len()).unwrap_or(i64::MAX)
    })
}
