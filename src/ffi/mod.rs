//! The C API: every `extern "C"` item of libssed, and nothing else, one file per C type as
//! rustls-ffi does: `result.rs` (result codes and the last error), `panic.rs` (the panic
//! boundary), `config.rs` (`sse_config`), `server.rs` (`sse_server` and its lifecycle),
//! `stats.rs` (`sse_stats`), `publish.rs` (`sse_publish`), `event.rs` (`sse_event` and
//! `sse_publish_event`), `request.rs` (`sse_request`, what the access callback reads),
//! `callbacks.rs` (the callbacks a host sets, and `sse_stream_event`), `topics.rs` (who listens
//! to what), `tls.rs` (`sse_server_reload_tls`).
//!
//! build.rs runs cbindgen on this folder alone to write `include/ssed.h`, so every type a C
//! caller sees is declared here, and the `///` docs are the C manual. The conventions, stated once
//! in the header's preamble and repeated per function:
//! - every body runs inside `guard`, so a panic becomes `SSE_RESULT_PANIC` (or NULL, 0) instead
//!   of unwinding into C; NULL and malformed arguments are error codes, never a crash;
//! - a failure also leaves a message for [`sse_last_error`] on the calling thread;
//! - the library allocates and frees its one object, `sse_server`; strings passed in are
//!   borrowed for the call only and copied when kept;
//! - the state a C caller can race on lives behind an `Arc`, so that `sse_server_free` on one
//!   thread can end an `sse_server_run` on another without freeing memory that call still uses.
//!
//! Functions that take no pointer are safe `extern "C"` fns: they have no precondition to state.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

// In the order their items appear in the header (cbindgen follows the declarations).
mod result;

mod panic;

mod request;

mod callbacks;

mod config;

mod server;

mod stats;

mod publish;

mod event;
// One trusted issuer of Mercure 1.0 access tokens.
mod issuer;

mod tls;

#[cfg(feature = "host")]
mod topics;

use std::ffi::{CStr, c_char};

pub use callbacks::*;
pub use config::*;
pub use event::*;
pub use issuer::*;
pub use publish::*;
pub use request::*;
pub use result::*;
pub use server::*;
pub use stats::*;
pub use tls::*;
#[cfg(feature = "host")]
pub use topics::*;

use panic::guard;

/// Version of the C ABI: bumped whenever a change breaks programs built against an older header.
/// Compare it with `sse_abi_version()` at run time (PHP, which cannot see macros, must).
pub const SSE_ABI_VERSION: u32 = 1;

/// The library's version, such as "0.1.0". A static string: never free it.
/// Thread-safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sse_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version of the library, to compare with `SSE_ABI_VERSION` from the header it was
/// built against. Thread-safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sse_abi_version() -> u32 {
    SSE_ABI_VERSION
}

/// Larger sizes are taken for an uninitialised struct rather than a newer header's.
const MAX_STRUCT_SIZE: usize = 4096;

pub(super) fn check_struct_size(name: &str, size: usize, min: usize) -> Result<(), sse_result> {
    if size < min || size > MAX_STRUCT_SIZE {
        return Err(fail(
            sse_result::InvalidArgument,
            format_args!(
                "{name} size {size} is not a size this library accepts \
                 (pass sizeof({name}) from ssed.h)"
            ),
        ));
    }
    Ok(())
}

/// Borrows an optional C string as UTF-8; NULL reads as "".
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for `'a`.
pub(super) unsafe fn optional_str<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<&'a str, sse_result> {
    if ptr.is_null() {
        return Ok("");
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's promise).
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|_| {
        fail(
            sse_result::InvalidUtf8,
            format_args!("{what} is not valid UTF-8"),
        )
    })
}
