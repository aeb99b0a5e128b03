//! Hostile clients on one mio loop of their own thread:
//! - slowloris: a request head trickled one byte at a time that never ends; when the server
//!   gives up on it (408 after its head timeout, or a close) a new one takes its place at once.
//!   The first ones leave at random within the head timeout, so that their successors do not
//!   all time out in the same instant;
//! - slow readers: subscribers that read one byte a second, with a small fixed receive buffer
//!   (a slow-read attacker keeps its window small; an autotuned one on loopback grows to
//!   megabytes and takes everything the server sends). They cannot tell when the server drops
//!   them (the close waits behind the data they have not read), so each leaves after a random
//!   lifetime and a new one connects: there are always as many as asked.

use crate::procstat::monotonic_ns;
use crate::socket::{self, Rng, SocketOptions};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct AttackConfig {
    pub target: SocketAddrV4,
    pub slowloris: usize,
    pub slow_readers: usize,
    /// Topic the slow readers subscribe to.
    pub topic: String,
    /// Each slowloris sends a byte, and each slow reader reads one, this often.
    pub interval: Duration,
    /// Mean lifetime of a slow reader; each lives 0.5x to 1.5x of it.
    pub reader_lifetime: Duration,
    /// The first slowloris connections leave within this time (the server's head timeout).
    pub slowloris_spread: Duration,
    pub reader_socket: SocketOptions,
    pub source_ips: u32,
    pub source_offset: usize,
    pub max_pending: usize,
    pub seed: u64,
    /// Niceness of the attackers' thread. Real attackers run on other machines; here they share
    /// the CPU with the server and the clients being measured, so they can run below them
    /// (the rates they keep up are reported).
    pub nice: i32,
}

#[derive(Default)]
pub struct AttackShared {
    pub stop: AtomicBool,
    /// Connections established right now, of each kind.
    pub slowloris_open: AtomicU64,
    pub readers_open: AtomicU64,
}

#[derive(Default, Debug)]
pub struct AttackOutcome {
    pub slowloris_connects: u64,
    /// Slowloris connections the server answered 408 (head timeout).
    pub slowloris_timed_out: u64,
    /// Slowloris connections closed otherwise (a close without an answer, a reset, a 503).
    pub slowloris_closed_other: u64,
    /// First-round slowloris connections that left to spread the rounds.
    pub slowloris_left: u64,
    pub bytes_trickled: u64,
    pub reader_connects: u64,
    pub reader_bytes: u64,
    /// Slow readers that found their stream closed (a 503, or the server closed it).
    pub readers_closed_by_server: u64,
    pub readers_renewed: u64,
    pub connect_failures: u64,
    pub first_error: Option<String>,
}

const TICK_NS: u64 = 10_000_000;
const CONNECT_TIMEOUT_NS: u64 = 5_000_000_000;
const RETRY_NS: u64 = 100_000_000;
/// The slowloris head: valid so far, and never finished (then `a` forever).
const SLOW_HEAD: &[u8] = b"GET /events HTTP/1.1\r\nHost: ssed\r\nUser-Agent: slowloris\r\nX-Wait: ";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Waiting(u64),
    Connecting,
    Active,
}

struct Attacker {
    stage: Stage,
    stream: Option<TcpStream>,
    generation: u32,
    opened_ns: u64,
    /// Slowloris: head bytes sent.
    progress: u64,
    /// When it leaves of its own accord and a new one connects; 0: never.
    leave_at: u64,
    /// Slowloris: connections made so far (only the first leaves of its own accord).
    rounds: u64,
}

pub fn spawn(
    config: AttackConfig,
    shared: Arc<AttackShared>,
) -> std::thread::JoinHandle<Result<AttackOutcome, String>> {
    std::thread::spawn(move || {
        lower_priority(config.nice);
        let total = config.slowloris + config.slow_readers;
        let mut loop_ = AttackLoop {
            poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
            rng: Rng::new(config.seed),
            attackers: (0..total)
                .map(|_| Attacker {
                    stage: Stage::Waiting(0),
                    stream: None,
                    generation: 0,
                    opened_ns: 0,
                    progress: 0,
                    leave_at: 0,
                    rounds: 0,
                })
                .collect(),
            config,
            shared,
            pending: 0,
            outcome: AttackOutcome::default(),
            tick: 0,
            next_tick_ns: monotonic_ns(),
        };
        loop_.run()?;
        Ok(loop_.outcome)
    })
}

