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
//! ring is loaded from the file at start. In a cluster (`cluster/`, cargo feature `redis`) a
//! Redis stream replaces the queue of step 1: publishes are appended to the stream (`publish`
//! says `Waiting` too), and `take` hands over what the node's tail has read from it, whichever
//! node published it; a `Last-Event-ID` older than the ring is looked up in Redis off the loop
//! ([`Store::replay`] says so, and the events come through [`Store::late_replays`]). Either way
//! the fan-out and the writes stay as they are.

#[cfg(feature = "redis")]
mod cluster;
#[cfg(feature = "history-file")]
mod durable;
mod entry;
#[cfg(feature = "history-file")]
pub mod file;
mod intake;
pub(crate) mod ring;

use std::sync::Arc;
#[cfg(feature = "history-file")]
use std::time::Duration;

use durable::Durable;
pub(crate) use entry::Entry;
#[cfg(feature = "history-file")]
use file::{Loaded, Writer};
use intake::Accepted;
pub(crate) use intake::Intake;
pub use intake::PublishError;
pub(crate) use ring::Replay;
use ring::Ring;

#[cfg(feature = "redis")]
pub(crate) use cluster::{Cluster, Publisher};

use crate::event::Event;
use crate::frame::IdForm;
#[cfg(any(feature = "history-file", feature = "redis"))]
#[cfg(feature = "history-file")]
use crate::log::Logger;
use crate::stats::RedisStatus;

/// The history file's state, for `/health` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileHealth {
    /// Why the file cannot be written now, while that lasts.
    pub failing: Option<String>,
    pub file_bytes: u64,
    pub syncs: u64,
    pub compactions: u64,
    /// Accepted events a failed write lost.
    pub lost: u64,
}

/// Without the history file (the cargo feature `history-file` off, as in the tiny build), a
/// stand-in of which no value can exist.
#[cfg(not(feature = "history-file"))]
mod durable {
    use super::{Ack, Entry, FileHealth, Intake};

    pub(super) enum Durable {}

    impl Durable {
        pub fn take(&mut self, _: &Intake, _: &mut Vec<Entry>, _: usize, _: &mut Vec<Ack>) -> bool {
            match *self {}
        }
        pub fn has_settled(&self) -> bool {
            match *self {}
        }
        pub fn health(&self) -> FileHealth {
            match *self {}
        }
        pub fn close(&mut self) {
            match *self {}
        }
    }
}

/// The fate of an HTTP publish whose answer waited for the history file or Redis: the event's
/// id, or why it was not published.
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
    /// Accepted; the answer comes through [`Store::acks`] once the history file or Redis has it.
    Waiting,
}

/// A replay that waited for Redis: a subscriber's `Last-Event-ID` was older than the ring.
pub(crate) struct LateReplay {
    /// The loop's token of the subscriber's connection.
    pub waiter: usize,
    /// What to send it, or `None` when Redis failed: its stream is closed then, so that the
    /// client comes back with its `Last-Event-ID`.
    pub events: Option<LateEvents>,
}

/// The events of a late replay: `looked_up`, then the ring's events after position `after`.
pub(crate) struct LateEvents {
    /// The stream no longer holds the subscriber's id: events may be missing.
    pub gap: bool,
    pub looked_up: Vec<Entry>,
    pub after: u64,
}

/// The loop's side of the seam: what it takes to deliver, what it keeps, what it replays.
pub(crate) struct Store {
    intake: Arc<Intake>,
    ring: Ring,
    file: Option<Durable>,
    #[cfg(feature = "redis")]
    cluster: Option<Cluster>,
    taken: Vec<Accepted>,
    /// On another loop of a cluster's node (`--loops`), where its publishes go.
    #[cfg(feature = "redis")]
    relay: Option<Arc<Publisher>>,
    /// Answers due to HTTP publishers that waited for the history file or Redis; the loop sends
    /// them.
    pub acks: Vec<Ack>,
}

impl Store {
    /// A store that takes events from `intake` and retains the last `history` of them.
    pub fn new(intake: Arc<Intake>, history: usize) -> Store {
        Store {
            intake,
            ring: Ring::new(history),
            file: None,
            #[cfg(feature = "redis")]
            cluster: None,
            taken: Vec::new(),
            #[cfg(feature = "redis")]
            relay: None,
            acks: Vec::new(),
        }
    }

    /// The store of another loop (`--loops`): it is handed its events by the first loop and
    /// never takes any itself, keeps none, and publishes where this one does.
    #[cfg(feature = "loops")]
    pub fn another(&self) -> Store {
        #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
        let mut store = Store::new(self.intake.clone(), 0);
        #[cfg(feature = "redis")]
        {
            store.relay = self.cluster_publisher();
        }
        store
    }

