//! On the devices ssed is for. For each of arm64, armhf and i386: the release daemon, the tiny
//! daemon and libssed cross-built with Debian's Rust (`make cross-ARCH`), the tiny daemon under
//! 400 KiB and serving under qemu, the release daemon serving HTTPS under qemu; the integration suites run against the cross-built daemon
//! under qemu (see `common::target`); the C tests built with the cross compiler against that
//! libssed and run under qemu; and history files that move between this machine's daemon and
//! the target's, both ways. Then the Debian packages: built for amd64, arm64 and armhf, checked
//! by lintian, and the amd64 one installed, used, and purged without a trace.
//!
//! Without the toolchain, qemu, the cross compilers or (for the packages) dpkg and lintian,
//! each test is skipped with the reason, unless CI is set: then it fails.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::external::{Process, ROOT, Ssed, TempDir, available, note, run};
use common::tls::{Pki, TlsSse};
use common::{PATIENCE, Sse, connect, read_response};

/// The tiny daemon's budget on every target.
const TINY_BUDGET: u64 = 400 * 1024;

/// One target: its Debian architecture, Rust triple, qemu and C cross compiler.
struct Target {
    arch: &'static str,
    triple: &'static str,
    qemu: &'static str,
    cc: &'static str,
}

const ARM64: Target = Target {
    arch: "arm64",
    triple: "aarch64-unknown-linux-gnu",
    qemu: "qemu-aarch64-static",
    cc: "aarch64-linux-gnu-gcc",
};
const ARMHF: Target = Target {
    arch: "armhf",
    triple: "armv7-unknown-linux-gnueabihf",
    qemu: "qemu-arm-static",
    cc: "arm-linux-gnueabihf-gcc",
};
const I386: Target = Target {
    arch: "i386",
    triple: "i686-unknown-linux-gnu",
    qemu: "qemu-i386-static",
    cc: "i686-linux-gnu-gcc",
};

/// The suites that run against each cross-built daemon, and the tests of theirs that do not.
/// They are the integration tests that go through the daemon's sockets and command line: the
/// wire format, publish and subscribe, replay, ordering, slow subscribers, limits and refusals
/// (http_api, delivery), JSON Web Tokens (authorization), the history file across restarts,
/// `kill -9`, damage and a file past 4 GiB (history_file), and the command line, signals and
/// running out of descriptors (daemon). What they leave out is named below with the reason.
const SUITES: [(&str, &[&str]); 5] = [
    (
        "http_api",
        // The library's own publisher beside HTTP: there is no library in a daemon.
        &["the_library_publisher_and_http_share_one_id_sequence"],
    ),
    (
        "delivery",
        // Sub-second heartbeats and head timeouts: settings the daemon has no flag for (whole
        // seconds only); the same code runs them in-process on this machine.
        &[
            "heartbeats_arrive_on_idle_streams",
            "a_slow_head_times_out_while_others_are_served",
            "an_idle_connection_that_sends_nothing_is_closed_too",
        ],
    ),
    ("authorization", &[]),
    ("history_file", &[]),
    ("daemon", &[]),
];

/// Runs `make ARGS` in the source tree (cargo's locks order builds into one directory), timed.
fn make(args: &[&str]) -> std::process::Output {
    let started = Instant::now();
    let output = run(Command::new("make")
        .arg("--no-print-directory")
        .args(args)
        .current_dir(ROOT)
        .stdin(Stdio::null()));
    note(&format!(
        "make {}: {:.0?}",
        args.join(" "),
        started.elapsed()
    ));
    output
}

fn toolchain_available(target: &Target) -> bool {
    available(
        &[
            "make",
            "/usr/bin/cargo",
            "/usr/bin/rustc",
            target.qemu,
            target.cc,
        ],
        &format!("the {} build and its emulated tests", target.arch),
    )
}

fn release(target: &Target) -> PathBuf {
    Path::new(ROOT)
        .join("target/cross")
        .join(target.triple)
        .join("release")
}

