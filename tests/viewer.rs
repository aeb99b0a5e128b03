//! The viewer page's recent history, over HTTP: the page served at `/` carries the id its
//! stream replays from, and that replay holds the last 50 retained events of the page's topics,
//! whatever ids publishers chose. The browser side is in tests/browser.rs.

mod common;

use common::{Sse, TestServer};
use ssed::{Config, Event};

/// What the server wrote into the page: the types to listen to, the replay's start, how many
/// events that replay holds, and the credential a stream needs.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    types: Vec<String>,
    since: Option<String>,
    history: usize,
    auth: String,
}

/// Reads the settings object out of the page (a small JSON object the server writes).
fn settings(page: &str) -> Settings {
    let start = page.find("const page = ").expect("the settings line") + 13;
    let line = &page[start..start + page[start..].find(";\n").expect("end of the line")];
    let (types, rest) = line
        .strip_prefix(r#"{"types":["#)
        .and_then(|l| l.split_once(r#"],"since":"#))
        .unwrap_or_else(|| panic!("unexpected settings {line}"));
    let (since, history) = rest
        .split_once(r#","history":"#)
        .unwrap_or_else(|| panic!("unexpected settings {line}"));
    let (history, auth) = history
        .strip_suffix('}')
        .and_then(|h| h.split_once(r#","auth":"#))
        .unwrap_or_else(|| panic!("{line}"));
    Settings {
        types: if types.is_empty() {
            Vec::new()
        } else {
            types.split(',').map(json_string).collect()
        },
        since: (since != "null").then(|| json_string(since)),
        history: history.parse().unwrap_or_else(|_| panic!("{line}")),
        auth: json_string(auth),
    }
}

/// Decodes the JSON strings this server writes (escapes: \" \\ \uXXXX).
fn json_string(text: &str) -> String {
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a JSON string: {text}"));
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16).expect("hex escape");
                out.push(char::from_u32(code).expect("a char"));
            }
            Some(other) => out.push(other),
            None => panic!("dangling escape in {text}"),
        }
    }
    out
}

fn publish(server: &TestServer, topic: &str, id: &str, event_type: &str) {
    let event = Event::new(format!("data {id}"))
        .topic(topic)
        .id(id)
        .event_type(event_type);
    server.handle.publish(&event).expect("publish");
}

/// Waits until the loop has taken every event published so far into its history.
fn wait_retained(server: &TestServer, n: u64) {
    common::wait_until(|| server.handle.stats().history_events == n, "history");
}

fn page(server: &TestServer, target: &str) -> Settings {
    let response = server.get(target);
    assert_eq!(response.status, 200, "{}", response.text());
    settings(&response.text())
}

/// Subscribes as the page does, and reads the ids of the replayed events.
fn replayed_ids(server: &TestServer, topics: &str, since: &str, count: usize) -> Vec<String> {
    let since: String = since
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect::<Vec<_>>()
        .concat();
    let mut stream: Sse = server.subscribe(&format!("/events?{topics}lastEventId={since}"), "");
    (0..count)
        .map(|_| stream.next_event().id.expect("an id"))
        .collect()
}

#[test]
fn the_page_opens_on_the_last_50_events() {
    let server = TestServer::default();
    let empty = page(&server, "/");
    assert_eq!(
        empty,
        Settings {
            types: vec![],
            since: None,
            history: 0,
            auth: "none".into(),
        }
    );

    for i in 1..=70 {
        let event_type = if i % 10 == 0 { "tick" } else { "" };
        publish(&server, "news", &format!("n{i}"), event_type);
    }
    wait_retained(&server, 70);
    let all = page(&server, "/");
    assert_eq!(all.since.as_deref(), Some("n20"));
    assert_eq!(all.history, 50);
    assert_eq!(all.types, ["tick"]);
    let ids = replayed_ids(&server, "", "n20", 50);
    let expected: Vec<String> = (21..=70).map(|i| format!("n{i}")).collect();
    assert_eq!(ids, expected);
}

#[test]
fn a_topic_filter_shows_that_topics_last_events_and_types() {
    let server = TestServer::default();
    for i in 1..=60 {
        publish(&server, "a", &format!("a{i}"), "alpha");
        publish(&server, "b", &format!("b{i}"), "beta");
    }
    wait_retained(&server, 120);
    let a = page(&server, "/?topic=a");
    // The window's oldest event is a11; the event just before it is b10.
    assert_eq!(a.since.as_deref(), Some("b10"));
    assert_eq!((a.history, a.types.clone()), (50, vec!["alpha".to_owned()]));
    let ids = replayed_ids(&server, "topic=a&", "b10", 50);
    let expected: Vec<String> = (11..=60).map(|i| format!("a{i}")).collect();
    assert_eq!(ids, expected);
}

#[test]
fn few_events_replay_everything_retained() {
    let server = TestServer::default();
    for i in 1..=3 {
        publish(&server, "a", &format!("a{i}"), "");
    }
    publish(&server, "b", "b1", "");
    wait_retained(&server, 4);
    let a = page(&server, "/?topic=a");
    let since = a.since.clone().expect("a replay");
    assert_eq!(a.history, 3);
    assert_eq!(
        replayed_ids(&server, "topic=a&", &since, 3),
        ["a1", "a2", "a3"]
    );
    // A topic with no events replays nothing.
    assert_eq!(page(&server, "/?topic=c").since, None);
}

#[test]
fn reused_ids_still_give_at_least_the_last_50() {
    let server = TestServer::default();
    // A publisher that numbers its events 0..9 over and over, then 50 fresh ones.
    for i in 0..30 {
        publish(&server, "t", &format!("r{}", i % 10), "");
    }
    for i in 1..=50 {
        publish(&server, "t", &format!("f{i}"), "");
    }
    wait_retained(&server, 80);
    let t = page(&server, "/");
    // The r ids repeat among themselves, but the window (f1..f50) holds none of them: r9, the
    // event just before the window, is the start.
    assert_eq!((t.since.as_deref(), t.history), (Some("r9"), 50));

    // Now the window itself repeats an id from before it: the start moves back.
    let server = TestServer::default();
    for id in ["x", "dup", "y"] {
        publish(&server, "t", id, "");
    }
    for i in 1..=49 {
        publish(&server, "t", &format!("f{i}"), "");
    }
    publish(&server, "t", "dup", "");
    wait_retained(&server, 53);
    let t = page(&server, "/");
    // The window is f1..f49 and the second "dup"; before it "y" is unique.
    assert_eq!((t.since.as_deref(), t.history), (Some("y"), 50));
    let ids = replayed_ids(&server, "", "y", 50);
    assert_eq!(ids.first().map(String::as_str), Some("f1"));
    assert_eq!(ids.last().map(String::as_str), Some("dup"));
}

#[test]
fn without_the_subscribe_token_the_page_tells_nothing_of_the_history() {
    let server = TestServer::start(Config {
        subscribe_token: Some("r3ad".into()),
        ..Config::default()
    });
    for i in 1..=60 {
        publish(&server, "a", &format!("a{i}"), "secret-type");
    }
    wait_retained(&server, 60);
    assert_eq!(
        page(&server, "/"),
        Settings {
            types: vec![],
            since: None,
            history: 0,
            auth: "token".into(),
        }
    );
    let with_token = page(&server, "/?token=r3ad");
    assert_eq!(
        (with_token.since.as_deref(), with_token.history),
        (Some("a10"), 50)
    );
}

#[test]
fn a_page_that_asks_for_its_own_replay_gets_that_one() {
    let server = TestServer::default();
    for i in 1..=60 {
        publish(&server, "a", &format!("a{i}"), "");
    }
    wait_retained(&server, 60);
    let own = page(&server, "/?lastEventId=a55");
    assert_eq!((own.since, own.history), (None, 0));
}

#[cfg(feature = "jwt")]
#[test]
fn the_page_says_which_credential_a_stream_needs() {
    let key = common::jwt::KEY;
    let auth = |config: Config| page(&TestServer::start(config), "/").auth;
    let keyed = Config {
        subscriber_jwt_key: Some(key.into()),
        ..Config::default()
    };
    assert_eq!(auth(keyed.clone()), "jwt");
    let anonymous = Config {
        anonymous: true,
        ..keyed.clone()
    };
    assert_eq!(auth(anonymous), "none", "public events need no token");
    let both = Config {
        subscribe_token: Some("r3ad".into()),
        ..keyed
    };
    assert_eq!(
        auth(both),
        "token",
        "the static token is the simpler one to type"
    );
}
