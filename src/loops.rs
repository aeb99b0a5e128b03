//! Every core (`--loops N`): the first loop serves every request and hands each new stream to
//! the loop with the fewest; every loop fans events out to its own streams.
//!
//! The first loop is the single-loop server as it always was: it accepts, reads and answers
//! requests, takes events from the store (the intake, the history file, the cluster) in id
//! order, replays, and keeps the ring. The other loops only hold streams. Each turn the first
//! loop passes the events it took to every other loop's inbox (the same frames, shared: an
//! event is encoded once), and a stream that has just opened, with its head and replay queued,
//! joins an inbox like an event. An inbox is read in order, so a stream arrives after exactly
//! the events its replay already holds, and is sent every later one: nothing is missed or sent
//! twice. Once handed over, a stream belongs to its loop until it closes.
//!
//! Nothing here is touched per subscriber per event: an inbox's lock is taken once per turn by
//! each side, and the stream counts change when a stream opens or closes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::conn::Conn;
use crate::store::Entry;

/// What a loop is handed, in the order it must be handled.
pub(crate) enum Handed {
    /// Events the first loop took, oldest first.
    Events(Vec<Entry>),
    /// A stream that just opened on the first loop.
    Stream(Box<Moved>),
    /// The server stops: every event before this was handed over.
    Stop,
}

/// A stream on its way to another loop, with what its first loop knew of it.
pub(crate) struct Moved {
    pub conn: Conn,
    /// The stream hook's id for it, and its peer (see `Host::moved_out`).
    #[cfg(feature = "host")]
    pub hooked: Option<(u64, Option<std::net::SocketAddr>)>,
    /// Mercure 1.0's active subscriptions it announced.
    #[cfg(feature = "jwt")]
    pub subscriptions: Option<Vec<crate::mercure::subscriptions::Subscription>>,
}

struct Queue {
    handed: VecDeque<Handed>,
    /// Bytes of event frames in `handed`.
    bytes: usize,
}

/// One loop's inbox, written by the first loop, read by its owner.
pub(crate) struct Inbox {
    queue: Mutex<Queue>,
    waker: mio::Waker,
    /// Clear only while the owner may be asleep (as `Intake::wake_pending`).
    wake_pending: AtomicBool,
    /// Streams the loop holds or is about to: raised by the first loop when it hands one over,
    /// lowered by the owner when one closes.
    streams: AtomicUsize,
    /// The owner has ended: nothing more is handed to it.
    gone: AtomicBool,
}

