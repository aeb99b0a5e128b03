//! Subscribers that reconnect, for the robustness scenarios: one mio loop on its own thread.
//!
//! Each subscriber remembers the id of the last event it received, across connections, and
//! every connection it opens sends it as `Last-Event-ID` (the first one sends the id of a mark
//! event published before any subscriber connected, so no connection ever starts without one).
//! It records events exactly as received and never deduplicates: whatever the server sends
//! twice is seen twice.
//!
//! Connections can be cut on purpose, at random (a Poisson process per subscriber):
//! - close: the client closes the socket (a FIN, or a reset if unread data is pending);
//! - reset: SO_LINGER 0, so the server gets a RST;
//! - stall: the client stops reading for a while; the server's queue for it grows past
//!   `--max-queue` and it is dropped. When the stall ends the client reads what the kernel
//!   kept, sees the close, and reconnects from the last whole event it got.

use crate::histogram::Histogram;
use crate::procstat::monotonic_ns;
use crate::socket::{self, Rng, SocketOptions};
use crate::sse::{parse_response_head, ChunkDecoder, Event, SseParser};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How arriving events are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Every id is kept, to be compared with the publishers' record at the end.
    List,
    /// There is one publisher and its sequence numbers follow each other: each event must
    /// carry the previous one's plus one. Costs nothing per event, for long runs.
    Consecutive,
}

pub const CUT_CLOSE: u64 = 1;
pub const CUT_RESET: u64 = 2;
pub const CUT_STALL: u64 = 4;

pub struct StreamsConfig {
    pub target: SocketAddrV4,
    pub topic_names: Vec<String>,
    /// Each subscriber's topics as a bit set (bit t: topic t); 0 subscribes to every topic.
    pub topic_sets: Vec<u64>,
    /// The Last-Event-ID of every first connection.
    pub start_id: u64,
    pub source_ips: u32,
    /// Added to the subscriber index when picking a source address.
    pub source_offset: usize,
    pub socket: SocketOptions,
    pub check: Check,
    /// Data length of every event; others count as malformed.
    pub event_size: usize,
    /// Connection attempts at once.
    pub max_pending: usize,
    /// How long a stalled subscriber stops reading.
    pub stall: Duration,
    pub seed: u64,
}

/// What the coordinating thread and the loop share.
#[derive(Default)]
pub struct Shared {
    /// Subscribers whose stream is open (stalled ones included).
    pub streaming: AtomicU64,
    /// Cuts per second per subscriber, as f64 bits; 0 cuts nothing.
    pub cut_rate_bits: AtomicU64,
    /// Which cuts are made: CUT_* bits.
    pub cut_kinds: AtomicU64,
    /// Set when publishing is over: the last id published to each topic.
    pub final_ids: Mutex<Option<Vec<u64>>>,
    /// Subscribers that have received their topics' last published event.
    pub done: AtomicU64,
    pub received: AtomicU64,
    pub stop: AtomicBool,
}

impl Shared {
    pub fn set_cuts(&self, per_second: f64, kinds: u64) {
        self.cut_kinds.store(kinds, Ordering::Release);
        self.cut_rate_bits.store(per_second.to_bits(), Ordering::Release);
    }

    fn cut_rate(&self) -> f64 {
        f64::from_bits(self.cut_rate_bits.load(Ordering::Acquire))
    }
}

/// Counts over every subscriber and connection.
#[derive(Default, Debug)]
pub struct Totals {
    pub connects: u64,
    pub connect_failures: u64,
    pub cuts_close: u64,
    pub cuts_reset: u64,
    pub stalls: u64,
    /// Stalls after which the stream turned out to have been closed by the server.
    pub stalls_dropped: u64,
    /// Streams the server closed without a stall (other than at the end).
    pub server_closed: u64,
    pub received: u64,
    /// Consecutive check: events skipped, and events that came again or too late.
    pub lost: u64,
    pub repeated: u64,
    /// An event of a topic the subscriber did not ask for.
    pub foreign: u64,
    /// `: gap` comments: a replay the server says may be incomplete.
    pub gaps: u64,
    pub malformed: u64,
    pub first_error: Option<String>,
}

pub struct StreamsOutcome {
    /// List check: each subscriber's event ids as received.
    pub records: Vec<Vec<u64>>,
    pub totals: Totals,
    /// Publish-to-receive latency of every event, replays included.
    pub histogram: Histogram,
    /// The worst latency of the events published in each second (CLOCK_MONOTONIC seconds).
    pub worst_by_second: std::collections::BTreeMap<u64, u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    /// Not connected; connects again at this time.
    Waiting(u64),
    Connecting,
    Head,
    Streaming,
    /// Not reading until this time.
    Stalled(u64),
}