/// Makes the calling thread nicer by `nice` (Linux sets niceness per thread).
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    // SAFETY: gettid and getpriority/setpriority only read and change this thread's priority.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (current + nice).min(19));
    }
}

struct AttackLoop {
    config: AttackConfig,
    shared: Arc<AttackShared>,
    poll: Poll,
    rng: Rng,
    attackers: Vec<Attacker>,
    pending: usize,
    outcome: AttackOutcome,
    tick: u64,
    next_tick_ns: u64,
}

impl AttackLoop {
    fn is_slowloris(&self, index: usize) -> bool {
        index < self.config.slowloris
    }

    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(4096);
        let mut buf = vec![0u8; 4096];
        while !self.shared.stop.load(Ordering::Acquire) {
            self.open_due(monotonic_ns());
            match self.poll.poll(&mut events, Some(Duration::from_millis(5))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            let now = monotonic_ns();
            for event in events.iter() {
                let index = event.token().0 & 0xffff_ffff;
                let generation = (event.token().0 >> 32) as u32;
                let current =
                    self.attackers.get(index).is_some_and(|a| a.generation == generation && a.stream.is_some());
                if !current {
                    continue;
                }
                match self.attackers[index].stage {
                    Stage::Connecting if event.is_writable() || event.is_error() => self.connected(index, now),
                    Stage::Active if self.is_slowloris(index) && (event.is_readable() || event.is_read_closed()) => {
                        self.slowloris_answered(index, now, &mut buf)
                    }
                    _ => {}
                }
            }
            self.ticks(now);
            self.count_open();
        }
        for index in 0..self.attackers.len() {
            self.drop_stream(index);
        }
        Ok(())
    }

    fn count_open(&self) {
        let open = |range: std::ops::Range<usize>| {
            self.attackers[range].iter().filter(|a| a.stage == Stage::Active).count() as u64
        };
        self.shared.slowloris_open.store(open(0..self.config.slowloris), Ordering::Release);
        self.shared.readers_open.store(open(self.config.slowloris..self.attackers.len()), Ordering::Release);
    }

    fn open_due(&mut self, now: u64) {
        for index in 0..self.attackers.len() {
            if self.pending >= self.config.max_pending {
                return;
            }
            if matches!(self.attackers[index].stage, Stage::Waiting(at) if at <= now) {
                self.open(index, now);
            }
        }
    }

    fn open(&mut self, index: usize, now: u64) {
        let source = socket::source_address(self.config.source_offset + index, self.config.source_ips);
        let options = if self.is_slowloris(index) { SocketOptions::default() } else { self.config.reader_socket };
        let attacker = &mut self.attackers[index];
        attacker.generation = attacker.generation.wrapping_add(1);
        let token = Token(((attacker.generation as usize) << 32) | index);
        let opened = socket::open(source, self.config.target, options).and_then(|mut stream| {
            self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok(stream)
        });
        match opened {
            Ok(stream) => {
                attacker.stream = Some(stream);
                attacker.stage = Stage::Connecting;
                attacker.opened_ns = now;
                attacker.progress = 0;
                self.pending += 1;
            }
            Err(e) => self.fail(index, format!("connect from {source}: {e}"), now),
        }
    }

    fn connected(&mut self, index: usize, now: u64) {
        let stream = self.attackers[index].stream.as_mut().expect("connecting has a stream");
        if let Ok(Some(e)) | Err(e) = stream.take_error() {
            return self.fail(index, format!("connect: {e}"), now);
        }
        if stream.peer_addr().is_err() {
            return;
        }
        self.pending -= 1;
        if self.is_slowloris(index) {
            self.outcome.slowloris_connects += 1;
            let spread = self.config.slowloris_spread.as_nanos() as u64;
            let first_round = self.attackers[index].rounds == 0;
            let leave_at = if first_round && spread > 0 { now + self.rng.below(spread) } else { 0 };
            let attacker = &mut self.attackers[index];
            attacker.stage = Stage::Active;
            attacker.rounds += 1;
            attacker.leave_at = leave_at;
            return;
        }
        let request = format!(
            "GET /events?topic={} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.config.topic, self.config.target
        );
        let stream = self.attackers[index].stream.as_mut().expect("connecting has a stream");
        match stream.write(request.as_bytes()) {
            Ok(n) if n == request.len() => {
                self.outcome.reader_connects += 1;
                let mean = self.config.reader_lifetime.as_nanos() as u64;
                let attacker = &mut self.attackers[index];
                attacker.stage = Stage::Active;
                attacker.leave_at = now + mean / 2 + self.rng.below(mean.max(1));
            }
            Ok(_) => self.fail(index, "request write was short".into(), now),
            Err(e) => self.fail(index, format!("request write: {e}"), now),
        }
    }

