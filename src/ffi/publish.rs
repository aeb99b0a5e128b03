//! `sse_publish`: the one call on the hot path, and what it shares with `sse_publish_event`.

use std::cell::RefCell;
use std::ffi::c_char;

use super::result::{fail, sse_result};
use super::server::sse_server;
use super::{guard, optional_str};
use crate::{Event, FieldError, PublishError};

/// Publishes one event to the subscribers of `topic` and appends it to the history. Copies
/// everything it needs before returning; never blocks on the loop or the network, except in a
/// cluster (`redis_url`), where it waits for Redis to append the event and assign its id.
/// - `topic`: NULL or "" for the empty topic (which `GET /events` without `topic=` receives).
/// - `event_type`: NULL or "" for the default type `message`; must not contain CR or LF.
/// - `data`, `data_len`: the payload, `data_len` bytes of UTF-8, not necessarily
///   NUL-terminated; `data` may be NULL when `data_len` is 0. Line breaks (LF, CRLF, CR) become
///   one `data:` line each.
/// - `id`: NULL or "" to let the server assign the next id; otherwise the event's id, which
///   must not contain CR or LF.
///
/// Strings are NUL-terminated UTF-8, so a NUL can only end them. Returns, on success, the id
/// the server assigned (a decimal integer, always > 0: ids start at the current time in
/// microseconds and count up, so they also grow across restarts), or 0 when the caller gave its
/// own `id` (the event then carries exactly that id). On failure, nothing is published and a
/// negative `sse_result` comes back: `SSE_RESULT_NULL_ARGUMENT` (NULL `server`, or NULL `data`
/// with `data_len` > 0), `SSE_RESULT_INVALID_UTF8`, `SSE_RESULT_INVALID_FIELD` (CR or LF in
/// `event_type` or `id`), `SSE_RESULT_QUEUE_FULL` (the loop is `publish_queue` events behind:
/// retry later or drop the event), `SSE_RESULT_STOPPED`, `SSE_RESULT_STORAGE` (the history file
/// cannot be written: a full or failing disk), `SSE_RESULT_UNAVAILABLE` (a cluster's Redis cannot
/// be reached).
/// With a history file, subscribers receive the event once it is written (see `fsync_ms`), and
/// this call returns before that, once the event is queued: a crash of the process can lose
/// what it returned and the file had not yet written. In a cluster it returns once Redis has
/// the event (waiting at most 3 seconds on the calling thread, never on the loop).
/// Events published before the loop starts are queued (up to `publish_queue`) and sent when it
/// does. Events published from one thread reach every subscriber in that order.
/// Thread-safety: any thread, concurrently, until `sse_server_free`.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed; `topic`, `event_type` and
/// `id` are NULL or NUL-terminated; `data` is NULL or points to `data_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_publish(
    server: *const sse_server,
    topic: *const c_char,
    event_type: *const c_char,
    data: *const c_char,
    data_len: usize,
    id: *const c_char,
) -> i64 {
    guard(sse_result::Panic as i64, || {
        // SAFETY: NULL or live (the caller's promise).
        let server = unsafe { server.as_ref() };
        publish_with(server, |event| {
            // SAFETY: the caller's promise on each pointer, as stated above.
            unsafe { fill_event(event, topic, event_type, data, data_len, id) }
        })
    })
}

/// Fills this thread's scratch event with `fill` and publishes it: the id the server assigned,
/// 0 for the caller's own id, or a negative `sse_result`.
pub(super) fn publish_with(
    server: Option<&sse_server>,
    fill: impl FnOnce(&mut Event) -> Result<(), sse_result>,
) -> i64 {
    let Some(server) = server else {
        return fail(sse_result::NullArgument, "server is NULL") as i64;
    };
    let mut fill = Some(fill);
    with_scratch_event(|event| {
        let Some(fill) = fill.take() else {
            return sse_result::Panic as i64;
        };
        if let Err(code) = fill(event) {
            return code as i64;
        }
        match server.handle().publish(event) {
            // Ids start near 2^50 (microseconds since 1970) and count up by one per event,
            // so they stay below 2^63 for far longer than any server runs.
            Ok(Some(assigned)) => i64::try_from(assigned).unwrap_or(i64::MAX),
            Ok(None) => 0,
            Err(e) => publish_failed(e) as i64,
        }
    })
}

