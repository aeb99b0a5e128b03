//! Reconnect chaos at a size CI affords (the full size is `loadgen chaos`, see BENCHMARKS.md).
//!
//! Subscribers over several topics have their connections cut at random, in three ways: closed
//! by the client, reset (SO_LINGER 0), and starved (the client stops reading until the server
//! drops it for `max_queue`). Each reconnects with the id of the last whole event it received
//! as `Last-Event-ID`, while four publishers publish over HTTP. The subscribers record every
//! event exactly as received and never deduplicate; at the end each record must be exactly the
//! events published to its topics, each once, in publish order (the order of their ids).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{HttpReader, TestServer};
use ssed::Config;

const SUBSCRIBERS: usize = 100;
const PUBLISHERS: u64 = 4;
const EVENTS: u64 = 2000;
const TOPICS: usize = 4;
/// Events per second over all publishers: the run publishes for about 4 s.
const RATE: u64 = 500;
/// Data bytes per event: big enough that a stalled subscriber falls `MAX_QUEUE` behind fast.
const DATA: usize = 1000;
const MAX_QUEUE: usize = 16 * 1024;
/// Mean time between two cuts of one subscriber.
const CUT_EVERY: Duration = Duration::from_millis(500);
/// How long a starved subscriber stops reading: at ~250 KB/s per subscriber, several times
/// what the kernels and `MAX_QUEUE` hold for it (about 80 KB with the socket options below).
const STALL: Duration = Duration::from_millis(800);
/// The whole run, publishing and catching up, must be over by then.
const DEADLINE: Duration = Duration::from_secs(50);
/// Each read waits at most this long, so that cuts and the deadline are seen in time.
const READ_SLICE: Duration = Duration::from_millis(20);

/// What the subscriber threads and the test share.
struct Shared {
    addr: SocketAddr,
    /// Cleared when publishing is over: no more cuts.
    cutting: AtomicBool,
    /// Set when publishing is over: the last id published to each topic.
    finals: Mutex<Option<[u64; TOPICS]>>,
    deadline: Instant,
}

impl Shared {
    /// The id after which a subscriber to `topics` has everything, once publishing is over.
    fn last_id_for(&self, topics: u64) -> Option<u64> {
        let finals = (*self.finals.lock().unwrap())?;
        Some(
            (0..TOPICS)
                .filter(|&t| in_topics(topics, t))
                .map(|t| finals[t])
                .max()
                .unwrap_or(0),
        )
    }
}

fn in_topics(topics: u64, topic: usize) -> bool {
    topics == 0 || topics & (1 << topic) != 0
}

/// One accepted publish: its id and topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Published {
    id: u64,
    topic: usize,
}

#[derive(Default, Debug)]
struct Cuts {
    closed: usize,
    reset: usize,
    stalled: usize,
}

struct Subscriber {
    /// Bit t: topic t; 0 subscribes to every topic (no `topic` parameter).
    topics: u64,
    last_id: u64,
    /// Every event as received: (id, topic named in its data).
    received: Vec<(u64, usize)>,
    gaps: usize,
    connects: usize,
    cuts: Cuts,
    rng: u64,
}

impl Subscriber {
    fn random(&mut self) -> u64 {
        // xorshift64: enough to spread cuts.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// An exponentially distributed wait with mean CUT_EVERY: cuts come as a Poisson process.
    fn next_cut(&mut self) -> Instant {
        let unit = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
        Instant::now() + CUT_EVERY.mul_f64(-(1.0 - unit).ln())
    }

    fn request(&self) -> String {
        let topics: Vec<String> = (0..TOPICS)
            .filter(|&t| self.topics & (1 << t) != 0)
            .map(|t| format!("topic=t{t}"))
            .collect();
        let query = if topics.is_empty() {
            String::new()
        } else {
            format!("?{}", topics.join("&"))
        };
        format!(
            "GET /events{query} HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {}\r\n\r\n",
            self.last_id
        )
    }

    /// Takes every whole block off the front of `buf`. A block cut short by the end of a
    /// connection never completes: its event is not received, as in a browser.
    fn take_blocks(&mut self, buf: &mut Vec<u8>) {
        while let Some(end) = common::find(buf, b"\n\n") {
            let block = String::from_utf8(buf[..end].to_vec()).expect("the stream is UTF-8");
            buf.drain(..end + 2);
            self.take_block(&block);
        }
    }

    fn take_block(&mut self, block: &str) {
        let mut id = None;
        let mut topic = None;
        for line in block.lines() {
            if line == ": gap" {
                self.gaps += 1;
            } else if let Some(value) = line.strip_prefix("id: ") {
                // Ids ssed assigns are decimal; anything else is recorded as 0, a fault.
                id = Some(value.parse::<u64>().unwrap_or(0));
            } else if let Some(value) = line.strip_prefix("data: ") {
                // "PUBLISHER SEQ TOPIC padding"; no topic (the mark) is recorded as none.
                let field = value
                    .split(' ')
                    .nth(2)
                    .and_then(|t| t.parse::<usize>().ok());
                topic = Some(field.unwrap_or(usize::MAX));
            }
        }
        if let Some(topic) = topic {
            let id = id.unwrap_or(0);
            self.received.push((id, topic));
            self.last_id = id;
        }
    }
}

/// A blocking connection with the segment size of an Ethernet path and a small receive buffer.
/// On loopback's 64 KiB segments the kernels would buffer about 3 MB for a stream that is not
/// read, far ahead of the server's own queue; like this, about 65 KB.
fn open_stream(addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("the test server listens on IPv4")
    };
    // SAFETY: plain socket calls on a descriptor owned by `stream` from its creation; every
    // option value points to a live value of the stated size.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        for (level, name, value) in [
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG, 1400),
            (libc::SOL_SOCKET, libc::SO_RCVBUF, 4096),
        ] {
            let value: libc::c_int = value;
            let rc = libc::setsockopt(
                fd,
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
        }
        let remote = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &remote as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    };
    stream.set_read_timeout(Some(READ_SLICE)).unwrap();
    stream.set_write_timeout(Some(common::PATIENCE)).unwrap();
    stream
}