struct Sub {
    topics: u64,
    stage: Stage,
    stream: Option<TcpStream>,
    generation: u32,
    opened_ns: u64,
    head: Vec<u8>,
    chunks: Option<ChunkDecoder>,
    parser: SseParser,
    last_id: u64,
    last_seq: u64,
    received: Vec<u64>,
    next_cut_ns: u64,
    done: bool,
}

/// Runs the subscribers until `shared.stop`; returns what they saw.
pub fn spawn(config: StreamsConfig, shared: Arc<Shared>) -> std::thread::JoinHandle<Result<StreamsOutcome, String>> {
    std::thread::spawn(move || {
        let mut engine = Engine::new(config, shared)?;
        engine.run()?;
        Ok(engine.outcome())
    })
}

struct Engine {
    config: StreamsConfig,
    shared: Arc<Shared>,
    poll: Poll,
    subs: Vec<Sub>,
    pending: usize,
    streaming: u64,
    done: u64,
    totals: Totals,
    histogram: Histogram,
    worst_by_second: std::collections::BTreeMap<u64, u64>,
    rng: Rng,
    /// The cut rate the schedules were drawn for.
    cut_rate: f64,
}

/// How long a connection may take to connect and answer its head.
const CONNECT_TIMEOUT_NS: u64 = 5_000_000_000;
/// Pause before connecting again after a failed attempt.
const RETRY_NS: u64 = 100_000_000;
const HOUSEKEEPING_NS: u64 = 10_000_000;

