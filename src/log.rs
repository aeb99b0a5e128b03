//! Log lines: on stderr, or handed to the host's log hook on a thread of their own.
//!
//! Without a hook a line is written to stderr at once; a write that fails (stderr closed, or a
//! pipe whose reader has gone) is dropped: losing a log line is no reason for the loop, or a C
//! host's thread, to stop.
//!
//! With a hook ([`crate::Hooks::log`], cargo feature `host`), the thread that logs (the loop,
//! the history file's writer, a cluster's Redis threads) only formats the line and appends it to
//! a bounded queue (`sink.rs`); a thread of the server's own, `ssed-log`, takes lines from the
//! queue and calls the hook, one at a time, in order. A hook that is slow, or blocks, holds up
//! that thread only: the queue fills, further lines are dropped and counted, and the hook hears
//! how many were lost (a line at the error level, in their place). The loop never waits for it.

#[cfg(feature = "host")]
mod sink;

use std::fmt;
use std::io::{self, Write};

use crate::config::LogLevel;
use crate::hooks::LogHook;

/// Writes `ssed: ` and `args` as one line on stderr.
pub(crate) fn line(args: fmt::Arguments) {
    let _ = writeln!(io::stderr(), "ssed: {args}");
}

/// Where one server's log lines go, up to its level. Cheap to clone: every thread of a server
/// that logs holds one.
#[derive(Clone)]
pub(crate) struct Logger {
    level: LogLevel,
    #[cfg(feature = "host")]
    sink: Option<std::sync::Arc<sink::Feed>>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// Lines up to `level`, to `hook` (on a thread started here) or, without one, to stderr.
    /// (`Config::validate` refuses a hook in a build without the feature `host`.)
    pub fn new(level: LogLevel, hook: Option<LogHook>) -> io::Result<Logger> {
        #[cfg(feature = "host")]
        return Ok(Logger {
            level,
            sink: match hook {
                Some(hook) => Some(std::sync::Arc::new(sink::Feed::start(hook)?)),
                None => None,
            },
        });
        #[cfg(not(feature = "host"))]
        {
            let _ = hook;
            Ok(Logger { level })
        }
    }

    /// True when a line of `level` is written anywhere.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level > LogLevel::Off && self.level >= level
    }

    /// Logs one line of `level` (`Quiet` for errors, `Info`, `Verbose`).
    pub fn line(&self, level: LogLevel, args: fmt::Arguments) {
        if !self.enabled(level) {
            return;
        }
        #[cfg(feature = "host")]
        if let Some(feed) = &self.sink {
            return feed.push(level, args.to_string());
        }
        line(args);
    }

    /// No more lines: waits until the hook has had every queued line and its thread has ended.
    /// Called when the server's loop is gone; on the hook's own thread it only closes the queue.
    pub fn finish(&self) {
        #[cfg(feature = "host")]
        if let Some(feed) = &self.sink {
            feed.finish();
        }
    }
}
