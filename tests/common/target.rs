//! The daemon under test. By default it is the one this package built (and `TestServer` runs
//! the library in the test process); with `SSED_TEST_DAEMON` set, it is that binary, started
//! through `SSED_TEST_RUNNER` when set (a command and its arguments, split on spaces, such as
//! `qemu-aarch64-static`). Then `TestServer` runs that daemon too, with the flags its `Config`
//! stands for, and its handle publishes over HTTP and reads the counters from `/metrics`; so
//! the same suites run against a daemon cross-built for another architecture, under qemu:
//!
//! ```sh
//! SSED_TEST_DAEMON=target/cross/aarch64-unknown-linux-gnu/release/ssed \
//! SSED_TEST_RUNNER=qemu-aarch64-static cargo test --release --all-features --test http_api
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ssed::{Config, Cors, Event, FsyncPolicy, Handle, PublishError, Stats};

use super::PATIENCE;
use super::external::Ssed;

/// The daemon binary to test instead of the one this package built.
pub const DAEMON_VAR: &str = "SSED_TEST_DAEMON";
/// The command that runs it (qemu for another architecture).
pub const RUNNER_VAR: &str = "SSED_TEST_RUNNER";

/// How many event loops the servers of the suites run (`--loops`, `Config::loops`): 1 unless
/// the variable says otherwise.
pub const LOOPS_VAR: &str = "SSED_TEST_LOOPS";

/// The loops named by `SSED_TEST_LOOPS`, 1 by default.
pub fn loops() -> usize {
    match std::env::var(LOOPS_VAR) {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("{LOOPS_VAR}={n}: expected a number")),
        Err(_) => 1,
    }
}

/// The daemon named by `SSED_TEST_DAEMON`, if any.
pub fn external_daemon() -> Option<PathBuf> {
    std::env::var_os(DAEMON_VAR)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// The runner's words from `SSED_TEST_RUNNER` (none: the daemon runs by itself).
fn runner() -> Vec<String> {
    std::env::var(RUNNER_VAR)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// A command that runs the daemon under test; add its arguments.
pub fn daemon() -> Command {
    let daemon = external_daemon().unwrap_or_else(|| env!("CARGO_BIN_EXE_ssed").into());
    let runner = runner();
    let mut command = match runner.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(daemon);
            command
        }
        None => Command::new(daemon),
    };
    // cargo test points the loader at this machine's target/*/deps: no business of a daemon
    // built for another one (qemu passes the variable on to it).
    command.env_remove("LD_LIBRARY_PATH");
    command
}

/// Whether the daemon under test is built for a 32-bit target (its ELF class says).
pub fn daemon_is_32_bit() -> bool {
    let daemon = external_daemon().unwrap_or_else(|| env!("CARGO_BIN_EXE_ssed").into());
    let mut ident = [0u8; 5];
    std::fs::File::open(&daemon)
        .and_then(|mut file| file.read_exact(&mut ident))
        .unwrap_or_else(|e| panic!("read {}: {e}", daemon.display()));
    assert_eq!(
        &ident[..4],
        b"\x7fELF",
        "{} is no ELF file",
        daemon.display()
    );
    ident[4] == 1
}

/// The daemon under test as words of a shell command line (runner first).
pub fn daemon_shell_words() -> String {
    let daemon = external_daemon().unwrap_or_else(|| env!("CARGO_BIN_EXE_ssed").into());
    let mut words = runner();
    words.push(daemon.display().to_string());
    words.join(" ")
}

