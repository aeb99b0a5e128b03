//! The `ssed` binary: command line, standard input, signals, and running out of descriptors.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::external::Process;
use common::{PATIENCE, Sse, connect, read_response};

/// A running daemon, killed on drop. Its stderr lines arrive on `log`.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        Daemon::start_with(
            common::target::daemon()
                .args(["--listen", "127.0.0.1:0"])
                .args(["--loops", &common::target::loops().to_string()])
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
        Sse::open(self.addr, target, "")
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
    let out = common::target::daemon()
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
fn more_clients_than_a_server_can_tell_apart_are_refused_naming_the_flag() {
    // A poll token holds a connection's number beside its generation: 20 bits of it where
    // usize has 32, so about a million connections; 32 bits on a 64-bit target.
    let mut too_many = vec!["4000000000"];
    if common::target::daemon_is_32_bit() {
        too_many.push("2000000");
    }
    for n in too_many {
        let mut daemon = Process::start(
            common::target::daemon()
                .args(["--listen", "127.0.0.1:0", "--max-clients", n])
                .stdin(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let exit = daemon.wait_exit(PATIENCE).expect("it exits at once");
        let mut err = String::new();
        daemon
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(exit.code(), Some(2), "--max-clients {n}: {err}");
        assert!(
            err.starts_with("ssed: --max-clients: at most "),
            "--max-clients {n}: {err}"
        );
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
fn sigterm_stops_the_daemon_after_its_stderr_is_closed() {
    let mut child = common::target::daemon()
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ssed");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while !line.starts_with("ssed: publish:") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read stderr") > 0,
            "no hints"
        );
    }
    // The reading end goes away, as when the daemon's output was piped into `head`: what it
    // writes on the signal now fails, and it must still stop.
    drop(stderr);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + PATIENCE;
    // It stops. (Its exit status is not checked: the loop's own log lines still use
    // eprintln!, which panics on the closed pipe as the loop stops.)
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon did not stop on SIGTERM once its stderr was closed");
        }
        std::thread::sleep(Duration::from_millis(10));
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

/// Runs a line the daemon printed for pasting, as a shell would, and returns its output.
fn paste(line: &str, prefix: &str) -> String {
    let command = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
    let output = Command::new("sh")
        .args(["-c", command])
        .output()
        .expect("run sh");
    assert!(output.status.success(), "{command}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn demo_says_where_to_look_and_its_lines_work_when_pasted() {
    let daemon = Daemon::start(&["--demo"]);
    let addr = daemon.addr;
    let intro = daemon.wait_log("ssed: ");
    assert_eq!(
        intro,
        "ssed: --demo publishes the current time every second to topic 'demo'"
    );
    let viewer = daemon.wait_log("ssed: ");
    assert_eq!(
        viewer,
        format!("ssed: viewer:    http://{addr}/?topic=demo")
    );
    let subscribe = daemon.wait_log("ssed: ");
    assert_eq!(
        subscribe,
        format!("ssed: subscribe: curl -N \"http://{addr}/events?topic=demo\"")
    );
    let publish = daemon.wait_log("ssed: ");
    assert_eq!(
        publish,
        format!("ssed: publish:   curl -d topic=demo -d data=hello http://{addr}/publish")
    );

    // The viewer answers at that URL, and opens on the demo's history.
    let page = common::external::run(
        Command::new("curl").args(["-sf", &format!("http://{addr}/?topic=demo")]),
    );
    assert!(String::from_utf8_lossy(&page.stdout).contains("new EventSource("));
    // The subscribe line receives what the publish line sends.
    let mut sub = daemon.subscribe("/events?topic=demo");
    let id = paste(&publish, "ssed: publish:   ");
    let got = (0..5)
        .map(|_| sub.next_event())
        .find(|event| event.data.as_deref() == Some("hello"))
        .expect("the pasted publish reaches a subscriber of topic demo");
    assert_eq!(got.id.as_deref(), Some(id.trim()));
    let pasted = Command::new("sh")
        .args([
            "-c",
            &format!("{} --max-time 2", &subscribe["ssed: subscribe: ".len()..]),
        ])
        .output()
        .expect("run sh");
    let streamed = String::from_utf8_lossy(&pasted.stdout);
    assert!(
        streamed.contains("\ndata: 20"),
        "the pasted subscriber got the time: {streamed:?}"
    );
}

#[test]
fn a_plain_start_says_where_to_look() {
    let daemon = Daemon::start(&[]);
    let addr = daemon.addr;
    assert_eq!(
        daemon.wait_log("ssed: "),
        format!("ssed: viewer:    http://{addr}/")
    );
    assert_eq!(
        daemon.wait_log("ssed: "),
        format!("ssed: subscribe: curl -N \"http://{addr}/events\"")
    );
    assert_eq!(
        daemon.wait_log("ssed: "),
        format!("ssed: publish:   curl -d data=hello http://{addr}/publish")
    );
    // With tokens the lines name their variables, never the secrets, and still work when
    // pasted in a shell that has them.
    let daemon = Daemon::start_with(
        common::target::daemon()
            .args(["--listen", "0.0.0.0:0"])
            .env("SSED_PUBLISH_TOKEN", "s3cret-p")
            .env("SSED_SUBSCRIBE_TOKEN", "s3cret-s"),
    );
    let port = daemon.addr.port();
    let viewer = daemon.wait_log("ssed: viewer:");
    assert_eq!(
        viewer,
        format!("ssed: viewer:    http://127.0.0.1:{port}/ (it asks for the token)")
    );
    let subscribe = daemon.wait_log("ssed: ");
    assert!(!subscribe.contains("s3cret"), "{subscribe}");
    let publish = daemon.wait_log("ssed: ");
    assert_eq!(
        publish,
        format!(
            "ssed: publish:   curl -H \"Authorization: Bearer $SSED_PUBLISH_TOKEN\" \
             -d data=hello http://127.0.0.1:{port}/publish"
        )
    );
    let command = &publish["ssed: publish:   ".len()..];
    let output = Command::new("sh")
        .args(["-c", &format!("{command} -sf")])
        .env("SSED_PUBLISH_TOKEN", "s3cret-p")
        .output()
        .expect("run sh");
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn quiet_prints_no_hints() {
    let mut daemon = Daemon::start(&["-q"]);
    daemon.signal(libc::SIGTERM);
    daemon.wait_exit();
    // The reading thread ends with the pipe: every line the daemon wrote is here.
    let lines: Vec<String> = daemon.log.iter().collect();
    assert!(lines.iter().all(|l| !l.contains("viewer")), "{lines:?}");
}

#[test]
fn tokens_from_the_environment() {
    let daemon = Daemon::start_with(
        common::target::daemon()
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
        &format!(
            "ulimit -n 16 && exec {} --listen 127.0.0.1:0 --heartbeat 0",
            common::target::daemon_shell_words()
        ),
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
    let open = Daemon::start_with(common::target::daemon().args(["--listen", "0.0.0.0:0"]));
    let warning = open.wait_log("warning:");
    assert!(warning.contains("--subscribe-token"), "{warning}");
    // With a token, or on loopback, nothing to warn about: every line up to the exit says so.
    for args in [
        &["--listen", "0.0.0.0:0", "--subscribe-token", "t0ken"][..],
        &["--listen", "127.0.0.1:0"][..],
    ] {
        let mut daemon = Daemon::start_with(common::target::daemon().args(args));
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

/// Runs a pasted line with `env` set and a time limit, returning what it printed.
fn paste_with(line: &str, prefix: &str, env: &[(&str, &str)]) -> std::process::Output {
    let command = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
    Command::new("sh")
        .args(["-c", &format!("{command} -s --max-time 2")])
        .envs(env.iter().copied())
        .output()
        .expect("run sh")
}

#[cfg(feature = "jwt")]
#[test]
fn with_jwt_keys_the_hints_name_a_jwt_and_work_when_pasted() {
    use common::jwt::{KEY, token};
    let daemon = Daemon::start(&["--publisher-jwt-key", KEY, "--subscriber-jwt-key", KEY]);
    let addr = daemon.addr;
    assert_eq!(
        daemon.wait_log("ssed: viewer:"),
        format!("ssed: viewer:    http://{addr}/ (it asks for the token)")
    );
    let subscribe = daemon.wait_log("ssed: subscribe:");
    assert!(
        !subscribe.contains("token="),
        "no ?token= with JWT keys: {subscribe}"
    );
    let publish = daemon.wait_log("ssed: publish:");
    for (what, variable) in [
        ("subscribing", "$SUBSCRIBER_JWT"),
        ("publishing", "$PUBLISHER_JWT"),
    ] {
        let note = daemon.wait_log(&format!("ssed: {what}:"));
        assert!(
            note.contains(variable) && note.contains("JSON Web Token"),
            "{note}"
        );
        assert!(!note.contains(KEY), "the key is never printed: {note}");
    }
    let reader = token(r#"{"mercure":{"subscribe":["*"]}}"#);
    let writer = token(r#"{"mercure":{"publish":["*"]}}"#);
    let streamed = paste_with(
        &subscribe,
        "ssed: subscribe: ",
        &[("SUBSCRIBER_JWT", &reader)],
    );
    assert!(
        String::from_utf8_lossy(&streamed.stdout).starts_with(":\n"),
        "the pasted subscriber is let in: {streamed:?}"
    );
    let published = paste_with(&publish, "ssed: publish:   ", &[("PUBLISHER_JWT", &writer)]);
    let id = String::from_utf8_lossy(&published.stdout).into_owned();
    assert!(
        id.trim().parse::<u64>().is_ok(),
        "the pasted publish is accepted: {published:?}"
    );
}

#[test]
fn tokens_given_as_flags_are_placeholders_and_environment_ones_variables() {
    let daemon = Daemon::start(&[
        "--publish-token",
        "s3cret-p",
        "--subscribe-token",
        "s3cret-s",
    ]);
    let mut lines = Vec::new();
    while lines.len() < 5 {
        lines.push(daemon.wait_log("ssed: "));
    }
    let text = lines.join("\n");
    assert!(
        !text.contains("s3cret") && !text.contains("$SSED_"),
        "{text}"
    );
    assert!(lines[1].ends_with("/events?token=TOKEN\""), "{text}");
    assert!(lines[2].contains("Bearer TOKEN"), "{text}");
    assert_eq!(
        lines[3],
        "ssed: subscribing: TOKEN stands for the value of --subscribe-token"
    );
    assert_eq!(
        lines[4],
        "ssed: publishing: TOKEN stands for the value of --publish-token"
    );
    // Anonymous subscribers with a JWT key need nothing: the line is plain and works.
    #[cfg(feature = "jwt")]
    {
        let open = Daemon::start(&["--subscriber-jwt-key", common::jwt::KEY, "--anonymous"]);
        let subscribe = open.wait_log("ssed: subscribe:");
        assert_eq!(
            subscribe,
            format!("ssed: subscribe: curl -N \"http://{}/events\"", open.addr)
        );
        let streamed = paste_with(&subscribe, "ssed: subscribe: ", &[]);
        assert!(
            String::from_utf8_lossy(&streamed.stdout).starts_with(":\n"),
            "{streamed:?}"
        );
    }
}

#[test]
fn flags_that_mean_nothing_together_are_refused_with_the_reason() {
    for (args, reason) in [
        (&["--fsync", "10"][..], "--fsync goes with --history-file"),
        (
            &["--anonymous"],
            "--anonymous goes with --subscriber-jwt-key",
        ),
        (&["--listen", "localhost"], "expected HOST:PORT"),
    ] {
        let (code, _, err) = run_to_end(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

#[test]
fn first_run_errors_name_the_next_step() {
    // A host name is resolved at start.
    let named = Daemon::start_with(common::target::daemon().args(["--listen", "localhost:0"]));
    assert!(named.addr.ip().is_loopback(), "{}", named.addr);
    // A history file in a directory that does not exist names the directory.
    let missing = std::env::temp_dir().join(format!("ssed-no-dir-{}", std::process::id()));
    let file = missing.join("history.log");
    let (code, _, err) = run_to_end(&[
        "--listen",
        "127.0.0.1:0",
        "--history-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "the directory {} does not exist",
            missing.display()
        )),
        "{err}"
    );
    // 413 names the flag; a wrong token is told apart from a missing one.
    let daemon = Daemon::start(&["--max-body", "4", "--publish-token", "t0ken"]);
    let answer = |raw: &str| {
        let mut stream = connect(daemon.addr);
        stream.write_all(raw.as_bytes()).unwrap();
        read_response(&mut stream)
    };
    let large = answer(
        "POST /publish HTTP/1.1\r\nAuthorization: Bearer t0ken\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(large.status, 413);
    assert!(large.text().contains("--max-body"), "{}", large.text());
    let missing = answer("POST /publish HTTP/1.1\r\nConnection: close\r\n\r\n");
    let wrong =
        answer("POST /publish HTTP/1.1\r\nAuthorization: Bearer n0pe\r\nConnection: close\r\n\r\n");
    assert_eq!((missing.status, wrong.status), (401, 401));
    assert_eq!(wrong.text(), "the token is wrong\n");
    assert_ne!(missing.text(), wrong.text());
}
