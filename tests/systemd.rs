//! examples/systemd/ssed.service: `systemd-analyze verify` accepts it and its ssed.socket
//! without a word (socket activation itself is tested in tests/listening.rs), its
//! hardening scores as `systemd-analyze security` rates a locked-down service, and every
//! system call the daemon makes (traced with strace) passes the unit's system-call filter,
//! which would otherwise kill it with SIGSYS.
//!
//! The unit names /usr/local/bin/ssed, where `make install` puts the daemon; the tests verify a
//! copy that names the daemon this package built, since systemd checks that the file exists.
//! Without systemd-analyze or strace a test is skipped with the reason, unless the environment
//! variable CI is set: then it fails.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::external::{ROOT, Ssed, TempDir, available, note, run};
use common::{Sse, connect, read_response};

const UNIT: &str = "examples/systemd/ssed.service";
const SOCKET_UNIT: &str = "examples/systemd/ssed.socket";
const INSTALLED_PATH: &str = "/usr/local/bin/ssed";
/// `systemd-analyze security` rates 0 (locked down) to 10 (unprotected); "OK" is up to 4.9.
const MAX_EXPOSURE: &str = "2.0";

#[test]
fn systemd_analyze_verify_accepts_the_unit_silently() {
    if !available(&["systemd-analyze"], "the systemd unit test") {
        return;
    }
    let dir = TempDir::new("systemd");
    let unit = unit_for_built_daemon(&dir);
    // The socket unit beside it, as `make install` puts it: systemd checks the pair.
    let socket = dir.join("ssed.socket");
    fs::copy(Path::new(ROOT).join(SOCKET_UNIT), &socket).expect("copy the socket unit");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .arg(&socket)
        .output()
        .expect("run systemd-analyze");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // An unknown or misspelt directive is only a warning, so anything printed is a failure.
    assert!(
        output.status.success() && printed.trim().is_empty(),
        "systemd-analyze verify {UNIT} ({}):\n{printed}",
        output.status
    );
}

#[test]
fn the_unit_is_hardened() {
    let text = fs::read_to_string(Path::new(ROOT).join(UNIT)).expect("read the unit");
    for line in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "ProtectSystem=strict",
        "StateDirectory=ssed",
        "--history-file /var/lib/ssed/history.log",
        "EnvironmentFile=-/etc/ssed/ssed.env",
        "Restart=on-failure",
    ] {
        assert!(text.contains(line), "{UNIT} lacks `{}`", line.trim());
    }
    let files: u64 = directive(&text, "LimitNOFILE")
        .and_then(|v| v.parse().ok())
        .expect("LimitNOFILE= a number");
    assert!(
        files >= 20_000,
        "LimitNOFILE={files}: below the 10000 clients and their reserve"
    );

    if !available(&["systemd-analyze"], "the systemd unit's security rating") {
        return;
    }
    let dir = TempDir::new("systemd");
    let unit = unit_for_built_daemon(&dir);
    let output = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(format!("--threshold={}", MAX_EXPOSURE.replace('.', "")))
        .arg(&unit));
    let report = String::from_utf8_lossy(&output.stdout);
    let rating = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .expect("an overall rating");
    note(&format!(
        "{UNIT}: {}",
        rating.trim_start_matches('→').trim()
    ));
}

#[test]
fn the_daemon_makes_no_system_call_the_unit_forbids() {
    if !available(
        &["systemd-analyze", "strace"],
        "the system-call filter test",
    ) {
        return;
    }
    let text = fs::read_to_string(Path::new(ROOT).join(UNIT)).expect("read the unit");
    let (allowed, denied) = system_call_filter(&text);
    let dir = TempDir::new("strace");
    let trace = dir.join("trace");
    let used = trace_daemon(&trace);
    let refused: Vec<&String> = used
        .iter()
        .filter(|call| !allowed.contains(*call) || denied.contains(*call))
        .collect();
    assert!(
        refused.is_empty(),
        "ssed makes system calls that {UNIT}'s SystemCallFilter= forbids: {refused:?}"
    );
    assert!(
        used.contains("sendmsg") && used.contains("epoll_wait"),
        "{used:?}"
    );
}

/// A copy of the unit whose ExecStart names the daemon this package built.
fn unit_for_built_daemon(dir: &TempDir) -> PathBuf {
    let text = fs::read_to_string(Path::new(ROOT).join(UNIT)).expect("read the unit");
    let exec = format!("ExecStart={INSTALLED_PATH} ");
    assert_eq!(
        text.matches(&exec).count(),
        1,
        "{UNIT} should start {INSTALLED_PATH}"
    );
    let unit = dir.join("ssed.service");
    let built = format!("ExecStart={} ", env!("CARGO_BIN_EXE_ssed"));
    fs::write(&unit, text.replace(&exec, &built)).expect("write the unit");
    unit
}

