//! `sse_result`: what every call returns, and the message of the latest failure per thread.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int};
use std::fmt::Display;
use std::io::Write as _;

use super::guard;

/// What a call returned: 0 is success, every failure is negative. `sse_publish` returns these
/// same negative values in its `int64_t`. `sse_result_str` names a code; `sse_last_error` gives
/// the message of the latest failure on the calling thread.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sse_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = -1,
    /// An argument or configuration value is malformed or out of range.
    InvalidArgument = -2,
    /// A string argument or the data is not valid UTF-8.
    InvalidUtf8 = -3,
    /// The event type or id contains CR, LF or NUL, which would inject fields into the stream.
    InvalidField = -4,
    /// The queue to the loop is full: the loop is behind. Nothing was published; retry later.
    QueueFull = -5,
    /// The server has been stopped (or its loop has ended).
    Stopped = -6,
    /// The loop is already running: `sse_server_start` or `sse_server_run` was called before.
    Busy = -7,
    /// A system call failed: binding the port, starting a thread, or the loop itself.
    Io = -8,
    /// An internal error was caught at the API boundary; the library has a bug.
    Panic = -9,
    /// The history file cannot be written now (a full or failing disk): nothing was published.
    /// Publishing recovers by itself when the disk does; retry later.
    Storage = -10,
    /// In a cluster (`redis_url`), Redis cannot be reached or did not answer in time: the event
    /// was not acknowledged (when Redis failed in the middle of the call, it may still have been
    /// published). Publishing recovers by itself when Redis does; retry later.
    Unavailable = -11,
}

/// A short static description of a result code, such as "the publish queue is full"; an
/// unknown code gives "unknown result code". Never NULL; never free it.
/// Thread-safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sse_result_str(code: c_int) -> *const c_char {
    // Taken as an int and matched, never cast to the enum: C may pass any value.
    let text: &'static CStr = match code {
        0 => c"success",
        -1 => c"a required pointer argument is NULL",
        -2 => c"invalid argument",
        -3 => c"not valid UTF-8",
        -4 => c"the event type or id contains CR, LF or NUL",
        -5 => c"the publish queue is full",
        -6 => c"the server is stopped",
        -7 => c"the server's loop is already running",
        -8 => c"system error",
        -9 => c"internal error (panic)",
        -10 => c"the history file cannot be written",
        -11 => c"the cluster's Redis cannot be reached",
        _ => c"unknown result code",
    };
    text.as_ptr()
}

thread_local! {
    /// The latest failure's message on this thread, NUL-terminated; empty until one fails.
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The message of the latest failed call on the calling thread (for example "cannot listen on
/// 127.0.0.1:8080: Address in use (os error 98)"), or "" if none has failed. Successful calls
/// leave it unchanged. Owned by the library: valid until the next failing call on this thread
/// or until the thread exits; copy it to keep it. Never NULL.
/// Thread-safety: any thread; each thread sees its own.
#[unsafe(no_mangle)]
pub extern "C" fn sse_last_error() -> *const c_char {
    guard(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|buf| {
                let buf = buf.borrow();
                if buf.is_empty() {
                    c"".as_ptr()
                } else {
                    buf.as_ptr().cast::<c_char>()
                }
            })
            .unwrap_or(c"".as_ptr())
    })
}

/// Records `message` for `sse_last_error` and returns `code`.
pub(super) fn fail(code: sse_result, message: impl Display) -> sse_result {
    // During thread teardown the buffer may be gone; the code alone still tells what happened.
    let _ = LAST_ERROR.try_with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        let _ = write!(buf, "{message}");
        // A C string ends at the first NUL, so none may hide inside the message.
        buf.retain(|&b| b != 0);
        buf.push(0);
    });
    code
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The latest failure's message on this thread.
    pub(crate) fn last_error() -> String {
        // SAFETY: sse_last_error returns a NUL-terminated string valid until the next failure.
        unsafe { CStr::from_ptr(sse_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn messages_never_carry_an_inner_nul() {
        fail(sse_result::InvalidArgument, "a\0b");
        assert_eq!(last_error(), "ab");
    }

    #[test]
    fn result_codes_match_their_descriptions() {
        for code in -11..=0 {
            // SAFETY: static NUL-terminated strings.
            let text = unsafe { CStr::from_ptr(sse_result_str(code)) };
            assert_ne!(text.to_bytes(), b"unknown result code", "code {code}");
        }
        assert_eq!(sse_result::Panic as i32, -9);
    }
}
