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
//! A history file fits between 1 and 2: `take` passes new events to a writer thread and hands
//! the loop only those written, so that no subscriber sees an event a crash could take back;
//! the ring is loaded from the file at start. A Redis stream replaces the queue of step 1 on
//! the delivery side: publishes are appended to the stream, and `take` hands over what the
//! stream's tail has read, so that every node delivers one order. Either way the fan-out and
//! the writes stay as they are.

mod entry;
#[allow(dead_code, unused_imports)]
pub mod file;
mod intake;
pub(crate) mod ring;

use std::sync::Arc;

pub(crate) use entry::Entry;
pub(crate) use intake::Intake;
pub use intake::PublishError;
pub(crate) use ring::Replay;
use ring::Ring;

use crate::event::Event;

/// The loop's side of the seam: what it takes to deliver, what it keeps, what it replays.
pub(crate) struct Store {
    intake: Arc<Intake>,
    ring: Ring,
}

impl Store {
    /// A store that takes events from `intake` and retains the last `history` of them.
    pub fn new(intake: Arc<Intake>, history: usize) -> Store {
        Store {
            intake,
            ring: Ring::new(history),
        }
    }

    /// Publishes from the loop's own thread (an HTTP publish). Returns the id the server
    /// assigned, or `None` when the event carried its own.
    pub fn publish(&self, event: &Event) -> Result<Option<u64>, PublishError> {
        self.intake.publish(event)
    }

    /// Called by the loop before it may sleep: from now on a new event wakes it. Returns true when
    /// events are already waiting, so that it must not sleep.
    pub fn prepare_to_sleep(&self) -> bool {
        self.intake.prepare_to_sleep()
    }

    /// Moves the events ready for delivery into `batch`, oldest first, until about `budget`
    /// bytes of frames. Returns true when the server is stopped and every event it accepted has
    /// been handed over.
    pub fn take(&mut self, batch: &mut Vec<Entry>, budget: usize) -> bool {
        self.intake.take(batch, budget)
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
}
