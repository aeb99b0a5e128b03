//! How the server listens, and that publishers are never locked out: clients that never close
//! hold no slot once answered (refused subscribers, finished keep-alive connections, refused
//! publishes with a body); the publish socket is a way in no TCP client can take; systemd's
//! socket activation (`systemd-socket-activate`), and a restart on a socket kept open that
//! refuses no connection.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::external::{Lines, Process, TempDir, available, free_port};
use common::{HttpReader, PATIENCE, Response, Sse, TestServer, wait_until};
use ssed::Config;

const SSED: &str = env!("CARGO_BIN_EXE_ssed");

/// A server of 10 streams (and the reserve of 32 other connections) with its 10 streams open.
fn full_server(config: Config) -> (TestServer, Vec<Sse>) {
    let server = TestServer::start(Config {
        max_clients: 10,
        heartbeat: Duration::ZERO,
        ..config
    });
    let streams: Vec<Sse> = (0..10).map(|_| server.subscribe("/events", "")).collect();
    server.wait_subscribers(10);
    (server, streams)
}

fn publish(server: &TestServer) -> Response {
    server.publish_form("data=through")
}

/// Sends `raw` and reads one answer, keeping the connection open afterwards.
fn answered_and_held(addr: SocketAddr, raw: &str) -> (TcpStream, Response) {
    let mut stream = common::connect(addr);
    stream.write_all(raw.as_bytes()).unwrap();
    let response = HttpReader::default().read_response(&mut stream);
    (stream, response)
}

