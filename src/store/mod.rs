//! Where events are kept beyond the loop's memory.

// Not yet used by the loop: the allowance goes when `--history-file` is wired in.
#[allow(dead_code, unused_imports)]
pub mod file;
