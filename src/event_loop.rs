//! The single-threaded mio loop that owns the listener and every connection: its mechanics.
//!
//! Each turn: wait for readiness (or the next timer); accept and read what is ready, handing
//! every complete request to `requests/`; take the events the store has ready and queue each
//! one's shared frame for its subscribers (the fan-out); fire due timers; then write: at most
//! one `sendmsg` per connection per turn, carrying every frame it has pending. Sockets are
//! edge-triggered, so every read and accept goes on until `WouldBlock`. What each request gets
//! is decided in `requests/`, where events come from and are kept in `store/`; this file only
//! offers them its means: `respond`, `reject`, deadlines, and `add_subscriber`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::auth::Keys;
use crate::config::{Config, LogLevel};
use crate::conn::{Conn, Flushed, Phase, ReadEnd};
use crate::frame;
use crate::host::Host;
use crate::http::{self, Status};
use crate::input::Next;
use crate::publish_socket::{PUBLISH_LISTENER, PublishSocket};
use crate::stats::{Counters, Refusal};
use crate::store::{Entry, Store};

pub(crate) const LISTENER: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Low bits of a token name the slot, high bits its generation, so an event for a closed
/// connection can never reach the one that took its slot.
const SLOT_BITS: u32 = if usize::BITS >= 64 { 32 } else { 20 };
/// The most connections one loop can tell apart: slot numbers that fit in `SLOT_BITS` beside
/// the listener's and the waker's tokens (about a million where `usize` has 32 bits).
pub(crate) const MAX_CONNECTIONS: usize = (1 << SLOT_BITS) - FIRST_CONN;

/// How long to stop accepting after running out of file descriptors.
const ACCEPT_PAUSE_MS: u64 = 100;
const ACCEPT_PAUSE: Duration = Duration::from_millis(ACCEPT_PAUSE_MS);
/// How long a last response may take to be read before the connection is closed anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for queued output.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Times one readiness event reads a connection, each time as much as one request may need,
/// before letting the others have their turn.
const MAX_READ_ROUNDS: usize = 4;
/// Reads per readiness event on a connection whose input is discarded.
const MAX_DISCARD_READS: usize = 64;
/// Size of the shared read buffer.
const SCRATCH: usize = 16 * 1024;
/// Connection slots added at a time when every slot is taken.
const SLOT_STEP: usize = 256;
/// Streams written per turn before looking for new events and requests again.
const STREAM_WRITES: usize = 256;

struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

/// Connections waiting for a write: requests are answered every turn, streams take turns.
#[derive(Default)]
pub(crate) struct Due {
    requests: Vec<u32>,
    streams: VecDeque<u32>,
}

impl Due {
    pub(crate) fn mark(&mut self, conn: &mut Conn, slot: u32) {
        if conn.dirty {
            return;
        }
        conn.dirty = true;
        if conn.phase == Phase::Streaming {
            self.streams.push_back(slot);
        } else {
            self.requests.push(slot);
        }
    }

    fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.streams.is_empty()
    }
}

pub(crate) struct EventLoop {
    poll: Poll,
    /// Closed at shutdown, so that new connections are refused rather than left in a backlog
    /// that is reset when the process exits.
    listener: Option<TcpListener>,
    pub(crate) config: Config,
    /// The keys JSON Web Tokens are verified with.
    pub(crate) keys: Keys,
    /// Where events come from, are kept and are replayed from.
    pub(crate) store: Store,
    pub(crate) counters: Arc<Counters>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    open: usize,
    /// Slots of open streams.
    subscribers: Vec<u32>,
    /// Head-read and close deadlines, at most one live entry per connection (see `arm`);
    /// entries of closed connections are skipped when they come due.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Connections with output to write.
    pub(crate) due: Due,
    /// Scratch vectors kept between turns so that a turn allocates nothing.
    batch: Vec<Entry>,
    flushing: Vec<u32>,
    scratch: Box<[u8]>,
    next_heartbeat: Option<Instant>,
    accept_paused_until: Option<Instant>,
    pub(crate) shutdown_by: Option<Instant>,
    /// When a stop was first seen while events still waited for the history file.
    stop_seen: Option<Instant>,
    rng: u64,
    /// The host's hooks, logger and per-topic counts.
    pub(crate) host: Host,
    /// The Unix-domain socket local publishers connect to, when there is one.
    pub(crate) publish_socket: Option<PublishSocket>,
    /// Connections that came through the publish socket (counted apart from `open`'s limit).
    pub(crate) local_open: usize,
    /// Connections in `Lingering`: answered, waiting for their client to close. They hold no
    /// slot a new connection needs.
    lingering: usize,
    /// Keep-alive connections that went idle after an answer, oldest first (by token; stale
    /// entries are skipped): the first to close when a new connection needs a slot.
    idle: VecDeque<usize>,
    /// Frames every stream shares: its head without CORS, the heartbeat, the gap comment, and
    /// the `--retry` block.
    pub(crate) stream_head: Arc<[u8]>,
    heartbeat: Arc<[u8]>,
    pub(crate) gap: Arc<[u8]>,
    pub(crate) retry: Option<Arc<[u8]>>,
    /// On an HTTPS listener: the certificate new connections get, and the loop's buffers for
    /// encrypting.
    #[cfg(feature = "tls")]
    tls: Option<(Arc<crate::tls::Certificates>, Box<crate::tls::Buffers>)>,
    /// The CORS headers and `Last-Event-ID` of hub streams whose head waits for a replay from
    /// Redis, by connection token (see `requests/subscribe.rs`).
    pub(crate) waiting_heads: Vec<(usize, Box<str>, Box<str>)>,
    /// Mercure 1.0's active subscriptions (`--subscriptions`).
    #[cfg(feature = "jwt")]
    pub(crate) active: crate::requests::subscriptions::Active,
    /// With several loops (`--loops`): this loop's place among them.
    #[cfg(feature = "loops")]
    pub(crate) role: Option<crate::loops::Role>,
    /// Streams opened this turn that go to another loop at its end: their tokens, and the
    /// index of the loop.
    #[cfg(feature = "loops")]
    moving: Vec<(usize, usize)>,
    /// What the inbox held, kept between turns so that a turn allocates nothing.
    #[cfg(feature = "loops")]
    handed: Vec<crate::loops::Handed>,
}

