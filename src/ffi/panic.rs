//! The panic boundary: no Rust panic unwinds into C.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::result::{fail, sse_result};

/// Runs an exported function's body, turning a panic into `on_panic` (and a message for
/// `sse_last_error`) instead of letting it unwind into C.
pub(super) fn guard<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            fail(
                sse_result::Panic,
                format_args!("internal error (panic): {}", panic_message(&*payload)),
            );
            on_panic
        }
    }
}

pub(super) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "unknown cause"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::result::tests::last_error;
    use crate::ffi::sse_server;

    #[test]
    fn a_panic_becomes_an_error_code_and_a_message() {
        let code = guard(sse_result::Panic, || -> sse_result { panic!("boom") });
        assert_eq!(code, sse_result::Panic);
        assert_eq!(last_error(), "internal error (panic): boom");
        let null = guard(std::ptr::null_mut::<sse_server>(), || panic!("again"));
        assert!(null.is_null());
    }
}
