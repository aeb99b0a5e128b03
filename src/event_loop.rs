//! The single-threaded mio loop that owns the listener and every connection.
//!
//! Each turn: wait for readiness (or the next timer), accept and read what is ready, take every
//! event published since the last turn and queue it for its subscribers, fire due timers, then
//! write: at most one `sendmsg` per connection per turn, carrying every frame it has pending.
//! Sockets are edge-triggered, so every read and accept goes on until `WouldBlock`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::config::{Config, Cors, LogLevel};
use crate::conn::{Conn, Flushed, PendingBody, Phase, ReadEnd};
use crate::frame;
use crate::history::{Entry, History};
use crate::http::{self, Head, Method, Request, Status};
use crate::inbox::{Inbox, PublishError};
use crate::params::{self, Body};
use crate::stats::{Counters, Refusal};

pub(crate) const LISTENER: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Low bits of a token name the slot, high bits its generation, so an event for a closed
/// connection can never reach the one that took its slot.
const SLOT_BITS: u32 = if usize::BITS >= 64 { 32 } else { 20 };

/// How long to stop accepting after running out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
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
/// Streams written per turn before looking for new events and requests again.
const STREAM_WRITES: usize = 256;
/// A viewer page lists at most this many event types seen in the history.
const VIEWER_TYPES: usize = 32;

/// src/viewer.html, without its indentation (see build.rs).
const VIEWER_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/viewer.html"));
/// Where the viewer page takes the list of event types to listen to.
const VIEWER_MARK: &str = "/*EVENT_TYPES*/[]";
const VIEWER_MARK_AT: usize = find_in_page(VIEWER_HTML.as_bytes(), VIEWER_MARK.as_bytes());
const PREFLIGHT_HEADERS: &str = "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n\
    Access-Control-Allow-Headers: Last-Event-ID, Authorization, Content-Type, Cache-Control\r\n\
    Access-Control-Max-Age: 86400\r\n";

struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

/// Connections waiting for a write: requests are answered every turn, streams take turns.
#[derive(Default)]
struct Due {
    requests: Vec<u32>,
    streams: VecDeque<u32>,
}

impl Due {
    fn mark(&mut self, conn: &mut Conn, slot: u32) {
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
    listener: TcpListener,
    inbox: Arc<Inbox>,
    config: Config,
    slots: Vec<Slot>,
    free: Vec<u32>,
    open: usize,
    /// Slots of open streams.
    subscribers: Vec<u32>,
    history: History,
    /// Head-read and close deadlines, at most one live entry per connection (see `arm`);
    /// entries of closed connections are skipped when they come due.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Connections with output to write.
    due: Due,
    /// Scratch vectors kept between turns so that a turn allocates nothing.
    batch: Vec<Entry>,
    flushing: Vec<u32>,
    scratch: Box<[u8]>,
    next_heartbeat: Option<Instant>,
    accept_paused_until: Option<Instant>,
    shutdown_by: Option<Instant>,
    rng: u64,
    stream_head: Arc<[u8]>,
    heartbeat: Arc<[u8]>,
    gap: Arc<[u8]>,
    retry: Option<Arc<[u8]>>,
}

impl EventLoop {
    pub fn new(poll: Poll, listener: TcpListener, inbox: Arc<Inbox>, config: Config) -> EventLoop {
        EventLoop {
            poll,
            listener,
            inbox,
            history: History::new(config.history),
            retry: config.retry.map(|ms| Arc::from(frame::retry_block(ms))),
            config,
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
            rng: seed(),
            stream_head: Arc::from(http::stream_head("")),
            heartbeat: Arc::from(frame::HEARTBEAT),
            gap: Arc::from(frame::GAP),
        }
    }

