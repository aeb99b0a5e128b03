//! `sse_event`: everything an HTTP publish can say (several topics, a `retry`), for
//! `sse_publish_event`.

use std::ffi::c_char;
use std::mem::{offset_of, size_of};

use super::publish::{data_str, publish_with, replace};
use super::result::{fail, sse_result};
use super::server::sse_server;
use super::{check_struct_size, guard, optional_str};
use crate::Event;

/// One event for `sse_publish_event`. Declare one, fill it with
/// `sse_event_init(&event, sizeof event)`, set what you need, and publish it; the library only
/// reads it during the call, so it and everything it points to may be reused at once.
///
/// Fields are only ever added at the end, with 0 meaning their default; `size` lets a newer
/// library read an older caller's struct, as with `sse_config`.
///
/// Not safe for concurrent use: one thread at a time (publish copies of it from other threads).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sse_event {
    /// Size of the caller's struct, set by `sse_event_init`. Do not change it.
    pub size: usize,
    /// `topic_count` topics, NUL-terminated UTF-8 strings: the event goes to the subscribers of
    /// any of them, once each. NULL (with `topic_count` 0) means the empty topic. At most 1024.
    pub topics: *const *const c_char,
    /// Number of strings at `topics`.
    pub topic_count: usize,
    /// The event type; NULL or "" for the default `message`. Must not contain CR or LF.
    pub event_type: *const c_char,
    /// `data_len` bytes of UTF-8, not necessarily NUL-terminated; NULL when `data_len` is 0.
    pub data: *const c_char,
    /// Length of `data` in bytes.
    pub data_len: usize,
    /// The id; NULL or "" to let the server assign the next one. Must not contain CR or LF.
    pub id: *const c_char,
    /// `retry:` milliseconds sent with the event (the browser's reconnection delay), at most
    /// 4294967295; negative sends none. Default -1.
    pub retry_ms: i64,
    /// Non-zero: a private event, which reaches only the subscribers whose token's
    /// `mercure.subscribe` selectors match one of its topics (never one without a token).
    /// Default 0. (Not `private`, which C++ reserves.)
    pub is_private: i64,
}

/// Bytes of the smallest `sse_event` a caller may pass: the first published layout.
const EVENT_MIN_SIZE: usize = offset_of!(sse_event, retry_ms) + size_of::<i64>();
/// Most topics one event may name.
const MAX_TOPICS: usize = 1024;

/// Fills `*event` with the defaults: no topic (the empty topic), type `message`, no data, an id
/// the server assigns, no retry. `size` is `sizeof *event` as the caller's header has it.
/// Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL `event`, `SSE_RESULT_INVALID_ARGUMENT` for a
/// size this library does not accept. Nothing to free afterwards.
/// Thread-safety: any thread, each on its own struct.
///
/// # Safety
/// `event` is NULL or points to `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_event_init(event: *mut sse_event, size: usize) -> sse_result {
    guard(sse_result::Panic, || {
        if event.is_null() {
            return fail(sse_result::NullArgument, "event is NULL");
        }
        if let Err(code) = check_struct_size("sse_event", size, EVENT_MIN_SIZE) {
            return code;
        }
        let defaults = sse_event {
            size,
            ..event_defaults()
        };
        let known = size.min(size_of::<sse_event>());
        // SAFETY: `size` writable bytes at `event` (the caller's promise); `known <= size` of
        // them are copied from a live `sse_event`, and the rest, a newer caller's fields, are
        // zeroed, which is their default.
        unsafe {
            event.cast::<u8>().write_bytes(0, size);
            std::ptr::copy_nonoverlapping(
                (&raw const defaults).cast::<u8>(),
                event.cast::<u8>(),
                known,
            );
        }
        sse_result::Ok
    })
}

fn event_defaults() -> sse_event {
    sse_event {
        size: size_of::<sse_event>(),
        topics: std::ptr::null(),
        topic_count: 0,
        event_type: std::ptr::null(),
        data: std::ptr::null(),
        data_len: 0,
        id: std::ptr::null(),
        retry_ms: -1,
        is_private: 0,
    }
}

