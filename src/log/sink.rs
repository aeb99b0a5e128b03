//! The queue between the threads that log and the thread that calls the host's log hook
//! (cargo feature `host`): the loggers only append to it, and never wait for the hook.

use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};

use crate::config::LogLevel;
use crate::hooks::LogHook;

/// Lines waiting for the hook before new ones are dropped.
pub(super) const QUEUED_LINES: usize = 1024;

/// The loggers' hold on the queue: when the last logger is gone the queue closes, and the hook's
/// thread ends once it has delivered what is left.
pub(super) struct Feed(Arc<Sink>);

impl Feed {
    /// Starts the hook's thread, `ssed-log`.
    pub fn start(hook: LogHook) -> io::Result<Feed> {
        let sink = Arc::new(Sink {
            state: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            hook,
            thread: Mutex::new(None),
            thread_id: Mutex::new(None),
        });
        let worker = sink.clone();
        let thread = std::thread::Builder::new()
            .name("ssed-log".into())
            .spawn(move || worker.deliver())?;
        *lock(&sink.thread_id) = Some(thread.thread().id());
        *lock(&sink.thread) = Some(thread);
        Ok(Feed(sink))
    }

    pub fn push(&self, level: LogLevel, text: String) {
        self.0.push(level, text);
    }

    /// Closes the queue and waits until the hook has had every line, unless called on the
    /// hook's own thread.
    pub fn finish(&self) {
        let sink = &self.0;
        sink.close();
        if *lock(&sink.thread_id) == Some(std::thread::current().id()) {
            return;
        }
        if let Some(thread) = lock(&sink.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The queue, and the hook's thread.
struct Sink {
    state: Mutex<Queue>,
    ready: Condvar,
    hook: LogHook,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: Mutex<Option<ThreadId>>,
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<(LogLevel, String)>,
    /// Lines dropped because the queue was full, not yet reported to the hook.
    dropped: u64,
    /// Lines queued before the first of those dropped: the note of the drop comes after them.
    note_after: usize,
    closed: bool,
}

impl Sink {
    fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
    }

    fn push(&self, level: LogLevel, text: String) {
        let mut queue = lock(&self.state);
        if queue.closed {
            return;
        }
        if queue.lines.len() >= QUEUED_LINES {
            if queue.dropped == 0 {
                queue.note_after = queue.lines.len();
            }
            queue.dropped += 1;
            return;
        }
        queue.lines.push_back((level, text));
        drop(queue);
        self.ready.notify_one();
    }

    /// The hook's thread: takes lines in order and calls the hook, until closed and drained.
    fn deliver(&self) {
        loop {
            let (level, text) = {
                let mut queue = lock(&self.state);
                loop {
                    if queue.dropped > 0 && queue.note_after == 0 {
                        let dropped = std::mem::take(&mut queue.dropped);
                        break (
                            LogLevel::Quiet,
                            format!(
                                "{dropped} log lines were dropped: the log callback did not keep up"
                            ),
                        );
                    }
                    if let Some(line) = queue.lines.pop_front() {
                        queue.note_after = queue.note_after.saturating_sub(1);
                        break line;
                    }
                    if queue.closed {
                        return;
                    }
                    queue = self
                        .ready
                        .wait(queue)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            };
            // A hook that panics loses its line, not the lines after it.
            let _ = catch_unwind(AssertUnwindSafe(|| (self.hook)(level, &text)));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single step: a poisoned lock holds a consistent value.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Logger;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_blocked_hook_costs_the_logger_nothing_and_hears_what_was_dropped() {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        let hook: LogHook = Arc::new(move |level, text: &str| {
            if text == "first" {
                // Blocks until the test has logged far more than the queue holds.
                let _ = lock(&gate).recv_timeout(Duration::from_secs(10));
            }
            lock(&sink).push((level, text.to_owned()));
        });
        let logger = Logger::new(LogLevel::Info, Some(hook)).unwrap();
        logger.line(LogLevel::Info, format_args!("first"));
        // The hook may not have taken "first" yet: the queue holds at most QUEUED_LINES more.
        for i in 0..QUEUED_LINES * 3 {
            logger.line(LogLevel::Info, format_args!("line {i}"));
        }
        logger.line(LogLevel::Verbose, format_args!("above the level"));
        release.send(()).unwrap();
        logger.finish();
        let heard = lock(&heard);
        assert_eq!(heard[0].1, "first");
        let dropped = heard
            .iter()
            .position(|(_, text)| {
                text.ends_with("log lines were dropped: the log callback did not keep up")
            })
            .expect("the hook hears that lines were dropped");
        assert_eq!(heard[dropped].0, LogLevel::Quiet);
        // In its place: after the lines queued before the drop, before those after it.
        assert_eq!(heard[dropped - 1].1, format!("line {}", dropped - 2));
        assert_eq!(
            dropped,
            heard.len() - 1,
            "nothing was queued after the drop"
        );
        assert!(heard.len() <= QUEUED_LINES + 3, "{}", heard.len());
        assert!(heard.iter().all(|(_, text)| text != "above the level"));
    }
}