    /// Runs until stopped, then flushes for up to a second and closes everything.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let mut timeout = self.poll_timeout(Instant::now());
            if timeout != Some(Duration::ZERO) && self.inbox.prepare_to_sleep() {
                timeout = Some(Duration::ZERO);
            }
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(now),
                    // The wake only ends the poll; the inbox is taken every turn below.
                    WAKER => {}
                    token => self.conn_event(
                        token,
                        event.is_readable() || event.is_read_closed() || event.is_error(),
                        event.is_writable(),
                    ),
                }
            }
            let stop = self.take_published();
            if stop && self.shutdown_by.is_none() {
                self.begin_shutdown(now);
            }
            self.fire_timers(now);
            self.flush_due(now);
            if let Some(by) = self.shutdown_by
                && (now >= by || self.nothing_left_to_write())
            {
                self.close_all();
                return Ok(());
            }
        }
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
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Rounded up to the next millisecond so that a wakeup never comes before the deadline.
        Some(next.saturating_duration_since(now) + Duration::from_micros(999))
    }

    fn log(&self, level: LogLevel, args: std::fmt::Arguments) {
        if self.config.log >= level {
            eprintln!("ssed: {args}");
        }
    }

    // ---- connections and tokens -------------------------------------------------------------

    fn token(&self, slot: u32) -> Token {
        let generation = self.slots[slot as usize].generation as usize;
        Token((generation << SLOT_BITS) | (slot as usize + FIRST_CONN))
    }

    fn slot_of(&self, token: Token) -> Option<u32> {
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

    fn accept_all(&mut self, now: Instant) {
        if self.shutdown_by.is_some() || self.accept_paused_until.is_some() {
            return;
        }
        loop {
            match self.listener.accept() {
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
                            ACCEPT_PAUSE.as_millis()
                        ),
                    );
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        if self.open >= self.config.max_clients {
            self.inbox.counters.refused(Refusal::MaxClients);
            self.log(
                LogLevel::Info,
                format_args!("refused {peer}: too many clients ({})", self.open),
            );
            let busy = http::error(
                Status::UNAVAILABLE,
                "Retry-After: 5\r\n",
                "too many clients, try again later",
            );
            // Best effort: a fresh socket has room for a short answer; it is closed either way.
            let _ = stream.write(&busy);
            return;
        }
        // Frames are written whole, one batch per turn: waiting to coalesce only adds latency.
        let _ = stream.set_nodelay(true);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let token = self.token(slot);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.log(
                LogLevel::Quiet,
                format_args!("cannot watch connection from {peer}: {e}"),
            );
            self.free.push(slot);
            return;
        }
        let deadline = now + self.config.head_timeout;
        self.timers.push(Reverse((deadline, token.0)));
        let mut conn = Conn::new(stream, is_loopback(peer.ip()), deadline);
        conn.armed = Some(deadline);
        self.slots[slot as usize].conn = Some(conn);
        self.open += 1;
        Counters::set(&self.inbox.counters.connections, self.open as u64);
        self.log(LogLevel::Verbose, format_args!("accepted {peer}"));
    }

    fn close(&mut self, slot: u32) {
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(mut conn) = entry.conn.take() else {
            return;
        };
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        if conn.phase == Phase::Streaming {
            self.remove_subscriber(conn.sub_index);
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.open -= 1;
        Counters::set(&self.inbox.counters.connections, self.open as u64);
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
        Counters::set(
            &self.inbox.counters.subscribers,
            self.subscribers.len() as u64,
        );
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
            if conn.out_bytes > 0 {
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
            (ReadEnd::Closed, Phase::Head | Phase::Body) if conn.out_bytes > 0 => {
                conn.keep_alive = false;
                self.start_closing(conn, slot);
                true
            }
            (ReadEnd::Closed, _) | (ReadEnd::Failed, _) => false,
        }
    }

    /// Handles every complete request in the input. Returns false when the connection must be
    /// closed: it sends requests faster than it reads the answers.
    fn process_input(&mut self, conn: &mut Conn, slot: u32) -> bool {
        loop {
            match conn.phase {
                Phase::Head => {
                    if conn.input.is_empty() {
                        break;
                    }
                    if conn.out_bytes > self.config.max_queue {
                        let peer = display_peer(conn.stream.peer_addr().ok());
                        let why = format_args!("closed {peer}: its answers are not being read");
                        self.log(LogLevel::Info, why);
                        return false;
                    }
                    match http::parse(conn.input.pending()) {
                        Head::Partial => break,
                        Head::Invalid(status, why) => {
                            let refusal = if status == Status::HEAD_TOO_LARGE {
                                Refusal::TooLarge
                            } else {
                                Refusal::BadRequest
                            };
                            self.reject(conn, slot, status, "", why, refusal);
                        }
                        Head::Complete { request, len } => {
                            conn.input.consume(len);
                            self.handle_request(conn, slot, request);
                        }
                    }
                }
                Phase::Body => {
                    let Some(length) = conn.body.as_ref().map(|pending| pending.length) else {
                        break;
                    };
                    if conn.input.len() < length {
                        break;
                    }
                    let Some(pending) = conn.body.take() else {
                        break;
                    };
                    let body = conn.input.pending()[..length].to_vec();
                    conn.input.consume(length);
                    self.finish_publish(conn, slot, &pending.request, &body);
                }
                Phase::Streaming | Phase::Closing | Phase::Lingering => {
                    conn.input.release();
                    break;
                }
            }
        }
        conn.input.compact();
        true
    }

    fn handle_request(&mut self, conn: &mut Conn, slot: u32, request: Request) {
        conn.deadline = None;
        // A body we do not read would be parsed as the next request: close after answering.
        let has_body = request.chunked || request.content_length.unwrap_or(0) > 0;
        conn.keep_alive = request.keep_alive && (request.method() == Method::Post || !has_body);
        let cors = self.cors_headers(request.origin.as_deref());
        let known_get = matches!(
            request.path.as_str(),
            "/" | "/health" | "/metrics" | "/events"
        );
        match (request.method(), request.path.as_str()) {
            (Method::Options, _) if self.config.cors != Cors::Off => {
                let extra = format!("{cors}{PREFLIGHT_HEADERS}");
                self.respond(
                    conn,
                    slot,
                    http::response(Status::NO_CONTENT, "", &extra, b"", !conn.keep_alive),
                );
            }
            (Method::Get, "/events") => self.subscribe(conn, slot, &request, &cors),
            (Method::Post, "/publish") => self.start_publish(conn, slot, request, &cors),
            (Method::Get, "/") => {
                let page = self.viewer_page();
                let ok = http::response(
                    Status::OK,
                    "text/html; charset=utf-8",
                    &cors,
                    page.as_bytes(),
                    !conn.keep_alive,
                );
                self.respond(conn, slot, ok);
            }
            (Method::Get, "/health") => {
                let ok = http::response(
                    Status::OK,
                    "text/plain; charset=utf-8",
                    &cors,
                    b"ok\n",
                    !conn.keep_alive,
                );
                self.respond(conn, slot, ok);
            }
            (Method::Get, "/metrics") => {
                let text = self.inbox.counters.render();
                let ok = http::response(
                    Status::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    &cors,
                    text.as_bytes(),
                    !conn.keep_alive,
                );
                self.respond(conn, slot, ok);
            }
            (_, path) if known_get || path == "/publish" => {
                let allowed = if path == "/publish" { "POST" } else { "GET" };
                let options = if self.config.cors != Cors::Off {
                    ", OPTIONS"
                } else {
                    ""
                };
                let extra = format!("{cors}Allow: {allowed}{options}\r\n");
                let why = format!(
                    "{} is not allowed on {path}; use {allowed}",
                    method_name(request.method())
                );
                self.reject(
                    conn,
                    slot,
                    Status::METHOD_NOT_ALLOWED,
                    &extra,
                    &why,
                    Refusal::MethodNotAllowed,
                );
            }
            (_, path) => {
                let why = format!("no such path: {path}");
                self.reject(
                    conn,
                    slot,
                    Status::NOT_FOUND,
                    &cors,
                    &why,
                    Refusal::NotFound,
                );
            }
        }
    }

    /// Queues a complete response; the connection then reads its next request or closes.
    fn respond(&mut self, conn: &mut Conn, slot: u32, bytes: Vec<u8>) {
        conn.push(Arc::from(bytes));
        self.due.mark(conn, slot);
        if conn.keep_alive {
            conn.phase = Phase::Head;
            self.set_deadline(conn, slot, self.config.head_timeout);
        } else {
            self.start_closing(conn, slot);
        }
    }

    fn reject(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        status: Status,
        extra: &str,
        why: &str,
        refusal: Refusal,
    ) {
        self.inbox.counters.refused(refusal);
        self.log(
            LogLevel::Verbose,
            format_args!("refused a request: {} {why}", status.0),
        );
        conn.push(Arc::from(http::error(status, extra, why)));
        self.due.mark(conn, slot);
        conn.keep_alive = false;
        self.start_closing(conn, slot);
    }

    fn start_closing(&mut self, conn: &mut Conn, slot: u32) {
        conn.phase = Phase::Closing;
        conn.body = None;
        conn.input.release();
        self.set_deadline(conn, slot, CLOSE_GRACE);
    }

    fn set_deadline(&mut self, conn: &mut Conn, slot: u32, after: Duration) {
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

    fn cors_headers(&self, origin: Option<&str>) -> String {
        match (&self.config.cors, origin) {
            (Cors::Off, _) => String::new(),
            (Cors::Any, _) => "Access-Control-Allow-Origin: *\r\n".into(),
            (Cors::Origins(list), Some(origin)) if list.iter().any(|o| o == origin) => format!(
                "Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\nAccess-Control-Allow-Credentials: true\r\n"
            ),
            (Cors::Origins(_), _) => "Vary: Origin\r\n".into(),
        }
    }

    fn subscribe(&mut self, conn: &mut Conn, slot: u32, request: &Request, cors: &str) {
        let query = match params::subscribe(&request.query) {
            Ok(query) => query,
            Err(why) => {
                return self.reject(
                    conn,
                    slot,
                    Status::BAD_REQUEST,
                    cors,
                    why,
                    Refusal::BadRequest,
                );
            }
        };
        if let Some(token) = &self.config.subscribe_token {
            let given = bearer(request.authorization.as_deref()).or(query.token.as_deref());
            if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
                let extra = format!("{cors}WWW-Authenticate: Bearer\r\n");
                let why = "subscribing needs a token: Authorization: Bearer <token> or ?token=";
                return self.reject(
                    conn,
                    slot,
                    Status::UNAUTHORIZED,
                    &extra,
                    why,
                    Refusal::Unauthorized,
                );
            }
        }
        conn.phase = Phase::Streaming;
        conn.input.release();
        conn.deadline = None;
        conn.topics = query
            .topics
            .into_iter()
            .map(String::into_boxed_str)
            .collect();
        let head = if cors.is_empty() {
            self.stream_head.clone()
        } else {
            Arc::from(http::stream_head(cors))
        };
        conn.push(head);
        if let Some(retry) = &self.retry {
            conn.push(retry.clone());
        }
        let last_id = request
            .last_event_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .or(query.last_event_id.as_deref());
        if let Some(last_id) = last_id {
            let replay = self.history.since(last_id);
            if replay.gap {
                conn.push(self.gap.clone());
            }
            let before = conn.out_bytes;
            for entry in replay.entries {
                if entry.matches(&conn.topics) {
                    conn.push(entry.frame.clone());
                }
            }
            conn.replay_allowance = conn.out_bytes - before;
        }
        conn.sub_index = self.subscribers.len() as u32;
        self.subscribers.push(slot);
        Counters::set(
            &self.inbox.counters.subscribers,
            self.subscribers.len() as u64,
        );
        if self.next_heartbeat.is_none() && !self.config.heartbeat.is_zero() {
            self.next_heartbeat = Some(Instant::now() + self.config.heartbeat);
        }
        self.due.mark(conn, slot);
    }

    fn start_publish(&mut self, conn: &mut Conn, slot: u32, request: Request, cors: &str) {
        if let Some(token) = &self.config.publish_token {
            let given = bearer(request.authorization.as_deref());
            if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
                let extra = format!("{cors}WWW-Authenticate: Bearer\r\n");
                let why = "publishing needs Authorization: Bearer <token>";
                return self.reject(
                    conn,
                    slot,
                    Status::UNAUTHORIZED,
                    &extra,
                    why,
                    Refusal::Unauthorized,
                );
            }
        } else if !conn.peer_loopback || request.proxied {
            let why = "publishing without a token is allowed only from loopback, not through a proxy; set --publish-token";
            return self.reject(conn, slot, Status::FORBIDDEN, cors, why, Refusal::Forbidden);
        }
        if request.chunked {
            let why = "chunked publish bodies are not accepted; send a Content-Length";
            return self.reject(
                conn,
                slot,
                Status::LENGTH_REQUIRED,
                cors,
                why,
                Refusal::BadRequest,
            );
        }
        let length = request.content_length.unwrap_or(0);
        if length > self.config.max_body {
            let why = format!(
                "the body is larger than the limit of {} bytes",
                self.config.max_body
            );
            return self.reject(
                conn,
                slot,
                Status::BODY_TOO_LARGE,
                cors,
                &why,
                Refusal::TooLarge,
            );
        }
        if conn.input.len() < length {
            if request.expect_continue {
                conn.push(Arc::from(http::CONTINUE));
                self.due.mark(conn, slot);
            }
            self.set_deadline(conn, slot, self.config.head_timeout);
        }
        conn.body = Some(Box::new(PendingBody { request, length }));
        conn.phase = Phase::Body;
    }

    fn finish_publish(&mut self, conn: &mut Conn, slot: u32, request: &Request, body: &[u8]) {
        conn.deadline = None;
        let cors = self.cors_headers(request.origin.as_deref());
        let event = match params::publish(
            &request.query,
            Body::new(request.content_type.as_deref(), body),
        ) {
            Ok(event) => event,
            Err(why) => {
                return self.reject(
                    conn,
                    slot,
                    Status::BAD_REQUEST,
                    &cors,
                    why,
                    Refusal::BadRequest,
                );
            }
        };
        let mut result = self.inbox.publish(&event);
        if result == Err(PublishError::QueueFull) {
            // Other threads filled the queue; deliver what is there and try once more.
            if self.take_published() && self.shutdown_by.is_none() {
                result = Err(PublishError::Stopped);
            } else {
                result = self.inbox.publish(&event);
            }
        }
        match result {
            Ok(assigned) => {
                let id = assigned.map(|n| n.to_string()).unwrap_or(event.id);
                let ok = http::response(
                    Status::OK,
                    "text/plain; charset=utf-8",
                    &cors,
                    id.as_bytes(),
                    !conn.keep_alive,
                );
                self.respond(conn, slot, ok);
            }
            Err(PublishError::Invalid(why)) => self.reject(
                conn,
                slot,
                Status::BAD_REQUEST,
                &cors,
                why.message(),
                Refusal::BadRequest,
            ),
            Err(PublishError::QueueFull) => {
                let extra = format!("{cors}Retry-After: 1\r\n");
                self.reject(
                    conn,
                    slot,
                    Status::UNAVAILABLE,
                    &extra,
                    "the publish queue is full",
                    Refusal::QueueFull,
                )
            }
            Err(PublishError::Stopped) => self.reject(
                conn,
                slot,
                Status::UNAVAILABLE,
                &cors,
                "the server is shutting down",
                Refusal::QueueFull,
            ),
        }
    }

    fn viewer_page(&self) -> String {
        let mut types = String::from("[");
        for (i, ty) in self
            .history
            .event_types(VIEWER_TYPES)
            .iter()
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            if i > 0 {
                types.push(',');
            }
            push_json_string(&mut types, ty);
        }
        types.push(']');
        let (head, tail) = VIEWER_HTML.split_at(VIEWER_MARK_AT);
        format!("{head}{types}{}", &tail[VIEWER_MARK.len()..])
    }

    // ---- publishing -------------------------------------------------------------------------

    /// Takes every event published since the last turn, queues each for its subscribers and
    /// keeps it for replay. Returns true when a stop was requested.
    fn take_published(&mut self) -> bool {
        let mut batch = std::mem::take(&mut self.batch);
        let budget = self.intake_budget();
        let stop = self.inbox.take(&mut batch, budget);
        if !batch.is_empty() {
            self.fan_out(&batch);
            Counters::add(&self.inbox.counters.events_published, batch.len() as u64);
            for entry in batch.drain(..) {
                self.history.push(entry);
            }
            Counters::set(
                &self.inbox.counters.history_events,
                self.history.len() as u64,
            );
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
        while let Some(&slot) = self.due.streams.front() {
            match self.slots[slot as usize].conn.as_ref() {
                Some(conn) if conn.dirty && conn.phase == Phase::Streaming => {
                    let waiting = conn.out_bytes.saturating_sub(conn.replay_allowance);
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
            let mut added = false;
            for entry in batch {
                if entry.matches(&conn.topics) {
                    conn.push(entry.frame.clone());
                    added = true;
                }
            }
            if added {
                if conn.out_bytes > max_queue.saturating_add(conn.replay_allowance) {
                    slow.push(slot);
                } else {
                    self.due.mark(conn, slot);
                }
            }
        }
        for slot in slow {
            Counters::add(&self.inbox.counters.dropped_slow, 1);
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
        Counters::add(&self.inbox.counters.bytes_sent, sent);
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
        match conn.flush() {
            Ok((state, written)) => {
                match state {
                    Flushed::All => self.after_flushed(slot, now),
                    Flushed::Blocked => conn.write_blocked = true,
                    Flushed::More => self.due.mark(conn, slot),
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
        let Some(conn) = self.conn(slot) else { return };
        match conn.phase {
            Phase::Closing if conn.read_closed => self.close(slot),
            Phase::Closing => {
                // Half-close, then read until the client closes, so that its unread input does
                // not make the kernel reset the connection and destroy the answer.
                let _ = conn.stream.shutdown(Shutdown::Write);
                conn.phase = Phase::Lingering;
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
                Phase::Streaming => {}
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
        let Some(mut conn) = self.slots[slot as usize].conn.take() else {
            return;
        };
        let why = "the request was not received in time";
        self.reject(&mut conn, slot, Status::TIMEOUT, "", why, Refusal::Timeout);
        self.slots[slot as usize].conn = Some(conn);
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

    // ---- shutdown ---------------------------------------------------------------------------

    fn begin_shutdown(&mut self, now: Instant) {
        self.log(
            LogLevel::Info,
            format_args!("shutting down: flushing {} streams", self.subscribers.len()),
        );
        self.shutdown_by = Some(now + SHUTDOWN_GRACE);
        self.next_heartbeat = None;
        let _ = self.poll.registry().deregister(&mut self.listener);
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
                Phase::Head | Phase::Body | Phase::Lingering => self.close(slot),
            }
        }
    }

    fn nothing_left_to_write(&self) -> bool {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .all(|c| c.out_bytes == 0)
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

/// Finds the viewer's mark at compile time; a page without it fails the build.
const fn find_in_page(page: &[u8], mark: &[u8]) -> usize {
    let mut at = 0;
    while at + mark.len() <= page.len() {
        let mut i = 0;
        while i < mark.len() && page[at + i] == mark[i] {
            i += 1;
        }
        if i == mark.len() {
            return at;
        }
        at += 1;
    }
    panic!("the viewer page lacks its event-type mark")
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ (std::process::id() as u64) << 32) | 1
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without an early exit, so that the time taken does not reveal how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() ^ b.len()) >> 8) as u8;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0 && a.len() == b.len()
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Options => "OPTIONS",
        Method::Other => "this method",
    }
}

fn display_peer(peer: Option<SocketAddr>) -> String {
    peer.map(|p| p.to_string())
        .unwrap_or_else(|| "(gone)".into())
}

fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // Escaped so that no type name can close the page's script element.
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn json_strings_cannot_break_out_of_a_script() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"</script>\n");
        assert_eq!(out, r#""a\"\u003c/script\u003e\u000a""#);
    }

    #[test]
    fn mapped_loopback_counts_as_loopback() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
    }
}