/// Closes with a RST instead of a FIN.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the option value points to a live linger struct of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// Reads one slice of the stream. Returns false when the connection is over (closed by the
/// server, or reset).
fn read_slice(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) =>
        {
            true
        }
        Err(_) => false,
    }
}

/// Reads the response head into `buf` and leaves the body after it. False if the connection
/// ended first.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> bool {
    loop {
        if let Some(end) = common::find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            assert!(
                head.starts_with("HTTP/1.1 200 OK\r\n"),
                "not a stream: {head}"
            );
            buf.drain(..end + 4);
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "no stream head before the deadline"
        );
        if !read_slice(stream, buf) {
            return false;
        }
    }
}

/// One subscriber's life: connect, read, get cut, reconnect with Last-Event-ID, until it has
/// the last event of its topics.
fn subscribe(shared: &Shared, mut sub: Subscriber) -> Subscriber {
    let mut next_cut = sub.next_cut();
    loop {
        assert!(
            Instant::now() < shared.deadline,
            "a subscriber (topics {:#b}) did not get its last event in time; it has {} events up to id {}",
            sub.topics,
            sub.received.len(),
            sub.last_id
        );
        let mut stream = open_stream(shared.addr);
        stream.write_all(sub.request().as_bytes()).unwrap();
        let mut buf = Vec::new();
        if !read_head(&mut stream, &mut buf, shared.deadline) {
            continue;
        }
        sub.connects += 1;
        loop {
            sub.take_blocks(&mut buf);
            if shared
                .last_id_for(sub.topics)
                .is_some_and(|last| sub.last_id >= last)
            {
                return sub;
            }
            assert!(
                Instant::now() < shared.deadline,
                "stream still open at the deadline"
            );
            if shared.cutting.load(Ordering::Acquire) && Instant::now() >= next_cut {
                next_cut = sub.next_cut();
                match sub.random() % 3 {
                    0 => {
                        sub.cuts.closed += 1;
                        break;
                    }
                    1 => {
                        sub.cuts.reset += 1;
                        reset(stream);
                        break;
                    }
                    _ => {
                        // Then read on: what the kernel kept, and the close if the server
                        // dropped this stream meanwhile.
                        sub.cuts.stalled += 1;
                        std::thread::sleep(STALL);
                    }
                }
            }
            if !read_slice(&mut stream, &mut buf) {
                sub.take_blocks(&mut buf);
                break;
            }
        }
    }
}

