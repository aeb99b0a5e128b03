//! The cluster on Redis Streams (SPEC section 8): nodes that share one Redis stream act as one
//! server. The stream replaces the intake's queue on both sides of the loop:
//!
//! - A publish becomes one `EVALSHA` of the append script (`fields.rs`), run by the publisher
//!   thread (`publisher.rs`): it assigns the event's id and appends it, atomically. Nothing is
//!   delivered from there: an HTTP publisher gets its `200` with the id once Redis has the event,
//!   a thread that publishes through a `Handle` or the C API waits for the same answer.
//! - Every node's tail thread (`tail.rs`) reads the stream with `XREAD BLOCK` from the last entry
//!   it has, encodes each entry once and hands it to the loop, which fans it out as it would any
//!   event: every node delivers the same events, in the stream's order, with the same ids.
//! - The ring holds the node's copy of the stream's tail. A `Last-Event-ID` it does not hold is
//!   looked up in Redis by the lookup thread (`lookup.rs`); the subscriber waits meanwhile, its
//!   stream head sent, and joins the others once what it missed is known and the node has
//!   delivered at least as far (see [`Cluster::late_replays`]).
//!
//! Redis down: publishes fail at once with `Unavailable` (no local buffer: it would reorder or
//! duplicate), subscribers keep their streams, both threads reconnect with a growing pause, and
//! the tail resumes after its last entry, so nothing is delivered twice.

mod fields;
mod link;
mod lookup;
mod publisher;
mod tail;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::entry::Entry;
use super::intake::Intake;
use super::ring::Ring;
use super::{Ack, LateEvents, LateReplay};
use crate::config::{Config, LogLevel};
use crate::event::Event;
use crate::frame::IdForm;
use crate::log::Logger;
use crate::stats::RedisStatus;
use crate::store::PublishError;
use link::Link;
use lookup::{Answer, Looked, Read};
pub(crate) use publisher::Publisher;

/// How many times a late replay is looked up again because the node delivered past what the
/// last lookup read, by more than the ring holds.
const MOST_LOOKUP_ROUNDS: u8 = 8;

/// What the threads and the loop share.
pub(super) struct Shared {
    intake: Arc<Intake>,
    key: String,
    log: Logger,
    stop: AtomicBool,
    /// The highest position this node has seen, read by its tail or assigned to its own
    /// publishes: the script assigns above it, so a failover that lost entries this node had
    /// seen cannot make their ids come back.
    seen: AtomicU64,
    outbox: Mutex<Outbox>,
    /// Signalled when the loop takes entries, for a tail waiting for room.
    room: Condvar,
    publisher_up: AtomicBool,
    tail_up: AtomicBool,
    /// The latest failure's message, while Redis is down.
    trouble: Mutex<Option<String>>,
    /// Connection failures so far, of either thread: when the tail's breaks, the publisher's
    /// may be dead too, and is checked before it carries a publish.
    failures: AtomicU64,
    counters: Counters,
}

/// What the threads hand the loop.
#[derive(Default)]
struct Outbox {
    /// The stream's tail when the node first reached Redis: retained, not delivered.
    history: Option<Vec<Entry>>,
    /// Entries to deliver, in stream order.
    live: VecDeque<Entry>,
    live_bytes: usize,
    acks: Vec<Ack>,
    answers: Vec<Answer>,
}

#[derive(Default)]
struct Counters {
    reconnects: AtomicU64,
    rewinds: AtomicU64,
    refused_entries: AtomicU64,
    lookups: AtomicU64,
}

