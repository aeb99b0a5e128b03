//! A subscriber process: holds up to ~19k SSE connections on one mio loop, parses every byte
//! they receive, and checks each event's sequence number and latency.

use crate::control::{self, Control};
use crate::histogram::Histogram;
use crate::procstat::monotonic_ns;
use crate::socket::{self, SocketOptions};
use crate::transport::Transport;
use crate::sse::{ChunkDecoder, Event, SseParser, parse_response_head};
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::sync::Arc;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

pub struct WorkerConfig {
    pub target: SocketAddrV4,
    pub subscribe_path: String,
    /// Index of this process's first subscriber among all of them (spreads source addresses).
    pub first_index: usize,
    pub count: usize,
    pub source_ips: u32,
    /// Data length every event must have; others count as malformed.
    pub event_size: Option<usize>,
    /// Connections being set up at once: more would overflow the server's listen backlog, and
    /// a dropped SYN costs a one-second retransmit.
    pub max_pending: usize,
    pub connect_timeout_s: u64,
    pub control_path: PathBuf,
    pub slot: usize,
    /// Hard stop, in case the coordinator never says so.
    pub max_seconds: u64,
    /// Subscribe over TLS with this client configuration.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Stage {
    NotOpened,
    Connecting,
    /// Request sent, response head not complete yet.
    Head,
    Streaming,
    /// Never got to stream (refused, timed out, bad answer).
    Failed,
    /// Was streaming and the server closed.
    Closed,
}

/// Per-subscriber figures, checked against what the publisher sent.
#[derive(Default)]
struct Tally {
    last_seq: u64,
    received: u64,
    reordered: u64,
    malformed: u64,
}

struct Subscriber {
    stream: Option<Transport>,
    stage: Stage,
    opened_ns: u64,
    head: Vec<u8>,
    chunks: Option<ChunkDecoder>,
    parser: SseParser,
    tally: Tally,
}

impl Subscriber {
    fn new() -> Subscriber {
        Subscriber {
            stream: None,
            stage: Stage::NotOpened,
            opened_ns: 0,
            head: Vec::new(),
            chunks: None,
            parser: SseParser::default(),
            tally: Tally::default(),
        }
    }
}

/// Everything an arriving event is checked against and counted into.
struct Recorder<'a> {
    histogram: &'a mut Histogram,
    event_size: Option<usize>,
    now_ns: u64,
    received_total: &'a mut u64,
    last_receive_ns: &'a mut u64,
}

impl Recorder<'_> {
    fn record(&mut self, tally: &mut Tally, event: Event) {
        let size_ok = self.event_size.is_none_or(|size| size == event.data_len);
        if !event.numbered || !size_ok {
            tally.malformed += 1;
            return;
        }
        if event.seq <= tally.last_seq {
            tally.reordered += 1;
            return;
        }
        tally.last_seq = event.seq;
        tally.received += 1;
        *self.received_total += 1;
        *self.last_receive_ns = self.now_ns;
        self.histogram.record(self.now_ns.saturating_sub(event.sent_ns));
    }
}

struct Worker {
    config: WorkerConfig,
    control: Control,
    poll: Poll,
    subs: Vec<Subscriber>,
    request: Vec<u8>,
    next_to_open: usize,
    pending: usize,
    streaming: usize,
    failed: usize,
    closed: usize,
    histogram: Histogram,
    received_total: u64,
    first_receive_ns: u64,
    last_receive_ns: u64,
    started_ns: u64,
    connect_done_ns: u64,
    first_error: Option<String>,
}

pub fn run_worker(config: WorkerConfig) -> Result<(), String> {
    let control = Control::open(&config.control_path).map_err(|e| format!("control block: {e}"))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        config.subscribe_path, config.target
    )
    .into_bytes();
    let mut worker = Worker {
        subs: (0..config.count).map(|_| Subscriber::new()).collect(),
        poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
        config,
        control,
        request,
        next_to_open: 0,
        pending: 0,
        streaming: 0,
        failed: 0,
        closed: 0,
        histogram: Histogram::default(),
        received_total: 0,
        first_receive_ns: 0,
        last_receive_ns: 0,
        started_ns: monotonic_ns(),
        connect_done_ns: 0,
        first_error: None,
    };
    worker.event_loop()?;
    println!("{}", worker.result_line());
    Ok(())
}