impl EventLoop {
    pub fn new(
        poll: Poll,
        listener: Option<TcpListener>,
        store: Store,
        counters: Arc<Counters>,
        config: Config,
        host: Host,
    ) -> EventLoop {
        // A history loaded from a file is retained from the start.
        Counters::set(&counters.history_events, store.retained() as u64);
        EventLoop {
            poll,
            listener,
            store,
            counters,
            retry: config.retry.map(|ms| Arc::from(frame::retry_block(ms))),
            keys: Keys::new(&config),
            config,
            host,
            publish_socket: None,
            local_open: 0,
            lingering: 0,
            idle: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            subscribers: Vec::new(),
            timers: BinaryHeap::new(),
            due: Due::default(),
            batch: Vec::new(),
            flushing: Vec::new(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            next_heartbeat: None,
            accept_paused_until: None,
            shutdown_by: None,
            stop_seen: None,
            rng: seed(),
            stream_head: Arc::from(http::stream_head("")),
            heartbeat: Arc::from(frame::HEARTBEAT),
            gap: Arc::from(frame::GAP),
            #[cfg(feature = "tls")]
            tls: None,
            waiting_heads: Vec::new(),
            #[cfg(feature = "jwt")]
            active: Default::default(),
            #[cfg(feature = "loops")]
            role: None,
            #[cfg(feature = "loops")]
            moving: Vec::new(),
            #[cfg(feature = "loops")]
            handed: Vec::new(),
        }
    }

    /// Makes the listener speak HTTPS with `certificates`.
    #[cfg(feature = "tls")]
    pub fn use_tls(&mut self, certificates: Arc<crate::tls::Certificates>) {
        self.tls = Some((certificates, Box::new(crate::tls::Buffers::new())));
    }

    /// Runs until stopped, then flushes for up to a second and closes everything.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.turn(&mut events, None)? {}
        Ok(())
    }