    fn fail(&mut self, index: usize, why: String, now: u64) {
        if self.attackers[index].stage == Stage::Connecting {
            self.pending -= 1;
        }
        self.drop_stream(index);
        self.attackers[index].stage = Stage::Waiting(now + RETRY_NS);
        self.outcome.connect_failures += 1;
        self.outcome.first_error.get_or_insert(why);
    }

    fn drop_stream(&mut self, index: usize) -> Option<TcpStream> {
        let mut stream = self.attackers[index].stream.take()?;
        let _ = self.poll.registry().deregister(&mut stream);
        Some(stream)
    }

    /// Replaces a connection at once with a new one.
    fn renew(&mut self, index: usize, now: u64) {
        self.drop_stream(index);
        self.attackers[index].stage = Stage::Waiting(now);
    }

    /// The server answered a slowloris (408) or closed it.
    fn slowloris_answered(&mut self, index: usize, now: u64, buf: &mut [u8]) {
        let stream = self.attackers[index].stream.as_mut().expect("active has a stream");
        let mut answer = Vec::new();
        let ended = loop {
            match stream.read(buf) {
                Ok(0) => break true,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
            if answer.len() > 64 * 1024 {
                break true;
            }
        };
        if answer.starts_with(b"HTTP/1.1 408") {
            self.outcome.slowloris_timed_out += 1;
        } else if ended || !answer.is_empty() {
            self.outcome.slowloris_closed_other += 1;
        } else {
            return; // a spurious wakeup: nothing happened
        }
        self.renew(index, now);
    }

    /// Every tick, the slowloris and slow readers whose turn it is act: each once per interval.
    fn ticks(&mut self, now: u64) {
        let per_interval = (self.config.interval.as_nanos() as u64 / TICK_NS).max(1);
        let mut done = 0;
        while self.next_tick_ns <= now && done < per_interval {
            let phase = (self.tick % per_interval) as usize;
            let mut index = phase;
            while index < self.attackers.len() {
                self.act(index, now);
                index += per_interval as usize;
            }
            self.tick += 1;
            self.next_tick_ns += TICK_NS;
            done += 1;
        }
        if self.next_tick_ns <= now {
            self.next_tick_ns = now + TICK_NS; // fell behind by a whole interval: skip ahead
        }
        if self.pending > 0 {
            for index in 0..self.attackers.len() {
                let a = &self.attackers[index];
                if a.stage == Stage::Connecting && now - a.opened_ns > CONNECT_TIMEOUT_NS {
                    self.fail(index, "connect timed out".into(), now);
                }
            }
        }
    }

    fn act(&mut self, index: usize, now: u64) {
        if self.attackers[index].stage != Stage::Active {
            return;
        }
        let leave_at = self.attackers[index].leave_at;
        if leave_at != 0 && now >= leave_at {
            if self.is_slowloris(index) {
                self.outcome.slowloris_left += 1;
            } else {
                self.outcome.readers_renewed += 1;
            }
            if let Some(stream) = self.drop_stream(index) {
                socket::reset(stream);
            }
            self.attackers[index].stage = Stage::Waiting(now);
            return;
        }
        if self.is_slowloris(index) {
            self.trickle(index, now);
        } else {
            self.read_one_byte(index, now);
        }
    }

    fn trickle(&mut self, index: usize, now: u64) {
        let attacker = &mut self.attackers[index];
        let at = attacker.progress as usize;
        let byte = SLOW_HEAD.get(at).copied().unwrap_or(b'a');
        let stream = attacker.stream.as_mut().expect("active has a stream");
        match stream.write(&[byte]) {
            Ok(1) => {
                attacker.progress += 1;
                self.outcome.bytes_trickled += 1;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.outcome.slowloris_closed_other += 1;
                self.renew(index, now);
            }
        }
    }

    fn read_one_byte(&mut self, index: usize, now: u64) {
        let stream = self.attackers[index].stream.as_mut().expect("active has a stream");
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(1) => self.outcome.reader_bytes += 1,
            Ok(_) => {
                self.outcome.readers_closed_by_server += 1;
                self.renew(index, now);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.outcome.readers_closed_by_server += 1;
                self.renew(index, now);
            }
        }
    }
}