/// Runs every part of a target's check, each timed.
fn check_target(target: &Target) {
    if !toolchain_available(target) {
        return;
    }
    make(&[&format!("cross-{}", target.arch)]);
    type Part = (&'static str, fn(&Target));
    let parts: [Part; 5] = [
        ("the tiny daemon", tiny_daemon_serves),
        ("HTTPS", https_serves),
        ("the suites", suites_pass),
        ("the C tests", c_tests_pass),
        ("history files", history_files_move_between_architectures),
    ];
    for (what, check) in parts {
        let started = Instant::now();
        check(target);
        note(&format!(
            "{} under qemu, {what}: {:.0?}",
            target.arch,
            started.elapsed()
        ));
    }
}

#[test]
fn arm64() {
    check_target(&ARM64);
}

#[test]
fn armhf() {
    check_target(&ARMHF);
}

#[test]
fn i386() {
    check_target(&I386);
}

/// The daemon of `binary`, run by the target's qemu.
fn under_qemu(target: &Target, binary: &Path) -> Command {
    let mut command = Command::new(target.qemu);
    command.arg(binary).env_remove("LD_LIBRARY_PATH");
    command
}

fn tiny_daemon_serves(target: &Target) {
    let tiny = Path::new(ROOT)
        .join("target/cross")
        .join(target.triple)
        .join("tiny/ssed");
    let size = fs::metadata(&tiny).expect("the tiny daemon").len();
    note(&format!("{} tiny daemon: {size} bytes", target.arch));
    assert!(size < TINY_BUDGET, "{size} bytes is over {TINY_BUDGET}");
    delivers_a_publish_then_stops(Ssed::start_with(&mut under_qemu(target, &tiny)), "small");
}

/// A publish to `ssed` reaches a subscriber with `data`, and SIGTERM stops it cleanly.
fn delivers_a_publish_then_stops(mut ssed: Ssed, data: &str) {
    let mut sub = Sse::open(ssed.addr, "/events?topic=t", "");
    let mut publisher = connect(ssed.addr);
    let request =
        format!("POST /publish?topic=t&data={data} HTTP/1.1\r\nConnection: close\r\n\r\n");
    publisher.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_response(&mut publisher).status, 200);
    assert_eq!(sub.next_event().data.as_deref(), Some(data));
    ssed.process.signal(libc::SIGTERM);
    let exit = ssed.process.wait_exit(PATIENCE).expect("it stops");
    assert!(exit.success(), "{exit}");
}

/// The release daemon (built with the feature `tls`, as `CROSS_FEATURES` says) serves HTTPS
/// under qemu: a stream over TLS (rustls here) receives what curl publishes over TLS, with a
/// certificate from the test's own CA.
fn https_serves(target: &Target) {
    let pki = Pki::new(&format!("devices-tls-{}", target.arch));
    let (cert, key) = pki.issue("server", 1, 30, "ec");
    let mut command = under_qemu(target, &release(target).join("ssed"));
    command
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key);
    let mut ssed = Ssed::start_with(&mut command);
    let mut sub = TlsSse::open(ssed.addr, &pki.client_config(), "/events?topic=t");
    let url = format!("https://localhost:{}/publish", ssed.addr.port());
    let output = run(Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "20",
            "--cacert",
        ])
        .arg(&pki.ca)
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", ssed.addr.port()),
        ])
        .args(["-d", "topic=t", "-d", "data=over TLS", &url]));
    assert!(!output.stdout.is_empty(), "curl printed no id");
    assert_eq!(sub.next_data(), "over TLS");
    ssed.process.signal(libc::SIGTERM);
    let exit = ssed.process.wait_exit(PATIENCE).expect("it stops");
    assert!(exit.success(), "{exit}");
}

fn suites_pass(target: &Target) {
    let daemon = release(target).join("ssed");
    for (suite, skipped) in SUITES {
        let started = Instant::now();
        let mut command = Command::new(common::target::suite_binary(suite));
        command
            .args(["--test-threads", "2"])
            .env(common::target::DAEMON_VAR, &daemon)
            .env(common::target::RUNNER_VAR, target.qemu)
            .current_dir(ROOT)
            .stdin(Stdio::null());
        for test in skipped {
            command.args(["--skip", test]);
        }
        let what = format!(
            "{suite} against the {} daemon under {}",
            target.arch, target.qemu
        );
        let summary = common::target::suite_passes(&mut command, &what);
        note(&format!(
            "{} under qemu, {suite}: {summary} ({:.0?})",
            target.arch,
            started.elapsed()
        ));
    }
}

