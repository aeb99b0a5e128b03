//! The writer thread: it owns the file, so that the loop never waits on a disk.
//!
//! The loop appends records to a queue bounded in records and bytes (a full queue is an error
//! at once, never a wait). Each append gets a sequence number, one more than the last. The
//! thread takes what is queued (up to half the retained records, at least 512, so that the file
//! never grows far past the retained size between compactions), writes it with one write,
//! applies the fsync policy, and then settles the batch: every sequence number up to the batch's last is `Written` or `Failed`,
//! reported in order through [`Writer::take_settled`], with the latest settled number in an
//! atomic and a wake callback so that the loop need not poll.
//!
//! A failed write is cut off the file again (or, when even that fails, the file is rebuilt from
//! the records kept in memory before the next write), and the writer fails every append
//! without touching the disk until a retry delay has passed; then the next batch is the probe.
//! Publishing thus fails fast while the disk is full, and recovers by itself when space returns.
//!
//! The thread keeps the last `retained` records written (sharing their frames with the memory
//! ring), so that it compacts the file without reading it: when the file holds about twice the
//! retained records, they are rewritten to a new file renamed over the old one.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::compact;
use super::record::{HEAD_LEN, HEADER_LEN, MAX_PAYLOAD, Record, encode_record};

pub use crate::config::FsyncPolicy;

/// How the writer works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Records kept: loaded at start, and kept by compaction.
    pub retained: usize,
    /// When the file is synced.
    pub fsync: FsyncPolicy,
    /// Most records waiting for the writer.
    pub queue_records: usize,
    /// Most bytes waiting for the writer (one record larger than this is still taken alone).
    pub queue_bytes: usize,
    /// After a failed write, appends fail at once for this long; then the next batch retries.
    pub retry_after: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            retained: 1024,
            fsync: FsyncPolicy::Always,
            queue_records: 65_536,
            queue_bytes: 64 << 20,
            retry_after: Duration::from_millis(250),
        }
    }
}

/// Which operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Writing records.
    Write,
    /// Syncing the file.
    Sync,
    /// Rebuilding the file after a failure it could not be trimmed back from.
    Rewrite,
}

/// Why records were not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// What failed.
    pub during: Op,
    /// The kind of error.
    pub kind: io::ErrorKind,
    /// The OS error number (`ENOSPC`, `EFBIG`, `EIO`), when there is one.
    pub os_error: Option<i32>,
}

impl Failure {
    fn new(during: Op, err: &io::Error) -> Failure {
        Failure {
            during,
            kind: err.kind(),
            os_error: err.raw_os_error(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let during = match self.during {
            Op::Write => "write",
            Op::Sync => "fsync",
            Op::Rewrite => "rewrite",
        };
        match self.os_error {
            Some(code) => write!(f, "{during} failed: {}", io::Error::from_raw_os_error(code)),
            None => write!(f, "{during} failed: {}", io::Error::from(self.kind)),
        }
    }
}

/// Why an append was refused. Nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// The queue to the writer is full: the disk is behind.
    Full,
    /// The disk failed recently; appends are refused until the retry delay has passed.
    Failing(Failure),
    /// The record is larger than a file record may be.
    TooLarge,
    /// The writer has stopped (its thread ended).
    Stopped,
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Full => f.write_str("the history file's write queue is full"),
            AppendError::Failing(why) => write!(f, "the history file is failing: {why}"),
            AppendError::TooLarge => f.write_str("the event is too large for the history file"),
            AppendError::Stopped => f.write_str("the history file is closed"),
        }
    }
}

impl std::error::Error for AppendError {}

/// What became of appended records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written as the fsync policy requires: synced with `Always`, handed to the OS otherwise.
    Written,
    /// Not written: the record must not be delivered, and it is not in the file.
    Failed(Failure),
}

/// Every sequence number after the previous `Settled`'s `through`, up to and including this
/// `through`, had this outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The last sequence number of the run.
    pub through: u64,
    /// What became of the run.
    pub outcome: Outcome,
}

/// The writer's state, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Set while appends fail: the last failure.
    pub failing: Option<Failure>,
    /// Bytes in the file.
    pub file_bytes: u64,
    /// Records in the file (the retained ones and those compaction will drop).
    pub records_in_file: u64,
    /// Compactions done.
    pub compactions: u64,
    /// Compactions that failed (the file was left as it was, and grows until one succeeds).
    pub compaction_failures: u64,
    /// fsyncs done.
    pub syncs: u64,
}

/// The loop's end of the writer. Dropping it stops the writer as [`Writer::stop`] does.
pub struct Writer {
    shared: Arc<Shared>,
    queue_records: usize,
    queue_bytes: usize,
    thread: Option<JoinHandle<io::Result<()>>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when the queue stops being empty, and at stop.
    work: Condvar,
    /// Most records written in one batch.
    batch_records: usize,
    settled_through: AtomicU64,
}

