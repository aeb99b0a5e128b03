//! `sse_issuer`: one trusted issuer of Mercure 1.0 access tokens, as `sse_config` lists them.

use std::ffi::c_char;

use super::optional_str;
use super::result::{fail, sse_result};
use crate::Issuer;

/// A trusted issuer of Mercure 1.0 access tokens (`typ` `at+jwt`): the `iss` its tokens carry,
/// and the keys its publishers' and subscribers' tokens are signed with. A key is written
/// "HS256:SECRET" (or the bare secret, 32 bytes or more), "RS256:PEM" or "ES256:PEM" (in a
/// libssed built with those algorithms); NULL: that role's tokens are not accepted from this
/// issuer. Only the issuer's own keys ever verify its tokens.
///
/// The caller owns the struct and its strings; `sse_server_new` copies what it needs.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sse_issuer {
    /// The issuer identifier, exactly as tokens' `iss` (e.g. "https://example.com"). Not NULL.
    pub issuer: *const c_char,
    /// The key of its publishers' tokens, or NULL.
    pub publisher_key: *const c_char,
    /// The key of its subscribers' tokens, or NULL.
    pub subscriber_key: *const c_char,
}

/// Reads `count` issuers at `issuers`.
///
/// # Safety
/// `issuers` is NULL (then `count` must be 0) or points to `count` readable `sse_issuer`, whose
/// non-NULL strings are NUL-terminated and valid for the call.
pub(super) unsafe fn read_issuers(
    issuers: *const sse_issuer,
    count: usize,
) -> Result<Vec<Issuer>, sse_result> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if issuers.is_null() {
        return Err(fail(
            sse_result::NullArgument,
            "issuers is NULL but issuer_count is not 0",
        ));
    }
    // SAFETY: the caller's promise: `count` readable issuers.
    let list = unsafe { std::slice::from_raw_parts(issuers, count) };
    list.iter()
        .map(|c| {
            if c.issuer.is_null() {
                return Err(fail(
                    sse_result::NullArgument,
                    "an sse_issuer's issuer is NULL",
                ));
            }
            let text = |p: *const c_char, name: &str| -> Result<Option<String>, sse_result> {
                // SAFETY: NULL or NUL-terminated (the caller's promise).
                let s = unsafe { optional_str(p, name) }?;
                Ok((!p.is_null()).then(|| s.to_owned()))
            };
            Ok(Issuer {
                issuer: text(c.issuer, "issuer")?.unwrap_or_default(),
                publisher_key: text(c.publisher_key, "publisher_key")?,
                subscriber_key: text(c.subscriber_key, "subscriber_key")?,
            })
        })
        .collect()
}