impl Inbox {
    pub fn new(waker: mio::Waker) -> Inbox {
        Inbox {
            queue: Mutex::new(Queue {
                handed: VecDeque::new(),
                bytes: 0,
            }),
            waker,
            wake_pending: AtomicBool::new(true),
            streams: AtomicUsize::new(0),
            gone: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing a panic could leave half done: a poisoned lock is usable.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands over `handed`; false when the owner has ended (it is dropped then).
    pub fn hand(&self, handed: Handed) -> bool {
        if self.gone.load(Ordering::Acquire) {
            return false;
        }
        let mut queue = self.lock();
        if let Handed::Events(events) = &handed {
            queue.bytes += events.iter().map(|e| e.frame.len()).sum::<usize>();
        }
        queue.handed.push_back(handed);
        drop(queue);
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
        true
    }

    /// Moves what was handed into `into`, in order, until about `budget` bytes of events
    /// (streams and the stop are taken whatever the budget). Returns the bytes of events taken
    /// and left.
    pub fn take(&self, into: &mut Vec<Handed>, budget: usize) -> (usize, usize) {
        let mut queue = self.lock();
        let mut taken = 0;
        while let Some(first) = queue.handed.front() {
            if let Handed::Events(events) = first {
                if taken >= budget {
                    break;
                }
                let bytes: usize = events.iter().map(|e| e.frame.len()).sum();
                taken += bytes;
                queue.bytes -= bytes;
            }
            if let Some(handed) = queue.handed.pop_front() {
                into.push(handed);
            }
        }
        (taken, queue.bytes)
    }

    /// Bytes of events handed over and not yet taken.
    pub fn backlog(&self) -> usize {
        self.lock().bytes
    }

    /// Called by the owner before it may sleep: from now on a hand-over wakes it. True when
    /// something is waiting already.
    pub fn prepare_to_sleep(&self) -> bool {
        self.wake_pending.store(false, Ordering::SeqCst);
        !self.lock().handed.is_empty()
    }

    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    pub fn stream_added(&self) {
        self.streams.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_closed(&self) {
        // Saturating: a loop that has ended counts none.
        let _ = self
            .streams
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// The owner has ended: what waits is dropped and nothing more is taken.
    pub fn close(&self) {
        self.gone.store(true, Ordering::Release);
        let mut queue = self.lock();
        queue.handed.clear();
        queue.bytes = 0;
        self.streams.store(0, Ordering::Relaxed);
    }
}

/// A loop's place among the loops.
pub(crate) enum Role {
    /// The first loop, and the other loops' inboxes.
    First { others: Vec<Arc<Inbox>> },
    /// Another loop: its inbox, and the intake to wake when it has caught up.
    Other {
        inbox: Arc<Inbox>,
        intake: Arc<crate::store::Intake>,
    },
}

impl Role {
    /// Called before the loop may sleep: from now on new work wakes it. True when work is
    /// waiting already.
    pub fn work_waiting(&self, store: &crate::store::Store, max_queue: usize) -> bool {
        match self {
            Role::Other { inbox, .. } => inbox.prepare_to_sleep(),
            // Events the store holds wait while another loop catches up: it wakes this one
            // then.
            Role::First { .. } => store.prepare_to_sleep() && !self.others_behind(max_queue),
        }
    }

    /// Streams held by the other loops (on the first loop; 0 elsewhere).
    pub fn streams_elsewhere(&self) -> usize {
        match self {
            Role::First { others } => others.iter().map(|inbox| inbox.streams()).sum(),
            Role::Other { .. } => 0,
        }
    }

    /// The other loop with the fewest streams, if it has no more than `here`: where a new
    /// stream goes. The first loop, which also serves every request, keeps it only when it has
    /// fewer.
    pub fn place(&self, here: usize) -> Option<usize> {
        let Role::First { others } = self else {
            return None;
        };
        let (index, fewest) = others
            .iter()
            .enumerate()
            .filter(|(_, inbox)| !inbox.gone.load(Ordering::Relaxed))
            .map(|(i, inbox)| (i, inbox.streams()))
            .min_by_key(|&(_, n)| n)?;
        (fewest <= here).then_some(index)
    }

    /// True when another loop has not yet taken [`behind`] bytes of events: the first loop
    /// takes no more from the store until it has (publishers are told the queue is full).
    pub fn others_behind(&self, max_queue: usize) -> bool {
        match self {
            Role::First { others } => others.iter().any(|i| i.backlog() >= behind(max_queue)),
            Role::Other { .. } => false,
        }
    }

    /// Hands `batch` to every other loop, each its own entries sharing the frames.
    pub fn hand_events(&self, batch: &[Entry]) {
        let Role::First { others } = self else { return };
        for inbox in others {
            inbox.hand(Handed::Events(batch.iter().map(Entry::share).collect()));
        }
    }

    /// Tells every other loop to stop once it has what was handed before.
    pub fn stop_others(&self) {
        if let Role::First { others } = self {
            stop_all(others);
        }
    }
}

/// Bytes of events not yet taken by another loop at which the first loop stops taking more:
/// half of `max_queue`, and at least one.
pub(crate) fn behind(max_queue: usize) -> usize {
    (max_queue / 2).max(1)
}

/// Tells the loops of `inboxes` to stop once they have what was handed before (a second stop
/// changes nothing).
pub(crate) fn stop_all(inboxes: &[Arc<Inbox>]) {
    for inbox in inboxes {
        inbox.hand(Handed::Stop);
    }
}