/// The daemon's command line for `config`. Panics, naming the setting, when `config` sets
/// something the daemon has no flag for: such a test runs in-process only.
pub fn daemon_args(config: &Config) -> Vec<String> {
    let defaults = Config::default();
    let mut args: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: String| {
        args.push(name.into());
        args.push(value);
    };
    if config.history != defaults.history {
        flag("--history", config.history.to_string());
    }
    if config.heartbeat != defaults.heartbeat {
        let secs = config.heartbeat.as_secs();
        assert_eq!(
            Duration::from_secs(secs),
            config.heartbeat,
            "--heartbeat takes whole seconds: {:?} runs in-process only",
            config.heartbeat
        );
        flag("--heartbeat", secs.to_string());
    }
    if let Some(retry) = config.retry {
        flag("--retry", retry.to_string());
    }
    if config.max_clients != defaults.max_clients {
        flag("--max-clients", config.max_clients.to_string());
    }
    if config.max_queue != defaults.max_queue {
        flag("--max-queue", config.max_queue.to_string());
    }
    if config.max_body != defaults.max_body {
        flag("--max-body", config.max_body.to_string());
    }
    match &config.cors {
        Cors::Off => {}
        Cors::Any => flag("--cors-origin", "*".into()),
        Cors::Origins(origins) => flag("--cors-origin", origins.join(",")),
    }
    if let Some(token) = &config.publish_token {
        flag("--publish-token", token.clone());
    }
    if let Some(token) = &config.subscribe_token {
        flag("--subscribe-token", token.clone());
    }
    if let Some(path) = &config.history_file {
        flag("--history-file", path.display().to_string());
    }
    match config.fsync {
        FsyncPolicy::Always => {}
        FsyncPolicy::Never => flag("--fsync", "never".into()),
        FsyncPolicy::Interval(every) => flag("--fsync", every.as_millis().to_string()),
    }
    if let Some(key) = &config.publisher_jwt_key {
        flag("--publisher-jwt-key", key.clone());
    }
    if let Some(key) = &config.subscriber_jwt_key {
        flag("--subscriber-jwt-key", key.clone());
    }
    if config.anonymous {
        args.push("--anonymous".into());
    }
    // Everything else must be as the daemon has it: there is no flag to say otherwise.
    let said = Config {
        listen: defaults.listen,
        log: defaults.log,
        history: defaults.history,
        heartbeat: defaults.heartbeat,
        retry: defaults.retry,
        max_clients: defaults.max_clients,
        max_queue: defaults.max_queue,
        max_body: defaults.max_body,
        cors: defaults.cors.clone(),
        publish_token: None,
        subscribe_token: None,
        history_file: None,
        fsync: defaults.fsync,
        publisher_jwt_key: None,
        subscriber_jwt_key: None,
        anonymous: false,
        ..config.clone()
    };
    assert_eq!(
        said, defaults,
        "the daemon has no flag for a setting of this test: it runs in-process only"
    );
    args.push("--loops".into());
    args.push(config.loops.to_string());
    args.push("-q".into());
    args
}

/// How a `TestServer` reaches its server: the library's handle, or a daemon's HTTP interface.
#[derive(Clone)]
pub struct TestHandle(Reach);

#[derive(Clone)]
enum Reach {
    InProcess(Handle),
    Daemon { addr: SocketAddr, pid: u32 },
}

impl TestHandle {
    pub fn in_process(handle: Handle) -> TestHandle {
        TestHandle(Reach::InProcess(handle))
    }

    pub fn daemon(daemon: &Ssed) -> TestHandle {
        TestHandle(Reach::Daemon {
            addr: daemon.addr,
            pid: daemon.process.pid(),
        })
    }

    /// Publishes as `Handle::publish` does; to a daemon, as a form to `POST /publish`.
    pub fn publish(&self, event: &Event) -> Result<Option<u64>, PublishError> {
        match &self.0 {
            Reach::InProcess(handle) => handle.publish(event),
            Reach::Daemon { addr, .. } => publish_over_http(*addr, event),
        }
    }

    /// The counters, as `Handle::stats` gives them; from a daemon, read off `/metrics`.
    pub fn stats(&self) -> Stats {
        match &self.0 {
            Reach::InProcess(handle) => handle.stats(),
            Reach::Daemon { addr, .. } => scrape(*addr),
        }
    }

    /// Asks the server to stop: `Handle::stop`, or SIGTERM to the daemon.
    pub fn stop(&self) {
        match &self.0 {
            Reach::InProcess(handle) => handle.stop(),
            Reach::Daemon { pid, .. } => {
                // SAFETY: kill(2) on the test's own child, which the TestServer reaps.
                unsafe { libc::kill(*pid as libc::pid_t, libc::SIGTERM) };
            }
        }
    }
}