impl Worker {
    fn event_loop(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(4096);
        // One read buffer for every connection: reads are drained and parsed at once.
        let mut buf = vec![0u8; 64 * 1024];
        let parent = std::os::unix::process::parent_id();
        let deadline = self.started_ns + self.config.max_seconds * 1_000_000_000;
        let mut next_housekeeping = 0;
        loop {
            self.open_more();
            self.poll.poll(&mut events, Some(Duration::from_millis(5))).map_err(|e| format!("poll: {e}"))?;
            let now = monotonic_ns();
            for event in events.iter() {
                self.handle_event(event.token().0, event.is_writable() || event.is_error(), now, &mut buf);
            }
            self.publish_progress();
            if now >= next_housekeeping {
                next_housekeeping = now + 100_000_000;
                self.time_out_slow_connects(now);
                if std::os::unix::process::parent_id() != parent || now > deadline {
                    return Err("coordinator gone or time limit reached".into());
                }
            }
            if self.control.phase() == control::PHASE_STOP {
                return Ok(());
            }
        }
    }

    fn open_more(&mut self) {
        while self.pending < self.config.max_pending && self.next_to_open < self.subs.len() {
            let index = self.next_to_open;
            self.next_to_open += 1;
            let source = socket::source_address(self.config.first_index + index, self.config.source_ips);
            let tls = self.config.tls.as_ref();
            let opened = socket::open(source, self.config.target, SocketOptions::default()).and_then(|mut stream| {
                self.poll.registry().register(&mut stream, Token(index), Interest::READABLE | Interest::WRITABLE)?;
                Transport::new(stream, tls)
            });
            let sub = &mut self.subs[index];
            sub.opened_ns = monotonic_ns();
            match opened {
                Ok(stream) => {
                    sub.stream = Some(stream);
                    sub.stage = Stage::Connecting;
                    self.pending += 1;
                }
                Err(e) => self.fail(index, &format!("connect from {source}: {e}")),
            }
        }
    }

    fn handle_event(&mut self, index: usize, writable: bool, now: u64, buf: &mut [u8]) {
        match self.subs[index].stage {
            Stage::Connecting if writable => self.send_request(index),
            Stage::Connecting => {}
            Stage::Head | Stage::Streaming => self.read_all(index, now, buf),
            _ => {}
        }
    }

    fn send_request(&mut self, index: usize) {
        let sub = &mut self.subs[index];
        let stream = sub.stream.as_mut().unwrap();
        if let Ok(Some(e)) | Err(e) = stream.tcp().take_error() {
            return self.fail(index, &format!("connect: {e}"));
        }
        if stream.tcp().peer_addr().is_err() {
            return; // still connecting: a later event completes it
        }
        // A fresh socket's send buffer takes the ~100-byte request whole.
        match stream.write(&self.request) {
            Ok(n) if n == self.request.len() => sub.stage = Stage::Head,
            Ok(_) => self.fail(index, "request write was short"),
            Err(e) => self.fail(index, &format!("request write: {e}")),
        }
    }

