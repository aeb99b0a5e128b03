//! The `ssed` binary: command line, standard input, signals, and running out of descriptors.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{PATIENCE, Sse, connect, read_response};

const SSED: &str = env!("CARGO_BIN_EXE_ssed");

/// A running daemon, killed on drop. Its stderr lines arrive on `log`.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        Daemon::start_with(
            Command::new(SSED)
                .args(["--listen", "127.0.0.1:0"])
                .args(args),
        )
    }

    fn start_with(command: &mut Command) -> Daemon {
        let mut child = command
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssed");
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            log,
        };
        let line = daemon.wait_log("listening on http://");
        daemon.addr = line.rsplit("http://").next().unwrap().parse().unwrap();
        daemon
    }

    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no log line containing {needle:?}"),
            }
        }
    }

    fn subscribe(&self, target: &str) -> Sse {
        let mut stream = connect(self.addr);
        stream
            .write_all(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let mut sse = Sse {
            stream,
            buf: Vec::new(),
        };
        sse.read_head();
        sse
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0);
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn metrics(&self) -> String {
        let mut stream = connect(self.addr);
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_response(&mut stream).text()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_to_end(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(SSED)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn help_and_version() {
    let (code, out, _) = run_to_end(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--history",
        "--heartbeat",
        "--retry",
        "--max-clients",
        "--max-queue",
        "--max-body",
        "--cors-origin",
        "--publish-token",
        "--subscribe-token",
        "--stdin",
        "--topic",
        "--event",
        "--demo",
        "--publisher-jwt-key",
        "--subscriber-jwt-key",
        "--anonymous",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
    let (code, out, _) = run_to_end(&["-V"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ssed "));
}

#[test]
fn a_bad_flag_exits_2_naming_it() {
    for (args, needle) in [
        (&["--history", "lots"][..], "--history"),
        (&["--frobnicate"], "--frobnicate"),
    ] {
        let (code, _, err) = run_to_end(args);
        assert_eq!(code, 2, "{args:?}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines[0].starts_with("ssed: ") && lines[0].contains(needle),
            "{err}"
        );
        assert!(lines[1].contains("ssed --help"), "{err}");
    }
}

#[test]
fn an_address_in_use_exits_1_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run_to_end(&["--listen", &addr]);
    assert_eq!(code, 1);
    assert!(err.contains(&addr), "{err}");
}

#[test]
fn sigterm_and_sigint_flush_and_exit_0() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut daemon = Daemon::start(&[]);
        let mut sub = daemon.subscribe("/events");
        daemon.signal(signal);
        let blocks = sub.read_to_close();
        assert!(
            blocks.iter().any(|b| b.retry.is_some()),
            "a retry before close: {blocks:?}"
        );
        assert_eq!(daemon.wait_exit().code(), Some(0));
    }
}

#[test]
fn stdin_lines_become_events() {
    let mut daemon = Daemon::start(&["--stdin", "--topic", "logs", "--event", "line"]);
    let mut sub = daemon.subscribe("/events?topic=logs");
    let mut stdin = daemon.child.stdin.take().unwrap();
    stdin
        .write_all(b"first\r\nnot utf8 \xff\nsecond\nlast without newline")
        .unwrap();
    drop(stdin); // End of input does not stop the server.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = sub.next_event();
        assert_eq!(event.event.as_deref(), Some("line"));
        seen.push(event.data.unwrap());
    }
    assert_eq!(seen, ["first", "second", "last without newline"]);
    daemon.wait_log("not valid UTF-8");
    assert!(daemon.metrics().contains("ssed_events_published_total 3\n"));
}

#[test]
fn demo_publishes_the_time_to_topic_demo() {
    let daemon = Daemon::start(&["--demo"]);
    let mut sub = daemon.subscribe("/events?topic=demo");
    let event = sub.next_event();
    let data = event.data.unwrap();
    assert!(
        data.len() == 20 && data.ends_with('Z') && data.contains('T'),
        "{data}"
    );
}

#[test]
fn tokens_from_the_environment() {
    let daemon = Daemon::start_with(
        Command::new(SSED)
            .args(["--listen", "127.0.0.1:0"])
            .env("SSED_PUBLISH_TOKEN", "envtok"),
    );
    let mut stream = connect(daemon.addr);
    stream
        .write_all(b"POST /publish?data=x HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).status, 401);
    let mut stream = connect(daemon.addr);
    stream.write_all(b"POST /publish?data=x HTTP/1.1\r\nAuthorization: Bearer envtok\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut stream).status, 200);
}

/// CPU seconds (user + system) the process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn running_out_of_descriptors_neither_spins_nor_stops_the_server() {
    // 16 descriptors: stdio, epoll, the waker, the listener, a few threads' worth, then clients.
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!("ulimit -n 16 && exec {SSED} --listen 127.0.0.1:0 --heartbeat 0"),
    ]);
    let daemon = Daemon::start_with(&mut command);
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut stream = connect(daemon.addr);
        stream.write_all(b"GET /events HTTP/1.1\r\n\r\n").unwrap();
        held.push(stream);
    }
    daemon.wait_log("accept failed");
    let before = cpu_seconds(daemon.child.id());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(daemon.child.id()) - before;
    assert!(
        used < 0.5,
        "the loop spun: {used} CPU seconds in one second"
    );
    drop(held);
    // Once descriptors are free again, the server serves.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut stream = connect(daemon.addr);
        stream
            .write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the server never recovered");
    }
}

#[test]
fn listening_beyond_loopback_without_a_subscribe_token_warns() {
    let open = Daemon::start_with(Command::new(SSED).args(["--listen", "0.0.0.0:0"]));
    let warning = open.wait_log("warning:");
    assert!(warning.contains("--subscribe-token"), "{warning}");
    // With a token, or on loopback, nothing to warn about: every line up to the exit says so.
    for args in [
        &["--listen", "0.0.0.0:0", "--subscribe-token", "t0ken"][..],
        &["--listen", "127.0.0.1:0"][..],
    ] {
        let mut daemon = Daemon::start_with(Command::new(SSED).args(args));
        daemon.signal(libc::SIGTERM);
        assert!(daemon.wait_exit().success());
        // Every line up to the end of stderr: the reader thread ends when the daemon is gone.
        let lines: Vec<String> =
            std::iter::from_fn(|| daemon.log.recv_timeout(PATIENCE).ok()).collect();
        assert!(
            lines.iter().all(|line| !line.contains("warning")),
            "{args:?}: {lines:?}"
        );
    }
}
