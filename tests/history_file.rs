//! The history file, through the daemon: events survive a restart and replay across it without
//! a gap, ids go on above the file's, `kill -9` loses no acknowledged event, a restart under a
//! thousand subscribers loses none of theirs, damage is cut at start, and a failing disk makes
//! publishing fail clearly until it recovers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::external::{Lines, Process, Ssed, TempDir, free_port};
use common::{PATIENCE, Sse, connect, read_response, wait_until};

/// The daemon on `addr` with `args`, its stderr lines in `log`.
fn start_on(addr: SocketAddr, args: &[&str]) -> Ssed {
    start_within(PATIENCE, addr, args)
}

/// The same, giving the daemon `patience` to load its file.
fn start_within(patience: Duration, addr: SocketAddr, args: &[&str]) -> Ssed {
    let mut process = Process::start(
        common::target::daemon()
            .args(args)
            .args(["--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut log = Lines::new(process.child.stderr.take().expect("piped stderr"));
    log.wait_for_within(patience, "listening line", |l| {
        l.contains("listening on http://")
    });
    Ssed { process, addr, log }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// One keep-alive publisher connection.
struct Publisher {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Publisher {
    fn connect(addr: SocketAddr) -> std::io::Result<Publisher> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        Ok(Publisher {
            stream,
            buf: Vec::new(),
        })
    }

    /// Publishes `data` to topic `t`; the status and the body of the answer.
    fn publish(&mut self, data: &str) -> std::io::Result<(u16, String)> {
        let request = format!(
            "POST /publish?topic=t&data={data} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes())?;
        self.read_answer()
    }

    fn read_answer(&mut self) -> std::io::Result<(u16, String)> {
        let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
        loop {
            if let Some(end) = common::find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(eof)?;
                if self.buf.len() >= end + 4 + length {
                    let status = head
                        .get(9..12)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(eof)?;
                    let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + length]);
                    let body = body.into_owned();
                    self.buf.drain(..end + 4 + length);
                    return Ok((status, body));
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk)? {
                0 => return Err(eof()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn publish(addr: SocketAddr, data: &str) -> (u16, String) {
    Publisher::connect(addr)
        .and_then(|mut p| p.publish(data))
        .expect("publish")
}

fn subscribe(addr: SocketAddr, target: &str, headers: &str) -> Sse {
    Sse::open(addr, target, headers)
}

fn metrics(addr: SocketAddr) -> String {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    read_response(&mut stream).text()
}

fn stop(ssed: &mut Ssed) {
    ssed.process.signal(libc::SIGTERM);
    let status = ssed.process.wait_exit(PATIENCE).expect("the daemon exits");
    assert!(status.success(), "{status}");
}

#[test]
fn events_survive_a_restart_and_replay_without_a_gap() {
    let dir = TempDir::new("history-restart");
    let file = dir.join("history.log");
    let args = ["--history-file", file.to_str().unwrap()];
    let addr = loopback();
    let mut first = start_on(addr, &args);
    let ids: Vec<u64> = (0..5)
        .map(|i| {
            let (status, id) = publish(addr, &format!("before-{i}"));
            assert_eq!(status, 200);
            id.parse().unwrap()
        })
        .collect();
    stop(&mut first);

    let second = start_on(addr, &args);
    assert!(
        second
            .log
            .seen
            .iter()
            .any(|l| l.contains("5 events loaded")),
        "{:#?}",
        second.log.seen
    );
    let mut sub = subscribe(addr, "/events", &format!("Last-Event-ID: {}\r\n", ids[1]));
    for (i, id) in ids.iter().enumerate().skip(2) {
        let event = sub.next_block().expect("a replayed event");
        assert!(event.comments.is_empty(), "no gap: {:?}", event.comments);
        assert_eq!(event.id, Some(id.to_string()));
        assert_eq!(event.data, Some(format!("before-{i}")));
    }
    let (status, after) = publish(addr, "after");
    assert_eq!(status, 200);
    let after: u64 = after.parse().unwrap();
    assert!(
        after > ids[4],
        "ids go on above the file's: {after} after {}",
        ids[4]
    );
    assert_eq!(sub.next_event().data.as_deref(), Some("after"));
    assert!(metrics(addr).contains("ssed_history_events 6\n"));
}

/// One round of the crash test: publishers at full speed, `kill -9` at a random moment, and a
/// restart that must replay every event acknowledged so far, in order, each once.
fn crash_round(file: &std::path::Path, fsync: &str, acked: &mut Vec<u64>, seed: u64) {
    let addr = loopback();
    let args = [
        "--history-file",
        file.to_str().unwrap(),
        "--history",
        "1000000",
        "--fsync",
        fsync,
        "-q",
    ];
    let mut ssed = start_on(addr, &args);
    let running = Arc::new(AtomicBool::new(true));
    let publishers: Vec<_> = (0..4)
        .map(|n| {
            let running = running.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let Ok(mut publisher) = Publisher::connect(addr) else {
                    return mine;
                };
                let mut i = 0u64;
                while running.load(Ordering::Relaxed) {
                    match publisher.publish(&format!("p{n}-{i}")) {
                        Ok((200, id)) => mine.push(id.parse::<u64>().expect("a decimal id")),
                        Ok((503, _)) => {}
                        Ok((status, body)) => panic!("publish answered {status}: {body}"),
                        Err(_) => break, // killed
                    }
                    i += 1;
                }
                mine
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50 + seed % 250));
    ssed.process.signal(libc::SIGKILL);
    ssed.process.wait_exit(PATIENCE).expect("killed");
    running.store(false, Ordering::Relaxed);
    for publisher in publishers {
        acked.extend(publisher.join().expect("a publisher thread"));
    }
    acked.sort_unstable();

    let ssed = start_on(addr, &args);
    let mut sub = subscribe(addr, "/events?lastEventId=none", "");
    let (status, marker) = publish(addr, "marker");
    assert_eq!(status, 200);
    let mut replayed = Vec::new();
    loop {
        let block = sub.next_block().expect("the replay");
        if block.comments == ["gap"] || block.comments == [""] {
            continue;
        }
        let id = block.id.expect("every event has an id");
        if id == marker {
            break;
        }
        let data = block.data.expect("every event has data");
        let intact = data == "marker" || (data.starts_with('p') && data.contains('-'));
        assert!(intact, "intact: {data}");
        replayed.push(id.parse::<u64>().expect("a decimal id"));
    }
    assert!(
        replayed.windows(2).all(|w| w[0] < w[1]),
        "in order, each once"
    );
    let missing: Vec<u64> = acked
        .iter()
        .filter(|id| replayed.binary_search(id).is_err())
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing after kill -9 (fsync {fsync}), e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "crash round (fsync {fsync}): {} acknowledged so far, {} replayed",
        acked.len(),
        replayed.len()
    );
    // The marker is acknowledged too.
    acked.push(marker.parse().unwrap());
    drop(ssed);
}

#[test]
fn kill_9_loses_no_acknowledged_event() {
    // SSED_CRASH_ROUNDS=50 runs the full proof; the suite runs a few rounds of each policy.
    let rounds: u64 = std::env::var("SSED_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7);
    for fsync in ["never", "always", "5"] {
        let dir = TempDir::new("history-crash");
        let file = dir.join("history.log");
        let mut acked = Vec::new();
        for round in 0..rounds {
            crash_round(&file, fsync, &mut acked, seed.wrapping_mul(round + 1) >> 7);
        }
    }
}

#[test]
fn a_restart_under_a_thousand_subscribers_loses_none_of_their_events() {
    const SUBSCRIBERS: usize = 1000;
    const EVENTS: usize = 40;
    let dir = TempDir::new("history-subscribers");
    let file = dir.join("history.log");
    let args = ["--history-file", file.to_str().unwrap(), "-q"];
    let addr = loopback();
    let mut ssed = start_on(addr, &args);
    let readers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut got: Vec<String> = Vec::new();
                let mut sub = subscribe(addr, "/events", "");
                while got.len() < EVENTS {
                    match sub.next_block_or_gone() {
                        Some(block) => got.extend(block.data),
                        None => {
                            // The server went away: come back with the last id seen, as a
                            // browser does.
                            let last = format!("Last-Event-ID: {}\r\n", got.len());
                            sub = resubscribe(addr, &last);
                        }
                    }
                }
                got
            })
        })
        .collect();
    wait_until(
        || metrics(addr).contains(&format!("ssed_subscribers {SUBSCRIBERS}\n")),
        "every subscriber to connect",
    );
    let mut publisher = Publisher::connect(addr).unwrap();
    for i in 1..=EVENTS / 2 {
        let request_id = publisher.publish(&format!("{i}&id={i}")).unwrap();
        assert_eq!(request_id.0, 200);
    }
    drop(publisher);
    stop(&mut ssed);
    let _ssed = start_on(addr, &args);
    let mut publisher = Publisher::connect(addr).unwrap();
    for i in EVENTS / 2 + 1..=EVENTS {
        assert_eq!(publisher.publish(&format!("{i}&id={i}")).unwrap().0, 200);
    }
    let want: Vec<String> = (1..=EVENTS).map(|i| i.to_string()).collect();
    for reader in readers {
        assert_eq!(reader.join().expect("a subscriber thread"), want);
    }
}

/// Subscribes again, retrying while the server restarts.
fn resubscribe(addr: SocketAddr, headers: &str) -> Sse {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(sse) = try_subscribe(addr, headers) {
            return sse;
        }
        assert!(Instant::now() < deadline, "the server did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A stream whose head has arrived, or None when the connection failed on the way.
fn try_subscribe(addr: SocketAddr, headers: &str) -> Option<Sse> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let request = format!("GET /events HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the end of the head and the opening comment: nothing more is read.
    while !head.ends_with(b"\r\n\r\n:\n\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    head.starts_with(b"HTTP/1.1 200").then_some(Sse {
        stream,
        buf: Vec::new(),
    })
}

#[test]
fn a_directory_or_an_unusable_file_refuses_to_start_naming_the_path() {
    let dir = TempDir::new("history-bad-path");
    let output = common::target::daemon()
        .args(["--listen", "127.0.0.1:0", "--history-file"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(dir.path().to_str().unwrap()) && stderr.contains("directory"),
        "{stderr}"
    );
    // A path under a regular file cannot be created.
    let plain = dir.join("plain");
    std::fs::write(&plain, b"x").unwrap();
    let output = common::target::daemon()
        .args(["--listen", "127.0.0.1:0", "--history-file"])
        .arg(plain.join("history.log"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("plain/history.log"));
}

#[test]
fn damage_is_cut_at_start_with_a_log_line_and_never_replayed() {
    let dir = TempDir::new("history-damage");
    let file = dir.join("history.log");
    let args = ["--history-file", file.to_str().unwrap()];
    let addr = loopback();
    let mut ssed = start_on(addr, &args);
    for i in 0..6 {
        assert_eq!(publish(addr, &format!("event-{i}")).0, 200);
    }
    stop(&mut ssed);
    // Flip a byte inside the third event's data, and tear the last record.
    let mut bytes = std::fs::read(&file).unwrap();
    let third = common::find(&bytes, b"event-2").expect("the third event in the file");
    bytes[third + 2] ^= 0x20;
    let torn = bytes.len() - 5;
    bytes.truncate(torn);
    std::fs::write(&file, &bytes).unwrap();

    let mut ssed = start_on(addr, &args);
    let cut = ssed.log.seen.iter().filter(|l| l.contains("cut")).count();
    assert!(
        cut >= 2,
        "a log line per damaged stretch: {:#?}",
        ssed.log.seen
    );
    let mut sub = subscribe(addr, "/events?lastEventId=none", "");
    assert_eq!(sub.next_block().unwrap().comments, ["gap"]);
    let (_, marker) = publish(addr, "marker");
    let mut seen = Vec::new();
    loop {
        let event = sub.next_event();
        if event.id.as_deref() == Some(marker.as_str()) {
            break;
        }
        seen.push(event.data.unwrap());
    }
    assert_eq!(seen, ["event-0", "event-1", "event-3", "event-4"]);
    stop(&mut ssed);
}

#[test]
fn a_file_grown_past_4_gib_loads_and_is_compacted_on_every_target() {
    // As a file can grow while its compactions fail: records before and after more than 4 GiB
    // of zeros (what a crash leaves where blocks were allocated but never written). The file is
    // sparse: the zeros take no disk. Loading reads it through a window, so it fits in any
    // address space, and reports the offsets exactly.
    let dir = TempDir::new("history-huge");
    let file = dir.join("history.log");
    let args = ["--history-file", file.to_str().unwrap()];
    let addr = loopback();
    let mut ssed = start_on(addr, &args);
    assert_eq!(publish(addr, "before").0, 200);
    stop(&mut ssed);
    let before = std::fs::metadata(&file).unwrap().len();
    let mut ssed = start_on(addr, &args);
    assert_eq!(publish(addr, "after").0, 200);
    stop(&mut ssed);
    let bytes = std::fs::read(&file).unwrap();
    let after = &bytes[before as usize..];
    let hole = (4u64 << 30) + 12_345;
    {
        use std::os::unix::fs::FileExt;
        let out = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        out.set_len(before).unwrap();
        out.write_all_at(after, before + hole).unwrap();
    }
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        before + hole + after.len() as u64
    );

    // Reading 4 GiB takes seconds (more under emulation).
    let mut ssed = start_within(Duration::from_secs(120), addr, &args);
    let line = format!("cut {hole} bytes at offset {before}: checksum mismatch");
    assert!(
        ssed.log.seen.iter().any(|l| l.contains(&line)),
        "{line}: {:#?}",
        ssed.log.seen
    );
    let mut sub = subscribe(addr, "/events?lastEventId=none", "");
    assert_eq!(sub.next_block().unwrap().comments, ["gap"]);
    assert_eq!(sub.next_event().data.as_deref(), Some("before"));
    assert_eq!(sub.next_event().data.as_deref(), Some("after"));
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        before + after.len() as u64,
        "rewritten without the stretch cut"
    );
    stop(&mut ssed);
}

/// Sets the daemon's file size limit (`ulimit -f`), as root may for any process.
fn limit_file_size(pid: u32, bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit on our own child with a valid limit; the old limit is not asked for.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn a_failing_disk_refuses_publishes_keeps_streams_and_recovers() {
    let dir = TempDir::new("history-full");
    let file = dir.join("history.log");
    let addr = loopback();
    let ssed = start_on(addr, &["--history-file", file.to_str().unwrap()]);
    let mut sub = subscribe(addr, "/events", "");
    assert_eq!(publish(addr, "fits").0, 200);
    assert_eq!(sub.next_event().data.as_deref(), Some("fits"));

    // The file may not grow any more: the next write fails with EFBIG.
    let size = std::fs::metadata(&file).unwrap().len();
    limit_file_size(ssed.process.pid(), size);
    let (status, body) = publish(addr, "too-much");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("history file"), "{body}");
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let health = read_response(&mut stream);
    assert_eq!(health.status, 503, "{}", health.text());
    assert!(metrics(addr).contains("ssed_history_file_failing 1\n"));
    assert!(
        metrics(addr).contains("ssed_subscribers 1\n"),
        "the stream stays"
    );

    // Space comes back: publishing recovers by itself, and the stream gets what follows.
    limit_file_size(ssed.process.pid(), libc::RLIM_INFINITY);
    wait_until(|| publish(addr, "back").0 == 200, "publishing to recover");
    assert_eq!(sub.next_event().data.as_deref(), Some("back"));
    assert!(metrics(addr).contains("ssed_history_file_failing 0\n"));
}

#[test]
fn pipelined_publishes_are_answered_in_order_while_they_wait_for_the_file() {
    let dir = TempDir::new("history-pipelined");
    let file = dir.join("history.log");
    let addr = loopback();
    let _ssed = start_on(addr, &["--history-file", file.to_str().unwrap()]);
    let mut sub = subscribe(addr, "/events", "");
    // 100 publishes and a health check in the middle, in one write, before any answer is read.
    let mut requests = String::new();
    for i in 0..100 {
        requests.push_str(&format!(
            "POST /publish?topic=t&data=p{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        ));
        if i == 49 {
            requests.push_str("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        }
    }
    let mut publisher = Publisher::connect(addr).unwrap();
    publisher.stream.write_all(requests.as_bytes()).unwrap();
    let mut ids = Vec::new();
    for i in 0..101 {
        let (status, body) = publisher.read_answer().unwrap();
        assert_eq!(status, 200, "answer {i}: {body}");
        if i == 50 {
            assert_eq!(body, "ok\n", "the health check keeps its place");
        } else {
            ids.push(body.parse::<u64>().unwrap());
        }
    }
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {ids:?}"
    );
    for (i, id) in ids.iter().enumerate() {
        let event = sub.next_event();
        assert_eq!(event.id, Some(id.to_string()));
        assert_eq!(event.data, Some(format!("p{i}")));
    }
}
