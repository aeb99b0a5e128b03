//! The internals that the fuzz targets in `fuzz/` drive directly: the request head parser, the
//! publish parameters and the frame encoder. Not part of the API; hidden from the docs and free
//! to change with the code it re-exports.

pub use crate::frame::{Encoded, GAP, HEARTBEAT, encode, is_single_line, parse_retry, retry_block};
pub use crate::http::{Head, MAX_HEAD, Method, Request, Status, parse};
pub use crate::params::{Body, pairs, publish};
