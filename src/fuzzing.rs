//! The internals that the fuzz targets in `fuzz/` drive directly: the request head parser, a
//! connection's input, the publish parameters, the frame encoder and the history file's record
//! decoder. Not part of the API; hidden from the docs and free to change with the code it
//! re-exports.

pub use crate::frame::{Encoded, GAP, HEARTBEAT, encode, is_single_line, parse_retry, retry_block};
pub use crate::http::{Head, MAX_HEAD, Method, Request, Status, parse};
pub use crate::params::{Body, pairs, publish};
pub use crate::input::{Input, Next};
pub use crate::store::file::fuzz_check as history_file_check;
