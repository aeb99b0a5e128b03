//! The intake: where every publisher hands its event over, whatever thread it runs on (HTTP
//! publishes on the loop, the C and Rust APIs, `--stdin` and `--demo` on threads of their own).
//!
//! Ids are assigned and frames encoded under the same lock that appends to the queue, so the
//! loop sees events in id order whatever thread published them. A publisher never blocks on the
//! loop: a full queue is an error, and the loop takes what it can deliver in one lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::entry::Entry;
use crate::event::{Event, Topics};
use crate::frame::{self, FieldError, IdForm};
use crate::stats::Counters;

/// Why an event was not published. Nothing was published when one of these is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// A field would corrupt the stream.
    Invalid(FieldError),
    /// The queue to the loop is full; the loop is behind. Try again later.
    QueueFull,
    /// The server has been stopped.
    Stopped,
    /// The history file cannot be written now (a full or failing disk). Try again later.
    Storage,
    /// The cluster's Redis cannot be reached (or did not answer in time). The event was not
    /// acknowledged: when Redis failed in the middle of the call it may still have been
    /// published. Try again later.
    Unavailable,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Invalid(why) => why.fmt(f),
            PublishError::QueueFull => f.write_str("the publish queue is full"),
            PublishError::Stopped => f.write_str("the server is stopped"),
            PublishError::Storage => f.write_str("the history file cannot be written"),
            PublishError::Unavailable => f.write_str("the cluster's Redis cannot be reached"),
        }
    }
}

impl std::error::Error for PublishError {}

/// One accepted event, as the loop takes it.
#[derive(Debug)]
// What the history file needs is unread in a build without it.
#[cfg_attr(not(feature = "history-file"), allow(dead_code))]
pub(crate) struct Accepted {
    pub entry: Entry,
    /// The id, when the server assigned it.
    pub assigned: Option<u64>,
    /// Who waits to hear the event's fate: the loop's token for a connection that published it
    /// over HTTP, when the answer waits for the history file.
    pub waiter: Option<usize>,
}

struct Queue {
    events: VecDeque<Accepted>,
    capacity: usize,
    next_id: u64,
    stopped: bool,
    /// While the history file fails, publishes are refused until then.
    refuse_until: Option<Instant>,
}

/// The queue between publishers and the loop, shared by the loop and every handle.
pub(crate) struct Intake {
    queue: Mutex<Queue>,
    waker: mio::Waker,
    /// Clear only while the loop may be asleep: publishes made while it is awake cost no wake.
    wake_pending: AtomicBool,
    /// Where acknowledged publishes are counted.
    counters: Arc<Counters>,
    /// Whether a private event can reach anyone: the server has a subscriber key.
    private_readers: bool,
}

impl Intake {
    pub fn new(waker: mio::Waker, capacity: usize, counters: Arc<Counters>) -> Intake {
        Intake {
            // Set: the loop is awake until it first prepares to sleep.
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                capacity,
                next_id: first_id(),
                stopped: false,
                refuse_until: None,
            }),
            waker,
            wake_pending: AtomicBool::new(true),
            counters,
            private_readers: true,
        }
    }

    /// Refuses private events from now on: no subscriber could ever read one.
    pub fn without_private_readers(mut self) -> Intake {
        self.private_readers = false;
        self
    }

    /// Checks what `Event::validate` cannot: whether this server can deliver the event.
    pub fn check(&self, event: &Event) -> Result<(), PublishError> {
        event.validate().map_err(PublishError::Invalid)?;
        if event.private && !self.private_readers {
            return Err(PublishError::Invalid(FieldError::Unreadable));
        }
        Ok(())
    }

    /// Counts one publish as acknowledged (see `Stats::events_published`).
    pub fn acknowledged(&self) {
        Counters::add(&self.counters.events_published, 1);
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The lock guards no invariant a panic could break halfway, so a poisoned lock is usable.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `event` for the loop. Returns the id the server assigned, or `None` when the event
    /// carried its own.
    pub fn publish(&self, event: &Event) -> Result<Option<u64>, PublishError> {
        self.publish_for(event, None, IdForm::Decimal)
    }

    /// Queues `event` for the loop, naming who waits for its fate (see [`Accepted::waiter`]);
    /// an id assigned to it is written in `form`.
    pub fn publish_for(
        &self,
        event: &Event,
        waiter: Option<usize>,
        form: IdForm,
    ) -> Result<Option<u64>, PublishError> {
        self.check(event)?;
        let topics = Topics::of(event);
        let mut queue = self.lock();
        if queue.stopped {
            return Err(PublishError::Stopped);
        }
        if queue.events.len() >= queue.capacity {
            return Err(PublishError::QueueFull);
        }
        if let Some(until) = queue.refuse_until {
            if Instant::now() < until {
                return Err(PublishError::Storage);
            }
            queue.refuse_until = None;
        }
        let mut digits = [0u8; 20];
        let mut urn = [0u8; frame::URN_UUID_LEN];
        let (id, assigned) = if event.id.is_empty() {
            let n = queue.next_id;
            queue.next_id += 1;
            let id = match form {
                IdForm::Decimal => frame::decimal(n, &mut digits),
                IdForm::Urn => frame::urn_uuid(n, &mut urn),
            };
            (id, Some(n))
        } else {
            (event.id.as_str(), None)
        };
        let encoded = frame::encode(id, &event.event_type, event.retry, &event.data);
        queue.events.push_back(Accepted {
            entry: Entry::new(encoded, topics, event.private),
            assigned,
            waiter,
        });
        drop(queue);
        // Acknowledged now, unless its answer waits for the history file.
        if waiter.is_none() {
            self.acknowledged();
        }
        self.wake();
        Ok(assigned)
    }

    /// Makes assigned ids start above `last`: ids a history file holds are never reused.
    #[cfg_attr(not(feature = "history-file"), allow(dead_code))]
    pub fn assign_above(&self, last: u64) {
        let mut queue = self.lock();
        queue.next_id = queue.next_id.max(last.saturating_add(1));
    }

    /// Refuses publishes with `Storage` for `period`: the history file is failing.
    #[cfg_attr(not(feature = "history-file"), allow(dead_code))]
    pub fn refuse_for(&self, period: Duration) {
        self.lock().refuse_until = Some(Instant::now() + period);
    }

    /// Asks the loop to stop; later publishes fail with `Stopped`.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.wake_pending.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// Wakes the loop unless it is awake already (a publish, or the history file's writer).
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            // A failed wake leaves the event queued; the loop takes it on its next turn.
            let _ = self.waker.wake();
        }
    }

    /// Called by the loop before it may sleep: from now on a publish wakes it. Returns true when
    /// something arrived meanwhile, so that it must not sleep.
    pub fn prepare_to_sleep(&self) -> bool {
        self.wake_pending.store(false, Ordering::SeqCst);
        // A stop needs no check here: it always wakes the loop.
        !self.lock().events.is_empty()
    }

    /// Moves queued events into `into`, oldest first, until about `budget` bytes of frames
    /// (at least one event when the budget is not zero). What is left waits for a later turn,
    /// and fills the queue until publishers are told it is full: that is how a loop that cannot
    /// deliver faster pushes back.
    /// Returns true when the server is stopped and every event it accepted has been taken.
    pub fn take(&self, into: &mut Vec<Accepted>, budget: usize) -> bool {
        let mut queue = self.lock();
        let mut taken = 0;
        while taken < budget {
            let Some(accepted) = queue.events.pop_front() else {
                break;
            };
            taken += accepted.entry.frame.len();
            into.push(accepted);
        }
        // Stop only once every event accepted before the stop has been taken.
        queue.stopped && queue.events.is_empty()
    }

    /// True once `stop` has been called.
    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }
}

