//! The publisher: HTTP POSTs over one keep-alive connection, pipelined up to a bounded depth.
//! One connection keeps the publish order well defined, so any reordering a subscriber sees
//! is the server's. Each event's data starts with "SEQ SEND_TIME_NS" (CLOCK_MONOTONIC).

use crate::control::{self, Control};
use crate::procstat::monotonic_ns;
use crate::sse::{ChunkDecoder, parse_response_head};
use crate::transport::Transport;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Write};
use std::sync::Arc;
use std::net::SocketAddrV4;
use std::time::Duration;

pub struct PublishConfig {
    pub target: SocketAddrV4,
    pub publish_path: String,
    /// Data bytes per event.
    pub size: usize,
    /// Lines of data per event.
    pub lines: usize,
    /// Events per second; None publishes as fast as the server answers.
    pub rate: Option<f64>,
    pub duration_s: f64,
    /// Requests in flight at most.
    pub depth: usize,
    /// Publishing pauses while subscribers are on average more than this many events behind,
    /// so that a run measures sustained delivery instead of filling buffers.
    pub max_lag: u64,
    pub workers: usize,
    pub subscribers: u64,
    /// Publish over TLS with this client configuration.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Default)]
pub struct PublishOutcome {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Time spent waiting because subscribers lagged.
    pub throttled_ns: u64,
    /// Rate mode: events sent more than one interval after their time (the server could not
    /// keep up with the rate).
    pub late: u64,
    pub reconnects: u64,
    pub first_error: Option<String>,
}

/// Shortest data that still holds "SEQ TS\n" and some padding.
pub const MIN_SIZE: usize = 48;

struct Connection {
    stream: Transport,
    out: Vec<u8>,
    out_pos: usize,
    input: Vec<u8>,
    in_flight: usize,
}

fn connect(target: SocketAddrV4, poll: &Poll, tls: Option<&Arc<rustls::ClientConfig>>) -> io::Result<Connection> {
    let std_stream = std::net::TcpStream::connect_timeout(&target.into(), Duration::from_secs(5))?;
    std_stream.set_nodelay(true)?;
    std_stream.set_nonblocking(true)?;
    let mut stream = TcpStream::from_std(std_stream);
    poll.registry().register(&mut stream, Token(0), Interest::READABLE | Interest::WRITABLE)?;
    let stream = Transport::new(stream, tls)?;
    Ok(Connection { stream, out: Vec::with_capacity(64 * 1024), out_pos: 0, input: Vec::with_capacity(64 * 1024), in_flight: 0 })
}

/// Writes the data of event `seq` into `out`: exactly `size` bytes, "SEQ SEND_TIME_NS" then
/// padding, on `lines` lines (a multi-line event is framed as several `data:` lines).
fn append_event_data(out: &mut Vec<u8>, seq: u64, size: usize, lines: usize) {
    let start = out.len();
    // The send time is taken as late as possible: right before the request is written.
    write!(out, "{seq} {} ", monotonic_ns()).unwrap();
    let used = out.len() - start;
    out.resize(start + size.max(used), b'x');
    // Line breaks spread over the padding, never at its very end (that would be a last empty
    // line, which is legal but makes the data length depend on the server's framing).
    let padding = out.len() - start - used;
    for line in 1..lines {
        let at = start + used + padding * line / lines;
        out[at] = b'\n';
    }
}

struct Publisher<'a> {
    config: &'a PublishConfig,
    control: &'a Control,
    poll: Poll,
    conn: Connection,
    head: Vec<u8>,
    outcome: PublishOutcome,
    throttled_since: Option<u64>,
}

pub fn publish(config: &PublishConfig, control: &Control) -> Result<PublishOutcome, String> {
    let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let conn = connect(config.target, &poll, config.tls.as_ref()).map_err(|e| format!("publisher connect to {}: {e}", config.target))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        config.publish_path, config.target, config.size
    )
    .into_bytes();
    let mut publisher = Publisher { config, control, poll, conn, head, outcome: PublishOutcome::default(), throttled_since: None };
    publisher.run()?;
    Ok(publisher.outcome)
}