/// Publishes `*event`, as `sse_publish` does, with all its topics and its `retry`. Copies what
/// it needs; never blocks on the loop or the network.
/// Returns the id the server assigned (> 0), 0 when the event carries its own id, or a negative
/// `sse_result`, and then nothing is published: `SSE_RESULT_NULL_ARGUMENT` (NULL `server` or
/// `event`, NULL `topics` with `topic_count` > 0, a NULL topic, NULL `data` with `data_len` >
/// 0), `SSE_RESULT_INVALID_ARGUMENT` (a size not from `sse_event_init`, more than 1024 topics,
/// `retry_ms` over 4294967295), `SSE_RESULT_INVALID_UTF8`, `SSE_RESULT_INVALID_FIELD` (CR, LF in
/// the type or id), `SSE_RESULT_QUEUE_FULL`, `SSE_RESULT_STOPPED`.
/// Thread-safety: any thread, concurrently, until `sse_server_free`.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed; `event` is NULL or points
/// to a struct filled by `sse_event_init` whose pointers are NULL or valid as documented above.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_publish_event(
    server: *const sse_server,
    event: *const sse_event,
) -> i64 {
    guard(sse_result::Panic as i64, || {
        // SAFETY: NULL or live (the caller's promise).
        let server = unsafe { server.as_ref() };
        if server.is_some() && event.is_null() {
            return fail(sse_result::NullArgument, "event is NULL") as i64;
        }
        publish_with(server, |scratch| {
            // SAFETY: non-NULL here, and filled by sse_event_init (the caller's promise).
            let c_event = unsafe { read_event(event) }?;
            // SAFETY: its pointers are valid as documented (the caller's promise).
            unsafe { fill_from(scratch, &c_event) }
        })
    })
}

/// Reads the caller's event: the fields its `size` covers, defaults for the rest.
///
/// # Safety
/// `event` is non-NULL and was filled by `sse_event_init`.
unsafe fn read_event(event: *const sse_event) -> Result<sse_event, sse_result> {
    // SAFETY: `size` is the first field of every layout (the caller's promise).
    let size = unsafe { (*event).size };
    check_struct_size("sse_event", size, EVENT_MIN_SIZE)?;
    let mut copy = event_defaults();
    let known = size.min(size_of::<sse_event>());
    // SAFETY: `known` bytes are readable at `event` and fit in `copy`; every field is an
    // integer or a raw pointer, valid for any bit pattern.
    unsafe {
        std::ptr::copy_nonoverlapping(event.cast::<u8>(), (&raw mut copy).cast::<u8>(), known);
    }
    Ok(copy)
}

/// Copies a C event into `event`, reusing its buffers.
///
/// # Safety
/// The pointers of `c` are NULL or valid as `sse_event` documents.
unsafe fn fill_from(event: &mut Event, c: &sse_event) -> Result<(), sse_result> {
    // SAFETY: the caller's promise on `data`.
    let data = unsafe { data_str(c.data, c.data_len) }?;
    // SAFETY: NULL or NUL-terminated (the caller's promise).
    let (event_type, id) = unsafe {
        (
            optional_str(c.event_type, "event_type")?,
            optional_str(c.id, "id")?,
        )
    };
    let retry = match c.retry_ms {
        ms if ms < 0 => None,
        ms => Some(u32::try_from(ms).map_err(|_| {
            fail(
                sse_result::InvalidArgument,
                format_args!("retry_ms: {ms} is over 4294967295"),
            )
        })?),
    };
    // SAFETY: the caller's promise on `topics` and `topic_count`.
    unsafe { fill_topics(&mut event.topics, c.topics, c.topic_count) }?;
    replace(&mut event.event_type, event_type);
    replace(&mut event.data, data);
    replace(&mut event.id, id);
    event.retry = retry;
    event.private = c.is_private != 0;
    Ok(())
}

/// # Safety
/// `topics` is NULL or points to `count` pointers, each NULL or NUL-terminated.
unsafe fn fill_topics(
    into: &mut Vec<String>,
    topics: *const *const c_char,
    count: usize,
) -> Result<(), sse_result> {
    if count > MAX_TOPICS {
        return Err(fail(
            sse_result::InvalidArgument,
            format_args!("topic_count: {count} is over {MAX_TOPICS}"),
        ));
    }
    if count > 0 && topics.is_null() {
        return Err(fail(
            sse_result::NullArgument,
            "topics is NULL but topic_count > 0",
        ));
    }
    into.resize_with(count.max(1), String::new);
    if count == 0 {
        into[0].clear();
        return Ok(());
    }
    // SAFETY: `count` readable pointers at `topics` (the caller's promise).
    let pointers = unsafe { std::slice::from_raw_parts(topics, count) };
    for (slot, &pointer) in into.iter_mut().zip(pointers) {
        if pointer.is_null() {
            return Err(fail(sse_result::NullArgument, "a topic is NULL"));
        }
        // SAFETY: non-NULL and NUL-terminated (the caller's promise).
        replace(slot, unsafe { optional_str(pointer, "topic") }?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_has_no_padding_between_fields() {
        assert_eq!(EVENT_MIN_SIZE, offset_of!(sse_event, is_private));
        assert_eq!(
            offset_of!(sse_event, is_private) + size_of::<i64>(),
            size_of::<sse_event>()
        );
    }
}