impl Engine {
    fn new(config: StreamsConfig, shared: Arc<Shared>) -> Result<Engine, String> {
        let subs = config
            .topic_sets
            .iter()
            .map(|&topics| Sub {
                topics,
                stage: Stage::Waiting(0),
                stream: None,
                generation: 0,
                opened_ns: 0,
                head: Vec::new(),
                chunks: None,
                parser: SseParser::default(),
                last_id: config.start_id,
                last_seq: 0,
                received: Vec::new(),
                next_cut_ns: 0,
                done: false,
            })
            .collect();
        Ok(Engine {
            poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
            rng: Rng::new(config.seed),
            config,
            shared,
            subs,
            pending: 0,
            streaming: 0,
            done: 0,
            totals: Totals::default(),
            histogram: Histogram::default(),
            worst_by_second: Default::default(),
            cut_rate: 0.0,
        })
    }

    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(4096);
        let mut buf = vec![0u8; 64 * 1024];
        let mut next_housekeeping = 0;
        while !self.shared.stop.load(Ordering::Acquire) {
            let now = monotonic_ns();
            self.open_due(now);
            match self.poll.poll(&mut events, Some(Duration::from_millis(5))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            let now = monotonic_ns();
            for event in events.iter() {
                let index = event.token().0 & 0xffff_ffff;
                let generation = (event.token().0 >> 32) as u32;
                if self.subs.get(index).is_some_and(|s| s.generation == generation && s.stream.is_some()) {
                    let closed = event.is_read_closed() || event.is_error();
                    self.on_event(index, event.is_writable() || event.is_error(), closed, now, &mut buf);
                }
            }
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING_NS;
                self.housekeeping(now, &mut buf);
            }
        }
        for index in 0..self.subs.len() {
            self.drop_stream(index);
        }
        Ok(())
    }

    fn outcome(&mut self) -> StreamsOutcome {
        for sub in &self.subs {
            self.totals.gaps += sub.parser.gaps;
        }
        StreamsOutcome {
            records: self.subs.iter_mut().map(|s| std::mem::take(&mut s.received)).collect(),
            totals: std::mem::take(&mut self.totals),
            histogram: std::mem::take(&mut self.histogram),
            worst_by_second: std::mem::take(&mut self.worst_by_second),
        }
    }

    fn note_error(&mut self, what: String) {
        self.totals.first_error.get_or_insert(what);
    }

    // ---- connecting ------------------------------------------------------------------------

    fn open_due(&mut self, now: u64) {
        for index in 0..self.subs.len() {
            if self.pending >= self.config.max_pending {
                return;
            }
            if matches!(self.subs[index].stage, Stage::Waiting(at) if at <= now) {
                self.open(index, now);
            }
        }
    }

    fn open(&mut self, index: usize, now: u64) {
        let source = socket::source_address(self.config.source_offset + index, self.config.source_ips);
        let sub = &mut self.subs[index];
        sub.generation = sub.generation.wrapping_add(1);
        let token = Token(((sub.generation as usize) << 32) | index);
        let opened = socket::open(source, self.config.target, self.config.socket).and_then(|mut stream| {
            self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok(stream)
        });
        match opened {
            Ok(stream) => {
                sub.stream = Some(stream);
                sub.stage = Stage::Connecting;
                sub.opened_ns = now;
                sub.head.clear();
                sub.chunks = None;
                // A line cut off with the last connection must not run into the next one.
                let old = std::mem::take(&mut sub.parser);
                self.totals.gaps += old.gaps;
                self.pending += 1;
            }
            Err(e) => self.fail(index, format!("connect from {source}: {e}"), now),
        }
    }

    fn request(&self, index: usize) -> Vec<u8> {
        let sub = &self.subs[index];
        let mut path = String::from("/events");
        let mut separator = '?';
        for (t, name) in self.config.topic_names.iter().enumerate() {
            if sub.topics & (1 << t) != 0 {
                path.push(separator);
                path.push_str("topic=");
                path.push_str(name);
                separator = '&';
            }
        }
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nLast-Event-ID: {}\r\n\r\n",
            self.config.target, sub.last_id
        )
        .into_bytes()
    }

    fn send_request(&mut self, index: usize, now: u64) {
        let request = self.request(index);
        let stream = self.subs[index].stream.as_mut().expect("connecting has a stream");
        if let Ok(Some(e)) | Err(e) = stream.take_error() {
            return self.fail(index, format!("connect: {e}"), now);
        }
        if stream.peer_addr().is_err() {
            return; // still connecting: a later event completes it
        }
        // A fresh socket's send buffer takes the short request whole.
        match stream.write(&request) {
            Ok(n) if n == request.len() => self.subs[index].stage = Stage::Head,
            Ok(_) => self.fail(index, "request write was short".into(), now),
            Err(e) => self.fail(index, format!("request write: {e}"), now),
        }
    }

    /// A connection that never streamed: try again shortly.
    fn fail(&mut self, index: usize, why: String, now: u64) {
        if matches!(self.subs[index].stage, Stage::Connecting | Stage::Head) {
            self.pending -= 1;
        }
        self.drop_stream(index);
        self.subs[index].stage = Stage::Waiting(now + RETRY_NS);
        self.totals.connect_failures += 1;
        self.note_error(why);
    }

    fn drop_stream(&mut self, index: usize) -> Option<TcpStream> {
        let mut stream = self.subs[index].stream.take()?;
        let _ = self.poll.registry().deregister(&mut stream);
        Some(stream)
    }

    // ---- reading ---------------------------------------------------------------------------

    fn on_event(&mut self, index: usize, writable: bool, closed: bool, now: u64, buf: &mut [u8]) {
        match self.subs[index].stage {
            Stage::Connecting if writable => self.send_request(index, now),
            Stage::Head | Stage::Streaming => {
                self.read_all(index, now, buf, closed);
            }
            // Stalled: the data waits in the kernel until the stall ends.
            _ => {}
        }
    }

    /// Reads until the socket is drained; `to_the_end` when no later edge will announce what
    /// is left (the peer closed, or the data came while not reading). Returns false when the
    /// stream ended (and the subscriber was set to reconnect).
    fn read_all(&mut self, index: usize, now: u64, buf: &mut [u8], to_the_end: bool) -> bool {
        // Bounded (64 MB): more than any kernel buffer holds, so the socket is always drained
        // and the next arrival is a new edge.
        for _ in 0..1024 {
            let result = self.subs[index].stream.as_mut().expect("reading has a stream").read(buf);
            match result {
                Ok(0) => return self.end_stream(index, now, "server closed the stream".into()),
                Ok(n) => {
                    if let Err(why) = self.on_bytes(index, &buf[..n], now) {
                        return self.end_stream(index, now, why);
                    }
                    // A short read emptied the socket, and a later arrival is a new edge: the
                    // read that would only say EAGAIN is skipped.
                    if n < buf.len() && !to_the_end {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.end_stream(index, now, format!("read: {e}")),
            }
        }
        true
    }

    /// The server ended a stream (or the bytes were wrong): reconnect at once.
    fn end_stream(&mut self, index: usize, now: u64, why: String) -> bool {
        if self.subs[index].stage != Stage::Streaming {
            self.fail(index, why, now);
            return false;
        }
        self.totals.server_closed += 1;
        self.note_error(why);
        self.close_stream(index, now);
        false
    }

    fn close_stream(&mut self, index: usize, now: u64) {
        self.drop_stream(index);
        self.streaming -= 1;
        self.subs[index].stage = Stage::Waiting(now);
    }

    fn on_bytes(&mut self, index: usize, bytes: &[u8], now: u64) -> Result<(), String> {
        if self.subs[index].stage == Stage::Streaming {
            return self.on_body(index, bytes, now);
        }
        let sub = &mut self.subs[index];
        sub.head.extend_from_slice(bytes);
        let head = match parse_response_head(&sub.head) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(()) => return Err("unparsable response head".into()),
        };
        if head.status != 200 || !head.event_stream {
            let text = String::from_utf8_lossy(&sub.head[..sub.head.len().min(80)]).into_owned();
            return Err(format!("not an event stream: {}", text.lines().next().unwrap_or("")));
        }
        sub.chunks = head.chunked.then(ChunkDecoder::default);
        sub.stage = Stage::Streaming;
        let rest = std::mem::take(&mut sub.head).split_off(head.len);
        self.pending -= 1;
        self.streaming += 1;
        self.totals.connects += 1;
        self.on_body(index, &rest, now)
    }

    fn on_body(&mut self, index: usize, bytes: &[u8], now: u64) -> Result<(), String> {
        let check = self.config.check;
        let size = self.config.event_size;
        let sub = &mut self.subs[index];
        let totals = &mut self.totals;
        let histogram = &mut self.histogram;
        let worst = &mut self.worst_by_second;
        let (last_id, last_seq, received, topics) =
            (&mut sub.last_id, &mut sub.last_seq, &mut sub.received, sub.topics);
        let mut record = |event: Event| {
            let state = SubState { last_id: &mut *last_id, last_seq: &mut *last_seq, received: &mut *received, topics };
            record(state, check, size, event, now, totals, histogram, worst)
        };
        let parsed = match sub.chunks.as_mut() {
            None => sub.parser.feed(bytes, &mut record),
            Some(chunks) => chunks.decode(bytes, &mut |data| sub.parser.feed(data, &mut record)).map(|_| ()),
        };
        parsed.map_err(|()| "malformed stream".to_string())
    }

    // ---- cuts, stalls, progress ------------------------------------------------------------

    fn housekeeping(&mut self, now: u64, buf: &mut [u8]) {
        self.time_out_connects(now);
        self.end_stalls(now, buf);
        self.make_cuts(now);
        self.check_done();
        self.shared.streaming.store(self.streaming, Ordering::Release);
        self.shared.received.store(self.totals.received, Ordering::Release);
    }

    fn time_out_connects(&mut self, now: u64) {
        if self.pending == 0 {
            return;
        }
        for index in 0..self.subs.len() {
            let sub = &self.subs[index];
            if matches!(sub.stage, Stage::Connecting | Stage::Head) && now - sub.opened_ns > CONNECT_TIMEOUT_NS {
                self.fail(index, "connect timed out".into(), now);
            }
        }
    }

    fn end_stalls(&mut self, now: u64, buf: &mut [u8]) {
        for index in 0..self.subs.len() {
            if matches!(self.subs[index].stage, Stage::Stalled(until) if until <= now) {
                self.subs[index].stage = Stage::Streaming;
                let dropped_before = self.totals.server_closed;
                if !self.read_all(index, now, buf, true) && self.totals.server_closed > dropped_before {
                    // The close was the server's answer to the stall, not a surprise.
                    self.totals.server_closed -= 1;
                    self.totals.stalls_dropped += 1;
                }
            }
        }
    }

    fn make_cuts(&mut self, now: u64) {
        let rate = self.shared.cut_rate();
        let kinds: Vec<u64> = [CUT_CLOSE, CUT_RESET, CUT_STALL]
            .into_iter()
            .filter(|k| self.shared.cut_kinds.load(Ordering::Acquire) & k != 0)
            .collect();
        if rate <= 0.0 || kinds.is_empty() {
            self.cut_rate = 0.0;
            return;
        }
        let mean_ns = 1e9 / rate;
        if rate != self.cut_rate {
            // Cuts start (or change pace): every subscriber draws its first one.
            self.cut_rate = rate;
            for sub in &mut self.subs {
                sub.next_cut_ns = now + self.rng.exponential_ns(mean_ns);
            }
        }
        for index in 0..self.subs.len() {
            let sub = &self.subs[index];
            if sub.stage != Stage::Streaming || sub.next_cut_ns > now {
                continue;
            }
            let kind = kinds[self.rng.below(kinds.len() as u64) as usize];
            self.subs[index].next_cut_ns = now + self.rng.exponential_ns(mean_ns);
            self.cut(index, kind, now);
        }
    }

    fn cut(&mut self, index: usize, kind: u64, now: u64) {
        match kind {
            CUT_STALL => {
                self.totals.stalls += 1;
                self.subs[index].stage = Stage::Stalled(now + self.config.stall.as_nanos() as u64);
            }
            CUT_RESET => {
                self.totals.cuts_reset += 1;
                if let Some(stream) = self.drop_stream(index) {
                    socket::reset(stream);
                }
                self.streaming -= 1;
                self.subs[index].stage = Stage::Waiting(now);
            }
            _ => {
                self.totals.cuts_close += 1;
                self.close_stream(index, now);
            }
        }
    }

    fn check_done(&mut self) {
        let finals = self.shared.final_ids.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(finals) = finals else { return };
        for sub in &mut self.subs {
            if sub.done {
                continue;
            }
            let target = (0..finals.len())
                .filter(|&t| sub.topics == 0 || sub.topics & (1 << t) != 0)
                .map(|t| finals[t])
                .max()
                .unwrap_or(0);
            if sub.last_id >= target {
                sub.done = true;
                self.done += 1;
            }
        }
        self.shared.done.store(self.done, Ordering::Release);
    }
}

