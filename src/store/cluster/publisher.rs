//! Publishing to the stream: a bounded queue of events and the thread that appends them, one
//! `EVALSHA` of the append script each, pipelined in batches. The loop is answered through the
//! outbox ([`Ack`]s), a thread that publishes through a `Handle` waits for its own answer.
//!
//! Nothing is buffered while Redis is down: a publish fails at once, since an event held back
//! here and appended later would reach subscribers out of order, or twice when the publisher
//! retries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use redis::{Client, Connection, ErrorKind, RedisResult, Script, ServerErrorKind, Value};

use super::fields;
use super::link::Link;
use super::{Ack, IDLE, Role, Shared};
use crate::config::LogLevel;
use crate::event::Event;
use crate::frame::{self, IdForm};
use crate::store::PublishError;

/// How long one reply may take before Redis is taken for down.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a thread publishing through a `Handle` waits for its answer: longer than one batch
/// can take, so that it normally hears the thread's verdict.
const CALLER_PATIENCE: Duration = Duration::from_secs(3);
/// Events appended per pipeline.
const BATCH: usize = 256;
/// How soon a connection is checked once the tail has lost Redis.
const CHECK: Duration = Duration::from_millis(20);

/// Who waits for a publish's answer.
enum Reply {
    /// The loop, for its connection with this token.
    Loop(usize),
    /// A thread blocked in [`Publisher::publish`].
    Caller(SyncSender<Result<Option<u64>, PublishError>>),
}

struct Job {
    event: Event,
    /// How an id the stream assigns is written.
    form: IdForm,
    reply: Reply,
}

/// The queue of events to append, shared by the loop, every handle and the thread.
pub(crate) struct Publisher {
    shared: Arc<Shared>,
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    capacity: usize,
    /// Publishes from the loop not answered yet.
    for_loop: AtomicUsize,
}

