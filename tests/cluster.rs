//! The cluster on Redis Streams, with a real `redis-server` started on a free loopback port in a
//! temporary directory (AOF on): nodes deliver one order, a killed node's clients move to another
//! and miss nothing, a killed Redis makes publishing fail with 503 and loses no acknowledged
//! event, ids keep growing across restarts, and a failover to a promoted replica is noticed.
#![cfg(feature = "redis")]

mod common;

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::external::{Process, Ssed, TempDir, available, find_tool, free_port};
use common::{PATIENCE, Response, Sse, connect, read_response, wait_until};

// ---- Redis ----------------------------------------------------------------------------------

/// A `redis-server` of its own, stopped by PID on drop.
struct Redis {
    process: Process,
    port: u16,
}

impl Redis {
    /// A new redis-server on a free port (another test may take a port between the asking and
    /// the binding: then another port is tried).
    fn new(dir: &Path, extra: &[&str]) -> Redis {
        for _ in 0..5 {
            if let Some(redis) = Redis::try_start(dir, free_port(), extra) {
                return redis;
            }
        }
        panic!("redis-server could not start on any of five free ports");
    }

    /// A redis-server on `port` again (its data is in `dir`).
    fn start(dir: &Path, port: u16, extra: &[&str]) -> Redis {
        Redis::try_start(dir, port, extra)
            .unwrap_or_else(|| panic!("redis-server could not start on port {port}"))
    }

    /// Starts redis-server and waits until it answers; `None` when it exits first (its port was
    /// taken). Its own process must answer: `INFO` gives the pid.
    fn try_start(dir: &Path, port: u16, extra: &[&str]) -> Option<Redis> {
        let binary = find_tool("redis-server").expect("redis-server");
        let process = Process::start(
            Command::new(binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(dir)
                .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let mut redis = Redis { process, port };
        let pid = format!("process_id:{}", redis.process.pid());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if redis.process.exited().is_some() {
                return None;
            }
            let ours = redis.try_connection().is_some_and(|mut connection| {
                redis::cmd("INFO")
                    .arg("server")
                    .query::<String>(&mut connection)
                    .is_ok_and(|info| info.lines().any(|l| l.trim() == pid))
            });
            if ours {
                return Some(redis);
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn try_connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .ok()
            .map(|_| connection)
    }

    fn connection(&self) -> redis::Connection {
        self.try_connection().expect("a connection to redis-server")
    }

    fn kill9(&mut self) {
        self.process.signal(libc::SIGKILL);
        assert!(
            self.process.wait_exit(PATIENCE).is_some(),
            "redis-server outlived SIGKILL"
        );
    }
}

fn redis_here() -> bool {
    available(&["redis-server"], "the cluster tests")
}

// ---- nodes and clients ----------------------------------------------------------------------

/// A daemon in the cluster of `url`, once it has reached Redis.
fn node(url: &str, extra: &[&str]) -> Ssed {
    let mut args = vec!["--redis", url, "--heartbeat", "0"];
    args.extend_from_slice(extra);
    let node = Ssed::start(&args);
    wait_healthy(node.addr);
    node
}

fn get(addr: SocketAddr, path: &str) -> Response {
    let mut stream = connect(addr);
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    read_response(&mut stream)
}

fn healthy(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).is_ok() && get(addr, "/health").status == 200
}

fn wait_healthy(addr: SocketAddr) {
    wait_until(|| healthy(addr), "the node to reach Redis");
}

/// A metric of a node's `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = get(addr, "/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Publishes one event on a fresh connection; the response (or None if the node is gone).
fn publish(addr: SocketAddr, form: &str) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let request = format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some(Response {
        status: head.get(9..12)?.parse().ok()?,
        head: head.to_owned(),
        body: body.as_bytes().to_vec(),
    })
}

/// Publishes and expects a `200`; returns the id.
fn publish_ok(addr: SocketAddr, form: &str) -> String {
    let response = publish(addr, form).expect("the node answers");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

fn subscribe(addr: SocketAddr, target: &str, last_id: Option<&str>) -> std::io::Result<Sse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let header = last_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{header}\r\n");
    stream.write_all(request.as_bytes())?;
    let mut sse = Sse {
        stream,
        buf: Vec::new(),
    };
    sse.read_head();
    Ok(sse)
}

/// The next `n` events of a stream, as (id, data); panics on a `: gap`.
fn events(sse: &mut Sse, n: usize) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let block = sse.next_block().expect("stream ended early");
        assert!(!block.comments.iter().any(|c| c == "gap"), "unexpected gap");
        if let (Some(id), Some(data)) = (block.id, block.data) {
            seen.push((id, data));
        }
    }
    seen
}