/// The part of a subscriber an arriving event changes.
struct SubState<'a> {
    last_id: &'a mut u64,
    last_seq: &'a mut u64,
    received: &'a mut Vec<u64>,
    topics: u64,
}

#[allow(clippy::too_many_arguments)]
fn record(
    sub: SubState,
    check: Check,
    size: usize,
    event: Event,
    now: u64,
    totals: &mut Totals,
    histogram: &mut Histogram,
    worst: &mut std::collections::BTreeMap<u64, u64>,
) {
    totals.received += 1;
    if event.id == 0 || !event.numbered || event.data_len != size {
        totals.malformed += 1;
        return;
    }
    let latency = now.saturating_sub(event.sent_ns);
    histogram.record(latency);
    let slot = worst.entry(event.sent_ns / 1_000_000_000).or_insert(0);
    *slot = (*slot).max(latency);
    if sub.topics != 0 && (event.tag >= 64 || sub.topics & (1 << event.tag) == 0) {
        totals.foreign += 1;
    }
    match check {
        Check::List => sub.received.push(event.id),
        Check::Consecutive => {
            if event.seq == *sub.last_seq + 1 {
                *sub.last_seq = event.seq;
            } else if event.seq <= *sub.last_seq {
                totals.repeated += 1;
            } else {
                totals.lost += event.seq - *sub.last_seq - 1;
                *sub.last_seq = event.seq;
            }
        }
    }
    *sub.last_id = event.id;
}