/// One publisher: `count` events on a keep-alive connection, at `RATE / PUBLISHERS` per second,
/// each to a random topic. A 503 (queue full) publishes nothing and closes the connection: the
/// same event is sent again on a new one.
fn publish(addr: SocketAddr, publisher: u64, count: u64, deadline: Instant) -> Vec<Published> {
    let interval = Duration::from_secs(PUBLISHERS) / RATE as u32;
    let start = Instant::now();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ publisher;
    let mut connection: Option<(TcpStream, HttpReader)> = None;
    let mut published = Vec::new();
    for seq in 0..count {
        let due = start + interval * seq as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let topic = (rng % TOPICS as u64) as usize;
        let mut data = format!("{publisher} {seq} {topic} ").into_bytes();
        data.resize(DATA, b'x');
        let mut request = format!(
            "POST /publish?topic=t{topic} HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n\
             Content-Length: {DATA}\r\n\r\n"
        )
        .into_bytes();
        request.extend_from_slice(&data);
        loop {
            assert!(
                Instant::now() < deadline,
                "publisher {publisher} could not publish in time"
            );
            let (stream, reader) =
                connection.get_or_insert_with(|| (common::connect(addr), HttpReader::default()));
            stream.write_all(&request).unwrap();
            let answer = reader.read_response(stream);
            match answer.status {
                200 => {
                    let id = answer
                        .text()
                        .trim()
                        .parse()
                        .expect("the 200 carries the id");
                    published.push(Published { id, topic });
                    break;
                }
                503 => {
                    connection = None;
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => panic!("publish answered {other}: {}", answer.text()),
            }
        }
    }
    published
}

/// The first difference between what a subscriber got and what it should have got.
fn describe_difference(expected: &[u64], received: &[u64]) -> String {
    let at = expected
        .iter()
        .zip(received)
        .position(|(e, r)| e != r)
        .unwrap_or(expected.len().min(received.len()));
    let window = |ids: &[u64]| ids[at.saturating_sub(2)..(at + 3).min(ids.len())].to_vec();
    format!(
        "{} events expected, {} received; first difference at #{at}: expected {:?}, received {:?}",
        expected.len(),
        received.len(),
        window(expected),
        window(received)
    )
}

fn dropped_slow(server: &TestServer) -> u64 {
    let metrics = server.get("/metrics").text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("ssed_subscribers_dropped_slow_total "))
        .expect("the metric is listed")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn every_subscriber_gets_each_event_of_its_topics_once_in_order_through_cuts() {
    let server = TestServer::start(Config {
        // Enough for every event: a reconnect never finds its id forgotten, so `: gap` is a fault.
        history: EVENTS as usize + 1,
        max_queue: MAX_QUEUE,
        ..Config::default()
    });
    let dropped_before = dropped_slow(&server);
    // Every subscriber's first Last-Event-ID: an event published to every topic before any
    // of them connects, so that no connection starts without one.
    let mark = server.publish_form("topic=t0&topic=t1&topic=t2&topic=t3&data=mark");
    assert_eq!(mark.status, 200, "{}", mark.text());
    let mark: u64 = mark.text().trim().parse().unwrap();

    let deadline = Instant::now() + DEADLINE;
    let shared = Arc::new(Shared {
        addr: server.addr,
        cutting: AtomicBool::new(true),
        finals: Mutex::new(None),
        deadline,
    });
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| {
            // Every non-empty set of topics; the set of all four is asked for without a topic.
            let set = 1 + (i as u64 % 15);
            let sub = Subscriber {
                topics: if set == 15 { 0 } else { set },
                last_id: mark,
                received: Vec::new(),
                gaps: 0,
                connects: 0,
                cuts: Cuts::default(),
                rng: 0x2545_F491_4F6C_DD1D ^ (i as u64 + 1),
            };
            let shared = shared.clone();
            std::thread::spawn(move || subscribe(&shared, sub))
        })
        .collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let addr = server.addr;
            std::thread::spawn(move || publish(addr, p, EVENTS / PUBLISHERS, deadline))
        })
        .collect();
    let mut published: Vec<Published> = publishers
        .into_iter()
        .flat_map(|p| p.join().expect("publisher"))
        .collect();
    published.sort();
    shared.cutting.store(false, Ordering::Release);
    let mut finals = [0u64; TOPICS];
    for p in &published {
        finals[p.topic] = p.id;
    }
    *shared.finals.lock().unwrap() = Some(finals);
    let subscribers: Vec<Subscriber> = subscribers
        .into_iter()
        .map(|s| s.join().expect("subscriber"))
        .collect();

    assert_eq!(published.len() as u64, EVENTS);
    assert!(
        published.windows(2).all(|w| w[0].id < w[1].id),
        "two publishes were given the same id"
    );
    let mut cuts = Cuts::default();
    for sub in &subscribers {
        let expected: Vec<u64> = published
            .iter()
            .filter(|p| in_topics(sub.topics, p.topic))
            .map(|p| p.id)
            .collect();
        let received: Vec<u64> = sub.received.iter().map(|&(id, _)| id).collect();
        assert!(
            received == expected,
            "subscriber to topics {:#b} ({} connections, {:?}): {}",
            sub.topics,
            sub.connects,
            sub.cuts,
            describe_difference(&expected, &received)
        );
        assert!(
            sub.received
                .iter()
                .all(|&(_, topic)| in_topics(sub.topics, topic)),
            "an event's data names a topic the subscriber did not ask for"
        );
        assert_eq!(sub.gaps, 0, "a replay was announced as incomplete");
        cuts.closed += sub.cuts.closed;
        cuts.reset += sub.cuts.reset;
        cuts.stalled += sub.cuts.stalled;
    }
    // The run tested what it claims: every kind of cut happened, and starved streams were
    // dropped by the server for max_queue.
    assert!(
        cuts.closed > 0 && cuts.reset > 0 && cuts.stalled > 0,
        "{cuts:?}"
    );
    let dropped = dropped_slow(&server) - dropped_before;
    assert!(
        dropped > 0,
        "no stream was dropped for max_queue ({cuts:?})"
    );
    eprintln!(
        "chaos: {EVENTS} events, {SUBSCRIBERS} subscribers, {cuts:?}, {dropped} dropped for max_queue"
    );
}
