//! `sse_server_reload_tls`: a renewed certificate taken into use without dropping a stream.

use std::io;

use super::guard;
use super::result::{fail, sse_result};
use super::server::sse_server;

/// Rereads the certificate and key files named by `tls_cert` and `tls_key` in the server's
/// config, on the calling thread. When they load, connections accepted from now on get them,
/// and open streams go on untouched; when they do not, the pair in use stays. Returns
/// `SSE_RESULT_OK`; `SSE_RESULT_IO` when a file cannot be read (missing, no permission);
/// `SSE_RESULT_INVALID_ARGUMENT` when the files hold no usable pair (no certificate or key, a
/// key that is not the certificate's, a certificate expired or not valid yet) or the server
/// has no certificate. `sse_last_error` then names the file and the reason.
/// Thread-safety: any thread, at any time until `sse_server_free`, concurrently with any call.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_reload_tls(server: *const sse_server) -> sse_result {
    guard(sse_result::Panic, || {
        // SAFETY: NULL or live (the caller's promise).
        let Some(server) = (unsafe { server.as_ref() }) else {
            return fail(sse_result::NullArgument, "server is NULL");
        };
        match server.handle().reload_tls() {
            Ok(()) => sse_result::Ok,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
                ) =>
            {
                fail(sse_result::InvalidArgument, e)
            }
            Err(e) => fail(sse_result::Io, e),
        }
    })
}