struct State {
    queue: VecDeque<Record>,
    queued_bytes: usize,
    /// The sequence number of the next append; the queue holds the ones just before it.
    next_seq: u64,
    stopping: bool,
    /// The last failure and when to try the disk again.
    failing: Option<(Failure, Instant)>,
    settled: VecDeque<Settled>,
    status: Status,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update keeps the state whole, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Writer {
    /// Starts the thread that owns `disk`. `wake` is called on that thread whenever something
    /// was settled or the writer started failing.
    pub(super) fn spawn(
        disk: Disk,
        options: &Options,
        wake: Box<dyn Fn() + Send>,
    ) -> io::Result<Writer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                next_seq: 1,
                stopping: false,
                failing: None,
                settled: VecDeque::new(),
                status: disk.status(),
            }),
            work: Condvar::new(),
            batch_records: options.retained.max(1024) / 2,
            settled_through: AtomicU64::new(0),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ssed-history".into())
            .spawn(move || run(disk, &thread_shared, wake))?;
        Ok(Writer {
            shared,
            queue_records: options.queue_records.max(1),
            queue_bytes: options.queue_bytes,
            thread: Some(thread),
        })
    }

    /// Queues `record` for the file; returns its sequence number. Never blocks.
    pub fn append(&self, record: Record) -> Result<u64, AppendError> {
        let bytes = record.encoded_len();
        if bytes - HEAD_LEN > MAX_PAYLOAD {
            return Err(AppendError::TooLarge);
        }
        let mut state = self.shared.lock();
        if state.stopping {
            return Err(AppendError::Stopped);
        }
        if let Some((why, retry_at)) = state.failing
            && Instant::now() < retry_at
        {
            return Err(AppendError::Failing(why));
        }
        let was_empty = state.queue.is_empty();
        if state.queue.len() >= self.queue_records
            || (!was_empty && state.queued_bytes + bytes > self.queue_bytes)
        {
            return Err(AppendError::Full);
        }
        state.queue.push_back(record);
        state.queued_bytes += bytes;
        let seq = state.next_seq;
        state.next_seq += 1;
        drop(state);
        if was_empty {
            self.shared.work.notify_one();
        }
        Ok(seq)
    }

    /// The highest sequence number settled so far (0 before any).
    #[cfg(test)]
    pub fn settled_through(&self) -> u64 {
        self.shared.settled_through.load(Ordering::Acquire)
    }

    /// True when outcomes wait for [`Writer::take_settled`]. Read under the lock the writer
    /// settles under, so that a loop that checks it before sleeping cannot miss a wake.
    pub fn has_settled(&self) -> bool {
        !self.shared.lock().settled.is_empty()
    }

    /// Moves the outcomes settled since the last call into `out`, in sequence order.
    pub fn take_settled(&self, out: &mut Vec<Settled>) {
        out.extend(self.shared.lock().settled.drain(..));
    }

    /// The writer's state now.
    pub fn status(&self) -> Status {
        let state = self.shared.lock();
        let mut status = state.status.clone();
        status.failing = state.failing.map(|(why, _)| why);
        status
    }

    /// Writes and syncs what is queued, then ends the thread. The error is the final sync's,
    /// or the thread's panic as an error.
    #[cfg(test)]
    pub fn stop(mut self) -> io::Result<()> {
        self.finish()
    }

    /// Writes and syncs what is queued, then ends the thread, as `stop` does; later appends
    /// fail with `Stopped`.
    pub fn finish(&mut self) -> io::Result<()> {
        self.shared.lock().stopping = true;
        self.shared.work.notify_one();
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the history writer thread panicked")),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// What the thread takes from the queue in one turn.
struct Turn {
    /// The sequence number of the batch's first record.
    first_seq: u64,
    /// Set when the disk failed recently: the batch fails without touching it.
    failing: Option<Failure>,
    /// The writer is stopping: once the queue is empty, it syncs and exits.
    stopping: bool,
}

impl Shared {
    /// Waits until there are records to write, a sync is due, or the writer stops; moves the
    /// oldest queued records into `batch`, up to a batch's worth.
    fn next_turn(&self, batch: &mut Vec<Record>, sync_at: Option<Instant>) -> Turn {
        let mut state = self.lock();
        while state.queue.is_empty() && !state.stopping {
            match sync_at.map(|at| at.saturating_duration_since(Instant::now())) {
                None => state = self.work.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(wait) if wait.is_zero() => break,
                Some(wait) => {
                    state = self
                        .work
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            }
        }
        let first_seq = state.next_seq - state.queue.len() as u64;
        let mut bytes = 0;
        while batch.len() < self.batch_records && bytes < BATCH_BYTES {
            let Some(record) = state.queue.pop_front() else {
                break;
            };
            bytes += record.encoded_len();
            batch.push(record);
        }
        state.queued_bytes -= bytes;
        let now = Instant::now();
        Turn {
            first_seq,
            failing: state
                .failing
                .and_then(|(why, retry_at)| (now < retry_at).then_some(why)),
            stopping: state.stopping,
        }
    }

    /// Records the outcome of every sequence number up to `through`; `retry_at` is set when
    /// the disk was tried and failed.
    fn settle(&self, through: u64, outcome: Outcome, retry_at: Option<Instant>, status: Status) {
        let mut state = self.lock();
        match state.settled.back_mut() {
            Some(last) if last.outcome == outcome => last.through = through,
            _ => state.settled.push_back(Settled { through, outcome }),
        }
        match (outcome, retry_at) {
            (Outcome::Written, _) => state.failing = None,
            (Outcome::Failed(why), Some(at)) => state.failing = Some((why, at)),
            (Outcome::Failed(_), None) => {}
        }
        state.status = status;
        self.settled_through.store(through, Ordering::Release);
    }

    /// Marks the writer failing without settling anything (a failed sync of written records).
    fn fail(&self, why: Failure, retry_after: Duration) {
        self.lock().failing = Some((why, Instant::now() + retry_after));
    }
}

/// Whichever way the thread ends, even by a panic, later appends fail with `Stopped` and
/// every sequence number handed out is settled, so that no publisher waits forever.
struct Ending<'a> {
    shared: &'a Shared,
    wake: &'a dyn Fn(),
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.stopping = true;
        let through = state.next_seq - 1;
        if through > self.shared.settled_through.load(Ordering::Acquire) {
            let lost = Failure {
                during: Op::Write,
                kind: io::ErrorKind::Other,
                os_error: None,
            };
            state.settled.push_back(Settled {
                through,
                outcome: Outcome::Failed(lost),
            });
            self.shared
                .settled_through
                .store(through, Ordering::Release);
            drop(state);
            (self.wake)();
        }
    }
}