fn directive<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .map(str::trim)
}

/// The system calls the unit's SystemCallFilter= lines allow, and those a `~` line denies,
/// with every `@set` expanded by systemd-analyze.
fn system_call_filter(unit: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut allowed = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for value in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (deny, names) = match value.strip_prefix('~') {
            Some(names) => (true, names),
            None => (false, value),
        };
        let calls = names.split_whitespace().flat_map(expand_syscall_set);
        if deny {
            denied.extend(calls)
        } else {
            allowed.extend(calls)
        }
    }
    assert!(
        !allowed.is_empty(),
        "{UNIT} has no SystemCallFilter= allow list"
    );
    (allowed, denied)
}

fn expand_syscall_set(name: &str) -> Vec<String> {
    if !name.starts_with('@') {
        return vec![name.to_owned()];
    }
    let output = run(Command::new("systemd-analyze").args(["syscall-filter", "--no-pager", name]));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1) // the set's own name
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(expand_syscall_set)
        .collect()
}

/// Runs the daemon under strace through a stream, a publish, a scrape, the viewer and a
/// SIGTERM, and returns the names of the system calls it made.
fn trace_daemon(trace: &Path) -> BTreeSet<String> {
    let mut command = Command::new("strace");
    command.args(["-f", "-qq", "-o"]).arg(trace).args([
        env!("CARGO_BIN_EXE_ssed"),
        "--retry",
        "3000",
        "--publish-token",
        "t",
    ]);
    let mut strace = Ssed::start_with(&mut command);
    // Signals go to the daemon itself: strace, told to stop, would detach and leave it running.
    let daemon = Tracee(traced_child(strace.process.pid()));
    let mut stream = subscribe(&strace);
    let publish = "POST /publish HTTP/1.1\r\nAuthorization: Bearer t\r\nConnection: close\r\n\
                   Content-Type: application/x-www-form-urlencoded\r\n\
                   Content-Length: 6\r\n\r\ndata=x";
    assert_eq!(request(&strace, publish).status, 200);
    assert_eq!(stream.next_event().data.as_deref(), Some("x"));
    for path in ["/metrics", "/", "/health"] {
        let get = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert_eq!(request(&strace, &get).status, 200, "GET {path}");
    }
    daemon.signal(libc::SIGTERM);
    // strace exits with the daemon's status.
    let status = strace
        .process
        .wait_exit(common::PATIENCE)
        .expect("ssed exits on SIGTERM");
    assert!(status.success(), "ssed under strace: {status}");
    drop(stream);
    let text = fs::read_to_string(trace).expect("read the trace");
    text.lines()
        .filter_map(|l| {
            let call = l.split_whitespace().nth(1)?; // "PID name(args) = result"
            Some(call.split('(').next()?.to_owned())
        })
        .filter(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .collect()
}

/// The process strace started, by its PID; killed on drop if the test ends before it exits.
struct Tracee(i32);

impl Tracee {
    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the daemon strace started for this test, still strace's child.
        unsafe { libc::kill(self.0, signal) };
    }
}

impl Drop for Tracee {
    fn drop(&mut self) {
        if Path::new(&format!("/proc/{}", self.0)).exists() {
            self.signal(libc::SIGKILL);
        }
    }
}

/// The one child of strace: the daemon it runs.
fn traced_child(strace: u32) -> i32 {
    let children = fs::read_to_string(format!("/proc/{strace}/task/{strace}/children"))
        .expect("read strace's children from /proc");
    let pids: Vec<i32> = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(pids.len(), 1, "strace should run one child: {children:?}");
    pids[0]
}

fn subscribe(ssed: &Ssed) -> Sse {
    use std::io::Write;
    let mut stream = connect(ssed.addr);
    stream
        .write_all(b"GET /events HTTP/1.1\r\n\r\n")
        .expect("send");
    let mut sse = Sse {
        stream,
        buf: Vec::new(),
    };
    sse.read_head();
    sse
}

fn request(ssed: &Ssed, raw: &str) -> common::Response {
    use std::io::Write;
    let mut stream = connect(ssed.addr);
    stream.write_all(raw.as_bytes()).expect("send");
    read_response(&mut stream)
}
