//! The tail: this node's reader of the stream. It reads with `XREAD BLOCK` from the last entry
//! it has, encodes each entry once, and hands the entries to the loop in the stream's order, so
//! that every node delivers the same events in the same order. When the loop falls behind, the
//! tail stops reading (Redis keeps the entries) rather than queue without bound.
//!
//! The first time it reaches Redis it reads the stream's newest entries for the ring (retained,
//! not delivered: they are from before this node started). After a lost connection it resumes
//! after its last entry, so that nothing is delivered twice; when the stream then ends before
//! that entry, entries were lost (a failover to a replica that lacked them, or a Redis restarted
//! without its data), which it logs and counts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::{Client, Connection, RedisResult, Value};

use super::super::entry::Entry;
use super::fields::{self, BadEntry};
use super::link::Link;
use super::{IDLE, Role, Shared};
use crate::config::LogLevel;

/// How long one `XREAD` waits for new entries, in milliseconds.
const BLOCK_MS: u64 = 1000;
/// Entries per `XREAD`.
const PAGE: usize = 512;
/// Entries, and bytes of frames, waiting for the loop beyond which the tail stops reading.
const MOST_QUEUED: usize = 8192;
const MOST_QUEUED_BYTES: usize = 32 << 20;

/// A reply slower than the longest block plus this means Redis is gone.
fn reply_timeout() -> Duration {
    Duration::from_millis(BLOCK_MS) + Duration::from_secs(2)
}

/// The tail's first connection, made while the server binds, and the ring filled from it:
/// what is in the stream by then is history to this node, what comes after is delivered.
/// Returns the Redis id of the stream's newest entry too, when Redis could be reached.
pub(super) fn first_link(
    shared: &Shared,
    client: &Client,
    retained: usize,
) -> (Link, Option<(u64, u64)>) {
    let mut link = Link::new(client.clone(), reply_timeout());
    let filled = link
        .connect()
        .and_then(|connection| fill(shared, connection, retained));
    match filled {
        Ok(newest) => {
            shared.came_up(Role::Tail, true);
            (link, Some(newest))
        }
        Err(e) => {
            link.failed();
            shared.went_down(Role::Tail, e);
            (link, None)
        }
    }
}

/// The tail thread: reads the stream until the node stops, reconnecting after failures.
/// `last` is the Redis id of the last entry handed to the loop; `None` until the ring is filled.
pub(super) fn run(
    shared: Arc<Shared>,
    mut link: Link,
    mut last: Option<(u64, u64)>,
    retained: usize,
) {
    while !shared.stopped() {
        if link.connection().is_none() {
            if !link.may_attempt() {
                std::thread::sleep(link.wait_for_attempt().min(IDLE));
                continue;
            }
            if let Err(e) = link.connect() {
                shared.went_down(Role::Tail, e);
                continue;
            }
        }
        let Some(connection) = link.connection() else {
            continue;
        };
        if let Err(e) = follow(&shared, connection, &mut last, retained) {
            link.failed();
            shared.went_down(Role::Tail, e);
        }
    }
}

/// Reads the stream after `last` until the node stops or the connection fails.
fn follow(
    shared: &Shared,
    connection: &mut Connection,
    last: &mut Option<(u64, u64)>,
    retained: usize,
) -> RedisResult<()> {
    let first = last.is_none();
    match *last {
        // Redis was down when the node started: what the stream holds by now is history.
        None => *last = Some(fill(shared, connection, retained)?),
        Some(mine) => check_for_loss(shared, connection, mine)?,
    }
    shared.came_up(Role::Tail, first);
    let mut entries = Vec::with_capacity(PAGE);
    while !shared.stopped() {
        let Some(after) = *last else {
            return Ok(());
        };
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&shared.key)
            .arg(format!("{}-{}", after.0, after.1))
            .query(connection)?;
        for value in stream_entries(&reply) {
            match fields::decode(value) {
                Ok(decoded) => {
                    shared
                        .seen
                        .fetch_max(decoded.entry.position, Ordering::SeqCst);
                    *last = Some(decoded.redis_id);
                    entries.push(decoded.entry);
                }
                Err(BadEntry::Refused(id, why)) => {
                    shared
                        .counters
                        .refused_entries
                        .fetch_add(1, Ordering::Relaxed);
                    shared.note(
                        LogLevel::Quiet,
                        format_args!("skipped stream entry {}-{}: {why}", id.0, id.1),
                    );
                    *last = Some(id);
                }
                Err(BadEntry::Malformed) => {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "XREAD answered something that is not a stream entry",
                    )));
                }
            }
        }
        hand_over(shared, &mut entries);
    }
    Ok(())
}

/// Reads the stream's newest entries into the ring; returns the Redis id of the newest.
fn fill(shared: &Shared, connection: &mut Connection, retained: usize) -> RedisResult<(u64, u64)> {
    let page: Vec<Value> = redis::cmd("XREVRANGE")
        .arg(&shared.key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(retained.max(1))
        .query(connection)?;
    let newest = page.first().and_then(fields::redis_id_of).unwrap_or((0, 0));
    let history: Vec<Entry> = page
        .iter()
        .rev()
        .filter_map(|value| fields::decode(value).ok())
        .map(|decoded| decoded.entry)
        .collect();
    shared.seen.fetch_max(newest.0, Ordering::SeqCst);
    shared.note(
        LogLevel::Info,
        format_args!(
            "stream '{}': {} recent events retained",
            shared.key,
            history.len()
        ),
    );
    shared.post(|outbox| outbox.history = Some(history));
    Ok(newest)
}

/// After a reconnection: when the stream ends before the last entry this node delivered,
/// entries it delivered are gone from Redis. Nothing can bring them back; this says so.
fn check_for_loss(
    shared: &Shared,
    connection: &mut Connection,
    mine: (u64, u64),
) -> RedisResult<()> {
    let page: Vec<Value> = redis::cmd("XREVRANGE")
        .arg(&shared.key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(connection)?;
    let newest = page.first().and_then(fields::redis_id_of).unwrap_or((0, 0));
    if newest < mine {
        shared.counters.rewinds.fetch_add(1, Ordering::Relaxed);
        shared.note(
            LogLevel::Quiet,
            format_args!(
                "the stream ends at {}, before {}, which this node delivered: entries were \
                 lost (a failover to a replica that lacked them, or Redis restarted without \
                 them). A client asking for a lost id replays with a gap; new ids continue \
                 above {}",
                newest.0, mine.0, mine.0
            ),
        );
    }
    Ok(())
}

/// Hands `entries` to the loop, waiting while it has too many to take.
fn hand_over(shared: &Shared, entries: &mut Vec<Entry>) {
    if entries.is_empty() {
        return;
    }
    let mut outbox = shared.lock_outbox();
    for entry in entries.drain(..) {
        while (outbox.live.len() >= MOST_QUEUED || outbox.live_bytes >= MOST_QUEUED_BYTES)
            && !shared.stopped()
        {
            shared.intake.wake();
            outbox = match shared.room.wait_timeout(outbox, IDLE) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        outbox.live_bytes += entry.frame.len();
        outbox.live.push_back(entry);
    }
    drop(outbox);
    shared.intake.wake();
}

/// The entries of an `XREAD` reply for one stream: `[[key, [entry, ...]]]`, or nil.
fn stream_entries(reply: &Value) -> &[Value] {
    let Value::Array(streams) = reply else {
        return &[];
    };
    match streams.first() {
        Some(Value::Array(stream)) => match stream.get(1) {
            Some(Value::Array(entries)) => entries,
            _ => &[],
        },
        _ => &[],
    }
}