fn run(mut disk: Disk, shared: &Shared, wake: Box<dyn Fn() + Send>) -> io::Result<()> {
    let _ending = Ending {
        shared,
        wake: &*wake,
    };
    let mut batch = Vec::new();
    loop {
        let turn = shared.next_turn(&mut batch, disk.sync_deadline());
        if !batch.is_empty() {
            let through = turn.first_seq + batch.len() as u64 - 1;
            let (outcome, retry_at) = match turn.failing {
                // Not tried: the deadline for the next attempt stays as it was.
                Some(why) => (Outcome::Failed(why), None),
                None => match disk.write_batch(&mut batch) {
                    Ok(()) => (Outcome::Written, None),
                    Err(why) => (
                        Outcome::Failed(why),
                        Some(Instant::now() + disk.retry_after),
                    ),
                },
            };
            batch.clear();
            shared.settle(through, outcome, retry_at, disk.status());
            wake();
        } else if turn.stopping {
            return disk.finish();
        }
        if let Err(why) = disk.sync_if_due(Instant::now()) {
            shared.fail(why, disk.retry_after);
            wake();
        }
        disk.compact_if_due(Instant::now());
        shared.lock().status = disk.status();
    }
}

/// The file and what the thread knows of it.
pub(super) struct Disk {
    path: PathBuf,
    file: File,
    /// Bytes of good records (and header) in the file: the next write goes there.
    len: u64,
    records_in_file: u64,
    /// The last `retained` records written, oldest first, for compaction.
    tail: VecDeque<Record>,
    tail_bytes: u64,
    retained: usize,
    last_assigned: Option<u64>,
    policy: FsyncPolicy,
    /// Written since the last sync.
    dirty: bool,
    last_sync: Instant,
    /// The file may hold bytes of a failed batch: rebuild it before the next write.
    needs_rewrite: bool,
    compact_not_before: Instant,
    retry_after: Duration,
    buf: Vec<u8>,
    compactions: u64,
    compaction_failures: u64,
    syncs: u64,
}

/// Records in the file beyond the retained ones before a compaction: at least this many, so
/// that a small history is not rewritten every few events.
const MIN_SLACK_RECORDS: u64 = 1024;
/// Bytes in the file beyond twice the retained ones before a compaction.
const SLACK_BYTES: u64 = 1 << 20;
/// Most bytes written in one batch (but always at least one record).
const BATCH_BYTES: usize = 8 << 20;
/// A write buffer larger than this is not kept between batches.
const KEPT_BUF: usize = 4 << 20;