    /// Delivers through the history file from now on: what it held at start fills the ring,
    /// and assigned ids go on above the highest it ever held.
    #[cfg(feature = "history-file")]
    pub fn with_file(
        mut self,
        loaded: Loaded,
        writer: Writer,
        retry_after: Duration,
        log: Logger,
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

    /// Delivers from the cluster's Redis stream from now on (see `cluster/`).
    #[cfg(feature = "redis")]
    pub fn with_cluster(mut self, cluster: Cluster) -> Store {
        self.cluster = Some(cluster);
        self
    }

    /// The cluster's publisher, for handles that publish from other threads.
    #[cfg(feature = "redis")]
    pub fn cluster_publisher(&self) -> Option<Arc<Publisher>> {
        self.cluster.as_ref().map(Cluster::publisher)
    }

    /// Publishes from the loop's own thread, for the connection with token `waiter`; an id
    /// assigned to the event is written in `form`.
    pub fn publish(&self, event: &Event, waiter: usize, form: IdForm) -> Submitted {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return match cluster.submit(event, waiter, form) {
                Ok(()) => Submitted::Waiting,
                Err(why) => Submitted::Done(Err(why)),
            };
        }
        #[cfg(feature = "redis")]
        if let Some(relay) = &self.relay {
            return match relay.submit(event, waiter, form) {
                Ok(()) => Submitted::Waiting,
                Err(why) => Submitted::Done(Err(why)),
            };
        }
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
        #[cfg(feature = "redis")]
        if self.cluster.as_ref().is_some_and(Cluster::has_news) {
            return true;
        }
        arrived || self.file.as_ref().is_some_and(Durable::has_settled)
    }

    /// Moves the events ready for delivery into `batch`, oldest first, until about `budget`
    /// bytes of frames. Returns true when the server is stopped and every event it accepted has
    /// been handed over.
    pub fn take(&mut self, batch: &mut Vec<Entry>, budget: usize) -> bool {
        let answered = self.acks.len();
        let drained = self.take_ready(batch, budget);
        // HTTP publishers whose answer waited are acknowledged now.
        for ack in &self.acks[answered..] {
            if ack.result.is_ok() {
                self.intake.acknowledged();
            }
        }
        drained
    }

    fn take_ready(&mut self, batch: &mut Vec<Entry>, budget: usize) -> bool {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &mut self.cluster {
            return cluster.take(&mut self.ring, batch, budget, &mut self.acks);
        }
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
            #[cfg(feature = "redis")]
            if let Some(cluster) = &mut self.cluster {
                cluster.delivered(&entry);
            }
            self.ring.push(entry);
        }
    }

    /// The retained events a subscriber that last saw `last_id` has missed. In a cluster, an id
    /// the ring does not hold is looked up in Redis for the connection `waiter`: `None` says so,
    /// and its events come later through [`Store::late_replays`].
    pub fn replay(&mut self, last_id: &str, waiter: usize) -> Option<Replay<'_>> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &mut self.cluster
            && !self.ring.holds(last_id)
            && cluster.look_up(last_id, waiter)
        {
            return None;
        }
        let _ = waiter;
        Some(self.ring.since(last_id))
    }

    /// Replays that waited for Redis and can be sent now (see [`LateReplay`]). Call it after
    /// `keep`, so that what the replays hold and what the fan-out sends next meet exactly.
    pub fn late_replays(&mut self) -> Vec<LateReplay> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &mut self.cluster
            && cluster.has_waiting()
        {
            let mut ready = Vec::new();
            cluster.late_replays(&self.ring, &mut ready);
            return ready;
        }
        Vec::new()
    }

    /// The retained events placed after `position` in a cluster's stream, oldest first.
    pub fn ring_after(&self, position: u64) -> impl Iterator<Item = &Entry> {
        self.ring.after_position(position)
    }

    /// Every retained event, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Entry> {
        self.ring.all()
    }

    /// The id of the newest retained event, if it has one.
    #[cfg(feature = "jwt")]
    pub fn last_id(&self) -> Option<String> {
        let entry = self.ring.all().last()?;
        let id = std::str::from_utf8(entry.id()).ok()?;
        (!id.is_empty()).then(|| id.to_owned())
    }

    /// Number of events retained.
    pub fn retained(&self) -> usize {
        self.ring.len()
    }

    /// Writes and syncs what the history file's writer still holds, at stop.
    pub fn close(&mut self) {
        if let Some(durable) = &mut self.file {
            durable.close();
        }
        #[cfg(feature = "redis")]
        if let Some(cluster) = &mut self.cluster {
            cluster.close();
        }
    }

    /// Redis's state, in a cluster.
    pub fn redis_status(&self) -> Option<RedisStatus> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Some(cluster.status());
        }
        None
    }

    /// The history file's state, when there is one.
    pub fn file_health(&self) -> Option<FileHealth> {
        self.file.as_ref().map(Durable::health)
    }
}
