//! `sse_stats`: a server's counters, as a C struct.

use std::mem::{offset_of, size_of};

use super::result::{fail, sse_result};
use super::server::sse_server;
use super::{check_struct_size, guard};

/// Counters of a server, filled by `sse_server_stats`. Fields are only ever added at the end.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct sse_stats {
    /// Open client connections.
    pub connections: u64,
    /// Open event streams.
    pub subscribers: u64,
    /// Events published since start, counted when acknowledged: when `sse_publish` returns
    /// the id, or an HTTP publish is answered `200`. Right after a successful `sse_publish`
    /// its event is counted.
    pub events_published: u64,
    /// Bytes written to clients since start.
    pub bytes_sent: u64,
    /// Subscribers dropped for falling more than `max_queue` bytes behind.
    pub subscribers_dropped_slow: u64,
    /// Events retained for replay.
    pub history_events: u64,
    /// Requests and connections refused, all reasons together.
    pub requests_refused: u64,
    /// Events the loop has handed to the subscribers that want them since start (it takes
    /// published events on its next turn; in a cluster, those of every node).
    pub events_delivered: u64,
}

/// Bytes of the smallest `sse_stats` a caller may pass: the first published layout.
const STATS_MIN_SIZE: usize = offset_of!(sse_stats, requests_refused) + size_of::<u64>();

/// Copies the server's counters into `*stats_out`; `stats_size` is `sizeof *stats_out` as the
/// caller's header has it (fields the library does not know are set to 0). Counters are read
/// one by one, so they may be a few events apart from each other. Works after a stop too.
/// Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL pointer, `SSE_RESULT_INVALID_ARGUMENT` for a
/// size smaller than the first published `sse_stats`. `*stats_out` is only written on success.
/// Thread-safety: any thread.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed; `stats_out` is NULL or
/// points to `stats_size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_stats(
    server: *const sse_server,
    stats_out: *mut sse_stats,
    stats_size: usize,
) -> sse_result {
    guard(sse_result::Panic, || {
        // SAFETY: NULL or live (the caller's promise).
        let Some(server) = (unsafe { server.as_ref() }) else {
            return fail(sse_result::NullArgument, "server is NULL");
        };
        if stats_out.is_null() {
            return fail(sse_result::NullArgument, "stats_out is NULL");
        }
        if let Err(code) = check_struct_size("sse_stats", stats_size, STATS_MIN_SIZE) {
            return code;
        }
        let s = server.handle().stats();
        let stats = sse_stats {
            connections: s.connections,
            subscribers: s.subscribers,
            events_published: s.events_published,
            bytes_sent: s.bytes_sent,
            subscribers_dropped_slow: s.subscribers_dropped_slow,
            history_events: s.history_events,
            requests_refused: s.requests_refused,
            events_delivered: s.events_delivered,
        };
        let known = stats_size.min(size_of::<sse_stats>());
        // SAFETY: `stats_size` writable bytes at `stats_out` (the caller's promise); `known` of
        // them are copied from a live `sse_stats`, the rest are zeroed.
        unsafe {
            stats_out.cast::<u8>().write_bytes(0, stats_size);
            std::ptr::copy_nonoverlapping(
                (&raw const stats).cast::<u8>(),
                stats_out.cast::<u8>(),
                known,
            );
        }
        sse_result::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_have_no_padding_between_fields() {
        assert_eq!(
            offset_of!(sse_stats, events_delivered) + size_of::<u64>(),
            size_of::<sse_stats>()
        );
        assert_eq!(STATS_MIN_SIZE, offset_of!(sse_stats, events_delivered));
    }
}
