//! Delivery through the history file: an event reaches subscribers, the memory ring and its
//! publisher's `200` only once the file's writer has settled it written, so that nobody ever
//! sees an event that a crash could take back (as the fsync policy defines it).
//!
//! Events taken from the intake are appended to the writer in id order and wait here, with
//! their sequence numbers, until the writer settles them; a failed write drops them, answers
//! their HTTP publishers `503`, and makes the intake refuse publishes for a moment.

use std::collections::VecDeque;
use std::time::Duration;

use super::entry::Entry;
use super::file::{AppendError, Outcome, Settled, Writer};
use super::intake::{Accepted, Intake};
use super::{Ack, FileHealth};
use crate::config::LogLevel;
use crate::log::Logger;
use crate::store::PublishError;

pub(super) struct Durable {
    writer: Writer,
    /// Taken from the intake, not yet appended: the writer's queue was full.
    staged: VecDeque<Accepted>,
    /// Appended, waiting to be settled, with their sequence numbers.
    pending: VecDeque<(u64, Accepted)>,
    settled: Vec<Settled>,
    taken: Vec<Accepted>,
    /// How long the intake refuses publishes after a failure (the writer's own retry delay).
    retry_after: Duration,
    log: Logger,
    /// Events accepted and then lost to a failed write.
    lost: u64,
}

impl Durable {
    pub fn new(writer: Writer, retry_after: Duration, log: Logger) -> Durable {
        Durable {
            writer,
            staged: VecDeque::new(),
            pending: VecDeque::new(),
            settled: Vec::new(),
            taken: Vec::new(),
            retry_after,
            log,
            lost: 0,
        }
    }

    /// Moves the events the writer has settled written into `batch`, answers the HTTP
    /// publishers of settled events in `acks`, and appends new events from the intake. Returns
    /// true when the server is stopped and every event it accepted has been settled.
    pub fn take(
        &mut self,
        intake: &Intake,
        batch: &mut Vec<Entry>,
        budget: usize,
        acks: &mut Vec<Ack>,
    ) -> bool {
        self.settle(intake, batch, acks);
        // New events only once the staged ones are in: order is id order.
        let budget = if self.staged.is_empty() { budget } else { 0 };
        let drained = intake.take(&mut self.taken, budget);
        self.staged.extend(self.taken.drain(..));
        self.append(intake, acks);
        drained && self.staged.is_empty() && self.pending.is_empty()
    }

    /// True when the writer has settled events the loop has not taken yet.
    pub fn has_settled(&self) -> bool {
        self.writer.has_settled()
    }

    pub fn health(&self) -> FileHealth {
        let status = self.writer.status();
        FileHealth {
            failing: status.failing.map(|why| why.to_string()),
            file_bytes: status.file_bytes,
            syncs: status.syncs,
            compactions: status.compactions,
            lost: self.lost,
        }
    }

    /// Writes and syncs what the writer still holds, and ends its thread.
    pub fn close(&mut self) {
        if let Err(e) = self.writer.finish() {
            self.log.line(
                LogLevel::Quiet,
                format_args!("history file: the last write at stop failed: {e}"),
            );
        }
    }

    fn settle(&mut self, intake: &Intake, batch: &mut Vec<Entry>, acks: &mut Vec<Ack>) {
        let mut runs = std::mem::take(&mut self.settled);
        self.writer.take_settled(&mut runs);
        for settled in runs.drain(..) {
            while self
                .pending
                .front()
                .is_some_and(|(seq, _)| *seq <= settled.through)
            {
                let Some((_, accepted)) = self.pending.pop_front() else {
                    break;
                };
                match settled.outcome {
                    Outcome::Written => {
                        if let Some(waiter) = accepted.waiter {
                            let id = String::from_utf8_lossy(accepted.entry.id()).into();
                            acks.push(Ack {
                                waiter,
                                result: Ok(id),
                            });
                        }
                        batch.push(accepted.entry);
                    }
                    Outcome::Failed(_) => self.drop_event(accepted, acks),
                }
            }
            if let Outcome::Failed(why) = settled.outcome {
                self.failing(intake, format_args!("{why}"));
            }
        }
        self.settled = runs;
    }

    fn append(&mut self, intake: &Intake, acks: &mut Vec<Ack>) {
        let mut failure = None;
        while let Some(accepted) = self.staged.pop_front() {
            let record = accepted.entry.record(accepted.assigned);
            match self.writer.append(record) {
                Ok(seq) => self.pending.push_back((seq, accepted)),
                Err(AppendError::Full) => {
                    // The disk is behind: wait for the writer, which wakes the loop when it
                    // settles. Meanwhile the intake fills and publishers are told so.
                    self.staged.push_front(accepted);
                    break;
                }
                Err(AppendError::TooLarge) => self.drop_event(accepted, acks),
                Err(why) => {
                    self.drop_event(accepted, acks);
                    failure = Some(why);
                }
            }
        }
        if let Some(why) = failure {
            self.failing(intake, format_args!("{why}"));
        }
    }

    fn drop_event(&mut self, accepted: Accepted, acks: &mut Vec<Ack>) {
        self.lost += 1;
        if let Some(waiter) = accepted.waiter {
            acks.push(Ack {
                waiter,
                result: Err(PublishError::Storage),
            });
        }
    }

    fn failing(&self, intake: &Intake, why: std::fmt::Arguments) {
        intake.refuse_for(self.retry_after);
        self.log.line(
            LogLevel::Quiet,
            format_args!(
                "history file: {why}; publishing is refused for {} ms, then retried",
                self.retry_after.as_millis()
            ),
        );
    }
}
