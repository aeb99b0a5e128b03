//! `sse_request`: the read-only view of a request that the access callback decides on.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use super::guard;
use super::result::{fail, sse_result};
use crate::hooks::AccessRequest;

/// A request the access callback decides on (see `access_callback` in `sse_config`). Opaque and
/// owned by the library; valid only during the call, as is every string read from it.
pub struct sse_request {
    /// The request; lives for as long as the callback runs.
    view: *const AccessRequest<'static>,
    /// The strings handed out during the call, NUL-terminated, freed when it returns.
    strings: RefCell<Vec<CString>>,
    /// What the callback gave as the refusal's body.
    pub(super) reason: Option<String>,
}

impl sse_request {
    /// A view of `request` for one callback; it must not outlive `request`.
    #[cfg(feature = "host")]
    pub(super) fn new(request: &AccessRequest<'_>) -> sse_request {
        sse_request {
            view: (request as *const AccessRequest<'_>).cast(),
            strings: RefCell::new(Vec::new()),
            reason: None,
        }
    }

    fn view(&self) -> &AccessRequest<'_> {
        // SAFETY: `view` points to the request of the call in progress (see `new`).
        unsafe { &*self.view }
    }

    /// A NUL-terminated copy of `text`, valid until the callback returns; NULL for a text
    /// holding a NUL, which C could not read whole.
    fn hand_out(&self, text: &str) -> *const c_char {
        let Ok(copy) = CString::new(text) else {
            return std::ptr::null();
        };
        let ptr = copy.as_ptr();
        // The CString's bytes do not move when the vector grows.
        self.strings.borrow_mut().push(copy);
        ptr
    }
}

/// Runs `body` on the request behind `request`, or returns NULL for a NULL one.
fn read(
    request: *const sse_request,
    body: impl FnOnce(&sse_request) -> *const c_char,
) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: NULL or the live request of the callback in progress (the caller's promise).
        match unsafe { request.as_ref() } {
            Some(request) => body(request),
            None => std::ptr::null(),
        }
    })
}

/// The request's method: "GET" (a stream) or "POST" (a publish). Never NULL for a valid
/// request; NULL for a NULL one.
/// Ownership: the library's, valid until the access callback returns.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_method(request: *const sse_request) -> *const c_char {
    read(request, |r| r.hand_out(r.view().method))
}

/// The request's path: "/events", "/publish" or "/.well-known/mercure".
/// Ownership: the library's, valid until the access callback returns.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_path(request: *const sse_request) -> *const c_char {
    read(request, |r| r.hand_out(r.view().path))
}

/// The request's query string, without the `?` ("" when there is none), as sent.
/// Ownership: the library's, valid until the access callback returns.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_query(request: *const sse_request) -> *const c_char {
    read(request, |r| r.hand_out(r.view().query))
}

/// 1 for a publish, 0 for a stream (and for a NULL request).
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_is_publish(request: *const sse_request) -> i32 {
    guard(0, || {
        // SAFETY: NULL or the live request of the callback in progress (the caller's promise).
        unsafe { request.as_ref() }.map_or(0, |r| i32::from(r.view().publish))
    })
}

/// How many topics the request names: those the stream asks for (0: every topic), or the
/// event's (0: the empty topic). 0 for a NULL request.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_topic_count(request: *const sse_request) -> usize {
    guard(0, || {
        // SAFETY: NULL or the live request of the callback in progress (the caller's promise).
        unsafe { request.as_ref() }.map_or(0, |r| r.view().topics.len())
    })
}

/// Topic number `index` (from 0) of the request (a topic or a selector, as sent), or NULL
/// beyond `sse_request_topic_count`.
/// Ownership: the library's, valid until the access callback returns.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_topic(
    request: *const sse_request,
    index: usize,
) -> *const c_char {
    read(request, |r| match r.view().topics.get(index) {
        Some(topic) => r.hand_out(topic),
        None => std::ptr::null(),
    })
}

/// The client's address, such as "127.0.0.1:51234" or "[::1]:51234"; NULL for a request on
/// the publish socket.
/// Ownership: the library's, valid until the access callback returns.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_peer(request: *const sse_request) -> *const c_char {
    read(request, |r| match r.view().peer {
        Some(peer) => r.hand_out(&peer.to_string()),
        None => std::ptr::null(),
    })
}

/// The value of the request's first header line named `name` (compared without regard to
/// case), without surrounding blanks; NULL when there is none, when it is not UTF-8, or when
/// `name` is NULL.
/// Ownership: the library's, valid until the access callback returns; `name` is only read.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress; `name` is NULL
/// or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_header(
    request: *const sse_request,
    name: *const c_char,
) -> *const c_char {
    #[cfg_attr(not(feature = "host"), allow(unused_variables))]
    read(request, |r| {
        // SAFETY: NULL or NUL-terminated (the caller's promise).
        let Ok(name) = (unsafe { super::optional_str(name, "name") }) else {
            return std::ptr::null();
        };
        #[cfg(feature = "host")]
        if let Some(value) = r.view().header(name).filter(|_| !name.is_empty()) {
            return r.hand_out(value);
        }
        let _ = name;
        std::ptr::null()
    })
}

/// The value of the cookie `name` (compared exactly, as cookies are) in the request's
/// `Cookie` header lines, without the double quotes a cookie value may have; NULL when there
/// is none, or when `name` is NULL.
/// Ownership: the library's, valid until the access callback returns; `name` is only read.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress; `name` is NULL
/// or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_cookie(
    request: *const sse_request,
    name: *const c_char,
) -> *const c_char {
    #[cfg_attr(not(feature = "host"), allow(unused_variables))]
    read(request, |r| {
        // SAFETY: NULL or NUL-terminated (the caller's promise).
        let Ok(name) = (unsafe { super::optional_str(name, "name") }) else {
            return std::ptr::null();
        };
        #[cfg(feature = "host")]
        if let Some(value) = r.view().cookie(name).filter(|_| !name.is_empty()) {
            return r.hand_out(value);
        }
        let _ = name;
        std::ptr::null()
    })
}

/// Sets the body of the refusal the access callback is about to return (such as "log in
/// first"); without one, the body is "access denied". Copied; at most 1024 bytes are kept.
/// Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL pointer, `SSE_RESULT_INVALID_UTF8`.
/// Thread-safety: the access callback's thread (the loop's), during the call.
///
/// # Safety
/// `request` is NULL or the request passed to the access callback in progress; `reason` is
/// NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_request_set_reason(
    request: *mut sse_request,
    reason: *const c_char,
) -> sse_result {
    guard(sse_result::Panic, || {
        // SAFETY: NULL or the live request of the callback in progress (the caller's promise).
        let Some(request) = (unsafe { request.as_mut() }) else {
            return fail(sse_result::NullArgument, "request is NULL");
        };
        if reason.is_null() {
            return fail(sse_result::NullArgument, "reason is NULL");
        }
        // SAFETY: non-NULL and NUL-terminated (the caller's promise).
        let text = match unsafe { super::optional_str(reason, "reason") } {
            Ok(text) => text,
            Err(code) => return code,
        };
        let mut end = text.len().min(1024);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        request.reason = Some(text[..end].to_owned());
        sse_result::Ok
    })
}
