//! The host examples, run as their README says: examples/c/host.c and examples/php/host.php
//! each log ssed's lines through their own logger, show who is listening, and decide access
//! with their own session check (401 without the session, 403 publishing without the role,
//! a stream with it), then stop cleanly.
//!
//! Without make, a C compiler, php or phpize a test is skipped with the reason, unless CI is
//! set: then it fails.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use common::external::{Lines, Process, ROOT, available, run};
use common::{PATIENCE, Sse, connect, read_response};

/// Both build the library with cargo and make: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn make(dir: &str, args: &[&str]) {
    run(Command::new("make")
        .args(["--no-print-directory", "-C", dir])
        .args(args)
        .current_dir(ROOT));
}

/// Checks a running host: its listening and session lines, its access check and its counts.
/// Returns the stream it let in, open.
fn exercise(out: &mut Lines) -> Sse {
    let listening = out.wait_for("the listening line", |l| {
        l.contains("[host] listening on http://")
    });
    let addr: std::net::SocketAddr = listening.rsplit("http://").next().unwrap().parse().unwrap();
    let session_line = out.wait_for("the session", |l| l.contains("[host] session: "));
    let session = session_line.rsplit(' ').next().unwrap().to_owned();

    let ask = |raw: String| {
        let mut stream = connect(addr);
        use std::io::Write;
        stream.write_all(raw.as_bytes()).unwrap();
        read_response(&mut stream)
    };
    let refused = ask("GET /events?topic=ticks HTTP/1.1\r\nConnection: close\r\n\r\n".into());
    assert_eq!(
        (refused.status, refused.text()),
        (401, "log in first\n".into())
    );
    let stranger =
        ask("GET /events HTTP/1.1\r\nCookie: session=guess\r\nConnection: close\r\n\r\n".into());
    assert_eq!(stranger.status, 401);
    let cookie = format!("Cookie: session={session}\r\n");
    let publish = ask(format!(
        "POST /publish?topic=ticks&data=x HTTP/1.1\r\n{cookie}Connection: close\r\n\r\n"
    ));
    assert_eq!(
        (publish.status, publish.text()),
        (403, "only editors publish\n".into())
    );
    let mut stream = Sse::open(addr, "/events?topic=ticks", &cookie);
    let tick = stream.next_event();
    assert!(
        tick.data.as_deref().is_some_and(|d| d.starts_with("tick ")),
        "{tick:?}"
    );
    let editor = ask(format!(
        "POST /publish?topic=ticks&data=edited HTTP/1.1\r\n{cookie}X-Role: editor\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(editor.status, 200, "{}", editor.text());
    out.wait_for("the count of listeners", |l| {
        l.contains("[host] listening: 1 streams") && l.contains("ticks=1")
    });
    stream
}

#[test]
fn the_c_host_example() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !available(&["make", "cc"], "the C host example") {
        return;
    }
    make("c-tests", &["lib"]);
    make("examples/c", &["host"]);
    let mut host = Process::start(
        Command::new(Path::new(ROOT).join("examples/c/host"))
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let mut out = Lines::new(host.child.stdout.take().expect("piped stdout"));
    let _stream = exercise(&mut out);
    host.signal(libc::SIGTERM);
    let status = host.wait_exit(PATIENCE).expect("the host stops on SIGTERM");
    assert!(status.success(), "{status}");
    let lines = out.rest();
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("[ssed] shutting down: flushing 1 streams")),
        "ssed's lines come through the host's logger: {lines:#?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.ends_with("[host] stopped")),
        "{lines:#?}"
    );
}

#[test]
fn the_php_host_example() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !available(&["make", "cc", "php", "phpize"], "the PHP host example") {
        return;
    }
    make("c-tests", &["lib"]);
    make("c-tests", &["php-ext-module", "PHP_EXT=build/php-ext-host"]);
    let module = Path::new(ROOT).join("c-tests/build/php-ext-host/modules/ssed.so");
    let mut host = Process::start(
        Command::new("php")
            .args(["-n", "-d", &format!("extension={}", module.display())])
            .args(["examples/php/host.php", "127.0.0.1:0"])
            .current_dir(ROOT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut out = Lines::new(host.child.stdout.take().expect("piped stdout"));
    let _stream = exercise(&mut out);
    assert!(
        out.seen
            .iter()
            .any(|l| l.contains("[host] opened stream") && l.contains("(ticks) for 127.0.0.1:")),
        "the stream callable's line: {:#?}",
        out.seen
    );
    drop(host.child.stdin.take()); // the worker stops at the end of its input
    let status = host.wait_exit(PATIENCE).expect("the worker stops");
    assert!(status.success(), "{status}");
    let lines = out.rest();
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("[ssed] shutting down: flushing 1 streams")),
        "ssed's lines come through the worker's logger: {lines:#?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.ends_with("[host] stopped")),
        "{lines:#?}"
    );
}
