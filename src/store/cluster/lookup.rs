//! Replay from Redis for a `Last-Event-ID` older than the node's ring, on a thread of its own so
//! that the loop never waits for Redis.
//!
//! The id is found first (by position when it is a number, else by scanning the stream from its
//! newest entry back), then the entries after it are read up to the stream's end at that moment.
//! When the stream no longer holds the id, the subscriber gets a gap, as from the ring.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use redis::{Connection, RedisResult, Value};

use super::super::entry::Entry;
use super::fields::{self, Decoded};
use super::link::Link;
use super::{IDLE, Shared};

/// How long one reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Lookups waiting at most; a subscriber beyond replays from the ring with a gap.
const MOST_WAITING: usize = 1024;
/// Entries per `XRANGE`.
const PAGE: usize = 1000;

/// Where a lookup starts.
#[derive(Debug)]
pub enum From {
    /// After the entry with this event id.
    Id(Box<str>),
    /// After the entry at this position, which must still be in the stream.
    Position(u64),
}

/// What a lookup read.
#[derive(Debug)]
pub struct Read {
    /// The position of the entry the lookup started after.
    pub anchor: u64,
    /// The entries after it, oldest first.
    pub entries: Vec<Entry>,
    /// The position of the last entry read (`anchor` when none was).
    pub through: u64,
}

impl Read {
    /// This read continued by `more`, which started at `self.through`.
    pub fn followed_by(mut self, mut more: Read) -> Read {
        self.entries.append(&mut more.entries);
        self.through = more.through;
        self
    }
}

#[derive(Debug)]
pub enum Looked {
    Found(Read),
    /// The stream no longer holds the entry (or never did).
    Gone,
    /// Redis could not be asked.
    Failed,
}

/// A lookup's answer, for the loop's connection `waiter`.
#[derive(Debug)]
pub struct Answer {
    pub waiter: usize,
    pub looked: Looked,
}

/// Lookups waiting for the thread.
#[derive(Default)]
pub struct Queue {
    requests: Mutex<VecDeque<(usize, From)>>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<(usize, From)>> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a lookup; false when too many wait.
    pub fn push(&self, waiter: usize, from: From) -> bool {
        let mut requests = self.lock();
        if requests.len() >= MOST_WAITING {
            return false;
        }
        requests.push_back((waiter, from));
        drop(requests);
        self.ready.notify_one();
        true
    }

    pub fn wake(&self) {
        self.ready.notify_all();
    }

    fn next(&self, shared: &Shared) -> Option<(usize, From)> {
        let mut requests = self.lock();
        loop {
            if shared.stopped() {
                return None;
            }
            if let Some(request) = requests.pop_front() {
                return Some(request);
            }
            requests = match self.ready.wait_timeout(requests, IDLE) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// The lookup thread: answers each request in turn, until the node stops.
pub fn run(shared: Arc<Shared>, queue: Arc<Queue>, mut link: Link, length: usize) {
    while let Some((waiter, from)) = queue.next(&shared) {
        let looked = if !shared.up() {
            // Redis is down: fail at once rather than wait for a connection attempt.
            Looked::Failed
        } else {
            look_up(&shared, &mut link, &from, length)
        };
        shared.post(|outbox| outbox.answers.push(Answer { waiter, looked }));
    }
}

fn look_up(shared: &Shared, link: &mut Link, from: &From, length: usize) -> Looked {
    let connection = match link.connection() {
        Some(connection) => connection,
        None => match link.connect() {
            Ok(connection) => connection,
            Err(_) => return Looked::Failed,
        },
    };
    match read_after(shared, connection, from, length) {
        Ok(Some(read)) => Looked::Found(read),
        Ok(None) => Looked::Gone,
        Err(e) => {
            shared.note(
                crate::config::LogLevel::Info,
                format_args!("a replay lookup failed: {e}"),
            );
            link.failed();
            Looked::Failed
        }
    }
}

/// Reads the entries after `from`, or `None` when the stream does not hold it. Reads at most
/// about twice the stream's length, so that a lookup ends while publishers go on.
fn read_after(
    shared: &Shared,
    connection: &mut Connection,
    from: &From,
    length: usize,
) -> RedisResult<Option<Read>> {
    let anchor = match from {
        From::Position(position) => holds(shared, connection, *position)?.then_some(*position),
        From::Id(id) => find(shared, connection, id, length)?,
    };
    let Some(anchor) = anchor else {
        return Ok(None);
    };
    let mut read = Read {
        anchor,
        entries: Vec::new(),
        through: anchor,
    };
    let mut cursor = (anchor, 0);
    for _ in 0..length.saturating_mul(2) / PAGE + 1 {
        let start = format!("({}-{}", cursor.0, cursor.1);
        let page = range(connection, &shared.key, &start, "+", "XRANGE")?;
        for decoded in decode_page(&page) {
            read.through = read.through.max(decoded.entry.position);
            read.entries.push(decoded.entry);
        }
        match page.last().and_then(fields::redis_id_of) {
            Some(last) if page.len() == PAGE => cursor = last,
            _ => break,
        }
    }
    Ok(Some(read))
}

/// True when the stream holds an entry at `position`.
fn holds(shared: &Shared, connection: &mut Connection, position: u64) -> RedisResult<bool> {
    let id = format!("{position}-0");
    let page: Vec<Value> = redis::cmd("XRANGE")
        .arg(&shared.key)
        .arg(&id)
        .arg(&id)
        .query(connection)?;
    Ok(!page.is_empty())
}

/// The position of the entry whose event id is `id`: at its position when it is one and the
/// entry there has that id, else the newest such entry, scanning back at most `length` entries
/// (beyond them the stream is trimmed anyway).
fn find(
    shared: &Shared,
    connection: &mut Connection,
    id: &str,
    length: usize,
) -> RedisResult<Option<u64>> {
    if let Ok(position) = id.parse::<u64>()
        && id.bytes().all(|b| b.is_ascii_digit())
    {
        let at = format!("{position}-0");
        let page = range(connection, &shared.key, &at, &at, "XRANGE")?;
        if decode_page(&page).any(|d| d.entry.id() == id.as_bytes()) {
            return Ok(Some(position));
        }
    }
    let mut end = "+".to_owned();
    let mut scanned = 0;
    while scanned < length.saturating_add(PAGE) {
        let page = range(connection, &shared.key, &end, "-", "XREVRANGE")?;
        scanned += page.len();
        let Some(oldest) = page.last().and_then(fields::redis_id_of) else {
            return Ok(None);
        };
        if let Some(found) = decode_page(&page).find(|d| d.entry.id() == id.as_bytes()) {
            return Ok(Some(found.entry.position));
        }
        if page.len() < PAGE {
            return Ok(None);
        }
        end = format!("({}-{}", oldest.0, oldest.1);
    }
    Ok(None)
}

/// One page of `XRANGE key start end` (or `XREVRANGE key end start`).
fn range(
    connection: &mut Connection,
    key: &str,
    first: &str,
    second: &str,
    command: &str,
) -> RedisResult<Vec<Value>> {
    redis::cmd(command)
        .arg(key)
        .arg(first)
        .arg(second)
        .arg("COUNT")
        .arg(PAGE)
        .query(connection)
}

/// The entries of a page that can be delivered; the tail skips the others too.
fn decode_page(page: &[Value]) -> impl Iterator<Item = Decoded> + '_ {
    page.iter().filter_map(|value| fields::decode(value).ok())
}
