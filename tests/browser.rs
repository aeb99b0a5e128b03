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

use std::ffi::OsStr;
use std::path::Path;

use common::external::{Ssed, browser_available, run_browser_script};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn chromium_eventsource_receives_and_replays() {
    if !browser_available("the browser test") {
        return;
    }
    let ssed = Ssed::start(&["--demo"]);
    let base = format!("http://{}", ssed.addr);
    let screenshot = Path::new(ROOT).join("target/viewer.png");
    let topic_screenshot = Path::new(ROOT).join("target/viewer-topic.png");
    for png in [&screenshot, &topic_screenshot] {
        let _ = std::fs::remove_file(png); // so that only this run's can be found below
    }
    let stdout = run_browser_script(
        "eventsource.mjs",
        &[OsStr::new(&base), screenshot.as_os_str()],
        60,
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
    use common::external::free_port;
    use common::jwt::{KEY, token};

    if !browser_available("the browser cookie test") {
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
    let stdout = run_browser_script(
        "mercure_cookie.mjs",
        &[
            format!("http://{}", ssed.addr),
            page_port.to_string(),
            reader,
        ],
        60,
    );
    assert!(stdout.contains("ok: a page on another origin"), "{stdout}");
    eprint!("{stdout}");
}

/// The viewer on servers that need a credential: it says why its stream closed and takes the
/// credential the server accepts (tests/browser/viewer_credential.mjs). The refused page is
/// screenshot to `target/viewer-401.png`.
#[cfg(feature = "jwt")]
#[test]
fn the_viewer_says_why_its_stream_closed_and_takes_the_credential() {
    use common::jwt::{KEY, token};

    if !browser_available("the viewer credential test") {
        return;
    }
    let with_token = Ssed::start(&["--subscribe-token", "r3ad"]);
    let with_jwt = Ssed::start(&["--subscriber-jwt-key", KEY]);
    let reader = token(r#"{"mercure":{"subscribe":["*"]}}"#);
    let png = Path::new(ROOT).join("target/viewer-401.png");
    let _ = std::fs::remove_file(&png);
    let stdout = run_browser_script(
        "viewer_credential.mjs",
        &[
            OsStr::new(&format!("http://{}", with_token.addr)),
            OsStr::new("r3ad"),
            OsStr::new(&format!("http://{}", with_jwt.addr)),
            OsStr::new(&reader),
            png.as_os_str(),
        ],
        60,
    );
    assert!(stdout.contains("ok: token: the viewer said"), "{stdout}");
    assert!(stdout.contains("ok: jwt: the viewer said"), "{stdout}");
    assert!(png.exists(), "no screenshot at {}", png.display());
}

/// Mercure 1.0 in real browsers (tests/browser/mercure1.mjs): the matcher cases of the reference
/// conformance suite through EventSource, and two Chromiums, one watching the other's
/// subscription arrive and leave through subscription events and the subscription API.
#[cfg(all(feature = "jwt", feature = "urlpattern"))]
#[test]
fn chromium_speaks_mercure_1_0_and_sees_another_browser_come_and_go() {
    use common::jwt::{KEY, epoch_in, sign_with};

    if !browser_available("the Mercure 1.0 browser test") {
        return;
    }
    let issuer = "https://app.test";
    let ssed = Ssed::start(&[
        "--issuer",
        issuer,
        "--issuer-key",
        KEY,
        "--anonymous",
        "--subscriptions",
    ]);
    let hub = format!("http://{}/.well-known/mercure", ssed.addr);
    let access = |details: &str| {
        let claims = format!(
            r#"{{"iss":"{issuer}","aud":"{hub}","sub":"s","client_id":"{issuer}","iat":{},"exp":{},"jti":"j","authorization_details":{details}}}"#,
            epoch_in(0),
            epoch_in(300)
        );
        sign_with(KEY, r#"{"alg":"HS256","typ":"at+jwt"}"#, &claims)
    };
    let detail = |actions: &str, topics: &str, extra: &str| {
        format!(
            r#"{{"type":"https://mercure.rocks/authorization-detail","actions":{actions},"topics":{topics}{extra}}}"#
        )
    };
    let publisher = access(&format!(
        "[{}]",
        detail(r#"["publish"]"#, r#"[{"match":"*"}]"#, "")
    ));
    let watcher = access(&format!(
        "[{}]",
        detail(
            r#"["subscribe"]"#,
            r#"[{"match":"/.well-known/mercure/subscriptions{/*}?","match_type":"urlpattern"}]"#,
            ""
        )
    ));
    let member = access(&format!(
        "[{}]",
        detail(
            r#"["subscribe"]"#,
            r#"[{"match":"https://example.com/rooms/:id","match_type":"urlpattern"}]"#,
            r#","payload":{"nick":"ann"}"#
        )
    ));
    let stdout = run_browser_script(
        "mercure1.mjs",
        &[format!("http://{}", ssed.addr), publisher, watcher, member],
        90,
    );
    assert!(stdout.contains("ok: 10 matcher cases"), "{stdout}");
    assert!(stdout.contains("saw the second leave"), "{stdout}");
    eprint!("{stdout}");
}