/// What the List check finds for one subscriber.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// Published events of its topics it never received.
    pub missing: u64,
    /// Receptions of an event it had already received.
    pub duplicated: u64,
    /// Events received after one with a higher id.
    pub reordered: u64,
    /// Events received that were not published to its topics.
    pub unexpected: u64,
}

impl Comparison {
    pub fn exact(&self) -> bool {
        *self == Comparison::default()
    }
}

/// Compares what a subscriber received with what it should have, in order: `expected` is the
/// ids published to its topics, ascending.
pub fn compare(expected: &[u64], received: &[u64]) -> Comparison {
    if expected == received {
        return Comparison::default();
    }
    let mut distinct = received.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let in_expected = |id: &u64| expected.binary_search(id).is_ok();
    Comparison {
        missing: expected.iter().filter(|id| distinct.binary_search(id).is_err()).count() as u64,
        duplicated: (received.len() - distinct.len()) as u64,
        reordered: received.windows(2).filter(|w| w[1] < w[0]).count() as u64,
        unexpected: distinct.iter().filter(|id| !in_expected(id)).count() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_each_kind_of_fault() {
        assert!(compare(&[1, 2, 3], &[1, 2, 3]).exact());
        assert_eq!(compare(&[1, 2, 3], &[1, 3]), Comparison { missing: 1, ..Default::default() });
        assert_eq!(
            compare(&[1, 2, 3], &[1, 2, 2, 3]),
            Comparison { duplicated: 1, reordered: 0, ..Default::default() }
        );
        assert_eq!(compare(&[1, 2, 3], &[1, 3, 2]), Comparison { reordered: 1, ..Default::default() });
        assert_eq!(compare(&[1, 2, 3], &[1, 2, 3, 9]), Comparison { unexpected: 1, ..Default::default() });
        // A replay from too far back: duplicates that also go backwards.
        assert_eq!(
            compare(&[1, 2, 3], &[1, 2, 1, 2, 3]),
            Comparison { duplicated: 2, reordered: 1, ..Default::default() }
        );
    }
}