/// Ids start at the current time in microseconds, so that they keep growing across restarts.
fn first_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_intake(capacity: usize) -> (mio::Poll, Intake) {
        let poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), mio::Token(1)).unwrap();
        (poll, Intake::new(waker, capacity, Arc::default()))
    }

    #[test]
    fn ids_grow_from_the_current_time() {
        let before = first_id();
        let (_poll, intake) = new_intake(8);
        let a = intake.publish(&Event::new("a")).unwrap().unwrap();
        let b = intake.publish(&Event::new("b")).unwrap().unwrap();
        assert!(a >= before && b == a + 1);
        assert_eq!(intake.publish(&Event::new("c").id("mine")), Ok(None));
        let mut taken = Vec::new();
        intake.take(&mut taken, usize::MAX);
        let ids: Vec<&[u8]> = taken.iter().map(|a| a.entry.id()).collect();
        assert_eq!(
            ids,
            [a.to_string().as_bytes(), b.to_string().as_bytes(), b"mine"]
        );
    }

    #[test]
    fn an_id_assigned_in_mercure_form_is_the_urn_of_the_next_number() {
        let (_poll, intake) = new_intake(8);
        let a = intake.publish(&Event::new("a")).unwrap().unwrap();
        let b = intake
            .publish_for(&Event::new("b").private(), None, IdForm::Urn)
            .unwrap()
            .unwrap();
        assert_eq!(b, a + 1);
        let mut taken = Vec::new();
        intake.take(&mut taken, usize::MAX);
        let mut urn = [0u8; frame::URN_UUID_LEN];
        assert_eq!(taken[1].entry.id(), frame::urn_uuid(b, &mut urn).as_bytes());
        assert!(taken[1].entry.is_private() && !taken[0].entry.is_private());
    }

    #[test]
    fn full_queue_and_stop_are_errors_not_blocks() {
        let (_poll, intake) = new_intake(1);
        intake.publish(&Event::new("a")).unwrap();
        assert_eq!(
            intake.publish(&Event::new("b")),
            Err(PublishError::QueueFull)
        );
        intake.stop();
        assert_eq!(intake.publish(&Event::new("c")), Err(PublishError::Stopped));
        let bad = Event::new("x").event_type("a\nb");
        assert_eq!(
            intake.publish(&bad),
            Err(PublishError::Invalid(FieldError::EventType))
        );
    }

    #[test]
    fn take_stops_at_the_budget_and_stop_waits_for_the_rest() {
        let (_poll, intake) = new_intake(8);
        for data in ["a", "b", "c"] {
            intake.publish(&Event::new(data)).unwrap();
        }
        intake.stop();
        let mut taken = Vec::new();
        assert!(!intake.take(&mut taken, 1), "two events are still queued");
        assert_eq!(taken.len(), 1);
        assert!(!intake.take(&mut taken, 0));
        assert_eq!(taken.len(), 1, "a zero budget takes nothing");
        assert!(intake.take(&mut taken, usize::MAX));
        assert_eq!(taken.len(), 3);
    }

    #[test]
    fn invalid_events_are_refused() {
        let (_poll, intake) = new_intake(4);
        let bad = Event::new("x").id("1\n2");
        assert_eq!(
            intake.publish(&bad),
            Err(PublishError::Invalid(FieldError::Id))
        );
    }
}
