//! Where events are acknowledged, kept and replayed: the one seam between publishers and the
//! loop's fan-out.
//!
//! The route of an event:
//! 1. A publisher hands it to the [`Intake`] (`intake.rs`) from any thread: it is validated,
//!    given an id, encoded once into a frame every subscriber will share, and queued. Its
//!    publisher is acknowledged here: `Intake::publish` returns the id, `POST /publish`
//!    answers `200` with it, `sse_publish` returns it.
//! 2. Each loop turn, [`Store::take`] hands the loop the events that are ready for delivery,
//!    oldest first. The loop appends each one's frame to every matching subscriber's queue and
//!    schedules the writes (event_loop.rs); that part knows nothing of where events come from.
//! 3. The loop then gives them to [`Store::keep`], which retains them for replay in the memory
//!    [`Ring`] (`ring.rs`); [`Store::replay`] answers a reconnecting subscriber from it.
//!
//! With a history file (`durable.rs`, over `file/`), step 2 waits for the disk: `take` passes
//! new events to the file's writer thread and hands the loop only those written, so that no
//! subscriber sees an event a crash could take back, and an HTTP publisher is answered then
//! ([`Store::publish`] says `Waiting`, and its answer comes back through [`Store::acks`]). The
//! ring is loaded from the file at start. A Redis stream would replace the queue of step 1 on
//! the delivery side the same way: publishes appended to the stream, `take` handing over what
//! the stream's tail has read. Either way the fan-out and the writes stay as they are.

mod durable;
mod entry;
pub mod file;
mod intake;
pub(crate) mod ring;

use std::sync::Arc;
use std::time::Duration;

use durable::Durable;
pub(crate) use entry::Entry;
use file::{Loaded, Status, Writer};
use intake::Accepted;
pub(crate) use intake::Intake;
pub use intake::PublishError;
pub(crate) use ring::Replay;
use ring::Ring;

use crate::config::LogLevel;
use crate::event::Event;
use crate::frame::IdForm;

/// The fate of an HTTP publish whose answer waited for the history file: the event's id, or why
/// it was not published.
#[derive(Debug)]
pub(crate) struct Ack {
    /// The loop's token of the publishing connection.
    pub waiter: usize,
    pub result: Result<Box<str>, PublishError>,
}

/// What became of a publish from the loop.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Submitted {
    /// Answered now: the id the server assigned (`None` for the event's own), or why not.
    Done(Result<Option<u64>, PublishError>),
    /// Accepted; the answer comes through [`Store::acks`] once the history file has it.
    Waiting,
}

/// The loop's side of the seam: what it takes to deliver, what it keeps, what it replays.
pub(crate) struct Store {
    intake: Arc<Intake>,
    ring: Ring,
    file: Option<Durable>,
    taken: Vec<Accepted>,
    /// Answers due to HTTP publishers that waited for the history file; the loop sends them.
    pub acks: Vec<Ack>,
}

impl Store {
    /// A store that takes events from `intake` and retains the last `history` of them.
    pub fn new(intake: Arc<Intake>, history: usize) -> Store {
        Store {
            intake,
            ring: Ring::new(history),
            file: None,
            taken: Vec::new(),
            acks: Vec::new(),
        }
    }

    /// Delivers through the history file from now on: what it held at start fills the ring,
    /// and assigned ids go on above the highest it ever held.
    pub fn with_file(
        mut self,
        loaded: Loaded,
        writer: Writer,
        retry_after: Duration,
        log: LogLevel,
    ) -> Store {
        for record in &loaded.records {
            self.ring.push(record.entry());
        }
        if let Some(last) = loaded.last_assigned {
            self.intake.assign_above(last);
        }
        self.file = Some(Durable::new(writer, retry_after, log));
        self
    }

    /// Publishes from the loop's own thread, for the connection with token `waiter`; an id
    /// assigned to the event is written in `form`.
    pub fn publish(&self, event: &Event, waiter: usize, form: IdForm) -> Submitted {
        if self.file.is_none() {
            return Submitted::Done(self.intake.publish_for(event, None, form));
        }
        match self.intake.publish_for(event, Some(waiter), form) {
            Ok(_) => Submitted::Waiting,
            Err(why) => Submitted::Done(Err(why)),
        }
    }

    /// True once the server has been asked to stop.
    pub fn stop_requested(&self) -> bool {
        self.intake.is_stopped()
    }

    /// Called by the loop before it may sleep: from now on a new event wakes it. Returns true when
    /// events are already waiting, so that it must not sleep.
    pub fn prepare_to_sleep(&self) -> bool {
        let arrived = self.intake.prepare_to_sleep();
        arrived || self.file.as_ref().is_some_and(Durable::has_settled)
    }

    /// Moves the events ready for delivery into `batch`, oldest first, until about `budget`
    /// bytes of frames. Returns true when the server is stopped and every event it accepted has
    /// been handed over.
    pub fn take(&mut self, batch: &mut Vec<Entry>, budget: usize) -> bool {
        match &mut self.file {
            Some(durable) => durable.take(&self.intake, batch, budget, &mut self.acks),
            None => {
                let drained = self.intake.take(&mut self.taken, budget);
                batch.extend(self.taken.drain(..).map(|accepted| accepted.entry));
                drained
            }
        }
    }

    /// Retains the events of `batch`, which the loop has delivered, for replay; leaves `batch`
    /// empty.
    pub fn keep(&mut self, batch: &mut Vec<Entry>) {
        for entry in batch.drain(..) {
            self.ring.push(entry);
        }
    }

    /// The retained events a subscriber that last saw `last_id` has missed.
    pub fn replay(&self, last_id: &str) -> Replay<'_> {
        self.ring.since(last_id)
    }

    /// Number of events retained.
    pub fn retained(&self) -> usize {
        self.ring.len()
    }

    /// The distinct event types retained, newest first, at most `limit` of them.
    pub fn event_types(&self, limit: usize) -> Vec<&str> {
        self.ring.event_types(limit)
    }

    /// Writes and syncs what the history file's writer still holds, at stop.
    pub fn close(&mut self) {
        if let Some(durable) = &mut self.file {
            durable.close();
        }
    }

    /// The history file's state, when there is one, and how many accepted events a failed write
    /// lost.
    pub fn file_status(&self) -> Option<(Status, u64)> {
        self.file.as_ref().map(|d| (d.status(), d.lost))
    }
}