impl Publisher<'_> {
    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(64);
        let start = monotonic_ns();
        self.outcome.start_ns = start;
        let end = start + (self.config.duration_s * 1e9) as u64;
        let interval_ns = self.config.rate.map(|r| (1e9 / r) as u64);
        // Answers still missing this long after the last send are given up on.
        let give_up = end + 15_000_000_000;
        let mut next_tick = start;
        loop {
            let now = monotonic_ns();
            if now >= give_up {
                self.outcome.errors += self.conn.in_flight as u64;
                self.note_error("answers timed out");
                break;
            }
            if now < end {
                match interval_ns {
                    Some(interval) => self.send_on_schedule(now, &mut next_tick, interval),
                    None => self.send_as_fast_as_allowed(now),
                }
            } else if self.conn.in_flight == 0 {
                break;
            }
            self.flush()?;
            let wait_ns = match interval_ns {
                Some(_) if now < end => next_tick.saturating_sub(monotonic_ns()).max(100_000),
                _ => 1_000_000,
            };
            self.poll.poll(&mut events, Some(Duration::from_nanos(wait_ns))).map_err(|e| format!("poll: {e}"))?;
            if !events.is_empty() {
                self.read_answers()?;
            }
        }
        self.outcome.end_ns = monotonic_ns();
        Ok(())
    }

    fn send_on_schedule(&mut self, now: u64, next_tick: &mut u64, interval: u64) {
        while now >= *next_tick {
            if self.conn.in_flight >= self.config.depth {
                return; // sent as soon as an answer frees a slot, and counted late then
            }
            if now - *next_tick > interval {
                self.outcome.late += 1;
            }
            self.queue_event();
            *next_tick += interval;
        }
    }

    fn send_as_fast_as_allowed(&mut self, now: u64) {
        while self.conn.in_flight < self.config.depth {
            if self.subscribers_lag() > self.config.max_lag {
                self.throttled_since.get_or_insert(now);
                return;
            }
            if let Some(since) = self.throttled_since.take() {
                self.outcome.throttled_ns += now - since;
            }
            self.queue_event();
        }
    }

    /// Events sent minus the mean number received per subscriber.
    fn subscribers_lag(&self) -> u64 {
        let received = self.control.sum(self.config.workers, control::RECEIVED);
        self.outcome.sent.saturating_sub(received / self.config.subscribers.max(1))
    }

    fn queue_event(&mut self) {
        self.outcome.sent += 1;
        let out = &mut self.conn.out;
        out.extend_from_slice(&self.head);
        append_event_data(out, self.outcome.sent, self.config.size, self.config.lines);
        self.conn.in_flight += 1;
        // Written right away so that the embedded send time is accurate.
        let _ = self.flush();
    }

    fn flush(&mut self) -> Result<(), String> {
        let conn = &mut self.conn;
        while conn.out_pos < conn.out.len() {
            match conn.stream.write(&conn.out[conn.out_pos..]) {
                Ok(0) => return self.reconnect("publisher connection closed on write"),
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.reconnect(&format!("publisher write: {e}")),
            }
        }
        conn.out.clear();
        conn.out_pos = 0;
        if let Err(e) = conn.stream.flush() {
            return self.reconnect(&format!("publisher TLS write: {e}"));
        }
        Ok(())
    }

    fn read_answers(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..1024 {
            match self.conn.stream.read(&mut buf) {
                Ok(0) => return self.reconnect("publisher connection closed by the server"),
                Ok(n) => {
                    self.conn.input.extend_from_slice(&buf[..n]);
                    self.consume_answers()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.reconnect(&format!("publisher read: {e}")),
            }
        }
        Ok(())
    }

    /// Takes every complete answer off the front of the input buffer.
    fn consume_answers(&mut self) -> Result<(), String> {
        let mut used = 0;
        loop {
            let input = &self.conn.input[used..];
            let head = match parse_response_head(input) {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(()) => return Err("unparsable answer to a publish".into()),
            };
            let body = &input[head.len..];
            let body_len = if head.chunked {
                let mut chunks = ChunkDecoder::default();
                let consumed = chunks.decode(body, &mut |_| Ok(())).map_err(|()| "bad chunked answer")?;
                if !chunks.is_done() {
                    break;
                }
                consumed
            } else {
                let len = head.content_length.unwrap_or(0) as usize;
                if body.len() < len {
                    break;
                }
                len
            };
            if (200..300).contains(&head.status) {
                self.outcome.ok += 1;
            } else {
                self.outcome.errors += 1;
                let text = String::from_utf8_lossy(&body[..body_len.min(120)]).trim().to_string();
                self.note_error(&format!("publish answered {}: {text}", head.status));
            }
            self.conn.in_flight = self.conn.in_flight.saturating_sub(1);
            used += head.len + body_len;
        }
        self.conn.input.drain(..used);
        Ok(())
    }

    /// A server may close a keep-alive connection (request limits); the requests in flight on
    /// it are counted as failed and publishing goes on over a new connection.
    fn reconnect(&mut self, why: &str) -> Result<(), String> {
        self.outcome.errors += self.conn.in_flight as u64;
        self.outcome.reconnects += 1;
        self.note_error(why);
        if self.outcome.reconnects > 100 {
            return Err(format!("giving up after 100 reconnects: {why}"));
        }
        let _ = self.poll.registry().deregister(self.conn.stream.tcp());
        self.conn = connect(self.config.target, &self.poll, self.config.tls.as_ref()).map_err(|e| format!("publisher reconnect: {e}"))?;
        Ok(())
    }

    fn note_error(&mut self, what: &str) {
        self.outcome.first_error.get_or_insert_with(|| what.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_has_the_exact_size_and_lines() {
        for lines in 1..5 {
            let mut out = Vec::new();
            append_event_data(&mut out, 42, 200, lines);
            assert_eq!(out.len(), 200);
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with("42 "));
            assert_eq!(text.split('\n').count(), lines);
            assert!(text.split('\n').all(|l| !l.is_empty()));
        }
    }
}