thread_local! {
    /// Each publishing thread's `Event`, refilled on every call so that its strings keep their
    /// capacity: the hot path then allocates nothing of its own.
    static SCRATCH_EVENT: RefCell<Event> = RefCell::new(Event::default());
}

/// Bytes a scratch event may keep between calls; a bigger event's buffers are released.
const SCRATCH_KEEP: usize = 64 * 1024;

fn with_scratch_event<R>(mut f: impl FnMut(&mut Event) -> R) -> R {
    let reused = SCRATCH_EVENT.try_with(|scratch| {
        let mut event = scratch.borrow_mut();
        let result = f(&mut event);
        let kept = [&event.data, &event.event_type, &event.id]
            .into_iter()
            .chain(&event.topics)
            .map(String::capacity)
            .sum::<usize>();
        if kept > SCRATCH_KEEP {
            *event = Event::default();
        }
        result
    });
    // Err: the thread is exiting and its scratch is gone; a fresh event does the job.
    reused.unwrap_or_else(|_| f(&mut Event::default()))
}

/// Copies the arguments of `sse_publish` into `event`, reusing its buffers.
///
/// # Safety
/// As for `sse_publish`.
unsafe fn fill_event(
    event: &mut Event,
    topic: *const c_char,
    event_type: *const c_char,
    data: *const c_char,
    data_len: usize,
    id: *const c_char,
) -> Result<(), sse_result> {
    // SAFETY: `data` is NULL or points to `data_len` readable bytes (the caller's promise).
    let data = unsafe { data_str(data, data_len) }?;
    // SAFETY: NULL or NUL-terminated (the caller's promise).
    let (topic, event_type, id) = unsafe {
        (
            optional_str(topic, "topic")?,
            optional_str(event_type, "event_type")?,
            optional_str(id, "id")?,
        )
    };
    // One topic always: "" is the empty topic, the same as none.
    event.topics.resize_with(1, String::new);
    replace(&mut event.topics[0], topic);
    replace(&mut event.event_type, event_type);
    replace(&mut event.data, data);
    replace(&mut event.id, id);
    event.retry = None;
    // The scratch event may come from an `sse_publish_event` of a private event.
    event.private = false;
    Ok(())
}

/// Borrows `len` bytes of UTF-8 data; NULL is allowed for no data.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes valid for `'a`.
pub(super) unsafe fn data_str<'a>(data: *const c_char, len: usize) -> Result<&'a str, sse_result> {
    let bytes: &[u8] = match (data.is_null(), len) {
        (_, 0) => &[],
        (true, _) => {
            return Err(fail(
                sse_result::NullArgument,
                "data is NULL but data_len > 0",
            ));
        }
        (false, len) if len > isize::MAX as usize => {
            return Err(fail(sse_result::InvalidArgument, "data_len is too large"));
        }
        // SAFETY: `data` points to `len` readable bytes (the caller's promise).
        (false, len) => unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) },
    };
    std::str::from_utf8(bytes).map_err(|_| fail(sse_result::InvalidUtf8, "data is not valid UTF-8"))
}

/// Sets `buffer` to `text`, keeping its capacity.
pub(super) fn replace(buffer: &mut String, text: &str) {
    buffer.clear();
    buffer.push_str(text);
}

fn publish_failed(e: PublishError) -> sse_result {
    let code = match e {
        PublishError::Invalid(FieldError::Utf8) => sse_result::InvalidUtf8,
        PublishError::Invalid(FieldError::EventType | FieldError::Id) => sse_result::InvalidField,
        PublishError::Invalid(FieldError::Retry | FieldError::Unreadable) => {
            sse_result::InvalidArgument
        }
        PublishError::QueueFull => sse_result::QueueFull,
        PublishError::Stopped => sse_result::Stopped,
        PublishError::Storage => sse_result::Storage,
        PublishError::Unavailable => sse_result::Unavailable,
    };
    fail(code, e)
}
