//! Authorization with JSON Web Tokens (SPEC section 9) over real loopback sockets: every way a
//! token is refused, where tokens are read from, what publishers may publish and which private
//! events reach which streams, live and in replay, and a stream closed when its token expires.
#![cfg(feature = "jwt")]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::external::Ssed;
use common::jwt::{HS256, KEY, b64, epoch_in, hmac, sign_with, token};
use common::{PATIENCE, Response, Sse, TestServer};
use ssed::{Config, Cors};

const APP: &str = "http://app.test";

fn config() -> Config {
    Config {
        publisher_jwt_key: Some(KEY.into()),
        subscriber_jwt_key: Some(KEY.into()),
        cors: Cors::Origins(vec![APP.into()]),
        ..Config::default()
    }
}

/// A token that may publish anywhere.
fn publisher() -> String {
    token(r#"{"mercure":{"publish":["*"]}}"#)
}

/// Publishes a form to `/publish` with extra header lines.
fn publish(server: &TestServer, headers: &str, form: &str) -> Response {
    publish_to(server, "/publish", headers, form)
}

fn publish_to(server: &TestServer, target: &str, headers: &str, form: &str) -> Response {
    server.request(format!(
        "POST {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    ))
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

fn cookie(token: &str) -> String {
    format!("Cookie: theme=dark; mercureAuthorization={token}\r\n")
}

/// A subscription's answer when it is refused (read to the close).
fn refused_subscription(server: &TestServer, target: &str, headers: &str) -> Response {
    server.request(format!(
        "GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
    ))
}

/// Asserts that `token` is refused with `401` both to publish and to subscribe, and that the
/// answer says `why` without quoting the token.
fn assert_refused(server: &TestServer, token: &str, why: &str) {
    let answers = [
        publish(server, &bearer(token), "topic=a&data=x"),
        refused_subscription(server, "/events", &bearer(token)),
        refused_subscription(server, "/events", &cookie(token)),
    ];
    for answer in answers {
        assert_eq!(answer.status, 401, "{why}: {}", answer.text());
        assert_eq!(answer.header("WWW-Authenticate").as_deref(), Some("Bearer"));
        let text = answer.text();
        assert!(text.contains(why), "expected {why:?} in {text:?}");
        for part in token.split('.').filter(|p| p.len() >= 4) {
            assert!(!text.contains(part), "the answer quotes the token: {text}");
        }
    }
}

#[test]
fn alg_none_is_refused() {
    let server = TestServer::start(config());
    let claims = b64(r#"{"mercure":{"publish":["*"],"subscribe":["*"]}}"#);
    for alg in ["none", "None"] {
        let header = b64(format!(r#"{{"alg":"{alg}"}}"#));
        assert_refused(&server, &format!("{header}.{claims}."), "alg none");
        // Signed or not, `none` is never taken.
        let signed = sign_with(KEY, &format!(r#"{{"alg":"{alg}"}}"#), "{}");
        assert_refused(&server, &signed, "alg none");
    }
}

#[test]
fn an_algorithm_other_than_the_keys_is_refused() {
    let server = TestServer::start(config());
    // HS/RS confusion: an RS256 header over an HMAC made with the key, as a verifier that let
    // the token choose would accept; and other HMACs.
    for alg in ["RS256", "ES256", "HS512", "hs256"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let forged = sign_with(KEY, &header, r#"{"mercure":{"publish":["*"]}}"#);
        assert_refused(&server, &forged, "algorithm is not the key's");
    }
}

#[test]
fn a_bad_signature_is_refused() {
    let server = TestServer::start(config());
    let other_key = sign_with("another key, also 32 bytes or more", HS256, "{}");
    assert_refused(&server, &other_key, "signature does not verify");
    // The claims changed under a good signature.
    let good = token(r#"{"mercure":{"subscribe":["a"]}}"#);
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[1] = b64(r#"{"mercure":{"subscribe":["*"]}}"#);
    assert_refused(&server, &parts.join("."), "signature does not verify");
    // One bit of the signature changed.
    let signed = format!("{}.{}", b64(HS256), b64("{}"));
    let mut signature = hmac(KEY, &signed);
    signature[7] ^= 1;
    assert_refused(
        &server,
        &format!("{signed}.{}", b64(signature)),
        "signature does not verify",
    );
    assert_refused(&server, &format!("{signed}."), "signature does not verify");
}

#[test]
fn malformed_or_non_canonical_base64url_is_refused() {
    let server = TestServer::start(config());
    let good = token("{}");
    let (signed, signature) = good.rsplit_once('.').unwrap();
    // Padding: the 32-byte signature is 43 characters, which `=` would round up.
    assert_refused(&server, &format!("{good}="), "base64url");
    // The same bytes spelled with non-zero bits after the last one.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = signature.chars().last().unwrap();
    let value = alphabet.find(last).unwrap();
    assert_eq!(value & 3, 0, "a canonical last character");
    let sloppy = alphabet.as_bytes()[value | 1] as char;
    let respelled = format!("{signed}.{}{sloppy}", &signature[..signature.len() - 1]);
    assert_refused(&server, &respelled, "base64url");
    // The standard alphabet's characters and stray bytes, in the header.
    for bad in ["+", "/", "*"] {
        let spoiled = format!("{bad}{good}");
        assert_refused(&server, &spoiled, "base64url");
    }
    assert_refused(&server, "not-a-token", "three parts");
}

#[test]
fn malformed_json_is_refused() {
    let server = TestServer::start(config());
    for claims in ["{", "[]", "null", r#"{"exp":1}}"#, "\u{1}"] {
        assert_refused(&server, &token(claims), "claims is not a JSON object");
    }
    assert_refused(
        &server,
        &sign_with(KEY, r#"{"alg":"HS256""#, "{}"),
        "header is not a JSON object",
    );
}

#[test]
fn ill_typed_claims_are_refused_and_missing_ones_grant_nothing() {
    let server = TestServer::start(config());
    for (claims, why) in [
        (r#"{"exp":"1999999999"}"#, "claim exp must be a number"),
        (r#"{"nbf":null}"#, "claim nbf must be a number"),
        (r#"{"mercure":["*"]}"#, "claim mercure must be an object"),
        (
            r#"{"mercure":{"publish":"*"}}"#,
            "claim mercure.publish must be an array of strings",
        ),
        (
            r#"{"mercure":{"subscribe":[1]}}"#,
            "claim mercure.subscribe must be an array of strings",
        ),
    ] {
        assert_refused(&server, &token(claims), why);
    }
    // A valid token without mercure.publish may publish nowhere.
    let nothing = token(r#"{"mercure":{"subscribe":["*"]}}"#);
    let answer = publish(&server, &bearer(&nothing), "topic=a&data=x");
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(
        answer.text().contains("mercure.publish"),
        "{}",
        answer.text()
    );
    // One without mercure.subscribe reads public events only.
    let mut public = server.subscribe("/events?topic=a", &bearer(&token("{}")));
    server.wait_subscribers(1);
    let publisher = bearer(&publisher());
    assert_eq!(
        publish(&server, &publisher, "topic=a&data=secret&private=on").status,
        200
    );
    assert_eq!(
        publish(&server, &publisher, "topic=a&data=open").status,
        200
    );
    assert_eq!(public.next_event().data.as_deref(), Some("open"));
}

#[test]
fn exp_in_the_past_and_nbf_in_the_future_are_refused() {
    let server = TestServer::start(config());
    let expired = format!(
        r#"{{"exp":{},"mercure":{{"publish":["*"]}}}}"#,
        epoch_in(-1)
    );
    assert_refused(&server, &token(&expired), "token expired");
    let early = format!(
        r#"{{"nbf":{},"mercure":{{"publish":["*"]}}}}"#,
        epoch_in(60)
    );
    assert_refused(&server, &token(&early), "not valid yet");
    // The same claims with times that hold are accepted.
    let fine = format!(
        r#"{{"nbf":{},"exp":{},"mercure":{{"publish":["*"]}}}}"#,
        epoch_in(-60),
        epoch_in(60)
    );
    assert_eq!(
        publish(&server, &bearer(&token(&fine)), "topic=a").status,
        200
    );
}

#[test]
fn a_stream_is_closed_when_its_token_expires() {
    let server = TestServer::start(config());
    let exp = epoch_in(2);
    let expiring = token(&format!(
        r#"{{"exp":{exp},"mercure":{{"subscribe":["*"]}}}}"#
    ));
    let lasting = token(r#"{"mercure":{"subscribe":["*"]}}"#);
    let mut short = server.subscribe("/events?topic=a", &bearer(&expiring));
    let mut long = server.subscribe("/events?topic=a", &bearer(&lasting));
    server.wait_subscribers(2);
    // Open until then: an event still arrives.
    assert_eq!(
        publish(&server, &bearer(&publisher()), "topic=a&data=before").status,
        200
    );
    assert_eq!(short.next_event().data.as_deref(), Some("before"));
    assert_eq!(long.next_event().data.as_deref(), Some("before"));
    let blocks = short.read_to_close();
    let closed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(
        closed >= Duration::from_secs(exp as u64),
        "closed {closed:?} before exp {exp}"
    );
    assert!(blocks.iter().all(|b| b.data.is_none()), "{blocks:?}");
    // The other stream lives on.
    assert_eq!(
        publish(&server, &bearer(&publisher()), "topic=a&data=after").status,
        200
    );
    assert_eq!(long.next_event().data.as_deref(), Some("after"));
    server.wait_subscribers(1);
}

#[test]
fn an_expiry_at_the_end_of_time_keeps_the_stream_open() {
    let server = TestServer::start(config());
    // Near the largest exp a SystemTime holds, and one beyond it (no expiry, as with none).
    let mut streams = Vec::new();
    for exp in ["9.2e18", "1e18", "1e300"] {
        let claims = format!(r#"{{"exp":{exp},"mercure":{{"subscribe":["*"]}}}}"#);
        streams.push(server.subscribe("/events?topic=a", &bearer(&token(&claims))));
    }
    server.wait_subscribers(3);
    let sent = publish(&server, &bearer(&publisher()), "topic=a&data=still%20here");
    assert_eq!(sent.status, 200);
    for stream in &mut streams {
        assert_eq!(stream.next_event().data.as_deref(), Some("still here"));
    }
}

#[test]
fn tokens_come_from_the_header_then_the_cookie_then_the_query() {
    let server = TestServer::start(config());
    let reader = token(r#"{"mercure":{"subscribe":["a"]}}"#);
    let forged = format!("{reader}x");
    // Each source alone works.
    let query = format!("/events?topic=a&authorization={reader}");
    let mut streams = vec![
        server.subscribe("/events?topic=a", &bearer(&reader)),
        server.subscribe("/events?topic=a", &cookie(&reader)),
        server.subscribe(&query, ""),
    ];
    server.wait_subscribers(3);
    let sent = publish(&server, &bearer(&publisher()), "topic=a&data=p&private=on");
    assert_eq!(sent.status, 200);
    for stream in &mut streams {
        assert_eq!(stream.next_event().data.as_deref(), Some("p"));
    }
    // The first source present is the one used: a bad header is not saved by a good cookie,
    // nor a bad cookie by a good query.
    let headers = format!("{}{}", bearer(&forged), cookie(&reader));
    assert_eq!(
        refused_subscription(&server, "/events", &headers).status,
        401
    );
    assert_eq!(
        refused_subscription(&server, &query, &cookie(&forged)).status,
        401
    );
    // No token at all.
    let none = refused_subscription(&server, "/events", "");
    assert_eq!(none.status, 401);
    assert!(
        none.text().contains("mercureAuthorization"),
        "{}",
        none.text()
    );
    let none = publish(&server, "", "topic=a");
    assert_eq!(none.status, 401, "even from loopback, once a key is set");
}

#[test]
fn a_cookie_publishes_only_with_an_allowed_origin_or_referer() {
    let server = TestServer::start(config());
    let jar = cookie(&publisher());
    let answer = publish(&server, &jar, "topic=a");
    assert_eq!(answer.status, 403);
    assert!(
        answer.text().contains("Origin or Referer"),
        "{}",
        answer.text()
    );
    let elsewhere = format!("{jar}Origin: http://evil.test\r\n");
    assert_eq!(publish(&server, &elsewhere, "topic=a").status, 403);
    let lookalike = format!("{jar}Referer: http://app.test.evil.test/page\r\n");
    assert_eq!(publish(&server, &lookalike, "topic=a").status, 403);
    let from_app = format!("{jar}Origin: {APP}\r\n");
    assert_eq!(publish(&server, &from_app, "topic=a").status, 200);
    let referred = format!("{jar}Referer: {APP}/books/1\r\n");
    assert_eq!(publish(&server, &referred, "topic=a").status, 200);
    // A header token needs no origin: no browser sends it by itself.
    assert_eq!(
        publish(&server, &bearer(&publisher()), "topic=a").status,
        200
    );
}

#[test]
fn a_publisher_may_publish_only_to_its_topics() {
    let server = TestServer::start(config());
    let books = bearer(&token(
        r#"{"mercure":{"publish":["https://example.com/books/{id}","news"]}}"#,
    ));
    let mut all = server.subscribe("/events", &bearer(&token("{}")));
    server.wait_subscribers(1);
    let ok = [
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=1",
        "topic=news&topic=https%3A%2F%2Fexample.com%2Fbooks%2F2&data=2",
    ];
    for form in ok {
        assert_eq!(publish(&server, &books, form).status, 200, "{form}");
    }
    for form in [
        "topic=https%3A%2F%2Fexample.com%2Fusers%2F1&data=no",
        "topic=news&topic=sports&data=no",
        "data=no",
    ] {
        let answer = publish(&server, &books, form);
        assert_eq!(answer.status, 403, "{form}: {}", answer.text());
    }
    assert_eq!(publish(&server, &books, "topic=news&data=3").status, 200);
    let seen: Vec<String> = (0..3).map(|_| all.next_event().data.unwrap()).collect();
    assert_eq!(seen, ["1", "2", "3"], "nothing refused was published");
}

#[test]
fn private_events_reach_only_allowed_tokens_live_and_in_replay() {
    let server = TestServer::start(Config {
        anonymous: true,
        ..config()
    });
    let book = "https://example.com/books/1";
    let allowed = bearer(&token(
        r#"{"mercure":{"subscribe":["https://example.com/books/{id}"]}}"#,
    ));
    let other = bearer(&token(
        r#"{"mercure":{"subscribe":["https://example.com/users/{id}"]}}"#,
    ));
    let target = "/events?topic=https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D";
    let mut reader = server.subscribe(target, &allowed);
    let mut stranger = server.subscribe(target, &other);
    let mut anonymous = server.subscribe(target, "");
    server.wait_subscribers(3);
    let publisher = bearer(&publisher());
    let topic = "https%3A%2F%2Fexample.com%2Fbooks%2F1";
    let first = publish(&server, &publisher, &format!("topic={topic}&data=first"));
    assert_eq!(first.status, 200);
    let private = format!("topic={topic}&data=private&private=on&id=p1");
    assert_eq!(publish(&server, &publisher, &private).status, 200);
    assert_eq!(
        publish(&server, &publisher, &format!("topic={topic}&data=last")).status,
        200
    );
    let seen = |sse: &mut Sse, n: usize| -> Vec<String> {
        (0..n).map(|_| sse.next_event().data.unwrap()).collect()
    };
    assert_eq!(seen(&mut reader, 3), ["first", "private", "last"]);
    assert_eq!(seen(&mut stranger, 2), ["first", "last"]);
    assert_eq!(seen(&mut anonymous, 2), ["first", "last"]);
    // Replay applies the same rule.
    let first_id = first.text();
    let last_id = format!("Last-Event-ID: {first_id}\r\n");
    let mut replayed = server.subscribe(target, &format!("{allowed}{last_id}"));
    assert_eq!(seen(&mut replayed, 2), ["private", "last"]);
    let mut replayed = server.subscribe(target, &format!("{other}{last_id}"));
    assert_eq!(seen(&mut replayed, 1), ["last"]);
    let mut replayed = server.subscribe(target, &last_id);
    assert_eq!(seen(&mut replayed, 1), ["last"]);
    let _ = book;
}

/// No subscriber could ever read a private event on a server without a subscriber key: the
/// publish is refused, saying why, rather than answered 200 and delivered to no one.
#[test]
fn without_a_subscriber_key_a_private_event_is_refused_with_the_reason() {
    let server = TestServer::start(Config {
        publisher_jwt_key: Some(KEY.into()),
        ..Config::default()
    });
    let mut sub = server.subscribe(
        "/events",
        &bearer(&token(r#"{"mercure":{"subscribe":["*"]}}"#)),
    );
    server.wait_subscribers(1);
    let publisher = bearer(&publisher());
    let refused = publish(&server, &publisher, "topic=a&private&data=hidden");
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .text()
            .contains("no subscriber key (--subscriber-jwt-key, or an issuer's)"),
        "{}",
        refused.text()
    );
    assert_eq!(server.handle.stats().events_published, 0);
    assert_eq!(
        publish(&server, &publisher, "topic=a&data=shown").status,
        200
    );
    assert_eq!(sub.next_event().data.as_deref(), Some("shown"));
}

#[test]
fn the_static_tokens_keep_working_beside_the_keys() {
    let server = TestServer::start(Config {
        publish_token: Some("pub-s3cret".into()),
        subscribe_token: Some("sub-s3cret".into()),
        ..config()
    });
    let mut by_query = server.subscribe("/events?token=sub-s3cret", "");
    let mut by_jwt = server.subscribe(
        "/events",
        &bearer(&token(r#"{"mercure":{"subscribe":["*"]}}"#)),
    );
    server.wait_subscribers(2);
    assert_eq!(
        refused_subscription(&server, "/events?token=nope", "").status,
        401
    );
    assert_eq!(
        publish(&server, &bearer("pub-s3cret"), "data=static").status,
        200
    );
    assert_eq!(
        publish(&server, &bearer("pub-s3creT"), "data=x").status,
        401
    );
    assert_eq!(
        publish(&server, &bearer(&publisher()), "data=jwt&private").status,
        200
    );
    assert_eq!(by_query.next_event().data.as_deref(), Some("static"));
    assert_eq!(by_jwt.next_event().data.as_deref(), Some("static"));
    assert_eq!(by_jwt.next_event().data.as_deref(), Some("jwt"));
}

#[test]
fn an_hs256_key_under_32_bytes_stops_the_daemon_naming_where_it_came_from() {
    let short = "!ChangeMe: 31 bytes of secret!!";
    assert_eq!(short.len(), 31);
    for (flag, env) in [
        ("--publisher-jwt-key", "SSED_PUBLISHER_JWT_KEY"),
        ("--subscriber-jwt-key", "SSED_SUBSCRIBER_JWT_KEY"),
    ] {
        let by_flag = common::target::daemon()
            .args([flag, short])
            .output()
            .unwrap();
        let by_env = common::target::daemon().env(env, short).output().unwrap();
        for (output, name) in [(by_flag, flag), (by_env, env)] {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
            assert!(
                stderr.starts_with(&format!("ssed: {name}: ")) && stderr.contains("32 bytes"),
                "{stderr}"
            );
            assert!(!stderr.contains("ChangeMe"), "the key is quoted: {stderr}");
        }
    }
}

#[test]
fn tokens_never_appear_in_the_log() {
    let mut ssed = Ssed::start(&[
        "--verbose",
        "--publisher-jwt-key",
        KEY,
        "--subscriber-jwt-key",
        KEY,
    ]);
    let expired = token(&format!(r#"{{"exp":{}}}"#, epoch_in(-5)));
    let closing = token(&format!(
        r#"{{"exp":{},"mercure":{{"subscribe":["*"]}}}}"#,
        epoch_in(1)
    ));
    let tokens = [
        publisher(),
        format!("{}x", publisher()),
        expired,
        closing.clone(),
    ];
    let started = Instant::now();
    for t in &tokens {
        for request in [
            format!(
                "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
                bearer(t)
            ),
            format!(
                "GET /events?authorization={t} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            ),
            format!(
                "POST /publish?authorization={t}&topic=a HTTP/1.1\r\nHost: t\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
                cookie(t)
            ),
        ] {
            let mut stream = common::connect(ssed.addr);
            std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
            let response = common::read_response_head(&mut stream);
            assert!(response.starts_with("HTTP/1.1 "), "{response}");
        }
    }
    // Wait for the stream of the expiring token to be closed, which is logged, then stop.
    ssed.log
        .wait_for("the expiry", |l| l.contains("token expired"));
    assert!(started.elapsed() < Duration::from_secs(10));
    ssed.process.signal(libc::SIGTERM);
    assert!(ssed.process.wait_exit(PATIENCE).is_some());
    let log = ssed.log.rest();
    assert!(
        log.iter().any(|l| l.contains("refused a request: 401")),
        "{log:#?}"
    );
    for t in &tokens {
        for part in t.split('.').filter(|p| p.len() >= 8) {
            for line in &log {
                assert!(!line.contains(part), "a token in the log: {line}");
            }
        }
    }
}
