//! The smallest daemon (`cargo tiny`): built as the README says, under 400 KiB, and serving:
//! a subscriber gets what is published, SIGTERM ends it cleanly, and what it was built without
//! is refused with a clear message.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::external::{Process, Ssed, TempDir};
use common::{PATIENCE, Sse, connect, read_response};

/// The README's promise for the tiny build.
const BUDGET: u64 = 400 * 1024;

#[test]
fn the_tiny_build_is_under_400_kib_and_serves() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // A target directory of its own, so that this build never waits for the one running tests.
    let target = TempDir::new("tiny-build");
    let status = Command::new(cargo)
        .arg("tiny")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target.path())
        .stdin(Stdio::null())
        .status()
        .expect("run cargo tiny");
    assert!(status.success(), "cargo tiny failed");
    let binary = target.join("tiny/ssed");
    let size = std::fs::metadata(&binary).unwrap().len();
    eprintln!("tiny daemon: {size} bytes");
    assert!(size < BUDGET, "{size} bytes is over {BUDGET}");

    let mut ssed = Ssed::start_with(&mut Command::new(&binary));
    let mut stream = connect(ssed.addr);
    stream
        .write_all(b"GET /events?topic=t HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut sub = Sse {
        stream,
        buf: Vec::new(),
    };
    sub.read_head();
    let mut publisher = connect(ssed.addr);
    publisher
        .write_all(b"POST /publish?topic=t&data=small HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut publisher).status, 200);
    assert_eq!(sub.next_event().data.as_deref(), Some("small"));
    ssed.process.signal(libc::SIGTERM);
    let exit = ssed.process.wait_exit(PATIENCE).expect("it stops");
    assert!(exit.success(), "{exit}");

    let history = TempDir::new("tiny-history");
    let mut refused = Process::start(
        Command::new(&binary)
            .args(["--listen", "127.0.0.1:0", "--history-file"])
            .arg(history.join("h.log"))
            .stderr(Stdio::piped()),
    );
    let exit = refused.wait_exit(PATIENCE).expect("it exits");
    assert_eq!(exit.code(), Some(2));
    let mut message = String::new();
    use std::io::Read;
    refused
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut message)
        .unwrap();
    assert!(
        message.contains("built without the history file"),
        "{message}"
    );
}