    /// Runs turns until `until`, or until the loop has stopped (then true, and everything is
    /// closed as `run` closes it).
    pub fn run_until(&mut self, until: Instant) -> io::Result<bool> {
        let mut events = Events::with_capacity(1024);
        loop {
            if self.turn(&mut events, Some(until))? {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
        }
    }

    /// One turn of the loop, its poll waiting until `until` at most. True once the loop has
    /// stopped and closed everything.
    fn turn(&mut self, events: &mut Events, until: Option<Instant>) -> io::Result<bool> {
        let mut timeout = self.poll_timeout(Instant::now());
        if timeout != Some(Duration::ZERO) && self.work_waiting() {
            timeout = Some(Duration::ZERO);
        }
        if let Some(until) = until {
            let left = until.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        for event in events.iter() {
            match event.token() {
                LISTENER => self.accept_all(now),
                PUBLISH_LISTENER => self.accept_local(now),
                // The wake only ends the poll; the store is taken from every turn below.
                WAKER => {}
                token => self.conn_event(
                    token,
                    event.is_readable() || event.is_read_closed() || event.is_error(),
                    event.is_writable(),
                ),
            }
        }
        let drained = self.take_published();
        self.answer_waiting_publishers();
        self.answer_waiting_subscribers();
        if self.shutdown_by.is_none() && self.time_to_shut_down(drained, now) {
            self.begin_shutdown(now);
        }
        self.fire_timers(now);
        self.flush_due(now);
        #[cfg(feature = "loops")]
        self.hand_over_streams();
        if let Some(by) = self.shutdown_by
            && (now >= by || self.nothing_left_to_write())
        {
            self.close_all();
            self.store.close();
            return Ok(true);
        }
        Ok(false)
    }

    /// True once a stop was asked for and every accepted event was delivered (`drained`), or
    /// once the history file has had the grace to settle what it holds.
    fn time_to_shut_down(&mut self, drained: bool, now: Instant) -> bool {
        if drained {
            return true;
        }
        // Another loop stops when the first tells it to, after the last events.
        #[cfg(feature = "loops")]
        if self.is_other() {
            return false;
        }
        if self.stop_seen.is_none() && self.store.stop_requested() {
            self.stop_seen = Some(now);
        }
        self.stop_seen
            .is_some_and(|seen| now >= seen + SHUTDOWN_GRACE)
    }

    /// Called before the loop may sleep: from now on new work wakes it. True when work is
    /// waiting already, so that it must not sleep.
    fn work_waiting(&self) -> bool {
        #[cfg(feature = "loops")]
        if let Some(role) = &self.role {
            return role.work_waiting(&self.store, self.config.max_queue);
        }
        self.store.prepare_to_sleep()
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.due.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.timers.peek().map(|Reverse((when, _))| *when),
            self.next_heartbeat,
            self.accept_paused_until,
            self.shutdown_by,
            self.stop_seen.map(|seen| seen + SHUTDOWN_GRACE),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Rounded up to the next millisecond so that a wakeup never comes before the deadline.
        Some(next.saturating_duration_since(now) + Duration::from_micros(999))
    }

    pub(crate) fn log(&self, level: LogLevel, args: std::fmt::Arguments) {
        self.host.logger.line(level, args);
    }

    // ---- connections and tokens -------------------------------------------------------------

    pub(crate) fn token(&self, slot: u32) -> Token {
        let generation = self.slots[slot as usize].generation as usize;
        Token((generation << SLOT_BITS) | (slot as usize + FIRST_CONN))
    }

    pub(crate) fn slot_of(&self, token: Token) -> Option<u32> {
        let low = token.0 & ((1usize << SLOT_BITS) - 1);
        let slot = low.checked_sub(FIRST_CONN)?;
        let entry = self.slots.get(slot)?;
        let generation = (token.0 >> SLOT_BITS) as u32;
        let wanted = entry.generation & (u32::MAX >> (32 - (usize::BITS - SLOT_BITS).min(32)));
        (entry.conn.is_some() && generation == wanted).then_some(slot as u32)
    }

    fn conn(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slots.get_mut(slot as usize)?.conn.as_mut()
    }

    /// Takes a connection out of its slot, so that it can be handled beside `self`; give it
    /// back with `put_conn`.
    pub(crate) fn take_conn(&mut self, slot: u32) -> Option<Conn> {
        self.slots.get_mut(slot as usize)?.conn.take()
    }

    pub(crate) fn put_conn(&mut self, slot: u32, conn: Conn) {
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            entry.conn = Some(conn);
        }
    }

    fn accept_all(&mut self, now: Instant) {
        if self.shutdown_by.is_some() || self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // Out of descriptors or memory: the pending connection stays in the backlog,
                    // and retrying at once would spin. Try again in a moment.
                    self.log(
                        LogLevel::Quiet,
                        format_args!(
                            "accept failed ({e}); pausing accepts for {} ms",
                            ACCEPT_PAUSE_MS
                        ),
                    );
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        if !self.room_for_one_more() {
            self.counters.refused(Refusal::MaxClients);
            self.log(
                LogLevel::Info,
                format_args!("refused {peer}: too many connections ({})", self.open),
            );
            let busy = http::error(
                Status::UNAVAILABLE,
                "Retry-After: 5\r\n",
                "too many connections, try again later",
            );
            // Best effort: a fresh socket has room for a short answer; it is closed either way.
            let _ = stream.write(&busy);
            return;
        }
        // Frames are written whole, one batch per turn: waiting to coalesce only adds latency.
        let _ = stream.set_nodelay(true);
        let Some(slot) = self.install(stream, is_loopback(peer.ip()), now) else {
            return;
        };
        if !self.start_tls(slot, peer) {
            return;
        }
        self.log(LogLevel::Verbose, format_args!("accepted {peer}"));
    }

    /// On an HTTPS listener, gives the connection in `slot` its TLS session with the pair in
    /// use now. False when it could not have one (the connection is closed then).
    #[cfg(feature = "tls")]
    fn start_tls(&mut self, slot: u32, peer: SocketAddr) -> bool {
        let Some((certificates, _)) = &self.tls else {
            return true;
        };
        match crate::tls::Session::new(certificates.current()) {
            Ok(session) => {
                if let Some(conn) = self.slots[slot as usize].conn.as_mut() {
                    conn.tls = Some(Box::new(session));
                }
                true
            }
            Err(e) => {
                self.log(
                    LogLevel::Quiet,
                    format_args!("cannot start TLS with {peer}: {e}"),
                );
                self.close(slot);
                false
            }
        }
    }

    /// A build without TLS serves plain HTTP only.
    #[cfg(not(feature = "tls"))]
    fn start_tls(&mut self, _: u32, _: SocketAddr) -> bool {
        true
    }

    /// Whether a new TCP connection may have a slot: fewer than `max_clients` plus the reserve
    /// hold one. Connections that are finished hold none: those answered and waiting for their
    /// client to close (`Lingering`) are not counted, and an idle keep-alive connection is
    /// closed, oldest first, to make room. So no client, however it behaves, keeps the
    /// capacity a publisher needs once its request has been answered.
    fn room_for_one_more(&mut self) -> bool {
        let most = self.config.max_clients + self.config.connection_reserve();
        let holding = self.open - self.lingering - self.local_open + self.streams_elsewhere();
        if holding < most {
            return true;
        }
        while let Some(token) = self.idle.pop_front() {
            let Some(slot) = self.slot_of(Token(token)) else {
                continue;
            };
            if self.conn(slot).is_some_and(|conn| is_idle(conn)) {
                self.log(
                    LogLevel::Verbose,
                    format_args!("closed an idle keep-alive connection for a new one"),
                );
                self.close(slot);
                return true;
            }
        }
        false
    }

    /// Gives `stream` a slot and watches it. Returns its slot, or None when it cannot be
    /// watched (it is closed then).
    pub(crate) fn install(
        &mut self,
        mut stream: TcpStream,
        loopback: bool,
        now: Instant,
    ) -> Option<u32> {
        let slot = self.new_slot();
        let token = self.token(slot);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.log(
                LogLevel::Quiet,
                format_args!("cannot watch a new connection: {e}"),
            );
            self.free.push(slot);
            return None;
        }
        let deadline = now + self.config.head_timeout;
        self.timers.push(Reverse((deadline, token.0)));
        let mut conn = Conn::new(stream, loopback, deadline);
        conn.armed = Some(deadline);
        self.slots[slot as usize].conn = Some(conn);
        self.open += 1;
        Counters::set(&self.counters.connections, self.open as u64);
        Some(slot)
    }