fn c_tests_pass(target: &Target) {
    let lib = release(target);
    let build = format!("build/{}", target.arch);
    let output = make(&[
        "-C",
        "c-tests",
        "run",
        &format!("CC={}", target.cc),
        &format!("LIBDIR={}", lib.display()),
        &format!("BUILD={build}"),
        &format!("RUNNER={}", target.qemu),
        "TIMEOUT=120",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    note(&format!("{} under qemu, C tests: {last}", target.arch));
    // Every test, linked both ways, for that architecture.
    let tests = fs::read_dir(Path::new(ROOT).join("c-tests"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("test_") && name.ends_with(".c")
        })
        .count();
    // (qemu runs only binaries of its architecture: these were the target's.)
    assert_eq!(last, format!("{} passed, 0 failed", 2 * tests), "{stdout}");
}

/// A daemon of this machine or of the target, keeping its history in `file`.
fn start_with_history(command: &mut Command, file: &Path) -> Ssed {
    Ssed::start_with(command.arg("--history-file").arg(file).arg("-q"))
}

fn publish(addr: std::net::SocketAddr, data: &str) -> u64 {
    let mut stream = connect(addr);
    let request = format!("POST /publish?data={data} HTTP/1.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let response = read_response(&mut stream);
    assert_eq!(response.status, 200, "{}", response.text());
    response.text().trim().parse().expect("an assigned id")
}

fn stop(mut ssed: Ssed) {
    ssed.process.signal(libc::SIGTERM);
    let exit = ssed.process.wait_exit(PATIENCE).expect("the daemon stops");
    assert!(exit.success(), "{exit}");
}

/// Replays from `after` and returns the data of the events up to the one with `last`.
fn replayed(addr: std::net::SocketAddr, after: u64, last: u64) -> Vec<String> {
    let mut sub = Sse::open(addr, &format!("/events?lastEventId={after}"), "");
    let mut seen = Vec::new();
    loop {
        let event = sub.next_event();
        seen.push(event.data.expect("data"));
        if event.id == Some(last.to_string()) {
            return seen;
        }
    }
}

/// The history file's format is the same on every target: what this machine's daemon wrote,
/// the target's replays without a gap and goes on from, and back again.
fn history_files_move_between_architectures(target: &Target) {
    let dir = TempDir::new(&format!("history-{}", target.arch));
    let file = dir.join("history.log");
    let here = || Command::new(env!("CARGO_BIN_EXE_ssed"));
    let there = || under_qemu(target, &release(target).join("ssed"));

    let native = start_with_history(&mut here(), &file);
    let first = publish(native.addr, "written-on-x86_64");
    let second = publish(native.addr, "also-on-x86_64");
    stop(native);

    let foreign = start_with_history(&mut there(), &file);
    assert_eq!(
        replayed(foreign.addr, first, second),
        ["also-on-x86_64"],
        "the {} daemon replays the x86_64 file without a gap",
        target.arch
    );
    let third = publish(foreign.addr, "written-on-target");
    assert!(third > second, "ids go on above the file's: {third}");
    stop(foreign);

    let native = start_with_history(&mut here(), &file);
    assert_eq!(
        replayed(native.addr, first, third),
        ["also-on-x86_64", "written-on-target"],
        "the x86_64 daemon replays the {} file",
        target.arch
    );
    stop(native);
}

/// Every option `ssed --help` lists is in ssed(1), and the page lists no other; its version is
/// the daemon's.
#[test]
fn the_manual_page_documents_every_option_of_help() {
    let help = run(Command::new(env!("CARGO_BIN_EXE_ssed")).arg("--help"));
    let help = String::from_utf8_lossy(&help.stdout);
    let page = fs::read_to_string(Path::new(ROOT).join("man/ssed.1")).unwrap();
    let in_help: BTreeSet<String> = help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| options(l.split("  ").next().unwrap_or_default()))
        .collect();
    // The line after each `.TP` of the OPTIONS section names an option.
    let section = page
        .split("\n.SH ")
        .find(|s| s.starts_with("OPTIONS"))
        .expect("an OPTIONS section");
    let in_page: BTreeSet<String> = section
        .split(".TP\n")
        .skip(1)
        .flat_map(|entry| options(&entry.lines().next().unwrap_or_default().replace("\\-", "-")))
        .collect();
    assert!(!in_help.is_empty());
    assert_eq!(
        in_help, in_page,
        "man/ssed.1's OPTIONS and `ssed --help` name the same options"
    );
    let version = run(Command::new(env!("CARGO_BIN_EXE_ssed")).arg("--version"));
    let version = String::from_utf8_lossy(&version.stdout);
    let version = version.trim().trim_start_matches("ssed ");
    assert!(
        page.contains(&format!("\"ssed {version}\"")),
        "the page's version is {version}"
    );
}

/// The options (`-q`, `--quiet`, `--listen`) a line names.
fn options(line: &str) -> Vec<String> {
    line.split(|c: char| c.is_whitespace() || c == ',' || c == '"')
        .filter(|w| w.starts_with('-') && w.len() > 1)
        .map(|w| w.trim_end_matches(['.', ':']).to_owned())
        .collect()
}

/// The Debian packages of the three architectures build, and lintian finds no error in them;
/// each warning it gives is one README.md lists with its reason. Then the amd64 package is
/// installed for real, used, and purged.
#[test]
fn debian_packages() {
    let tools = [
        "make",
        "/usr/bin/cargo",
        "dpkg-deb",
        "dpkg-shlibdeps",
        "lintian",
        "aarch64-linux-gnu-gcc",
        "arm-linux-gnueabihf-gcc",
    ];
    if !available(&tools, "the Debian packages") {
        return;
    }
    for arch in ["amd64", "arm64", "armhf"] {
        make(&[&format!("deb-{arch}")]);
    }
    let debs = Path::new(ROOT).join("target/deb");
    let version = env!("CARGO_PKG_VERSION");
    let abi = ssed::ffi::SSE_ABI_VERSION;
    let packages: Vec<PathBuf> = ["amd64", "arm64", "armhf"]
        .iter()
        .flat_map(|arch| {
            [
                format!("ssed_{version}_{arch}.deb"),
                format!("libssed{abi}_{version}_{arch}.deb"),
                format!("libssed-dev_{version}_{arch}.deb"),
            ]
        })
        .map(|name| debs.join(name))
        .collect();
    lintian_finds_no_error(&packages);
    let amd64 = |name: &str| debs.join(format!("{name}_{version}_amd64.deb"));
    installs_serves_and_purges(&[
        amd64("ssed"),
        amd64(&format!("libssed{abi}")),
        amd64("libssed-dev"),
    ]);
}

fn lintian_finds_no_error(packages: &[PathBuf]) {
    let started = Instant::now();
    let output = Command::new("lintian")
        .args(["--no-cfg", "--display-info", "--tag-display-limit", "0"])
        .args(packages)
        .output()
        .expect("run lintian");
    let report = String::from_utf8_lossy(&output.stdout);
    note(&format!(
        "lintian on {} packages: {:.0?}\n{report}",
        packages.len(),
        started.elapsed()
    ));
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    for line in report.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(_package), Some(tag)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        match kind {
            "E:" => panic!("lintian: {line}"),
            "W:" | "I:" => assert!(
                readme.contains(&format!("`{tag}`")),
                "lintian's {tag} is not among the README's explained tags: {line}"
            ),
            _ => {}
        }
    }
    assert!(
        output.status.success() || !report.contains("E: "),
        "lintian failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the packages install, as dpkg lists it.
fn installed_files(packages: &[&str]) -> Vec<PathBuf> {
    let output = run(Command::new("dpkg").arg("-L").args(packages));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        // Files and links to files: not directories, nor links to them (/lib on merged /usr).
        .filter(|p| !p.is_dir() && (p.is_file() || p.is_symlink()))
        .collect()
}

fn installs_serves_and_purges(debs: &[PathBuf]) {
    if !available(
        &["dpkg", "man", "pkg-config", "cc"],
        "installing the amd64 package",
    ) {
        return;
    }
    if unsafe { libc::geteuid() } != 0 {
        common::external::skip("installing the amd64 package: not root");
        return;
    }
    let names = [
        "ssed".to_string(),
        format!("libssed{}", ssed::ffi::SSE_ABI_VERSION),
        "libssed-dev".to_string(),
    ];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\n"])
        .args(&names)
        .output()
        .expect("dpkg-query");
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "ssed's packages are installed on this machine already: the test will not touch them"
    );
    run(Command::new("dpkg").arg("-i").args(debs));
    let purge = Purge(names.iter().map(|n| n.to_string()).collect());
    let files = installed_files(&names);
    assert!(
        files.iter().any(|f| f == Path::new("/usr/bin/ssed")),
        "{files:?}"
    );

    // The installed daemon publishes to a subscriber.
    delivers_a_publish_then_stops(
        Ssed::start_with(&mut Command::new("/usr/bin/ssed")),
        "installed",
    );

    // man finds the page; the unit is installed, neither enabled nor started.
    let page = run(Command::new("man").args(["-w", "ssed"]));
    assert_eq!(
        String::from_utf8_lossy(&page.stdout).trim(),
        "/usr/share/man/man1/ssed.1.gz"
    );
    let text = run(Command::new("man")
        .args(["-P", "cat", "ssed"])
        .env("MANWIDTH", "80"));
    assert!(String::from_utf8_lossy(&text.stdout).contains("--history-file"));
    assert!(Path::new("/lib/systemd/system/ssed.service").is_file());
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/ssed.service").exists());

    // pkg-config finds the library, and a C program builds against it and runs.
    let flags = run(Command::new("pkg-config").args(["--cflags", "--libs", "ssed"]));
    let flags = String::from_utf8_lossy(&flags.stdout).trim().to_owned();
    assert!(flags.contains("-lssed"), "{flags}");
    let dir = TempDir::new("installed-c");
    let program = dir.join("publish");
    run(Command::new("sh")
        .args([
            "-c",
            &format!("cc examples/c/publish.c {flags} -o {}", program.display()),
        ])
        .current_dir(ROOT));
    let mut example = Process::start(
        Command::new(&program)
            .args(["127.0.0.1:0", "news"])
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut log = common::external::Lines::new(example.child.stderr.take().unwrap());
    let line = log.wait_for("the listening line", |l| l.contains("listening on http://"));
    let maps = fs::read_to_string(format!("/proc/{}/maps", example.pid())).unwrap();
    let abi = ssed::ffi::SSE_ABI_VERSION;
    assert!(
        maps.contains(&format!("/usr/lib/x86_64-linux-gnu/libssed.so.{abi}")),
        "the program loads the packaged library: {line}\n{maps}"
    );
    drop(example.child.stdin.take());
    assert!(example.wait_exit(PATIENCE).expect("it exits").success());
    // And statically, with the README's line: the packaged libssed.a links and runs.
    let fixed = dir.join("publish-static");
    let line = format!(
        "cc examples/c/publish.c $(pkg-config --cflags --static --libs ssed | \
         sed 's/-lssed /-l:libssed.a /') -o {}",
        fixed.display()
    );
    run(Command::new("sh").args(["-c", &line]).current_dir(ROOT));
    let mut fixed = Command::new(&fixed)
        .arg("127.0.0.1:0")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the static example");
    fixed.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = fixed.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let listened = String::from_utf8_lossy(&out.stderr).contains("listening on http://");
    assert!(listened, "{out:?}");

    // Purged, nothing it installed is left.
    drop(purge);
    let left: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.exists() || f.is_symlink())
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\n"])
        .args(&names)
        .output()
        .expect("dpkg-query");
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "still known to dpkg: {}",
        String::from_utf8_lossy(&status.stdout)
    );
}

/// Purges the packages on drop, so that a failing test leaves the machine as it found it.
struct Purge(Vec<String>);

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").arg("--purge").args(&self.0).output();
    }
}