#[test]
fn refused_subscribers_that_keep_their_sockets_do_not_lock_publishers_out() {
    let (server, mut streams) = full_server(Config::default());
    // 60 more subscribers: each gets its 503, and keeps its socket open, reading nothing more.
    let mut held = Vec::new();
    for _ in 0..60 {
        let (stream, response) =
            answered_and_held(server.addr, "GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(response.status, 503);
        held.push(stream);
    }
    // At once, not five seconds later: a refused connection holds no slot.
    let response = publish(&server);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(streams[0].next_event().data.as_deref(), Some("through"));
    wait_until(
        || server.handle.stats().connections == 10,
        "the refused connections to be closed",
    );
    drop(held);
}

#[test]
fn finished_connections_that_stay_open_do_not_lock_publishers_out() {
    let (server, mut streams) = full_server(Config::default());
    // 40 publishers that keep their keep-alive connections open after their answer, and 40
    // whose publish is refused (401) before its announced body arrives, which linger.
    let mut held = Vec::new();
    for _ in 0..40 {
        let (stream, response) = answered_and_held(
            server.addr,
            "POST /publish?data=idle HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!(response.status, 200);
        held.push(stream);
    }
    let response = publish(&server);
    assert_eq!(response.status, 200, "{}", response.text());
    let refusing = TestServer::start(Config {
        max_clients: 10,
        publish_token: Some("t0ken".into()),
        ..Config::default()
    });
    let mut lingering = Vec::new();
    for _ in 0..60 {
        let (stream, response) = answered_and_held(
            refusing.addr,
            "POST /publish HTTP/1.1\r\nContent-Length: 100000\r\n\r\npart",
        );
        assert_eq!(response.status, 401);
        lingering.push(stream);
    }
    let response = refusing.request(
        "POST /publish?data=x HTTP/1.1\r\nAuthorization: Bearer t0ken\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200, "{}", response.text());
    for stream in &mut streams[..2] {
        assert_eq!(stream.next_event().data.as_deref(), Some("idle"));
    }
    drop((held, lingering));
}

#[test]
fn the_publish_socket_is_a_way_in_no_tcp_client_can_take() {
    let dir = TempDir::new("publish-socket");
    let path = dir.join("publish.sock");
    let (server, mut streams) = full_server(Config {
        publish_socket: Some(path.clone()),
        publish_token: Some("t0ken".into()),
        ..Config::default()
    });
    // Every TCP connection the server allows besides its streams, held by clients that send
    // half a head and never finish it.
    let mut slow = Vec::new();
    for _ in 0..32 {
        let mut stream = common::connect(server.addr);
        stream.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
        slow.push(stream);
    }
    wait_until(
        || server.handle.stats().connections == 42,
        "the reserve to be taken",
    );
    let over_tcp = server.request("POST /publish?data=x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(over_tcp.status, 503, "TCP is full: {}", over_tcp.text());
    // The publish socket: no token, and a way in of its own.
    let mut local = UnixStream::connect(&path).expect("connect to the publish socket");
    local
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    local
        .write_all(b"POST /publish?topic=t&data=local HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    local.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert_eq!(streams[0].next_event().data.as_deref(), Some("local"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    drop((server, slow));
    assert!(!path.exists(), "the socket file is removed at stop");
}

/// A daemon started the way systemd starts a socket-activated service: with `sockets` as
/// descriptors 3 and on, `LISTEN_FDS` and `LISTEN_PID` naming it.
fn activated(sockets: &[i32], args: &[&str]) -> (Process, Lines) {
    use std::os::unix::process::CommandExt;
    let fds: Vec<i32> = sockets.to_vec();
    let mut command = Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", SSED])
        .args(args)
        .env("LISTEN_FDS", fds.len().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only dup2(2) and fcntl(2), which are async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            for (i, &fd) in fds.iter().enumerate() {
                let target = 3 + i as i32;
                // dup2 clears close-on-exec on the copy, but does nothing when the descriptor
                // is already there.
                let done = if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, target)
                };
                if done < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut process = Process::start(&mut command);
    let mut log = Lines::new(process.child.stderr.take().expect("piped stderr"));
    log.wait_for("the listening line", |l| {
        l.contains("listening on http://") && l.ends_with("(socket from systemd)")
    });
    (process, log)
}

/// How one request fared.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Answered(u16),
    Refused,
    /// Accepted, then closed without an answer.
    Dropped,
}

fn health(addr: SocketAddr) -> Asked {
    let mut stream = match TcpStream::connect(addr) {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Asked::Refused,
        Err(e) => panic!("connect: {e}"),
    };
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = stream.write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    match answer
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
    {
        Some(status) => Asked::Answered(status),
        None => Asked::Dropped,
    }
}

#[test]
fn a_restart_on_a_socket_kept_open_refuses_no_connection() {
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut first, _log) = activated(&[listener.as_raw_fd()], &[]);
    // A client asks all along, while the daemon is stopped and another one started.
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let asking = std::thread::spawn(move || {
        let mut answers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while answers.len() < 400 && Instant::now() < deadline {
            answers.push(health(addr));
            counted.store(answers.len(), Ordering::SeqCst);
        }
        answers
    });
    wait_until(
        || count.load(Ordering::SeqCst) >= 20,
        "answers from the first daemon",
    );
    first.signal(libc::SIGTERM);
    assert!(first.wait_exit(PATIENCE).is_some_and(|s| s.success()));
    let during = count.load(Ordering::SeqCst);
    let (_second, _) = activated(&[listener.as_raw_fd()], &[]);
    let answers = asking.join().unwrap();
    assert!(answers.len() == 400, "{} answers", answers.len());
    assert!(during < 400, "the restart happened while the client asked");
    let failed: Vec<(usize, &Asked)> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| **a != Asked::Answered(200))
        .collect();
    assert!(
        failed.is_empty(),
        "refused or failed during the restart: {failed:?}"
    );
}

#[test]
fn systemd_socket_activate_hands_over_both_sockets() {
    if !available(
        &["systemd-socket-activate", "curl"],
        "the socket activation test",
    ) {
        return;
    }
    let dir = TempDir::new("activate");
    let path = dir.join("publish.sock");
    let port = free_port();
    let mut command = Command::new("systemd-socket-activate");
    command
        .args(["-l", &format!("127.0.0.1:{port}"), "-l"])
        .arg(&path)
        .arg(SSED)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let mut process = Process::start(&mut command);
    let mut log = Lines::new(process.child.stderr.take().expect("piped stderr"));
    log.wait_for("listening", |l| l.contains("Listening on"));
    // The first connection starts the daemon, which then serves it.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut sub = Sse::open(addr, "/events?topic=t", "");
    log.wait_for("the daemon's listening line", |l| {
        l == format!("ssed: listening on http://{addr} (socket from systemd)")
    });
    let publish = curl_unix(&path, "topic=t&data=activated");
    assert!(publish.status.success(), "{publish:?}");
    assert_eq!(sub.next_event().data.as_deref(), Some("activated"));
}

fn curl_unix(path: &Path, form: &str) -> std::process::Output {
    Command::new("curl")
        .args(["-sSf", "--max-time", "10", "--unix-socket"])
        .arg(path)
        .args(["-d", form, "http://localhost/publish"])
        .output()
        .expect("run curl")
}
