//! The browser's own EventSource against the daemon, in headless Chromium (driven by
//! playwright-core from tests/browser/): a default event, a named event, multi-line data,
//! `lastEventId`, and a reconnect that replays what was missed. Then the viewer page: opened on
//! a server with history, it shows the last 50 events of its topic at once, then live ones; it
//! is screenshot to `target/viewer.png` (every topic) and `target/viewer-topic.png` (one).
//!
//! A second test has a page on another origin subscribe to the Mercure hub with the
//! `mercureAuthorization` cookie (tests/browser/mercure_cookie.mjs).
//!
//! Without Chromium or the npm packages the test is skipped with the reason, unless the
//! environment variable CI is set: then it fails.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHROMIUM: &str = "/usr/bin/chromium";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn missing_prerequisite() -> Option<String> {
    let script_dir = Path::new(ROOT).join("tests/browser");
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} is not installed (Debian package chromium)"
        ));
    }
    if !script_dir.join("node_modules/playwright-core").exists() {
        return Some("playwright-core is not installed: npm ci --prefix tests/browser".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    None
}

#[test]
fn chromium_eventsource_receives_and_replays() {
    if let Some(reason) = missing_prerequisite() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser test, but {reason}"
        );
        eprintln!("skipping the browser test: {reason}");
        return;
    }
    let mut daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_ssed"))
            .args(["--listen", "127.0.0.1:0", "--demo"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ssed"),
    );
    let stderr = daemon.0.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("ssed: listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("ssed prints its address");
    let screenshot = Path::new(ROOT).join("target/viewer.png");
    let topic_screenshot = Path::new(ROOT).join("target/viewer-topic.png");
    for png in [&screenshot, &topic_screenshot] {
        let _ = std::fs::remove_file(png); // so that only this run's can be found below
    }
    let output = Command::new("timeout")
        .args(["60", "node", "tests/browser/eventsource.mjs", &base])
        .arg(&screenshot)
        .current_dir(ROOT)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}{stderr}"
    );
    assert!(stdout.contains("ok: EventSource got"), "{stdout}");
    assert!(
        stdout.contains("ok: the viewer opened on the last 50"),
        "{stdout}"
    );
    for png in [&screenshot, &topic_screenshot] {
        assert!(png.exists(), "no screenshot at {}", png.display());
    }
    eprint!("{stdout}");
}

#[cfg(feature = "jwt")]
#[test]
fn chromium_reads_private_updates_with_the_mercure_cookie_across_origins() {
    use common::external::{Ssed, free_port};
    use common::jwt::{KEY, token};

    if let Some(reason) = missing_prerequisite() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser test, but {reason}"
        );
        eprintln!("skipping the browser cookie test: {reason}");
        return;
    }
    // The page's origin differs from the hub's by its port: another origin, the same site.
    let page_port = free_port();
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let ssed = Ssed::start(&[
        "--subscriber-jwt-key",
        KEY,
        "--anonymous",
        "--cors-origin",
        &page_origin,
    ]);
    let reader = token(r#"{"mercure":{"subscribe":["https://example.com/books/{id}"]}}"#);
    let output = Command::new("timeout")
        .args(["60", "node", "tests/browser/mercure_cookie.mjs"])
        .arg(format!("http://{}", ssed.addr))
        .arg(page_port.to_string())
        .arg(&reader)
        .current_dir(ROOT)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser cookie test failed:\n{stdout}{stderr}"
    );
    assert!(stdout.contains("ok: a page on another origin"), "{stdout}");
    eprint!("{stdout}");
}