    /// Reads until the socket is drained. A read shorter than the buffer means it was empty
    /// at that moment; epoll reports any later arrival as a new edge, so the extra read that
    /// would only return EAGAIN is skipped (it would double the syscalls per delivery).
    fn read_all(&mut self, index: usize, now: u64, buf: &mut [u8]) {
        // Over TLS a short read says nothing of the socket: read to WouldBlock.
        let tls = self.subs[index].stream.as_ref().is_some_and(Transport::is_tls);
        for _ in 0..64 {
            let result = self.subs[index].stream.as_mut().unwrap().read(buf);
            match result {
                Ok(0) => return self.close(index, "server closed the stream"),
                Ok(n) => {
                    if let Err(reason) = self.on_bytes(index, &buf[..n], now) {
                        return self.close(index, &reason);
                    }
                    if n < buf.len() && !tls {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(index, &format!("read: {e}")),
            }
        }
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
        // The head buffer is freed: 19k idle subscribers should cost the load generator little.
        let rest = std::mem::take(&mut sub.head).split_off(head.len);
        self.pending -= 1;
        self.streaming += 1;
        self.note_connect_progress();
        self.on_body(index, &rest, now)
    }

    fn on_body(&mut self, index: usize, bytes: &[u8], now: u64) -> Result<(), String> {
        let before = self.received_total;
        let sub = &mut self.subs[index];
        let mut recorder = Recorder {
            histogram: &mut self.histogram,
            event_size: self.config.event_size,
            now_ns: now,
            received_total: &mut self.received_total,
            last_receive_ns: &mut self.last_receive_ns,
        };
        let parser = &mut sub.parser;
        let tally = &mut sub.tally;
        let mut on_event = |event: Event| recorder.record(tally, event);
        let parsed = match sub.chunks.as_mut() {
            None => parser.feed(bytes, &mut on_event),
            Some(chunks) => chunks.decode(bytes, &mut |data| parser.feed(data, &mut on_event)).map(|_| ()),
        };
        if self.first_receive_ns == 0 && self.received_total > before {
            self.first_receive_ns = now;
        }
        parsed.map_err(|()| "malformed stream".to_string())
    }

    fn fail(&mut self, index: usize, reason: &str) {
        let sub = &mut self.subs[index];
        if matches!(sub.stage, Stage::Connecting | Stage::Head) {
            self.pending -= 1;
        }
        sub.stage = Stage::Failed;
        self.drop_stream(index);
        self.failed += 1;
        self.first_error.get_or_insert_with(|| reason.to_string());
        self.note_connect_progress();
    }

    fn close(&mut self, index: usize, reason: &str) {
        if self.subs[index].stage != Stage::Streaming {
            return self.fail(index, reason);
        }
        self.subs[index].stage = Stage::Closed;
        self.drop_stream(index);
        self.streaming -= 1;
        self.closed += 1;
        self.first_error.get_or_insert_with(|| reason.to_string());
    }

    fn drop_stream(&mut self, index: usize) {
        if let Some(mut stream) = self.subs[index].stream.take() {
            let _ = self.poll.registry().deregister(stream.tcp());
        }
    }

    fn time_out_slow_connects(&mut self, now: u64) {
        if self.pending == 0 {
            return;
        }
        let limit = self.config.connect_timeout_s * 1_000_000_000;
        for index in 0..self.subs.len() {
            let sub = &self.subs[index];
            if matches!(sub.stage, Stage::Connecting | Stage::Head) && now - sub.opened_ns > limit {
                self.fail(index, "connect timed out");
            }
        }
    }

    fn note_connect_progress(&mut self) {
        let slot = self.config.slot;
        self.control.set_slot(slot, control::CONNECTED, self.streaming as u64);
        self.control.set_slot(slot, control::FAILED, self.failed as u64);
        if self.connect_done_ns == 0 && self.next_to_open == self.subs.len() && self.pending == 0 {
            self.connect_done_ns = monotonic_ns();
            self.control.set_slot(slot, control::CONNECT_DONE, 1);
        }
    }

    /// Tells the coordinator how far the subscribers have got, and whether all of them have
    /// every event once the publisher is done.
    fn publish_progress(&mut self) {
        let slot = self.config.slot;
        self.control.set_slot(slot, control::RECEIVED, self.received_total);
        self.control.set_slot(slot, control::LAST_RECEIVE_NS, self.last_receive_ns);
        if self.control.phase() == control::PHASE_DRAIN && self.control.slot(slot, control::ALL_RECEIVED) == 0 {
            let expected = self.control.expected();
            if self.received_total >= expected * self.streaming as u64 {
                self.control.set_slot(slot, control::ALL_RECEIVED, 1);
            }
        }
    }

    /// One line for the coordinator: counts, loss and reordering figures, and the histogram.
    fn result_line(&self) -> String {
        let expected = self.control.expected();
        let (mut lost, mut subs_lossy, mut max_loss, mut reordered, mut subs_reordered, mut malformed) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        let mut comments = 0;
        for sub in self.subs.iter().filter(|s| matches!(s.stage, Stage::Streaming | Stage::Closed)) {
            let loss = expected.saturating_sub(sub.tally.received);
            lost += loss;
            subs_lossy += (loss > 0) as u64;
            max_loss = max_loss.max(loss);
            reordered += sub.tally.reordered;
            subs_reordered += (sub.tally.reordered > 0) as u64;
            malformed += sub.tally.malformed;
            comments += sub.parser.comments;
        }
        let connect_ns = self.connect_done_ns.saturating_sub(self.started_ns);
        let error = self.first_error.as_deref().unwrap_or("-").replace(' ', "_");
        format!(
            "RESULT streaming={} failed={} closed={} connect_ns={connect_ns} received={} lost={lost} \
             subs_with_loss={subs_lossy} max_loss={max_loss} reordered={reordered} \
             subs_reordered={subs_reordered} malformed={malformed} comments={comments} \
             first_receive_ns={} last_receive_ns={} first_error={error} hist={}",
            self.streaming + self.closed,
            self.failed,
            self.closed,
            self.received_total,
            self.first_receive_ns,
            self.last_receive_ns,
            self.histogram.encode()
        )
    }
}
