//! The Mercure hub at `/.well-known/mercure` (SPEC section 9): its subscribe and publish as
//! the protocol has them, its ids, replay by those ids (across a restart too), and Symfony's
//! Mercure component publishing to the daemon unchanged while raw subscribers check that each
//! receives exactly what it may.
#![cfg(feature = "jwt")]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use common::external::{Ssed, TempDir, available, skip};
use common::jwt::{KEY, token};
use common::{Block, Response, Sse, TestServer};
use ssed::Config;

const HUB: &str = "/.well-known/mercure";
/// Where Debian's php-symfony-mercure installs the component's autoloader.
const SYMFONY_MERCURE: &str = "/usr/share/php/Symfony/Component/Mercure/autoload.php";

fn config() -> Config {
    Config {
        publisher_jwt_key: Some(KEY.into()),
        subscriber_jwt_key: Some(KEY.into()),
        anonymous: true,
        ..Config::default()
    }
}

fn publisher() -> String {
    format!(
        "Authorization: Bearer {}\r\n",
        token(r#"{"mercure":{"publish":["*"]}}"#)
    )
}

/// Publishes a form to the hub as Symfony does.
fn publish(server: &TestServer, form: &str) -> Response {
    server.request(format!(
        "POST {HUB} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        publisher(),
        form.len()
    ))
}

fn is_urn_uuid(id: &str) -> bool {
    let Some(uuid) = id.strip_prefix("urn:uuid:") else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

#[test]
fn a_hub_subscription_and_update_name_their_topics() {
    let server = TestServer::start(config());
    let answer = server.get(HUB);
    assert_eq!(answer.status, 400);
    assert!(
        answer.text().contains("Missing \"topic\""),
        "{}",
        answer.text()
    );
    let answer = publish(&server, "data=x");
    assert_eq!(answer.status, 400);
    assert!(
        answer.text().contains("Missing \"topic\""),
        "{}",
        answer.text()
    );
    let answer = server.request(format!("PUT {HUB} HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("Allow").as_deref(), Some("GET, POST"));
}

#[test]
fn the_hub_answers_its_ids_as_text_urns_or_the_publishers_own() {
    let server = TestServer::start(config());
    let mut sub = server.subscribe(&format!("{HUB}?topic=*"), "");
    server.wait_subscribers(1);
    let first = publish(&server, "topic=a&data=1");
    assert_eq!(first.status, 200);
    assert!(
        first
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{}",
        first.head
    );
    let second = publish(&server, "topic=a&data=2");
    let (a, b) = (first.text(), second.text());
    assert!(is_urn_uuid(&a) && is_urn_uuid(&b), "{a} {b}");
    assert!(a < b, "ids grow: {a} {b}");
    let own = "https://example.com/events/1?v=2 é";
    let custom = publish(
        &server,
        "topic=a&data=3&id=https%3A%2F%2Fexample.com%2Fevents%2F1%3Fv%3D2+%C3%A9",
    );
    assert_eq!(custom.text(), own, "a publisher's id is echoed exactly");
    let ids: Vec<String> = (0..3).map(|_| sub.next_event().id.unwrap()).collect();
    assert_eq!(ids, [a, b, own.to_string()]);
    // ssed's own /publish still assigns decimal ids, from the same counter.
    let form = "topic=a&data=4";
    let decimal = server
        .request(format!(
            "POST /publish HTTP/1.1\r\nConnection: close\r\n{}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            publisher(),
            form.len()
        ))
        .text();
    assert!(decimal.bytes().all(|c| c.is_ascii_digit()), "{decimal}");
}

#[test]
fn the_hub_replays_from_its_ids_and_from_the_earliest() {
    let server = TestServer::start(config());
    let ids: Vec<String> = (1..=3)
        .map(|n| publish(&server, &format!("topic=a&data={n}")).text())
        .collect();
    let data = |sse: &mut Sse, n: usize| -> Vec<String> {
        (0..n).map(|_| sse.next_event().data.unwrap()).collect()
    };
    // The query's lastEventID...
    let target = format!("{HUB}?topic=a&lastEventID={}", ids[0]);
    let mut by_query = server.subscribe(&target, "");
    assert_eq!(data(&mut by_query, 2), ["2", "3"]);
    // ...loses to the header, which a browser sends when it reconnects.
    let header = format!("Last-Event-ID: {}\r\n", ids[1]);
    let mut by_header = server.subscribe(&target, &header);
    let first = by_header.next_block().unwrap();
    assert!(first.comments.is_empty(), "no gap: {first:?}");
    assert_eq!(first.data.as_deref(), Some("3"));
    // earliest: the whole history, no gap.
    let mut earliest = server.subscribe(&format!("{HUB}?topic=a&lastEventID=earliest"), "");
    let first = earliest.next_block().unwrap();
    assert!(first.comments.is_empty(), "{first:?}");
    assert_eq!(first.data.as_deref(), Some("1"));
    assert_eq!(data(&mut earliest, 2), ["2", "3"]);
    // An id never given is a gap, as on /events.
    let unknown =
        format!("{HUB}?topic=a&lastEventID=urn:uuid:00000000-0000-7000-8000-000000000000");
    let mut gap = server.subscribe(&unknown, "");
    assert_eq!(gap.next_block().unwrap().comments, ["gap"]);
}

#[test]
fn hub_ids_and_private_events_survive_a_restart_with_the_history_file() {
    let dir = TempDir::new("mercure-history");
    let with_file = || Config {
        history_file: Some(dir.join("history")),
        ..config()
    };
    let first = TestServer::start(with_file());
    let ids: Vec<String> = [
        "topic=a&data=1",
        "topic=a&data=2&private=on",
        "topic=a&data=3",
    ]
    .iter()
    .map(|form| publish(&first, form).text())
    .collect();
    // Stopped and opened again with no child process starting between (see `STARTING`).
    let restarting = common::external::no_children_starting();
    drop(first);
    let server = TestServer::start(with_file());
    drop(restarting);
    let after = format!("Last-Event-ID: {}\r\n", ids[0]);
    let reader = format!(
        "Authorization: Bearer {}\r\n",
        token(r#"{"mercure":{"subscribe":["a"]}}"#)
    );
    let mut allowed = server.subscribe(&format!("{HUB}?topic=a"), &format!("{reader}{after}"));
    let mut anonymous = server.subscribe(&format!("{HUB}?topic=a"), &after);
    let next = |sse: &mut Sse| {
        let block = sse.next_event();
        (block.id.unwrap(), block.data.unwrap())
    };
    assert_eq!(next(&mut allowed), (ids[1].clone(), "2".into()));
    assert_eq!(next(&mut allowed), (ids[2].clone(), "3".into()));
    assert_eq!(next(&mut anonymous), (ids[2].clone(), "3".into()));
    // Ids go on above the file's.
    let later = publish(&server, "topic=a&data=4").text();
    assert!(is_urn_uuid(&later) && later > ids[2], "{later}");
}

// ---- Symfony's Mercure component ------------------------------------------------------------

fn subscribe(addr: SocketAddr, target: &str, headers: &str) -> Sse {
    let mut stream = common::connect(addr);
    let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut sse = Sse {
        stream,
        buf: Vec::new(),
    };
    let head = sse.read_head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    sse
}

/// The events up to and including the one whose data is `end`.
fn events_until_end(sse: &mut Sse) -> Vec<Block> {
    let mut events = Vec::new();
    for _ in 0..100 {
        let event = sse.next_event();
        let end = event.data.as_deref() == Some("end");
        events.push(event);
        if end {
            return events;
        }
    }
    panic!("no end event in {events:#?}");
}

fn data(events: &[Block]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_deref().unwrap()).collect()
}

#[test]
fn symfony_publishes_to_ssed_unchanged() {
    if !available(&["php"], "the Symfony Mercure test") {
        return;
    }
    if !Path::new(SYMFONY_MERCURE).exists() {
        skip(&format!(
            "the Symfony Mercure test: {SYMFONY_MERCURE} is missing (Debian package php-symfony-mercure)"
        ));
        return;
    }
    let ssed = Ssed::start(&[
        "--publisher-jwt-key",
        KEY,
        "--subscriber-jwt-key",
        KEY,
        "--anonymous",
    ]);
    let topics = "topic=https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D\
                  &topic=https%3A%2F%2Fexample.com%2Freviews%2F%7Bid%7D";
    let target = format!("{HUB}?{topics}");
    let bearer = |claims: &str| format!("Authorization: Bearer {}\r\n", token(claims));
    let books_reader = bearer(r#"{"mercure":{"subscribe":["https://example.com/books/{id}"]}}"#);
    let users_reader = bearer(r#"{"mercure":{"subscribe":["https://example.com/users/{id}"]}}"#);
    let mut anonymous = subscribe(ssed.addr, &target, "");
    let mut allowed = subscribe(ssed.addr, &target, &books_reader);
    let mut stranger = subscribe(ssed.addr, &target, &users_reader);
    let cookie = format!(
        "Cookie: mercureAuthorization={}\r\n",
        token(r#"{"mercure":{"subscribe":["*"]}}"#)
    );
    let mut by_cookie = subscribe(ssed.addr, &target, &cookie);

    let url = format!("http://{}{HUB}", ssed.addr);
    let all = token(r#"{"mercure":{"publish":["*"]}}"#);
    let books_only = token(r#"{"mercure":{"publish":["https://example.com/books/{id}"]}}"#);
    let stdout = common::external::symfony_publish(&url, &all, &books_only);
    let ids: Vec<&str> = stdout.lines().collect();
    assert_eq!(ids.len(), 7, "{stdout}");
    for i in [0, 1, 2, 5, 6] {
        assert!(is_urn_uuid(ids[i]), "update {i}: {}", ids[i]);
    }
    assert_eq!(ids[3], "book-3-v2", "a custom id is echoed");
    assert_eq!(
        ids[4], "refused 403",
        "a topic outside the token's selectors"
    );

    let public = ["{\"title\":\"public\"}", "several", "custom\nlines", "end"];
    for sse in [&mut anonymous, &mut stranger] {
        let events = events_until_end(sse);
        assert_eq!(data(&events), public);
        let custom = &events[2];
        assert_eq!(custom.id.as_deref(), Some("book-3-v2"));
        assert_eq!(custom.event.as_deref(), Some("book.updated"));
        assert_eq!(custom.retry.as_deref(), Some("3000"));
        assert_eq!(events[0].id.as_deref(), Some(ids[0]));
        assert_eq!(events[1].id.as_deref(), Some(ids[2]));
    }
    let everything = [
        "{\"title\":\"public\"}",
        "{\"title\":\"private\"}",
        "several",
        "custom\nlines",
        "allowed",
        "end",
    ];
    for sse in [&mut allowed, &mut by_cookie] {
        let events = events_until_end(sse);
        assert_eq!(data(&events), everything);
        let ids_seen: Vec<&str> = events.iter().map(|e| e.id.as_deref().unwrap()).collect();
        assert_eq!(ids_seen, [ids[0], ids[1], ids[2], ids[3], ids[5], ids[6]]);
    }
    // A reconnect with the last id it saw replays the rest, private events included.
    let after_first = format!("{books_reader}Last-Event-ID: {}\r\n", ids[0]);
    let mut replayed = subscribe(ssed.addr, &target, &after_first);
    assert_eq!(data(&events_until_end(&mut replayed)), everything[1..]);
    let mut replayed = subscribe(
        ssed.addr,
        &target,
        &format!("Last-Event-ID: {}\r\n", ids[0]),
    );
    assert_eq!(data(&events_until_end(&mut replayed)), public[1..]);
}
