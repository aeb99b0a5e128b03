//! Log lines on stderr. A write that fails (stderr closed, or a pipe whose reader has gone) is
//! dropped: losing a log line is no reason for the loop, or a C host's thread, to stop.

use std::io::Write;

/// Writes `ssed: ` and `args` as one line.
pub(crate) fn line(args: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "ssed: {args}");
}