impl Publisher {
    pub(super) fn new(shared: Arc<Shared>, capacity: usize) -> Publisher {
        Publisher {
            shared,
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity,
            for_loop: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a publish from the loop's connection `waiter`, an assigned id written in `form`;
    /// the answer comes as an [`Ack`].
    pub fn submit(&self, event: &Event, waiter: usize, form: IdForm) -> Result<(), PublishError> {
        self.queue(event, form, Reply::Loop(waiter))?;
        self.for_loop.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Publishes from any thread but the loop's, waiting for Redis's answer (a round trip,
    /// at most a few seconds). Returns the id assigned, or `None` for the event's own.
    pub fn publish(&self, event: &Event) -> Result<Option<u64>, PublishError> {
        let (sender, answer) = mpsc::sync_channel(1);
        self.queue(event, IdForm::Decimal, Reply::Caller(sender))?;
        match answer.recv_timeout(CALLER_PATIENCE) {
            Ok(result) => {
                if result.is_ok() {
                    self.shared.intake.acknowledged();
                }
                result
            }
            Err(RecvTimeoutError::Timeout) => Err(PublishError::Unavailable),
            Err(RecvTimeoutError::Disconnected) => Err(PublishError::Stopped),
        }
    }

    fn queue(&self, event: &Event, form: IdForm, reply: Reply) -> Result<(), PublishError> {
        self.shared.intake.check(event)?;
        if self.shared.intake.is_stopped() || self.shared.stopped() {
            return Err(PublishError::Stopped);
        }
        if !self.shared.up() {
            return Err(PublishError::Unavailable);
        }
        let mut jobs = self.lock();
        if jobs.len() >= self.capacity {
            return Err(PublishError::QueueFull);
        }
        jobs.push_back(Job {
            event: event.clone(),
            form,
            reply,
        });
        drop(jobs);
        self.ready.notify_one();
        Ok(())
    }

    /// True when every publish from the loop has been answered.
    pub fn none_for_loop(&self) -> bool {
        self.for_loop.load(Ordering::SeqCst) == 0
    }

    pub fn wake(&self) {
        self.ready.notify_all();
    }

    /// Moves up to a batch of jobs into `batch`, waiting up to `patience` for one. Returns false
    /// once the node is stopped and no job is left.
    fn next_batch(&self, batch: &mut Vec<Job>, patience: Duration) -> bool {
        let mut jobs = self.lock();
        if jobs.is_empty() && !self.shared.stopped() {
            jobs = match self.ready.wait_timeout(jobs, patience) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let n = jobs.len().min(BATCH);
        batch.extend(jobs.drain(..n));
        !(batch.is_empty() && self.shared.stopped())
    }

    /// Answers one job: with the id (its position, or its own), or why it was not published.
    fn answer(&self, job: Job, result: Result<u64, PublishError>) {
        let own = !job.event.id.is_empty();
        match job.reply {
            Reply::Loop(waiter) => {
                let result = result.map(|position| match (own, job.form) {
                    (true, _) => job.event.id.into_boxed_str(),
                    (false, IdForm::Decimal) => position.to_string().into_boxed_str(),
                    (false, IdForm::Urn) => {
                        frame::urn_uuid(position, &mut [0; frame::URN_UUID_LEN]).into()
                    }
                });
                self.shared.lock_outbox().acks.push(Ack { waiter, result });
                self.for_loop.fetch_sub(1, Ordering::SeqCst);
            }
            Reply::Caller(sender) => {
                let result = result.map(|position| (!own).then_some(position));
                // The caller may have given up waiting; then nobody needs the answer.
                let _ = sender.try_send(result);
            }
        }
    }
}

/// The publisher's first connection, made while the server binds.
pub(super) fn first_link(shared: &Shared, client: &Client) -> Link {
    let mut link = Link::new(client.clone(), REPLY_TIMEOUT);
    connect(shared, &mut link, true);
    link
}

/// Connects and loads the script; reports the outcome.
fn connect(shared: &Shared, link: &mut Link, first: bool) {
    let loaded = link.connect().and_then(|connection| {
        Script::new(fields::APPEND)
            .prepare_invoke()
            .load(connection)
    });
    match loaded {
        Ok(_) => shared.came_up(Role::Publisher, first),
        Err(e) => {
            // A connection whose script could not be loaded is of no use either.
            link.failed();
            shared.went_down(Role::Publisher, e);
        }
    }
}

/// The publisher thread: appends what is queued until the node stops.
pub(super) fn run(publisher: Arc<Publisher>, mut link: Link, length: usize) {
    let shared = publisher.shared.clone();
    let script = Script::new(fields::APPEND);
    let mut batch = Vec::with_capacity(BATCH);
    let mut failures = shared.failures.load(Ordering::SeqCst);
    loop {
        let trusted = shared.publisher_up.load(Ordering::SeqCst);
        let patience = match link.connection() {
            Some(_) if trusted => IDLE,
            // A connection to check after the tail lost Redis.
            Some(_) => CHECK,
            None => link.wait_for_attempt().min(IDLE),
        };
        if !publisher.next_batch(&mut batch, patience) {
            // A publish queued as the thread ends is answered, not left waiting.
            for job in publisher.lock().drain(..) {
                publisher.answer(job, Err(PublishError::Stopped));
            }
            return;
        }
        // Idle, or the tail lost Redis since: make sure the connection still works, so that
        // /health tells the truth and a publish does not go into a connection Redis dropped.
        let now = shared.failures.load(Ordering::SeqCst);
        if batch.is_empty() || now != failures || !trusted {
            match still_connected(&mut link) {
                Some(true) => shared.verified(Role::Publisher),
                Some(false) => {
                    link.failed();
                    shared.went_down(Role::Publisher, "the connection was closed");
                    if !batch.is_empty() {
                        // Redis may be back already: one attempt now rather than after a pause.
                        connect(&shared, &mut link, false);
                    }
                }
                None => {}
            }
        }
        failures = now;
        if link.may_attempt() {
            connect(&shared, &mut link, false);
        }
        if batch.is_empty() {
            continue;
        }
        let outcome = match link.connection() {
            Some(connection) => append(&shared, connection, &script, &batch, length),
            None => Err(None),
        };
        match outcome {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    publisher.answer(job, result);
                }
            }
            Err(failure) => {
                if let Some(e) = failure {
                    link.failed();
                    shared.went_down(Role::Publisher, e);
                }
                for job in batch.drain(..) {
                    publisher.answer(job, Err(PublishError::Unavailable));
                }
            }
        }
        shared.intake.wake();
    }
}

/// Whether the connection answers a `PING`; `None` without a connection.
fn still_connected(link: &mut Link) -> Option<bool> {
    let connection = link.connection()?;
    Some(redis::cmd("PING").query::<Value>(connection).is_ok())
}

/// Appends `batch` in one pipeline. Loads the script again and retries the events Redis did not
/// know it for (a restart or `SCRIPT FLUSH` empties its cache). `Err(Some(e))` when the
/// connection failed: then whether the events were appended is unknown.
fn append(
    shared: &Shared,
    connection: &mut Connection,
    script: &Script,
    batch: &[Job],
    length: usize,
) -> Result<Vec<Result<u64, PublishError>>, Option<redis::RedisError>> {
    let mut results = run_pipeline(shared, connection, script, batch.iter(), length)?;
    let unknown: Vec<usize> = (0..batch.len())
        .filter(|&i| matches!(&results[i], Err(e) if is_noscript(e)))
        .collect();
    if !unknown.is_empty() {
        script.prepare_invoke().load(connection).map_err(Some)?;
        let again = run_pipeline(
            shared,
            connection,
            script,
            unknown.iter().map(|&i| &batch[i]),
            length,
        )?;
        for (i, result) in unknown.into_iter().zip(again) {
            results[i] = result;
        }
    }
    Ok(results
        .into_iter()
        .map(|result| match result {
            Ok(position) => {
                shared.seen.fetch_max(position, Ordering::SeqCst);
                Ok(position)
            }
            Err(e) => {
                shared.note(LogLevel::Quiet, format_args!("a publish failed: {e}"));
                Err(PublishError::Unavailable)
            }
        })
        .collect())
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// One `EVALSHA` per job, pipelined; each job's position or Redis's error.
fn run_pipeline<'a>(
    shared: &Shared,
    connection: &mut Connection,
    script: &Script,
    jobs: impl Iterator<Item = &'a Job>,
    length: usize,
) -> Result<Vec<RedisResult<u64>>, Option<redis::RedisError>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let seen = shared.seen.load(Ordering::SeqCst);
    let mut count = 0;
    for job in jobs {
        let mut invocation = script.key(&shared.key);
        invocation.arg(length).arg(seen);
        fields::script_args(&job.event, job.form, |arg| {
            invocation.arg(arg);
        });
        pipe.invoke_script(&invocation);
        count += 1;
    }
    let replies: Vec<RedisResult<Value>> = pipe.query(connection).map_err(Some)?;
    if replies.len() != count {
        return Err(None);
    }
    Ok(replies
        .into_iter()
        .map(|reply| reply.and_then(|value| Ok(redis::from_redis_value::<u64>(value)?)))
        .collect())
}
