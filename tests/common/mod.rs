//! Helpers shared by the integration tests: an in-process server on a loopback port, raw HTTP
//! clients, and an event-stream reader. Every read has a timeout, so no test can hang.
#![allow(dead_code)]

pub mod external;
pub mod jwt;
pub mod target;
#[cfg(feature = "tls")]
pub mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ssed::{Config, LogLevel, Server};

use target::TestHandle;

/// Upper bound for anything a test waits on.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A server running on its own thread; stopped and joined on drop. With `SSED_TEST_DAEMON`
/// set, the daemon under test instead (see `target`), stopped on drop too.
pub struct TestServer {
    pub handle: TestHandle,
    pub addr: SocketAddr,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    daemon: Option<external::Ssed>,
}

impl TestServer {
    /// Runs `config`; with one loop, as many as `SSED_TEST_LOOPS` says.
    pub fn start(mut config: Config) -> TestServer {
        if config.loops == 1 {
            config.loops = target::loops();
        }
        if target::external_daemon().is_some() {
            return TestServer::start_daemon(&config);
        }
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.log = LogLevel::Off;
        let server = Server::bind(config).expect("bind");
        let handle = TestHandle::in_process(server.handle());
        let addr = server.local_addr();
        let thread = Some(server.spawn().expect("spawn"));
        TestServer {
            handle,
            addr,
            thread,
            daemon: None,
        }
    }

    fn start_daemon(config: &Config) -> TestServer {
        let daemon = external::Ssed::start_with(target::daemon().args(target::daemon_args(config)));
        TestServer {
            handle: TestHandle::daemon(&daemon),
            addr: daemon.addr,
            thread: None,
            daemon: Some(daemon),
        }
    }

    pub fn default() -> TestServer {
        TestServer::start(Config::default())
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Sends one request on a fresh connection and returns the whole response (read to close).
    pub fn request(&self, raw: impl AsRef<[u8]>) -> Response {
        let mut stream = self.connect();
        stream.write_all(raw.as_ref()).unwrap();
        read_response(&mut stream)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request(format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        ))
    }