    /// A free slot, the table grown when every slot is taken.
    pub(crate) fn new_slot(&mut self) -> u32 {
        match self.free.pop() {
            Some(slot) => slot,
            None => {
                // Grown in steps rather than doubled: a burst of connections leaves a small
                // high-water mark, not twice the table.
                if self.slots.len() == self.slots.capacity() {
                    self.slots.reserve_exact(SLOT_STEP);
                }
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn close(&mut self, slot: u32) {
        if (slot as usize) < self.slots.len() {
            let token = self.token(slot).0;
            self.waiting_heads.retain(|(waiter, _, _)| *waiter != token);
            #[cfg(feature = "jwt")]
            if self.config.subscriptions {
                self.retire_subscriptions(token);
            }
        }
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if entry.conn.is_none() {
            return;
        }
        let id = self.token(slot).0 as u64;
        let entry = &mut self.slots[slot as usize];
        let Some(mut conn) = entry.conn.take() else {
            return;
        };
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        // A lingering connection said its close_notify when it half-closed.
        #[cfg(feature = "tls")]
        if let Some(tls) = conn.tls.as_mut().filter(|_| conn.phase != Phase::Lingering) {
            tls.close_notify(std::os::fd::AsRawFd::as_raw_fd(&conn.stream));
        }
        if conn.phase == Phase::Streaming && conn.sub_index != u32::MAX {
            self.remove_subscriber(conn.sub_index);
            self.host.stream_closed(&conn, slot, id);
            #[cfg(feature = "loops")]
            self.not_moving(id as usize);
            #[cfg(feature = "loops")]
            if let Some(crate::loops::Role::Other { inbox, .. }) = &self.role {
                inbox.stream_closed();
            }
        }
        if conn.phase == Phase::Lingering && !conn.is_local() {
            self.lingering -= 1;
        }
        if conn.is_local() {
            self.local_open -= 1;
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.open -= 1;
        Counters::set(&self.counters.connections, self.open as u64);
    }

    /// Makes a connection that has become a stream one of the subscribers events are fanned out
    /// to, and schedules the write of what it has queued (its head, a replay).
    /// True when `--max-clients` streams are open: another subscription must wait.
    pub(crate) fn streams_full(&self) -> bool {
        self.subscribers.len() + self.streams_elsewhere() >= self.config.max_clients
    }

    /// Streams the other loops hold, less those still here on their way to one (with one
    /// loop: none).
    fn streams_elsewhere(&self) -> usize {
        #[cfg(feature = "loops")]
        if let Some(role) = &self.role {
            return role.streams_elsewhere().saturating_sub(self.moving.len());
        }
        0
    }

    pub(crate) fn add_subscriber(&mut self, conn: &mut Conn, slot: u32) {
        #[cfg(feature = "loops")]
        self.place(conn, slot);
        self.join_subscribers(conn, slot);
        let id = self.token(slot).0 as u64;
        self.host.stream_opened(conn, slot, id);
    }

    /// Makes `conn` one of this loop's subscribers, and schedules the write of what it has
    /// queued.
    pub(crate) fn join_subscribers(&mut self, conn: &mut Conn, slot: u32) {
        conn.sub_index = self.subscribers.len() as u32;
        self.subscribers.push(slot);
        Counters::set(&self.counters.subscribers, self.subscribers.len() as u64);
        if self.next_heartbeat.is_none() && !self.config.heartbeat.is_zero() {
            self.next_heartbeat = Some(Instant::now() + self.config.heartbeat);
        }
        self.due.mark(conn, slot);
    }

    fn remove_subscriber(&mut self, index: u32) {
        let index = index as usize;
        if index >= self.subscribers.len() {
            return;
        }
        self.subscribers.swap_remove(index);
        if let Some(&moved) = self.subscribers.get(index)
            && let Some(conn) = self.slots[moved as usize].conn.as_mut()
        {
            conn.sub_index = index as u32;
        }
        Counters::set(&self.counters.subscribers, self.subscribers.len() as u64);
        if self.subscribers.is_empty() {
            self.next_heartbeat = None;
        }
    }

    fn conn_event(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(slot) = self.slot_of(token) else {
            return; // A late event for a connection already closed.
        };
        if writable && let Some(conn) = self.slots[slot as usize].conn.as_mut() {
            conn.write_blocked = false;
            if conn.has_output() {
                self.due.mark(conn, slot);
            }
        }
        if readable {
            self.on_readable(slot);
        }
    }

    // ---- reading and requests ---------------------------------------------------------------

    fn on_readable(&mut self, slot: u32) {
        let Some(mut conn) = self.slots[slot as usize].conn.take() else {
            return;
        };
        let keep = self.read_from(&mut conn, slot);
        let finished = conn.phase == Phase::Lingering && conn.read_closed;
        self.slots[slot as usize].conn = Some(conn);
        if !keep || finished {
            self.close(slot);
        }
    }

    /// Returns false when the connection should be closed now.
    fn read_from(&mut self, conn: &mut Conn, slot: u32) -> bool {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut end = ReadEnd::Open;
        for _ in 0..MAX_READ_ROUNDS {
            end = match conn.phase {
                Phase::Head | Phase::Body => {
                    // Enough for any one valid request; the parser refuses a longer one.
                    let max_input = http::MAX_HEAD.saturating_add(self.config.max_body);
                    let end = conn.read_available(&mut scratch, |conn, bytes| {
                        conn.input.push(bytes);
                        conn.input.len() <= max_input
                    });
                    if !self.process_input(conn, slot) {
                        self.scratch = scratch;
                        return false;
                    }
                    end
                }
                Phase::Streaming | Phase::Closing | Phase::Lingering => {
                    let mut reads = 0;
                    conn.read_available(&mut scratch, |_, _| {
                        reads += 1;
                        reads < MAX_DISCARD_READS
                    })
                }
            };
            if end != ReadEnd::Paused {
                break;
            }
        }
        self.scratch = scratch;
        #[cfg(feature = "tls")]
        if conn.tls.as_ref().is_some_and(|tls| tls.pending() > 0) {
            // The handshake's answer, or an alert.
            self.due.mark(conn, slot);
        }
        match (end, conn.phase) {
            (ReadEnd::Open, _) => true,
            // Input is left in the socket and no edge will announce it: ask for a fresh one.
            (ReadEnd::Paused, _) => {
                let token = self.token(slot);
                let interest = Interest::READABLE | Interest::WRITABLE;
                self.poll
                    .registry()
                    .reregister(&mut conn.stream, token, interest)
                    .is_ok()
            }
            // A client that closes its side after a request still gets the answer.
            (ReadEnd::Closed, Phase::Closing | Phase::Lingering) => true,
            (ReadEnd::Closed, Phase::Head | Phase::Body) if conn.has_output() => {
                conn.keep_alive = false;
                self.start_closing(conn, slot);
                true
            }
            (ReadEnd::Closed, _) | (ReadEnd::Failed, _) => false,
            #[cfg(feature = "tls")]
            (ReadEnd::TlsFailed, _) => {
                self.tls_failed(conn);
                false
            }
            #[cfg(feature = "tls")]
            (ReadEnd::NotTls { http }, _) => self.not_tls(conn, slot, http),
        }
    }

    /// Logs and counts a TLS handshake (or record) that failed.
    #[cfg(feature = "tls")]
    fn tls_failed(&self, conn: &Conn) {
        self.counters.refused(Refusal::Tls);
        let why = conn
            .tls
            .as_ref()
            .and_then(|tls| tls.failure())
            .unwrap_or("");
        let peer = display_peer(conn.stream.peer_addr().ok());
        self.log(
            LogLevel::Verbose,
            format_args!("closed {peer}: TLS failed: {why}"),
        );
    }

    /// Answers plain HTTP sent to the HTTPS port with a `400` in plain HTTP, as nginx does, and
    /// closes; anything else that is not TLS is closed at once. Returns false to close now.
    #[cfg(feature = "tls")]
    fn not_tls(&mut self, conn: &mut Conn, slot: u32, http: bool) -> bool {
        conn.tls = None;
        if !http {
            self.counters.refused(Refusal::Tls);
            return false;
        }
        let why = "This port speaks HTTPS: the plain HTTP request was sent to an HTTPS port. \
                   Use an https:// URL.";
        self.reject(conn, slot, Status::BAD_REQUEST, "", why, Refusal::Tls);
        true
    }

    /// Handles every complete request in the input. Returns false when the connection must be
    /// closed: it sends requests faster than it reads the answers.
    fn process_input(&mut self, conn: &mut Conn, slot: u32) -> bool {
        loop {
            let body = match conn.phase {
                Phase::Head => None,
                Phase::Body => match conn.body.as_ref() {
                    Some(pending) => Some(pending.length),
                    None => break,
                },
                Phase::Streaming | Phase::Closing | Phase::Lingering => {
                    conn.input.release();
                    break;
                }
            };
            if body.is_none() && !conn.input.is_empty() && conn.out_bytes > self.config.max_queue {
                let peer = display_peer(conn.stream.peer_addr().ok());
                let why = format_args!("closed {peer}: its answers are not being read");
                self.log(LogLevel::Info, why);
                return false;
            }
            let before = conn.input.len();
            match conn.input.next(body) {
                Next::Partial => break,
                Next::Invalid(status, why) => {
                    let refusal = if status == Status::HEAD_TOO_LARGE {
                        Refusal::TooLarge
                    } else {
                        Refusal::BadRequest
                    };
                    self.reject(conn, slot, status, "", why, refusal);
                }
                Next::Head(mut request) => {
                    if self.host.wants_heads() {
                        let head = conn.input.just_taken(before - conn.input.len());
                        request.head = Some(head.into());
                    }
                    // Refused before its body is read, a request must linger (see `linger`).
                    conn.linger = request.chunked || request.content_length.unwrap_or(0) > 0;
                    self.handle_request(conn, slot, request)
                }
                Next::Body(bytes) => {
                    conn.linger = false;
                    if let Some(pending) = conn.body.take() {
                        self.finish_publish(conn, slot, &pending, &bytes);
                    }
                }
            }
        }
        conn.input.compact();
        true
    }

    /// Queues a complete response; the connection then reads its next request or closes.
    pub(crate) fn respond(&mut self, conn: &mut Conn, slot: u32, bytes: Vec<u8>) {
        conn.push(Arc::from(bytes));
        self.due.mark(conn, slot);
        if conn.keep_alive {
            conn.phase = Phase::Head;
            self.set_deadline(conn, slot, self.config.head_timeout);
            self.note_idle(slot);
        } else {
            self.start_closing(conn, slot);
        }
    }

    /// Queues an error answer that says `why`, counts it, and closes the connection after it.
    /// Holds the place of an answer that comes later (`Conn::hold_answer`); the connection
    /// goes on with its next request meanwhile, or closes once the answer is out.
    pub(crate) fn respond_later(&mut self, conn: &mut Conn, slot: u32) {
        conn.hold_answer();
        if conn.keep_alive {
            conn.phase = Phase::Head;
            self.set_deadline(conn, slot, self.config.head_timeout);
        } else {
            self.start_closing(conn, slot);
        }
    }

    /// Queues an error answer that says `why`, counts it, and closes the connection after it.
    pub(crate) fn reject(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        status: Status,
        extra: &str,
        why: &str,
        refusal: Refusal,
    ) {
        self.counters.refused(refusal);
        self.log(
            LogLevel::Verbose,
            format_args!("refused a request: {} {why}", status.0),
        );
        conn.push(Arc::from(http::error(status, extra, why)));
        self.due.mark(conn, slot);
        conn.keep_alive = false;
        self.start_closing(conn, slot);
    }

    /// Notes that a keep-alive connection may go idle after its answer (see `idle`).
    fn note_idle(&mut self, slot: u32) {
        let token = self.token(slot).0;
        // A connection answering pipelined requests is noted once.
        if self.idle.back() == Some(&token) {
            return;
        }
        if self.idle.len() > 2 * self.open + 64 {
            // Keep the first entry of each connection still open, in order: at most one per
            // open connection is left, so this runs once in as many notes at least.
            let mut seen = vec![false; self.slots.len()];
            let mut idle = std::mem::take(&mut self.idle);
            idle.retain(|&token| {
                let Some(slot) = self.slot_of(Token(token)) else {
                    return false;
                };
                !std::mem::replace(&mut seen[slot as usize], true)
            });
            self.idle = idle;
        }
        self.idle.push_back(token);
    }

    pub(crate) fn start_closing(&mut self, conn: &mut Conn, slot: u32) {
        // Input the client sent after the request would turn an immediate close into a reset.
        conn.linger |= !conn.input.is_empty() || conn.phase == Phase::Body;
        conn.phase = Phase::Closing;
        conn.body = None;
        conn.input.release();
        self.set_deadline(conn, slot, CLOSE_GRACE);
    }

    pub(crate) fn set_deadline(&mut self, conn: &mut Conn, slot: u32, after: Duration) {
        let when = Instant::now() + after;
        conn.deadline = Some(when);
        self.arm(conn, slot, when);
    }

    /// Makes sure the timer heap wakes the loop by `when` for this connection. A connection
    /// keeps at most one live entry: a later deadline is armed when the earlier entry comes due,
    /// so that a busy keep-alive connection does not fill the heap with one entry per request.
    fn arm(&mut self, conn: &mut Conn, slot: u32, when: Instant) {
        if conn.armed.is_none_or(|armed| when < armed) {
            conn.armed = Some(when);
            self.timers.push(Reverse((when, self.token(slot).0)));
        }
    }

    // ---- publishing -------------------------------------------------------------------------

    /// Takes every event published since the last turn, queues each for its subscribers and
    /// keeps it for replay. Returns true when a stop was requested.
    pub(crate) fn take_published(&mut self) -> bool {
        #[cfg(feature = "loops")]
        if self.is_other() {
            return self.take_handed();
        }
        let mut batch = std::mem::take(&mut self.batch);
        let budget = self.intake_budget();
        let stop = self.store.take(&mut batch, budget);
        if !batch.is_empty() {
            // First, so that the other loops write while this one does.
            #[cfg(feature = "loops")]
            if let Some(role) = &self.role {
                role.hand_events(&batch);
            }
            self.fan_out(&batch);
            #[cfg(feature = "jwt")]
            if self.config.subscriptions {
                self.note_subscription_events(&batch);
            }
            Counters::add(&self.counters.events_delivered, batch.len() as u64);
            self.store.keep(&mut batch);
            Counters::set(&self.counters.history_events, self.store.retained() as u64);
        }
        self.batch = batch;
        stop
    }

    /// How many bytes of new events this turn may queue for every subscriber. A stream that keeps
    /// up is written once per pass over the line of streams, and gets everything taken in
    /// between: the stream that has waited longest shows how much that is. Taking nothing while
    /// it is half-way to `max_queue` keeps streams that keep up from being dropped as slow
    /// when publishers outpace the network; the publish queue fills and publishers are told so.
    fn intake_budget(&mut self) -> usize {
        let max_queue = self.config.max_queue;
        #[cfg(feature = "loops")]
        if self
            .role
            .as_ref()
            .is_some_and(|role| role.others_behind(max_queue))
        {
            return 0;
        }
        while let Some(&slot) = self.due.streams.front() {
            match self.slots[slot as usize].conn.as_ref() {
                Some(conn) if conn.dirty && conn.phase == Phase::Streaming => {
                    let waiting = conn.queued_cost().saturating_sub(conn.replay_allowance);
                    return if waiting >= max_queue / 2 {
                        0
                    } else {
                        (max_queue / 4).max(1)
                    };
                }
                // Closed, or already written: it no longer waits.
                _ => {
                    self.due.streams.pop_front();
                }
            }
        }
        (max_queue / 4).max(1)
    }

    fn fan_out(&mut self, batch: &[Entry]) {
        let max_queue = self.config.max_queue;
        let mut slow: Vec<u32> = Vec::new();
        for &slot in &self.subscribers {
            // Absent only while its own request is being handled; it has nothing to receive yet.
            let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
                continue;
            };
            // The bound is on the backlog a new event finds, not on the event: a subscriber
            // that keeps reading gets every event, even one larger than `max_queue`.
            let backlog = conn.backlog();
            let mut added = false;
            for entry in batch {
                if conn.subscription.wants(entry) {
                    conn.push(entry.frame.clone());
                    added = true;
                }
            }
            if added {
                if backlog > max_queue.saturating_add(conn.replay_allowance) {
                    slow.push(slot);
                } else {
                    self.due.mark(conn, slot);
                }
            }
        }
        for slot in slow {
            Counters::add(&self.counters.dropped_slow, 1);
            let peer = self.conn(slot).and_then(|c| c.stream.peer_addr().ok());
            self.log(
                LogLevel::Info,
                format_args!(
                    "dropped slow subscriber {}: over {max_queue} bytes behind",
                    display_peer(peer)
                ),
            );
            self.close(slot);
        }
    }

    // ---- writing ----------------------------------------------------------------------------

    /// Writes every request connection that has output, then the next `STREAM_WRITES` streams
    /// in line. Streams wait in a queue rather than all being written in one turn: events
    /// published while the queue is worked through join the frames of every stream still
    /// waiting, so each write carries more of them, and publishers are answered without waiting
    /// for a write to every subscriber.
    fn flush_due(&mut self, now: Instant) {
        let mut requests =
            std::mem::replace(&mut self.due.requests, std::mem::take(&mut self.flushing));
        let mut sent = 0u64;
        for &slot in &requests {
            sent += self.flush_one(slot, now);
        }
        requests.clear();
        self.flushing = requests;
        for _ in 0..STREAM_WRITES {
            let Some(slot) = self.due.streams.pop_front() else {
                break;
            };
            sent += self.flush_one(slot, now);
        }
        Counters::add(&self.counters.bytes_sent, sent);
    }

    /// One write to one connection; returns the bytes written.
    fn flush_one(&mut self, slot: u32, now: Instant) -> u64 {
        let Some(conn) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return 0;
        };
        if !conn.dirty {
            return 0; // A stale entry: the slot was closed and reused since.
        }
        conn.dirty = false;
        if conn.write_blocked {
            return 0;
        }
        #[cfg(feature = "tls")]
        let flushed = match self.tls.as_mut() {
            Some((_, buffers)) => conn.flush_tls(buffers),
            None => conn.flush(),
        };
        #[cfg(not(feature = "tls"))]
        let flushed = conn.flush();
        match flushed {
            Ok((state, written)) => {
                match state {
                    Flushed::All => self.after_flushed(slot, now),
                    Flushed::Blocked => conn.write_blocked = true,
                    Flushed::More => self.due.mark(conn, slot),
                    // Listed again once the answer it waits for is filled in.
                    Flushed::Waiting => {}
                }
                written as u64
            }
            Err(_) => {
                self.close(slot);
                0
            }
        }
    }

    fn after_flushed(&mut self, slot: u32, now: Instant) {
        let most = self.config.max_clients + self.config.connection_reserve();
        let lingering = self.lingering;
        let Some(conn) = self.conn(slot) else { return };
        match conn.phase {
            // Nothing more will come from a client whose request was read whole: its answer is
            // out, the connection closes at once and its slot is free.
            Phase::Closing if conn.read_closed || !conn.linger => self.close(slot),
            // Beyond that many, a finished connection is not kept waiting for its client.
            Phase::Closing if lingering >= most => self.close(slot),
            Phase::Closing => {
                // Half-close, then read until the client closes, so that its unread input does
                // not make the kernel reset the connection and destroy the answer.
                #[cfg(feature = "tls")]
                if let Some(tls) = conn.tls.as_mut() {
                    tls.close_notify(std::os::fd::AsRawFd::as_raw_fd(&conn.stream));
                }
                let _ = conn.stream.shutdown(Shutdown::Write);
                conn.phase = Phase::Lingering;
                // Counted apart from the TCP limit (see `room_for_one_more`), as local ones are.
                let tcp = !conn.is_local();
                self.lingering += usize::from(tcp);
                let Some(conn) = self.conn(slot) else { return };
                let when = now + CLOSE_GRACE;
                conn.deadline = Some(when);
                if conn.armed.is_none_or(|armed| when < armed) {
                    conn.armed = Some(when);
                    let token = self.token(slot);
                    self.timers.push(Reverse((when, token.0)));
                }
            }
            Phase::Head if !conn.input.is_empty() => {
                // Pipelined requests wait behind a full socket; go on with them now.
                if let Some(mut conn) = self.slots[slot as usize].conn.take() {
                    let keep = self.process_input(&mut conn, slot);
                    self.slots[slot as usize].conn = Some(conn);
                    if !keep {
                        self.close(slot);
                    }
                }
            }
            _ => {}
        }
    }

    // ---- timers -----------------------------------------------------------------------------

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((when, token))) = self.timers.peek() {
            if when > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slot_of(Token(token)) else {
                continue;
            };
            let Some(conn) = self.conn(slot) else {
                continue;
            };
            if conn.armed != Some(when) {
                continue; // An earlier entry was armed since; it took over.
            }
            conn.armed = None;
            match conn.deadline {
                None => continue,
                Some(deadline) if deadline > now => {
                    // The deadline moved on since this entry was armed.
                    conn.armed = Some(deadline);
                    self.timers.push(Reverse((deadline, token)));
                    continue;
                }
                Some(_) => {}
            }
            match conn.phase {
                Phase::Head if conn.input.is_empty() && conn.keep_alive => self.close(slot),
                Phase::Head | Phase::Body => self.time_out(slot),
                Phase::Closing | Phase::Lingering => self.close(slot),
                // A stream's only deadline is its token's expiry.
                Phase::Streaming => self.token_expired(slot),
            }
        }
        // Give back what a burst of connections left in the heap.
        if self.timers.capacity() > 4096 && self.timers.len() < self.timers.capacity() / 4 {
            self.timers.shrink_to(self.timers.len() * 2);
        }
        if self.next_heartbeat.is_some_and(|at| at <= now) {
            self.send_heartbeats();
            self.next_heartbeat = Some(now + self.config.heartbeat);
        }
        if self.accept_paused_until.is_some_and(|at| at <= now) {
            self.accept_paused_until = None;
            self.accept_all(now);
        }
    }