impl Disk {
    /// The state of a file just rewritten to hold `tail` (the retained records) after its header.
    pub(super) fn new(
        path: PathBuf,
        file: File,
        len: u64,
        tail: Vec<Record>,
        last_assigned: Option<u64>,
        options: &Options,
    ) -> Disk {
        let tail_bytes = tail.iter().map(|r| r.encoded_len() as u64).sum();
        let now = Instant::now();
        Disk {
            path,
            file,
            len,
            records_in_file: tail.len() as u64,
            tail: tail.into(),
            tail_bytes,
            retained: options.retained,
            last_assigned,
            policy: options.fsync,
            dirty: false,
            last_sync: now,
            needs_rewrite: false,
            compact_not_before: now,
            retry_after: options.retry_after,
            buf: Vec::new(),
            compactions: 0,
            compaction_failures: 0,
            syncs: 0,
        }
    }

    fn status(&self) -> Status {
        Status {
            failing: None,
            file_bytes: self.len,
            records_in_file: self.records_in_file,
            compactions: self.compactions,
            compaction_failures: self.compaction_failures,
            syncs: self.syncs,
        }
    }

    /// Writes `batch` with one write and, with `Always`, syncs it. On success the records move
    /// into the retained tail; on failure the file is trimmed back to what it held before.
    fn write_batch(&mut self, batch: &mut Vec<Record>) -> Result<(), Failure> {
        if self.needs_rewrite {
            self.rewrite().map_err(|e| Failure::new(Op::Rewrite, &e))?;
        }
        self.buf.clear();
        for record in batch.iter() {
            encode_record(&mut self.buf, record);
        }
        if let Err(e) = self.file.write_all_at(&self.buf, self.len) {
            // A partial write left part of a record: cut it, or rebuild before the next write.
            self.needs_rewrite = self.file.set_len(self.len).is_err();
            return Err(Failure::new(Op::Write, &e));
        }
        if self.policy == FsyncPolicy::Always {
            if let Err(e) = self.sync() {
                // After a failed fsync the OS may have dropped any of the file's dirty pages.
                self.needs_rewrite = true;
                return Err(Failure::new(Op::Sync, &e));
            }
        } else {
            self.dirty = true;
        }
        self.len += self.buf.len() as u64;
        self.records_in_file += batch.len() as u64;
        if self.buf.capacity() > KEPT_BUF {
            self.buf = Vec::new();
        }
        for record in batch.drain(..) {
            self.keep(record);
        }
        Ok(())
    }

    fn keep(&mut self, record: Record) {
        self.last_assigned = self.last_assigned.max(record.assigned);
        if self.retained == 0 {
            return;
        }
        if self.tail.len() == self.retained
            && let Some(old) = self.tail.pop_front()
        {
            self.tail_bytes -= old.encoded_len() as u64;
        }
        self.tail_bytes += record.encoded_len() as u64;
        self.tail.push_back(record);
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.syncs += 1;
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// When an `Interval` sync of written records is due.
    fn sync_deadline(&self) -> Option<Instant> {
        match self.policy {
            FsyncPolicy::Interval(every) if self.dirty => Some(self.last_sync + every),
            _ => None,
        }
    }

    fn sync_if_due(&mut self, now: Instant) -> Result<(), Failure> {
        match self.sync_deadline() {
            Some(at) if at <= now => self.sync().map_err(|e| {
                // The records were settled already; rebuild the file from memory before the
                // next write, so that what the OS lost is written again.
                self.dirty = false;
                self.needs_rewrite = true;
                Failure::new(Op::Sync, &e)
            }),
            _ => Ok(()),
        }
    }

    fn compact_due(&self) -> bool {
        let retained = self.tail.len() as u64;
        let too_many = self.records_in_file > retained + retained.max(MIN_SLACK_RECORDS);
        let too_big = self.len > 2 * (HEADER_LEN as u64 + self.tail_bytes) + SLACK_BYTES;
        too_many || too_big
    }

    fn compact_if_due(&mut self, now: Instant) {
        if self.needs_rewrite || now < self.compact_not_before || !self.compact_due() {
            return;
        }
        match self.rewrite() {
            Ok(()) => self.compactions += 1,
            Err(_) => {
                // The old file is whole; it grows until a later compaction succeeds.
                self.compaction_failures += 1;
                self.compact_not_before = now + self.retry_after;
            }
        }
    }

    /// Replaces the file with one holding only the retained tail.
    fn rewrite(&mut self) -> io::Result<()> {
        let (file, len) = compact::rewrite(&self.path, self.last_assigned, &self.tail)?;
        self.file = file;
        self.len = len;
        self.records_in_file = self.tail.len() as u64;
        self.needs_rewrite = false;
        self.dirty = false;
        self.last_sync = Instant::now();
        self.syncs += 1;
        Ok(())
    }

    /// At stop: syncs what was written, whatever the policy.
    fn finish(&mut self) -> io::Result<()> {
        if self.needs_rewrite {
            return self.rewrite();
        }
        if self.dirty {
            self.sync()?;
        }
        Ok(())
    }
}
