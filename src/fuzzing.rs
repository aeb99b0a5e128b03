//! The internals that the fuzz targets in `fuzz/` drive directly: the request head parser, a
//! connection's input, the publish parameters, the frame encoder, the history file's record
//! decoder, JWTs and Mercure 1.0 access tokens, topic selectors and matchers. Not part of the API; hidden from the docs and free to change with the code it
//! re-exports.

#[cfg(feature = "jwt")]
pub use crate::auth::access_token::{
    Grants, Role, TokenError, TrustedIssuer, verify as verify_access_token,
};
#[cfg(feature = "jwt")]
pub use crate::auth::jwt::{JwtError, Key, MAX_TOKEN_LEN, verify};
#[cfg(feature = "urlpattern")]
pub use crate::auth::urlpattern::{Pattern, TopicUrl};
pub use crate::auth::{MatchType, Selector, Selectors};
pub use crate::frame::{Encoded, GAP, HEARTBEAT, encode, is_single_line, parse_retry, retry_block};
pub use crate::http::{Head, MAX_HEAD, Method, Request, Status, parse};
pub use crate::input::{Input, Next};
#[cfg(feature = "jwt")]
pub use crate::mercure::Hub;
pub use crate::params::subscribe;
pub use crate::params::{Body, pairs, publish};
#[cfg(feature = "history-file")]
pub use crate::store::file::fuzz_check as history_file_check;