/// Any other use of the library's handle: in-process only.
impl std::ops::Deref for TestHandle {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        match &self.0 {
            Reach::InProcess(handle) => handle,
            Reach::Daemon { .. } => {
                panic!("this test uses the library's Handle: it runs in-process only")
            }
        }
    }
}

/// One request on a fresh connection; the status and body of the answer, or the connection's
/// error (refused once the daemon has stopped).
fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    stream.write_all(request)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

fn publish_over_http(addr: SocketAddr, event: &Event) -> Result<Option<u64>, PublishError> {
    let mut form = vec![("data", event.data.as_str())];
    form.extend(event.topics.iter().map(|t| ("topic", t.as_str())));
    if !event.event_type.is_empty() {
        form.push(("event", &event.event_type));
    }
    if !event.id.is_empty() {
        form.push(("id", &event.id));
    }
    let retry = event.retry.map(|ms| ms.to_string());
    if let Some(retry) = &retry {
        form.push(("retry", retry));
    }
    if event.private {
        form.push(("private", "on"));
    }
    let body: Vec<String> = form
        .iter()
        .map(|(name, value)| format!("{name}={}", percent_encode(value)))
        .collect();
    let body = body.join("&");
    let request = format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    match exchange(addr, request.as_bytes()) {
        Err(_) => Err(PublishError::Stopped),
        Ok((200, id)) if event.id.is_empty() => Ok(Some(
            id.trim()
                .parse()
                .unwrap_or_else(|_| panic!("an assigned id, not {id:?}")),
        )),
        Ok((200, _)) => Ok(None),
        Ok((503, why)) if why.contains("history file") => Err(PublishError::Storage),
        Ok((503, _)) => Err(PublishError::QueueFull),
        Ok((status, why)) => panic!("the daemon answered the publish {status}: {why}"),
    }
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The daemon's counters from `/metrics`. The scrape's own connection is not counted. While
/// every connection is taken (the test holds them), the scrape waits for one.
fn scrape(addr: SocketAddr) -> Stats {
    let request = b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let deadline = std::time::Instant::now() + PATIENCE;
    let text = loop {
        match exchange(addr, request) {
            Ok((200, text)) => break text,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                panic!("scrape /metrics: the daemon is gone ({e})")
            }
            other => assert!(
                std::time::Instant::now() < deadline,
                "scrape /metrics: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let value = |name: &str| -> u64 {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once(' '))
            .filter(|(metric, _)| *metric == name || metric.starts_with(&format!("{name}{{")))
            .map(|(_, n)| n.trim().parse::<u64>().expect("a counter"))
            .sum()
    };
    Stats {
        connections: value("ssed_connections").saturating_sub(1),
        subscribers: value("ssed_subscribers"),
        events_published: value("ssed_events_published_total"),
        events_delivered: value("ssed_events_delivered_total"),
        bytes_sent: value("ssed_bytes_sent_total"),
        subscribers_dropped_slow: value("ssed_subscribers_dropped_slow_total"),
        history_events: value("ssed_history_events"),
        requests_refused: value("ssed_requests_refused_total"),
    }
}

/// The binary cargo built for the integration test `name`, beside this one. `cargo test`
/// builds every test target before it runs any, so the newest of that name is this build's.
pub fn suite_binary(name: &str) -> PathBuf {
    let here = std::env::current_exe().expect("this test's path");
    let deps = here.parent().expect("its directory");
    let prefix = format!("{name}-");
    std::fs::read_dir(deps)
        .expect("the test directory")
        .filter_map(Result::ok)
        .filter(|entry| {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .max()
        .map(|(_, path)| path)
        .unwrap_or_else(|| panic!("no test binary {name}-* beside {}", here.display()))
}

/// Runs a test suite's binary as `command` says and fails, with everything it printed and
/// `what` it ran against, unless it passes; returns its summary line.
pub fn suite_passes(command: &mut Command, what: &str) -> String {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the suite");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with("test result:"))
        .unwrap_or("no summary")
        .to_owned()
}
