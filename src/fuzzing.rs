//! The internals that the fuzz targets in `fuzz/` drive directly: the request head parser, a
//! connection's input, the publish parameters, the frame encoder, the history file's record
//! decoder, JWTs and topic selectors. Not part of the API; hidden from the docs and free to change with the code it
//! re-exports.

#[cfg(feature = "jwt")]
pub use crate::auth::jwt::{JwtError, Key, MAX_TOKEN_LEN, verify};
pub use crate::auth::{Selector, Selectors};
pub use crate::frame::{Encoded, GAP, HEARTBEAT, encode, is_single_line, parse_retry, retry_block};
pub use crate::http::{Head, MAX_HEAD, Method, Request, Status, parse};
pub use crate::input::{Input, Next};
pub use crate::params::{Body, pairs, publish};
#[cfg(feature = "history-file")]
pub use crate::store::file::fuzz_check as history_file_check;