    fn time_out(&mut self, slot: u32) {
        #[cfg(feature = "tls")]
        if self
            .conn(slot)
            .and_then(|conn| conn.tls.as_ref())
            .is_some_and(|tls| !tls.is_established())
        {
            // A handshake not done in time has no HTTP to answer in: cut it.
            self.counters.refused(Refusal::Timeout);
            self.log(
                LogLevel::Verbose,
                format_args!("closed a connection: its TLS handshake was not done in time"),
            );
            self.close(slot);
            return;
        }
        let Some(mut conn) = self.slots[slot as usize].conn.take() else {
            return;
        };
        let why = "the request was not received in time";
        self.reject(&mut conn, slot, Status::TIMEOUT, "", why, Refusal::Timeout);
        self.slots[slot as usize].conn = Some(conn);
    }

    /// Closes a stream whose token has expired: it may read nothing more. A browser
    /// reconnects, and needs a fresh token to be let in again.
    fn token_expired(&mut self, slot: u32) {
        self.log(
            LogLevel::Verbose,
            format_args!("closed a stream: its token expired"),
        );
        self.close(slot);
    }

    fn send_heartbeats(&mut self) {
        for &slot in &self.subscribers {
            let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
                continue;
            };
            // A stream with output pending is not idle; a comment would only add to its queue.
            if conn.out_bytes == 0 {
                conn.push(self.heartbeat.clone());
                self.due.mark(conn, slot);
            }
        }
    }

    // ---- several loops (see loops.rs) -------------------------------------------------------

    /// True on a loop other than the first: it holds streams only.
    #[cfg(feature = "loops")]
    fn is_other(&self) -> bool {
        matches!(self.role, Some(crate::loops::Role::Other { .. }))
    }

    /// On the first loop: sends the stream just opened in `slot` to the loop with the fewest
    /// streams, at the end of the turn, when that is not this one. Until then it is one of this
    /// loop's subscribers, and gets what this loop hands the others meanwhile.
    #[cfg(feature = "loops")]
    fn place(&mut self, conn: &Conn, slot: u32) {
        // A local publisher's connection stays with the publish socket's loop.
        if conn.is_local() || self.shutdown_by.is_some() {
            return;
        }
        let Some(crate::loops::Role::First { others }) = &self.role else {
            return;
        };
        let here = self.subscribers.len().saturating_sub(self.moving.len());
        if let Some(to) = self.role.as_ref().and_then(|role| role.place(here)) {
            others[to].stream_added();
            let token = self.token(slot).0;
            self.moving.push((token, to));
        }
    }

    /// A stream placed this turn closed before it left: its loop will not have it.
    #[cfg(feature = "loops")]
    fn not_moving(&mut self, token: usize) {
        let Some(at) = self.moving.iter().position(|&(moving, _)| moving == token) else {
            return;
        };
        let (_, to) = self.moving.swap_remove(at);
        if let Some(crate::loops::Role::First { others }) = &self.role {
            others[to].stream_closed();
        }
    }

    /// Hands the streams placed this turn to their loops.
    #[cfg(feature = "loops")]
    fn hand_over_streams(&mut self) {
        use crate::loops::{Handed, Role};
        if self.moving.is_empty() {
            return;
        }
        let mut moving = std::mem::take(&mut self.moving);
        for (token, to) in moving.drain(..) {
            let Some(Role::First { others }) = &self.role else {
                break;
            };
            let inbox = others[to].clone();
            let moved = self
                .slot_of(Token(token))
                .and_then(|slot| self.move_out(slot));
            match moved {
                // An inbox whose loop has ended drops it: the server is stopping.
                Some(moved) => {
                    inbox.hand(Handed::Stream(Box::new(moved)));
                }
                // Closed before the end of the turn.
                None => inbox.stream_closed(),
            }
        }
        self.moving = moving;
    }

    /// Takes the stream in `slot` out of this loop, as it is, with what the host and the
    /// subscription registry know of it.
    #[cfg(feature = "loops")]
    fn move_out(&mut self, slot: u32) -> Option<crate::loops::Moved> {
        #[cfg(feature = "jwt")]
        let token = self.token(slot).0;
        let conn = self.conn(slot)?;
        if conn.phase != Phase::Streaming || conn.sub_index == u32::MAX {
            return None;
        }
        let mut conn = self.take_conn(slot)?;
        self.remove_subscriber(conn.sub_index);
        conn.sub_index = u32::MAX;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let entry = &mut self.slots[slot as usize];
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        self.open -= 1;
        Counters::set(&self.counters.connections, self.open as u64);
        Some(crate::loops::Moved {
            conn,
            #[cfg(feature = "host")]
            hooked: self.host.moved_out(slot),
            #[cfg(feature = "jwt")]
            subscriptions: self.active.release(token),
        })
    }

    /// On another loop: takes what the first loop handed over, in order: events to fan out,
    /// streams to adopt, the stop. Returns true once the stop has come.
    #[cfg(feature = "loops")]
    fn take_handed(&mut self) -> bool {
        use crate::loops::{Handed, Role};
        let mut handed = std::mem::take(&mut self.handed);
        let budget = self.intake_budget();
        if let Some(Role::Other { inbox, intake }) = &self.role {
            let behind = crate::loops::behind(self.config.max_queue);
            let (taken, left) = inbox.take(&mut handed, budget);
            // The first loop stopped taking events while this one was that far behind.
            if left < behind && left + taken >= behind {
                intake.wake();
            }
        }
        let mut stop = false;
        for next in handed.drain(..) {
            match next {
                Handed::Events(events) => self.fan_out(&events),
                Handed::Stream(moved) => self.adopt(*moved),
                Handed::Stop => stop = true,
            }
        }
        self.handed = handed;
        stop
    }

    /// Makes a stream handed over by the first loop one of this loop's subscribers.
    #[cfg(feature = "loops")]
    fn adopt(&mut self, moved: crate::loops::Moved) {
        let mut conn = moved.conn;
        let slot = self.new_slot();
        let token = self.token(slot);
        conn.dirty = false;
        conn.write_blocked = false;
        conn.armed = None;
        let watched = self.poll.registry().register(
            &mut conn.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        );
        #[cfg(feature = "host")]
        self.host.moved_in(slot, moved.hooked);
        #[cfg(feature = "jwt")]
        if let Some(list) = moved.subscriptions {
            self.active.adopt(token.0, list);
        }
        if let Some(deadline) = conn.deadline {
            conn.armed = Some(deadline);
            self.timers.push(Reverse((deadline, token.0)));
        }
        self.open += 1;
        Counters::set(&self.counters.connections, self.open as u64);
        self.join_subscribers(&mut conn, slot);
        self.slots[slot as usize].conn = Some(conn);
        if let Err(e) = watched {
            self.log(
                LogLevel::Quiet,
                format_args!("cannot watch a stream handed over: {e}"),
            );
            self.close(slot);
        }
    }

    // ---- shutdown ---------------------------------------------------------------------------

    fn begin_shutdown(&mut self, now: Instant) {
        self.log(
            LogLevel::Info,
            format_args!("shutting down: flushing {} streams", self.subscribers.len()),
        );
        self.shutdown_by = Some(now + SHUTDOWN_GRACE);
        self.next_heartbeat = None;
        // The other loops stop after the streams and events handed to them so far.
        #[cfg(feature = "loops")]
        if self.role.is_some() {
            self.hand_over_streams();
            if let Some(role) = &self.role {
                role.stop_others();
            }
        }
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        if let Some(socket) = self.publish_socket.take() {
            socket.close(&self.poll);
        }
        for slot in 0..self.slots.len() as u32 {
            let Some(phase) = self.conn(slot).map(|c| c.phase) else {
                continue;
            };
            match phase {
                Phase::Streaming => {
                    // Spread reconnects over a few seconds so that a restart is not a stampede.
                    let ms = 1000 + (self.next_random() % 4000) as u32;
                    let block: Arc<[u8]> = Arc::from(frame::retry_block(ms));
                    if let Some(conn) = self.slots[slot as usize].conn.as_mut() {
                        conn.push(block);
                        self.due.mark(conn, slot);
                    }
                }
                Phase::Closing => {}
                // A request on its way (a connection just accepted, a head or a body partly
                // received) is answered within the grace: with socket activation the next
                // process serves the connections that wait in the backlog, and none of those
                // accepted here is dropped unanswered.
                Phase::Head | Phase::Body
                    if self.conn(slot).is_some_and(|conn| request_under_way(conn)) => {}
                Phase::Head | Phase::Body | Phase::Lingering => self.close(slot),
            }
        }
    }

    fn nothing_left_to_write(&self) -> bool {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .all(|c| !c.has_output() && !request_under_way(c))
    }

    fn close_all(&mut self) {
        for slot in 0..self.slots.len() as u32 {
            self.close(slot);
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: enough to spread reconnect delays.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ (std::process::id() as u64) << 32) | 1
}

/// A connection whose first request is still arriving (nothing may have arrived yet), or whose
/// publish body is.
fn request_under_way(conn: &Conn) -> bool {
    match conn.phase {
        Phase::Body => true,
        Phase::Head => !conn.keep_alive || !conn.input.is_empty(),
        _ => false,
    }
}

/// A keep-alive connection between requests, with nothing to write and nothing received.
fn is_idle(conn: &Conn) -> bool {
    conn.phase == Phase::Head
        && conn.keep_alive
        && conn.input.is_empty()
        && !conn.has_output()
        && !conn.is_local()
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn display_peer(peer: Option<SocketAddr>) -> String {
    peer.map(|p| p.to_string())
        .unwrap_or_else(|| "(gone)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_loopback_counts_as_loopback() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
    }
}