fn position(id: &str) -> u64 {
    id.parse()
        .unwrap_or_else(|_| panic!("{id:?} is not an assigned id"))
}

/// Waits until `addr` counts `n` subscribers.
fn wait_subscribers(addr: SocketAddr, n: u64) {
    wait_until(|| metric(addr, "ssed_subscribers") == n, "subscribers");
}

// ---- a node through the C API ---------------------------------------------------------------

/// A node run by libssed's C API, in this process.
struct CNode {
    server: *mut ssed::ffi::sse_server,
    addr: SocketAddr,
}

impl CNode {
    fn start(url: &str) -> CNode {
        let url = CString::new(url).unwrap();
        let listen = CString::new("127.0.0.1:0").unwrap();
        // SAFETY: the config is filled by sse_config_init; its strings outlive sse_server_new.
        unsafe {
            let mut config = std::mem::zeroed::<ssed::ffi::sse_config>();
            ssed::ffi::sse_config_init(&mut config, size_of::<ssed::ffi::sse_config>());
            config.listen = listen.as_ptr();
            config.redis_url = url.as_ptr();
            config.heartbeat_ms = 0;
            config.log_level = 0;
            let server = ssed::ffi::sse_server_new(&config);
            assert!(!server.is_null(), "sse_server_new failed");
            assert_eq!(
                ssed::ffi::sse_server_start(server),
                ssed::ffi::sse_result::Ok
            );
            let port = ssed::ffi::sse_server_port(server);
            CNode {
                server,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            }
        }
    }

    /// `sse_publish` to the empty topic: the id, or a negative `sse_result`.
    fn publish(&self, data: &str, topic: &str) -> i64 {
        let topic = CString::new(topic).unwrap();
        // SAFETY: a live server; NUL-terminated topic; `data` holds `data.len()` bytes.
        unsafe {
            ssed::ffi::sse_publish(
                self.server,
                topic.as_ptr(),
                std::ptr::null(),
                data.as_ptr().cast(),
                data.len(),
                std::ptr::null(),
            )
        }
    }
}

impl Drop for CNode {
    fn drop(&mut self) {
        // SAFETY: freed once, here.
        unsafe { ssed::ffi::sse_server_free(&mut self.server) };
    }
}

// SAFETY: libssed's server may be used from any thread (see ssed.h).
unsafe impl Send for CNode {}
unsafe impl Sync for CNode {}

// ---- a switchable TCP forwarder (a floating address, a replication link that can be cut) ---

