//! Helpers for tests that drive outside programs (nginx, curl, openssl, systemd-analyze, cc,
//! headless Chromium): finding them, a temporary directory, free ports, and child processes
//! stopped by PID.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::PATIENCE;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Held (shared) while a child process starts. A child holds a copy of every descriptor of the
/// test process until it executes its program, and with it the lock of any history file open
/// at that moment: a test that stops a server and opens its history file again at once holds
/// it alone (`no_children_starting`), so that no child started meanwhile keeps the file locked.
static STARTING: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn starting() -> std::sync::RwLockReadGuard<'static, ()> {
    STARTING
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// No child process starts while this is held (see `STARTING`).
pub fn no_children_starting() -> std::sync::RwLockWriteGuard<'static, ()> {
    STARTING
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a tool is: on the PATH, or in an sbin directory a non-root PATH may lack (nginx).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// True when every tool is found. Otherwise skips (with the reason on stderr), or fails when
/// CI is set.
pub fn available(tools: &[&str], what: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| find_tool(tool).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip(&format!("{what}: {} not found", missing.join(", ")))
}

/// Skips with the reason on stderr, or fails when CI is set. Returns false, for `available`.
pub fn skip(reason: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason}, and CI is set: it must run"
    );
    note(&format!(
        "skipping {reason} (set CI to make this a failure)"
    ));
    false
}

/// Writes to the real stderr: the test harness captures `eprintln!`, which would hide a skip.
pub fn note(text: &str) {
    let _ = writeln!(io::stderr(), "{text}");
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ssed-{what}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path); // left by a killed run with a reused pid
        std::fs::create_dir(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on at the moment of asking, for a server the test starts
/// on it. Taken below the kernel's ephemeral range, where no connection of a test running
/// beside this one is given a port by itself: between this check and the server's bind, only
/// another server could take it, and each call of this process asks a different port.
pub fn free_port() -> u16 {
    const LOWEST: usize = 10_000;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<usize>().ok())
        .filter(|&low| low > LOWEST + 1000 && low <= 65_536)
        .unwrap_or(32_768);
    let span = ephemeral - LOWEST;
    let start = std::process::id() as usize * 7919;
    for _ in 0..span {
        let port = LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free loopback port from {LOWEST} to {ephemeral}");
}

/// A child process (and, when started as a group leader, its own children), stopped by its
/// PID on drop: SIGTERM first so that it can clean up, SIGKILL if it has not exited in time.
pub struct Process {
    pub child: Child,
    group: bool,
}

impl Process {
    pub fn start(command: &mut Command) -> Process {
        let started = starting();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        drop(started);
        Process {
            child,
            group: false,
        }
    }

    /// Starts the command as the leader of a new process group, so that stopping it also
    /// stops the workers it forks (nginx).
    pub fn start_group(command: &mut Command) -> Process {
        use std::os::unix::process::CommandExt;
        let mut process = Process::start(command.process_group(0));
        process.group = true;
        process
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited already, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn signal(&self, signal: i32) {
        let pid = self.child.id() as i32;
        let target = if self.group { -pid } else { pid };
        // SAFETY: kill(2) on our own child (or the process group it leads).
        unsafe { libc::kill(target, signal) };
    }

    /// Waits for the exit until the deadline.
    pub fn wait_exit(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.signal(libc::SIGTERM);
            // Killed before it is reaped, so that its PID (and group id) cannot be reused.
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                self.signal(libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// The lines a child writes to one of its pipes, read on a thread, so that a test can wait for
/// one with a deadline rather than block on the pipe.
pub struct Lines {
    receiver: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn new(pipe: impl Read + Send + 'static) -> Lines {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            receiver,
            seen: Vec::new(),
        }
    }

    /// The next line for which `wanted` is true, failing after `PATIENCE` or at the end.
    pub fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.wait_for_within(PATIENCE, what, wanted)
    }

    /// The next line for which `wanted` is true, failing after `patience` or at the end.
    pub fn wait_for_within(
        &mut self,
        patience: Duration,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no {what} ({e:?}); lines so far: {:#?}", self.seen),
            }
        }
    }

    /// Every line: those seen so far and the rest, up to the end of the pipe (the child has
    /// exited) or `PATIENCE`.
    pub fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen.clone(),
                Err(e) => panic!(
                    "the pipe did not end ({e:?}); lines so far: {:#?}",
                    self.seen
                ),
            }
        }
    }
}

/// The daemon under test (the one built by this package, or `SSED_TEST_DAEMON`: see
/// `target`), on a free loopback port. `log` has its stderr lines.
pub struct Ssed {
    pub process: Process,
    pub addr: SocketAddr,
    pub log: Lines,
}

impl Ssed {
    pub fn start(args: &[&str]) -> Ssed {
        Ssed::start_with(super::target::daemon().args(args))
    }

    /// Runs `command`, which ends with the daemon's command line (as with a wrapper such as
    /// strace), adding `--listen 127.0.0.1:0` to it.
    /// Unless it names its loops, the daemon runs those of `SSED_TEST_LOOPS`.
    pub fn start_with(command: &mut Command) -> Ssed {
        if !command.get_args().any(|arg| arg == "--loops") {
            command.args(["--loops", &super::target::loops().to_string()]);
        }
        let mut process = Process::start(
            command
                .args(["--listen", "127.0.0.1:0"])
                .stdin(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let mut log = Lines::new(process.child.stderr.take().expect("piped stderr"));
        let line = log.wait_for("listening line", |l| l.contains("listening on http"));
        let addr = line
            .rsplit("://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Ssed { process, addr, log }
    }
}

/// Runs a command to its end and returns its output, failing with everything it printed when
/// it does not succeed.
pub fn run(command: &mut Command) -> std::process::Output {
    let started = starting();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    drop(started);
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// What tests/mercure/symfony_publish.php printed: Symfony's Mercure component publishing to
/// `hub` with `all` (a token for every topic) and `books_only`, one line per update.
pub fn symfony_publish(hub: &str, all: &str, books_only: &str) -> String {
    let script = Path::new(ROOT).join("tests/mercure/symfony_publish.php");
    let output = run(Command::new("timeout")
        .args(["60", "php"])
        .arg(&script)
        .args([hub, all, books_only]));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// True when headless Chromium can be driven from tests/browser/: Chromium, node and the npm
/// packages there. Otherwise skips (with what is missing), or fails when CI is set.
pub fn browser_available(what: &str) -> bool {
    if !available(&["node", "chromium"], what) {
        return false;
    }
    Path::new(ROOT)
        .join("tests/browser/node_modules/playwright-core")
        .exists()
        || skip(&format!(
            "{what}: playwright-core is not installed (npm ci --prefix tests/browser)"
        ))
}

/// Runs `node tests/browser/SCRIPT ARGS...`, killed after `seconds`, and returns what it
/// printed on stdout; fails with all it printed unless it succeeds.
pub fn run_browser_script<S: AsRef<OsStr>>(script: &str, args: &[S], seconds: u32) -> String {
    let output = run(Command::new("timeout")
        .arg(seconds.to_string())
        .arg("node")
        .arg(Path::new("tests/browser").join(script))
        .args(args)
        .current_dir(ROOT));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