    /// Publishes a form body and returns the response.
    pub fn publish_form(&self, form: &str) -> Response {
        self.request(format!(
            "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ))
    }

    /// Opens a stream and checks its head.
    pub fn subscribe(&self, target: &str, extra_headers: &str) -> Sse {
        Sse::open(self.addr, target, extra_headers)
    }

    /// Waits until the server counts `n` subscribers, so that a publish that follows reaches them.
    pub fn wait_subscribers(&self, n: u64) {
        wait_until(|| self.handle.stats().subscribers == n, "subscriber count");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Polls `condition` every few milliseconds, failing the test after `PATIENCE`.
pub fn wait_until(mut condition: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Reads a response head only (of a stream, which does not end).
pub fn read_response_head(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while find(&buf, b"\r\n\r\n").is_none() {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => panic!("reading a response head: {other:?} after {buf:?}"),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Reads one response with a Content-Length, or to the close.
pub fn read_response(stream: &mut TcpStream) -> Response {
    HttpReader::default().read_response(stream)
}

/// Reads successive responses from one connection, keeping bytes that belong to the next one.
#[derive(Default)]
pub struct HttpReader {
    buf: Vec<u8>,
}

impl HttpReader {
    fn fill(&mut self, stream: &mut TcpStream, what: &str) {
        let mut chunk = [0u8; 4096];
        let n = loop {
            match stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other.unwrap_or_else(|e| panic!("reading {what}: {e}")),
            }
        };
        assert!(
            n > 0,
            "closed while reading {what}: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    pub fn read_response(&mut self, stream: &mut TcpStream) -> Response {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill(stream, "a response head");
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        self.buf.drain(..head_end);
        let status: u16 = head[9..12].parse().unwrap();
        let length = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        });
        let body = match length {
            _ if status < 200 => Vec::new(),
            Some(length) => {
                while self.buf.len() < length {
                    self.fill(stream, "a body");
                }
                self.buf.drain(..length).collect()
            }
            None => {
                let mut rest = std::mem::take(&mut self.buf);
                let _ = stream.read_to_end(&mut rest);
                rest
            }
        };
        Response { status, head, body }
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One block of an event stream, as a browser would parse it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Block {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    pub comments: Vec<String>,
}

/// The comment line every stream opens with, right after its head.
pub const OPENING: &[u8] = b":\n\n";

/// A raw event-stream reader over a loopback socket.
pub struct Sse {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Sse {
    /// Opens a stream at `addr` and checks that its head is a `200`.
    pub fn open(addr: SocketAddr, target: &str, extra_headers: &str) -> Sse {
        let mut stream = connect(addr);
        let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{extra_headers}\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut sse = Sse {
            stream,
            buf: Vec::new(),
        };
        let head = sse.read_head();
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n"),
            "not a stream: {head}"
        );
        sse
    }

    fn read_more(&mut self) -> bool {
        self.try_read_more()
            .unwrap_or_else(|e| panic!("stream read failed: {e}"))
    }

    /// Reads more; false at the end of the stream.
    fn try_read_more(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                // A signal meant for the test process (a child exiting) is no failure.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next block, or None when the stream ended, however it ended (closed, reset): for
    /// clients that reconnect, as a browser does.
    pub fn next_block_or_gone(&mut self) -> Option<Block> {
        loop {
            if let Some(block) = self.take_block() {
                return Some(block);
            }
            if !self.try_read_more().unwrap_or(false) {
                return None;
            }
        }
    }

    fn take_block(&mut self) -> Option<Block> {
        let i = find(&self.buf, b"\n\n")?;
        let raw = String::from_utf8(self.buf[..i + 1].to_vec()).expect("stream is UTF-8");
        self.buf.drain(..i + 2);
        Some(parse_block(&raw))
    }

    /// Reads the response head of the stream, and the comment line every stream opens with.
    pub fn read_head(&mut self) -> String {
        let head = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..i + 4].to_vec()).unwrap();
                self.buf.drain(..i + 4);
                break head;
            }
            assert!(self.read_more(), "closed before the stream head");
        };
        while self.buf.len() < OPENING.len() {
            assert!(self.read_more(), "closed before the opening comment");
        }
        assert_eq!(&self.buf[..OPENING.len()], OPENING, "the opening comment");
        self.buf.drain(..OPENING.len());
        head
    }

    /// The next block, or None when the server closed the stream.
    pub fn next_block(&mut self) -> Option<Block> {
        loop {
            if let Some(block) = self.take_block() {
                return Some(block);
            }
            if !self.read_more() {
                return None;
            }
        }
    }

    /// The next block that carries data, skipping comments and retry blocks.
    pub fn next_event(&mut self) -> Block {
        loop {
            let block = self
                .next_block()
                .expect("stream closed while waiting for an event");
            if block.data.is_some() {
                return block;
            }
        }
    }

    /// Reads until the server closes; returns the blocks seen.
    pub fn read_to_close(&mut self) -> Vec<Block> {
        let mut blocks = Vec::new();
        while let Some(block) = self.next_block() {
            blocks.push(block);
        }
        blocks
    }
}

fn parse_block(raw: &str) -> Block {
    let mut block = Block::default();
    let mut data_lines: Vec<&str> = Vec::new();
    for line in raw.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            block.comments.push(comment.trim_start().to_owned());
            continue;
        }
        let (name, value) = line
            .split_once(": ")
            .unwrap_or((line.trim_end_matches(':'), ""));
        match name {
            "id" => block.id = Some(value.to_owned()),
            "event" => block.event = Some(value.to_owned()),
            "retry" => block.retry = Some(value.to_owned()),
            "data" => data_lines.push(value),
            other => panic!("unexpected field {other:?} in {raw:?}"),
        }
    }
    if !data_lines.is_empty() {
        block.data = Some(data_lines.join("\n"));
    }
    block
}