/// Which thread's connection a state change is about.
#[derive(Debug, Clone, Copy)]
enum Role {
    Publisher,
    Tail,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Publisher => "the publisher",
            Role::Tail => "the tail",
        })
    }
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn lock_outbox(&self) -> MutexGuard<'_, Outbox> {
        // Nothing a panic could leave half-done is guarded: a poisoned lock is usable.
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands the loop something through the outbox and wakes it.
    fn post(&self, put: impl FnOnce(&mut Outbox)) {
        put(&mut self.lock_outbox());
        self.intake.wake();
    }

    /// True while both connections work: publishing is possible and the tail is reading.
    fn up(&self) -> bool {
        self.publisher_up.load(Ordering::SeqCst) && self.tail_up.load(Ordering::SeqCst)
    }

    fn flag(&self, role: Role) -> &AtomicBool {
        match role {
            Role::Publisher => &self.publisher_up,
            Role::Tail => &self.tail_up,
        }
    }

    fn came_up(&self, role: Role, first: bool) {
        if self.flag(role).swap(true, Ordering::SeqCst) {
            return;
        }
        if !first {
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        if self.up() {
            *self.trouble.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        self.note(LogLevel::Info, format_args!("{role} is connected"));
    }

    /// The publisher's connection answered a check: it is usable again, quietly.
    fn verified(&self, role: Role) {
        self.flag(role).store(true, Ordering::SeqCst);
        if self.up() {
            *self.trouble.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    fn went_down(&self, role: Role, why: impl std::fmt::Display) {
        let why = why.to_string();
        let was_up = self.flag(role).swap(false, Ordering::SeqCst);
        if let Role::Tail = role {
            // Redis may have dropped the publisher's connection too: it is not counted on
            // until the publisher has checked it (see `publisher::run`).
            self.publisher_up.store(false, Ordering::SeqCst);
        }
        self.failures.fetch_add(1, Ordering::SeqCst);
        *self.trouble.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        if was_up {
            self.note(
                LogLevel::Quiet,
                format_args!("{role} lost its connection ({why}); retrying"),
            );
        }
    }

    fn note(&self, level: LogLevel, args: std::fmt::Arguments) {
        self.log.line(level, format_args!("redis: {args}"));
    }
}

/// A subscriber waiting for what it missed.
struct Waiting {
    waiter: usize,
    progress: Progress,
    /// Lookups made for it so far.
    rounds: u8,
}

enum Progress {
    /// A lookup runs, after what earlier rounds read.
    Looking(Option<Read>),
    /// Read; waits for this node to deliver at least as far as the subscriber has seen.
    Read(Read),
    /// The stream no longer holds the subscriber's id: a gap.
    Gone,
    /// Redis failed: the stream is closed, so that the client comes back with its id.
    Failed,
}

/// The loop's side of the cluster.
pub(crate) struct Cluster {
    shared: Arc<Shared>,
    publisher: Arc<Publisher>,
    lookups: Arc<lookup::Queue>,
    waiting: Vec<Waiting>,
    /// The position of the newest entry delivered (or retained at start).
    delivered: u64,
    delivery_lag_ms: u64,
    answers: Vec<Answer>,
}

impl Cluster {
    /// Connects to the Redis of `config.redis` and starts the node's threads. Redis being down
    /// is no error: the threads keep trying, and publishing fails until they succeed.
    pub fn open(config: &Config, intake: Arc<Intake>, log: Logger) -> io::Result<Cluster> {
        let url = config.redis.as_deref().unwrap_or_default();
        let client = redis::Client::open(url).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("redis {url}: {e}"))
        })?;
        let shared = Arc::new(Shared {
            intake,
            key: config.redis_stream.clone(),
            log,
            stop: AtomicBool::new(false),
            seen: AtomicU64::new(0),
            outbox: Mutex::new(Outbox::default()),
            room: Condvar::new(),
            publisher_up: AtomicBool::new(false),
            tail_up: AtomicBool::new(false),
            trouble: Mutex::new(Some("not connected yet".into())),
            failures: AtomicU64::new(0),
            counters: Counters::default(),
        });
        let publisher = Arc::new(Publisher::new(shared.clone(), config.publish_queue));
        let lookups = Arc::new(lookup::Queue::default());
        let length = config.redis_stream_length();
        // The first connections are made here, so that a node whose Redis is up can publish as
        // soon as it is bound.
        let publish_link = publisher::first_link(&shared, &client);
        let (tail_link, tail_last) = tail::first_link(&shared, &client, config.history);
        if !shared.up() {
            let why = shared.trouble.lock().map(|t| t.clone()).unwrap_or_default();
            shared.note(
                LogLevel::Quiet,
                format_args!(
                    "cannot reach {url} ({}); publishing is refused until it can",
                    why.unwrap_or_default()
                ),
            );
        }
        spawn("ssed-publish", {
            let publisher = publisher.clone();
            move || publisher::run(publisher, publish_link, length)
        })?;
        spawn("ssed-tail", {
            let shared = shared.clone();
            let retained = config.history;
            move || tail::run(shared, tail_link, tail_last, retained)
        })?;
        spawn("ssed-lookup", {
            let (shared, lookups) = (shared.clone(), lookups.clone());
            let link = Link::new(client, lookup::REPLY_TIMEOUT);
            move || lookup::run(shared, lookups, link, length)
        })?;
        Ok(Cluster {
            shared,
            publisher,
            lookups,
            waiting: Vec::new(),
            delivered: 0,
            delivery_lag_ms: 0,
            answers: Vec::new(),
        })
    }

    /// The publisher, for handles that publish from other threads.
    pub fn publisher(&self) -> Arc<Publisher> {
        self.publisher.clone()
    }

    /// Hands an HTTP publish to the publisher thread; its answer comes back as an [`Ack`].
    pub fn submit(&self, event: &Event, waiter: usize, form: IdForm) -> Result<(), PublishError> {
        self.publisher.submit(event, waiter, form)
    }

    /// True when a thread has handed the loop something.
    pub fn has_news(&self) -> bool {
        let outbox = self.shared.lock_outbox();
        outbox.history.is_some()
            || !outbox.live.is_empty()
            || !outbox.acks.is_empty()
            || !outbox.answers.is_empty()
    }

    /// Retains the stream's tail read at start, moves entries to deliver into `batch` (about
    /// `budget` bytes), and publishers' answers into `acks`. Returns true when the server is
    /// stopped and every publish from the loop has been answered.
    pub fn take(
        &mut self,
        ring: &mut Ring,
        batch: &mut Vec<Entry>,
        budget: usize,
        acks: &mut Vec<Ack>,
    ) -> bool {
        let mut outbox = self.shared.lock_outbox();
        if let Some(history) = outbox.history.take() {
            for entry in history {
                self.delivered = self.delivered.max(entry.position);
                ring.push(entry);
            }
        }
        let mut taken = 0;
        while taken < budget {
            let Some(entry) = outbox.live.pop_front() else {
                break;
            };
            taken += entry.frame.len();
            batch.push(entry);
        }
        outbox.live_bytes -= taken.min(outbox.live_bytes);
        acks.append(&mut outbox.acks);
        self.answers.append(&mut outbox.answers);
        drop(outbox);
        if taken > 0 {
            self.shared.room.notify_all();
        }
        for answer in self.answers.drain(..) {
            let Some(waiting) = self.waiting.iter_mut().find(|w| w.waiter == answer.waiter) else {
                continue;
            };
            let before = match std::mem::replace(&mut waiting.progress, Progress::Failed) {
                Progress::Looking(before) => before,
                other => {
                    waiting.progress = other;
                    continue;
                }
            };
            waiting.progress = match (before, answer.looked) {
                (Some(before), Looked::Found(more)) => Progress::Read(before.followed_by(more)),
                (None, Looked::Found(read)) => Progress::Read(read),
                (_, Looked::Gone) => Progress::Gone,
                (_, Looked::Failed) => Progress::Failed,
            };
        }
        self.shared.intake.is_stopped() && self.publisher.none_for_loop()
    }

    /// Notes that the loop delivered `entry`.
    pub fn delivered(&mut self, entry: &Entry) {
        self.delivered = self.delivered.max(entry.position);
        self.delivery_lag_ms = now_micros().saturating_sub(entry.position) / 1000;
    }

    /// Looks up what a subscriber that last saw `last_id` missed, for the connection with token
    /// `waiter`. False when too many lookups wait already.
    pub fn look_up(&mut self, last_id: &str, waiter: usize) -> bool {
        let from = lookup::From::Id(last_id.into());
        if !self.lookups.push(waiter, from) {
            return false;
        }
        self.shared.counters.lookups.fetch_add(1, Ordering::Relaxed);
        self.waiting.push(Waiting {
            waiter,
            progress: Progress::Looking(None),
            rounds: 1,
        });
        true
    }

    /// Moves the replays that can be sent now into `out`: the subscriber's entries after its id,
    /// up to what this node has delivered, from the lookup and then from the ring. A subscriber
    /// whose id is newer than what the node has delivered waits for the node to catch up, so
    /// that it receives nothing twice.
    pub fn late_replays(&mut self, ring: &Ring, out: &mut Vec<LateReplay>) {
        let mut i = 0;
        while i < self.waiting.len() {
            match self.replay_of(i, ring) {
                Some(events) => {
                    let waiting = self.waiting.swap_remove(i);
                    out.push(LateReplay {
                        waiter: waiting.waiter,
                        events,
                    });
                }
                None => i += 1,
            }
        }
    }

    /// The replay of `self.waiting[i]` when it can be sent now: `Some(None)` when it failed.
    fn replay_of(&mut self, i: usize, ring: &Ring) -> Option<Option<LateEvents>> {
        let delivered = self.delivered;
        let waiting = &mut self.waiting[i];
        let read = match &mut waiting.progress {
            Progress::Looking(_) => return None,
            Progress::Failed => return Some(None),
            Progress::Gone => {
                return Some(Some(LateEvents {
                    gap: true,
                    looked_up: Vec::new(),
                    after: 0,
                }));
            }
            Progress::Read(read) => read,
        };
        if read.anchor > delivered {
            return None;
        }
        // The ring holds every entry delivered after its oldest one.
        let covered =
            read.through >= delivered || ring.oldest_position().is_some_and(|p| p <= read.through);
        if covered {
            read.entries.retain(|e| e.position <= delivered);
            return Some(Some(LateEvents {
                gap: false,
                looked_up: std::mem::take(&mut read.entries),
                after: read.through,
            }));
        }
        if waiting.rounds >= MOST_LOOKUP_ROUNDS {
            return Some(None);
        }
        // Delivered past the lookup by more than the ring holds: read on from there.
        let from = lookup::From::Position(read.through);
        if self.lookups.push(waiting.waiter, from) {
            waiting.rounds += 1;
            let Progress::Read(read) = std::mem::replace(&mut waiting.progress, Progress::Failed)
            else {
                return Some(None);
            };
            waiting.progress = Progress::Looking(Some(read));
        }
        None
    }

    /// True when replays are ready or subscribers wait for some.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    pub fn status(&self) -> RedisStatus {
        let c = &self.shared.counters;
        RedisStatus {
            trouble: (!self.shared.up()).then(|| {
                self.shared
                    .trouble
                    .lock()
                    .map(|t| t.clone())
                    .unwrap_or_default()
                    .unwrap_or_else(|| "not connected".into())
            }),
            delivery_lag_ms: self.delivery_lag_ms,
            queued: self.shared.lock_outbox().live.len() as u64,
            reconnects: c.reconnects.load(Ordering::Relaxed),
            rewinds: c.rewinds.load(Ordering::Relaxed),
            refused_entries: c.refused_entries.load(Ordering::Relaxed),
            lookups: c.lookups.load(Ordering::Relaxed),
        }
    }

    /// Stops the threads; each ends within a second (the tail's longest block).
    pub fn close(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.room.notify_all();
        self.publisher.wake();
        self.lookups.wake();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.close();
    }
}

fn spawn(name: &str, run: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(run)
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the {name} thread: {e}")))
}

/// This host's clock in microseconds since 1970.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// How long a thread waiting for something to do sleeps before looking at the stop flag.
const IDLE: Duration = Duration::from_secs(1);
