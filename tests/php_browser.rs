//! The classic PHP Server-Sent Events example with ssed inside PHP and a real browser as the
//! client: c-tests/php/classic_sse.php publishes eight messages (a single line, multi-line
//! JSON, id 250, a custom event without id, a custom event with id 521, a single line,
//! `retry: 10000` with two data lines, one more), once through the FFI wrapper and once through
//! the extension, and headless Chromium's EventSource (tests/browser/classic.mjs) must receive
//! each with its type, its id as `lastEventId`, and its data. The PHP program checks the bytes
//! on the wire itself (the `retry:` line a browser does not expose).
//!
//! Without php, Chromium, node or playwright-core (or phpize and a C compiler for the
//! extension) a test is skipped with the reason, unless CI is set: then it fails.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use common::PATIENCE;
use common::external::{self, Lines, Process, ROOT};

/// The eight messages as the browser must see them: type and data (LF between lines).
const CLASSIC: [(&str, &str); 8] = [
    ("message", "This is the first message."),
    ("message", "{\n\"msg\": \"hello world\",\n\"id\": 12345\n}"),
    ("message", "This message has id 250."),
    ("userlogon", r#"{"username": "John123"}"#),
    ("update", r#"{"username": "John123", "emotion": "happy"}"#),
    ("message", "This is the sixth message."),
    ("message", "Reconnect after 10 s\nif the connection drops."),
    ("message", "This is the last message."),
];
/// The messages that carry an id of their own; the server numbers the others.
const OWN_IDS: [(usize, &str); 2] = [(2, "250"), (4, "521")];

/// Both tests build with cargo and make and start a browser: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn chromium_receives_the_classic_example_from_php_ffi() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !browser_available() || !php_ffi_available() {
        return;
    }
    make(&["lib"]);
    classic("ffi", &["-d", "ffi.enable=1"]);
}

#[test]
fn chromium_receives_the_classic_example_from_the_php_extension() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tools = ["php", "phpize", "make", "cc"];
    if !browser_available() || !external::available(&tools, "the PHP extension") {
        return;
    }
    // A build directory of its own, apart from the one `make -C c-tests php` uses.
    make(&["lib"]);
    make(&["php-ext-module", "PHP_EXT=build/php-ext-browser"]);
    let module = PathBuf::from(ROOT).join("c-tests/build/php-ext-browser/modules/ssed.so");
    classic(
        "ext",
        &["-n", "-d", &format!("extension={}", module.display())],
    );
}

/// Runs the PHP program with `backend`, has Chromium subscribe, and checks what it received.
fn classic(backend: &str, php_args: &[&str]) {
    let mut php = Process::start(
        Command::new("php")
            .args(php_args)
            .args(["c-tests/php/classic_sse.php", backend, "127.0.0.1:0"])
            .current_dir(ROOT)
            .env("SSED_LIB", library())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut out = Lines::new(php.child.stdout.take().expect("piped stdout"));
    let listening = out.wait_for("the listening line", |l| l.starts_with("listening on "));
    let base = &listening["listening on ".len()..];

    let types: Vec<&str> = CLASSIC
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t != "message")
        .collect();
    let received = external::run_browser_script(
        "classic.mjs",
        &[&[base, "8"], types.as_slice()].concat(),
        60,
    );

    let published = out.wait_for("the published line", |l| l.starts_with("published "));
    let ids: Vec<&str> = published["published ".len()..].split(' ').collect();
    assert_numbered(&ids);
    out.wait_for("the PHP program's check of the wire", |l| l == "wire ok");
    assert_eq!(
        received.trim(),
        expected_json(&ids),
        "what Chromium received ({backend})"
    );

    drop(php.child.stdin.take()); // the PHP program stops its server and exits
    let status = php
        .wait_exit(PATIENCE)
        .expect("php exits once its input closes");
    assert!(status.success(), "php exited with {status}");
}

/// The ids are the two the program chose, and consecutive numbers from the server between.
fn assert_numbered(ids: &[&str]) {
    assert_eq!(ids.len(), CLASSIC.len(), "{ids:?}");
    let mut assigned = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match OWN_IDS.iter().find(|(at, _)| *at == i) {
            Some((_, own)) => assert_eq!(id, own, "{ids:?}"),
            None => assigned.push(id.parse::<u64>().unwrap_or_else(|_| panic!("{ids:?}"))),
        }
    }
    assert!(
        assigned.windows(2).all(|w| w[1] == w[0] + 1),
        "the server numbers events consecutively: {ids:?}"
    );
}

/// What classic.mjs prints for the eight messages: JSON.stringify of [{type, id, data}].
fn expected_json(ids: &[&str]) -> String {
    let events: Vec<String> = CLASSIC
        .iter()
        .zip(ids)
        .map(|((event_type, data), id)| {
            format!(
                r#"{{"type":{},"id":{},"data":{}}}"#,
                json(event_type),
                json(id),
                json(data)
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

/// A JSON string as JSON.stringify writes these (quotes, backslashes and LF escaped).
fn json(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    assert!(!escaped.chars().any(char::is_control), "{text:?}");
    format!("\"{escaped}\"")
}

/// libssed.so as cargo builds it for `make -C c-tests lib`.
fn library() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ROOT).join("target"));
    target.join("release/libssed.so")
}

fn make(args: &[&str]) {
    external::run(
        Command::new("make")
            .args(["--no-print-directory", "-C", "c-tests"])
            .args(args)
            .current_dir(ROOT),
    );
}

fn browser_available() -> bool {
    external::available(&["make"], "the PHP browser test")
        && external::browser_available("the PHP browser test")
}

fn php_ffi_available() -> bool {
    if !external::available(&["php"], "the PHP FFI browser test") {
        return false;
    }
    let modules = Command::new("php").arg("-m").output();
    let has_ffi = modules.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l == "FFI")
    });
    has_ffi || external::skip("the PHP FFI browser test: php has no FFI extension")
}