struct Forwarder {
    port: u16,
    target: Arc<Mutex<Option<u16>>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Forwarder {
    fn start(target: u16) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(Mutex::new(Some(target)));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (to, conns) = (target.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Some(port) = *to.lock().unwrap() else {
                    continue; // Cut: the connection is dropped at once.
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                let mut open = conns.lock().unwrap();
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(Shutdown::Both);
                    });
                }
                open.push(client);
                open.push(server);
            }
        });
        Forwarder { port, target, open }
    }

    /// Points new connections at `target` (`None`: refuse them) and breaks the open ones.
    fn switch(&self, target: Option<u16>) {
        *self.target.lock().unwrap() = target;
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

// ---- the tests ------------------------------------------------------------------------------

#[test]
fn three_nodes_deliver_the_same_events_in_the_same_order() {
    if !redis_here() {
        return;
    }
    let dir = TempDir::new("cluster-order");
    let redis = Redis::new(dir.path(), &[]);
    let a = node(&redis.url(), &[]);
    let b = node(&redis.url(), &[]);
    let c = CNode::start(&redis.url());
    wait_healthy(c.addr);
    let addrs = [a.addr, b.addr, c.addr];
    let mut everything: Vec<Sse> = addrs
        .iter()
        .map(|&addr| subscribe(addr, "/events", None).unwrap())
        .collect();
    let mut odd: Vec<Sse> = addrs
        .iter()
        .map(|&addr| subscribe(addr, "/events?topic=odd", None).unwrap())
        .collect();
    for addr in addrs {
        wait_subscribers(addr, 2);
    }

    // Three publishers at once: HTTP on two nodes, the C API on the third.
    const EACH: usize = 40;
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    std::thread::scope(|scope| {
        for (name, addr) in [("a", a.addr), ("b", b.addr)] {
            let acked = acked.clone();
            scope.spawn(move || {
                for i in 0..EACH {
                    let topic = if i % 2 == 1 { "odd" } else { "even" };
                    let data = format!("{name}-{i}");
                    let id = publish_ok(addr, &format!("topic={topic}&data={data}"));
                    acked.lock().unwrap().insert(data, id);
                }
            });
        }
        let (acked, c) = (acked.clone(), &c);
        scope.spawn(move || {
            for i in 0..EACH {
                let topic = if i % 2 == 1 { "odd" } else { "even" };
                let data = format!("c-{i}");
                let id = c.publish(&data, topic);
                assert!(id > 0, "sse_publish returned {id}");
                acked.lock().unwrap().insert(data, id.to_string());
            }
        });
    });
    // An event with an id of its own and two topics.
    let own = publish_ok(a.addr, "topic=odd&topic=even&id=own-1&data=own");
    assert_eq!(own, "own-1");
    acked.lock().unwrap().insert("own".into(), own);

    let total = 3 * EACH + 1;
    let sequences: Vec<Vec<(String, String)>> = everything
        .iter_mut()
        .map(|sse| events(sse, total))
        .collect();
    assert_eq!(sequences[0], sequences[1], "nodes a and b differ");
    assert_eq!(sequences[0], sequences[2], "nodes a and c differ");
    let acked = acked.lock().unwrap();
    let mut last = 0;
    let mut seen = HashSet::new();
    for (id, data) in &sequences[0] {
        assert_eq!(acked.get(data), Some(id), "{data} arrived with another id");
        assert!(seen.insert(data.clone()), "{data} arrived twice");
        if data != "own" {
            assert!(position(id) > last, "ids out of order at {data}");
            last = position(id);
        }
    }
    // Each publisher's events arrive in the order it published them.
    for name in ["a", "b", "c"] {
        let mine: Vec<&str> = sequences[0]
            .iter()
            .map(|(_, data)| data.as_str())
            .filter(|d| d.starts_with(&format!("{name}-")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("{name}-{i}")).collect();
        assert_eq!(mine, expected, "publisher {name}'s order");
    }
    let odd_expected: Vec<(String, String)> = sequences[0]
        .iter()
        .filter(|(_, data)| data == "own" || data.ends_with(['1', '3', '5', '7', '9']))
        .cloned()
        .collect();
    for sse in &mut odd {
        assert_eq!(events(sse, odd_expected.len()), odd_expected);
    }
}

#[test]
fn clients_of_a_killed_node_reconnect_to_another_and_miss_nothing() {
    if !redis_here() {
        return;
    }
    let dir = TempDir::new("cluster-kill-node");
    let redis = Redis::new(dir.path(), &[]);
    let a = node(&redis.url(), &[]);
    // A short ring: clients that come back more than four events behind replay from Redis.
    let b = node(&redis.url(), &["--history", "4"]);
    const CLIENTS: usize = 16;
    const EVENTS: usize = 400;
    let subscribers: Vec<Sse> = (0..CLIENTS)
        .map(|_| subscribe(a.addr, "/events", None).unwrap())
        .collect();
    wait_subscribers(a.addr, CLIENTS as u64);

    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let published = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (acked, published, b) = (acked.clone(), published.clone(), b.addr);
        std::thread::spawn(move || {
            for i in 0..EVENTS {
                let data = format!("e{i}");
                let id = publish_ok(b, &format!("data={data}"));
                acked.lock().unwrap().push((id, data));
                published.store(i + 1, Ordering::SeqCst);
                // Paced, so that the node is killed mid-stream.
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let clients: Vec<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(n, mut sse)| {
            let (published, killed, b) = (published.clone(), killed.clone(), b.addr);
            std::thread::spawn(move || {
                let mut seen: Vec<(String, String)> = Vec::new();
                let deadline = Instant::now() + 6 * PATIENCE;
                while seen.len() < EVENTS {
                    assert!(Instant::now() < deadline, "client {n} ran out of time");
                    match sse.next_block_or_gone() {
                        Some(block) => {
                            assert!(
                                !block.comments.iter().any(|c| c == "gap"),
                                "client {n} got a gap"
                            );
                            if let (Some(id), Some(data)) = (block.id, block.data) {
                                seen.push((id, data));
                            }
                        }
                        None => {
                            assert!(killed.load(Ordering::SeqCst), "stream {n} ended");
                            // Half come back at once, half once 20 more events were published.
                            if n % 2 == 1 {
                                let from = published.load(Ordering::SeqCst);
                                wait_until(
                                    || published.load(Ordering::SeqCst) >= (from + 20).min(EVENTS),
                                    "more events",
                                );
                            }
                            let last = seen.last().map(|(id, _)| id.as_str());
                            sse = subscribe(b, "/events", last).expect("reconnect to b");
                        }
                    }
                }
                seen
            })
        })
        .collect();
    wait_until(
        || published.load(Ordering::SeqCst) >= 100,
        "a hundred publishes",
    );
    killed.store(true, Ordering::SeqCst);
    a.process.signal(libc::SIGKILL);
    publisher.join().expect("publisher");
    let acked = acked.lock().unwrap().clone();
    for client in clients {
        let seen = client.join().expect("client");
        assert_eq!(seen.len(), acked.len());
        assert!(
            seen == acked,
            "a client's events differ from what was acknowledged"
        );
    }
    assert!(
        metric(b.addr, "ssed_redis_replay_lookups_total") > 0,
        "no replay went to Redis"
    );
}

#[test]
fn a_killed_redis_fails_publishes_and_loses_no_acknowledged_event() {
    if !redis_here() {
        return;
    }
    let dir = TempDir::new("cluster-kill-redis");
    let mut redis = Redis::new(dir.path(), &[]);
    let port = redis.port;
    let a = node(&redis.url(), &[]);
    let b = node(&redis.url(), &[]);
    let mut subscribers: Vec<Sse> = [a.addr, a.addr, b.addr, b.addr]
        .iter()
        .map(|&addr| subscribe(addr, "/events", None).unwrap())
        .collect();
    wait_subscribers(a.addr, 2);
    wait_subscribers(b.addr, 2);

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let publisher = {
        let (stop, acked, refused) = (stop.clone(), acked.clone(), refused.clone());
        let nodes = [a.addr, b.addr];
        std::thread::spawn(move || {
            for i in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let data = format!("e{i}");
                let response = publish(nodes[i % 2], &format!("data={data}")).expect("answer");
                match response.status {
                    200 => acked.lock().unwrap().push((response.text(), data)),
                    503 => {
                        assert_eq!(response.header("Retry-After").as_deref(), Some("1"));
                        refused.lock().unwrap().push(data);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    other => panic!("publish answered {other}: {}", response.text()),
                }
            }
        })
    };
    let acked_count = || acked.lock().unwrap().len();
    wait_until(|| acked_count() >= 50, "publishes before the kill");
    redis.kill9();
    wait_until(|| refused.lock().unwrap().len() >= 5, "publishes refused");
    for addr in [a.addr, b.addr] {
        let health = get(addr, "/health");
        assert_eq!(health.status, 503, "{}", health.text());
        assert!(health.text().contains("Redis"), "{}", health.text());
        assert_eq!(metric(addr, "ssed_redis_up"), 0);
    }
    let before = acked_count();
    let _redis = Redis::start(dir.path(), port, &[]);
    wait_healthy(a.addr);
    wait_healthy(b.addr);
    wait_until(
        || acked_count() >= before + 50,
        "publishes after the restart",
    );
    stop.store(true, Ordering::SeqCst);
    publisher.join().expect("publisher");

    let acked = acked.lock().unwrap().clone();
    let refused: HashSet<String> = refused.lock().unwrap().iter().cloned().collect();
    // Ids of acknowledged events keep growing, across the restart too.
    for pair in acked.windows(2) {
        assert!(position(&pair[1].0) > position(&pair[0].0), "{pair:?}");
    }
    let last_data = &acked.last().expect("acknowledged events").1;
    for sse in &mut subscribers {
        let mut seen: Vec<(String, String)> = Vec::new();
        while seen.last().map(|(_, d)| d) != Some(last_data) {
            seen.extend(events(sse, 1));
        }
        // A refused event was not acknowledged: when Redis died in the middle of its publish it
        // may have been appended all the same, so it is left out of the comparison.
        let delivered: Vec<(String, String)> = seen
            .into_iter()
            .filter(|(_, data)| !refused.contains(data))
            .collect();
        if delivered != acked {
            let at = delivered
                .iter()
                .zip(&acked)
                .position(|(d, a)| d != a)
                .unwrap_or(delivered.len().min(acked.len()));
            let around =
                |v: &[(String, String)]| v[at.saturating_sub(2)..(at + 3).min(v.len())].to_vec();
            panic!(
                "a subscriber's events differ from the acknowledged at {at} ({} delivered, {} \
                 acknowledged): delivered {:?}, acknowledged {:?}",
                delivered.len(),
                acked.len(),
                around(&delivered),
                around(&acked)
            );
        }
    }
    assert!(metric(a.addr, "ssed_redis_reconnects_total") >= 1);
}

#[test]
fn ids_keep_growing_across_node_and_redis_restarts() {
    if !redis_here() {
        return;
    }
    let dir = TempDir::new("cluster-ids");
    let mut redis = Redis::new(dir.path(), &[]);
    let port = redis.port;
    let mut a = node(&redis.url(), &[]);
    let first = position(&publish_ok(a.addr, "data=1"));

    a.process.signal(libc::SIGTERM);
    assert!(a.process.wait_exit(PATIENCE).is_some(), "the node stops");
    let a = node(&redis.url(), &[]);
    let second = position(&publish_ok(a.addr, "data=2"));
    assert!(second > first, "{second} after a node restart");
    wait_until(
        || metric(a.addr, "ssed_events_delivered_total") == 1,
        "the node to deliver the event",
    );

    redis.kill9();
    let redis = Redis::start(dir.path(), port, &[]);
    wait_healthy(a.addr);
    let mut subscriber = subscribe(a.addr, "/events", None).unwrap();
    wait_subscribers(a.addr, 1);
    let third = position(&publish_ok(a.addr, "data=3"));
    assert!(third > second, "{third} after a Redis restart");

    // The stream's last position wins over the clock: ids go on above an entry from the future.
    let mut connection = redis.connection();
    let future = 8_000_000_000_000_000u64;
    let _: String = redis::cmd("XADD")
        .arg("ssed")
        .arg(format!("{future}-0"))
        .arg("id")
        .arg(future.to_string())
        .arg("data")
        .arg("future")
        .query(&mut connection)
        .unwrap();
    // An entry not written by ssed (Redis's own id) is skipped and counted.
    let _: String = redis::cmd("XADD")
        .arg("ssed")
        .arg("*")
        .arg("data")
        .arg("foreign")
        .query(&mut connection)
        .unwrap();
    let next = position(&publish_ok(a.addr, "data=4"));
    assert_eq!(next, future + 1);
    let got = events(&mut subscriber, 3);
    assert_eq!(got[0], (third.to_string(), "3".to_string()));
    assert_eq!(got[1], (future.to_string(), "future".to_string()));
    assert_eq!(got[2], (next.to_string(), "4".to_string()));
    assert_eq!(metric(a.addr, "ssed_redis_refused_entries_total"), 1);
}

#[test]
fn replay_from_redis_of_what_the_ring_no_longer_holds() {
    if !redis_here() {
        return;
    }
    let dir = TempDir::new("cluster-replay");
    let redis = Redis::new(dir.path(), &[]);
    let a = node(&redis.url(), &["--history", "4"]);
    let mut ids = Vec::new();
    for i in 0..30 {
        let form = match i {
            7 => "topic=t&id=own-7&data=7".to_owned(),
            _ => format!("topic=t&data={i}"),
        };
        ids.push(publish_ok(a.addr, &form));
    }
    // Acknowledged is not yet delivered: wait until the node's ring has them all.
    wait_until(
        || metric(a.addr, "ssed_events_delivered_total") == 30,
        "the node to deliver the events",
    );
    let datas = |from: usize| -> Vec<String> { (from..30).map(|i| i.to_string()).collect() };
    let replayed = |last_id: &str, n: usize| -> Vec<String> {
        let mut sse = subscribe(a.addr, "/events?topic=t", Some(last_id)).unwrap();
        events(&mut sse, n).into_iter().map(|(_, d)| d).collect()
    };
    assert_eq!(replayed(&ids[4], 25), datas(5), "after an assigned id");
    assert_eq!(replayed("own-7", 22), datas(8), "after an id of its own");
    // An id the stream never held: a gap, then the ring.
    let mut sse = subscribe(a.addr, "/events?topic=t", Some("nope")).unwrap();
    let block = sse.next_block().unwrap();
    assert_eq!(block.comments, ["gap"]);
    let ring: Vec<String> = events(&mut sse, 4).into_iter().map(|(_, d)| d).collect();
    assert_eq!(ring, datas(26));
    assert!(metric(a.addr, "ssed_redis_replay_lookups_total") >= 3);

    // Trimmed away: the stream keeps about 1024 entries.
    for i in 30..1300 {
        publish_ok(a.addr, &format!("topic=t&data={i}"));
    }
    let mut sse = subscribe(a.addr, "/events?topic=t", Some(&ids[0])).unwrap();
    let block = sse.next_block().unwrap();
    assert_eq!(block.comments, ["gap"], "an id trimmed from the stream");
}

#[test]
fn a_failover_to_a_promoted_replica_loses_what_was_not_replicated_and_says_so() {
    if !redis_here() {
        return;
    }
    let dir = TempDir::new("cluster-failover");
    let (primary_dir, replica_dir) = (dir.join("primary"), dir.join("replica"));
    std::fs::create_dir(&primary_dir).unwrap();
    std::fs::create_dir(&replica_dir).unwrap();
    let mut primary = Redis::new(&primary_dir, &[]);
    // Replication goes through a link the test can cut; the nodes reach Redis through an
    // address that moves to the replica when it is promoted.
    let replication = Forwarder::start(primary.port);
    let replica = Redis::new(
        &replica_dir,
        &["--replicaof", "127.0.0.1", &replication.port.to_string()],
    );
    let floating = Forwarder::start(primary.port);
    let a = node(&floating.url(), &[]);
    let b = node(&floating.url(), &[]);
    let mut subscribers = [
        subscribe(a.addr, "/events", None).unwrap(),
        subscribe(b.addr, "/events", None).unwrap(),
    ];
    wait_subscribers(a.addr, 1);
    wait_subscribers(b.addr, 1);

    let mut acked: Vec<String> = (0..10)
        .map(|i| publish_ok(a.addr, &format!("data=kept{i}")))
        .collect();
    let mut replica_connection = replica.connection();
    wait_until(
        || {
            redis::cmd("XLEN")
                .arg("ssed")
                .query::<u64>(&mut replica_connection)
                .is_ok_and(|n| n == 10)
        },
        "the replica to have the first events",
    );
    // The replica falls behind: what is published now only the primary has.
    replication.switch(None);
    let lost: Vec<String> = (0..5)
        .map(|i| publish_ok(b.addr, &format!("data=lost{i}")))
        .collect();
    acked.extend(lost.iter().cloned());
    for sse in &mut subscribers {
        let got: Vec<String> = events(sse, 15).into_iter().map(|(id, _)| id).collect();
        assert_eq!(got, acked, "delivered before the failover");
    }
    primary.kill9();
    let _: String = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut replica_connection)
        .unwrap();
    floating.switch(Some(replica.port));
    wait_healthy(a.addr);
    wait_healthy(b.addr);
    wait_until(
        || metric(a.addr, "ssed_redis_stream_rewinds_total") == 1,
        "node a to notice the lost entries",
    );
    wait_until(
        || metric(b.addr, "ssed_redis_stream_rewinds_total") == 1,
        "node b to notice the lost entries",
    );
    let after: Vec<String> = (0..5)
        .map(|i| publish_ok(a.addr, &format!("data=after{i}")))
        .collect();
    let newest_lost = position(lost.last().unwrap());
    assert!(
        after.iter().all(|id| position(id) > newest_lost),
        "an id came back"
    );
    for sse in &mut subscribers {
        let got: Vec<String> = events(sse, 5).into_iter().map(|(id, _)| id).collect();
        assert_eq!(got, after, "delivered after the failover, once each");
    }
    // A node started after the failover never saw the lost events: asked for one, it says gap.
    let c = node(&floating.url(), &[]);
    let mut sse = subscribe(c.addr, "/events", Some(&lost[1])).unwrap();
    assert_eq!(sse.next_block().unwrap().comments, ["gap"]);
    let ring: Vec<String> = events(&mut sse, 15).into_iter().map(|(id, _)| id).collect();
    let expected: Vec<String> = acked[..10].iter().chain(&after).cloned().collect();
    assert_eq!(ring, expected);
    // Asked for an event the replica kept, it replays without a gap.
    let mut sse = subscribe(c.addr, "/events", Some(&acked[8])).unwrap();
    let got: Vec<String> = events(&mut sse, 6).into_iter().map(|(id, _)| id).collect();
    assert_eq!(got[0], acked[9]);
    assert_eq!(got[1..], after[..]);
}

#[test]
fn redis_down_at_start_is_no_error_and_publishing_fails_fast() {
    // No Redis at all on this port: the C API still starts a node, which refuses publishes.
    let c = CNode::start(&format!("redis://127.0.0.1:{}", free_port()));
    let started = Instant::now();
    assert_eq!(
        c.publish("x", ""),
        ssed::ffi::sse_result::Unavailable as i64
    );
    assert!(started.elapsed() < PATIENCE);
    let health = get(c.addr, "/health");
    assert_eq!(health.status, 503);
    let response = publish(c.addr, "data=x").unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.header("Retry-After").as_deref(), Some("1"));
}

/// Mercure 1.0's active subscriptions in a cluster: the subscription events go through the
/// stream, so the subscription API of every node lists every node's subscriptions, and forgets
/// one when it ends.
#[cfg(feature = "jwt")]
#[test]
fn the_subscription_api_of_every_node_lists_every_nodes_subscriptions() {
    use common::jwt::{KEY, epoch_in, sign_with};

    if !redis_here() {
        return;
    }
    let dir = TempDir::new("cluster-subscriptions");
    let redis = Redis::new(dir.path(), &[]);
    let hub = "https://hub.test/.well-known/mercure";
    let flags = [
        "--hub-url",
        hub,
        "--issuer",
        "https://app.test",
        "--issuer-key",
        KEY,
        "--anonymous",
        "--subscriptions",
    ];
    let a = node(&redis.url(), &flags);
    let b = node(&redis.url(), &flags);
    let claims = format!(
        r#"{{"iss":"https://app.test","aud":"{hub}","exp":{},"authorization_details":[{{"type":"https://mercure.rocks/authorization-detail","actions":["subscribe"],"topics":[{{"match":"*"}}]}}]}}"#,
        epoch_in(300)
    );
    let token = sign_with(KEY, r#"{"alg":"HS256","typ":"at+jwt"}"#, &claims);
    let api = |addr: SocketAddr| {
        let mut stream = connect(addr);
        let request = format!(
            "GET /.well-known/mercure/subscriptions HTTP/1.1\r\nHost: t\r\n\
             Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let answer = read_response(&mut stream);
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.text()
    };
    let on_a = subscribe(
        a.addr,
        "/.well-known/mercure?match=https%3A%2F%2Fx.test%2Fon-a",
        None,
    );
    let on_a = on_a.expect("a subscription on node A");
    wait_until(
        || api(b.addr).contains(r#""match":"https://x.test/on-a""#),
        "node B listing node A's subscription",
    );
    // Node A hears its own subscription's event back from Redis too, maybe after B.
    wait_until(
        || api(a.addr).contains(r#""match":"https://x.test/on-a""#),
        "node A listing its own subscription",
    );
    drop(on_a);
    wait_until(
        || !api(b.addr).contains("on-a") && !api(a.addr).contains("on-a"),
        "both nodes forgetting the subscription",
    );
}
