//! Mercure 1.0 (draft-dunglas-mercure-08) over real loopback sockets, beside the 0.x hub: every
//! refusal of an access token, the draft's error responses, the matcher parameters, the
//! publication rules, discovery, `Mercure-Last-Event-ID`, private updates by grants (alternate
//! topics too, live and in replay), and active subscriptions with their API.
#![cfg(all(feature = "jwt", feature = "urlpattern"))]

mod common;

use common::jwt::{KEY, epoch_in, sign_with, token};
use common::{Response, Sse, TestServer};
use ssed::{Config, Issuer};

const ISS: &str = "https://app.test";
const OTHER_ISS: &str = "https://other.test";
const OTHER_KEY: &str = "the other issuer's key, 32 bytes or more";
/// Where the tests' hub says it is: the resource identifier tokens name.
const HUB: &str = "https://hub.test/.well-known/mercure";
const AT_JWT: &str = r#"{"alg":"HS256","typ":"at+jwt"}"#;
const METADATA: &str = "https://hub.test/.well-known/oauth-protected-resource/.well-known/mercure";
const DETAIL: &str = "https://mercure.rocks/authorization-detail";

fn config() -> Config {
    Config {
        hub_url: Some(HUB.into()),
        issuers: vec![
            Issuer::new(ISS, KEY),
            Issuer {
                issuer: OTHER_ISS.into(),
                publisher_key: Some(OTHER_KEY.into()),
                subscriber_key: Some(OTHER_KEY.into()),
            },
        ],
        anonymous: true,
        ..Config::default()
    }
}

/// The claims of a well-formed access token with these `authorization_details`.
fn claims(details: &str) -> String {
    format!(
        r#"{{"iss":"{ISS}","aud":"{HUB}","sub":"user","client_id":"{ISS}","iat":{},"exp":{},"jti":"j","authorization_details":{details}}}"#,
        epoch_in(0),
        epoch_in(600)
    )
}

/// A detail granting `actions` on `topics` (matcher objects).
fn detail(actions: &str, topics: &str) -> String {
    format!(r#"{{"type":"{DETAIL}","actions":{actions},"topics":{topics}}}"#)
}

fn access(details: &str) -> String {
    sign_with(KEY, AT_JWT, &claims(details))
}

/// May publish and subscribe everywhere.
fn everything() -> String {
    access(&format!(
        "[{}]",
        detail(r#"["publish","subscribe"]"#, r#"[{"match":"*"}]"#)
    ))
}

fn post(server: &TestServer, headers: &str, form: &str) -> Response {
    server.request(format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    ))
}

fn get(server: &TestServer, target: &str, headers: &str) -> Response {
    server.request(format!(
        "GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
    ))
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

fn challenge(response: &Response) -> String {
    response.header("WWW-Authenticate").unwrap_or_default()
}

/// `token` is refused to publish and to subscribe with `401 invalid_token`, and nothing is
/// published.
fn assert_invalid(server: &TestServer, token: &str, why: &str) {
    let before = server.handle.stats().events_published;
    let published = post(server, &bearer(token), "topic=a&data=x");
    assert_eq!(published.status, 401, "{why}: {}", published.text());
    let expected = format!(r#"Bearer error="invalid_token", resource_metadata="{METADATA}""#);
    assert_eq!(challenge(&published), expected, "{why}");
    let subscribed = get(server, "/.well-known/mercure?match=a", &bearer(token));
    assert_eq!(subscribed.status, 401, "{why}: {}", subscribed.text());
    assert_eq!(challenge(&subscribed), expected, "{why}");
    assert_eq!(server.handle.stats().events_published, before, "{why}");
}

#[test]
fn every_refusal_of_an_access_token() {
    let server = TestServer::start(config());
    let good = claims(&format!(
        "[{}]",
        detail(r#"["publish","subscribe"]"#, r#"[{"match":"*"}]"#)
    ));
    assert_eq!(post(&server, &bearer(&everything()), "topic=a").status, 200);
    let exp = format!(r#""exp":{}"#, epoch_in(600));
    let cases = [
        (
            sign_with(KEY, r#"{"alg":"HS256","typ":"JWT"}"#, &good),
            "wrong typ",
        ),
        (sign_with(KEY, r#"{"alg":"HS256"}"#, &good), "no typ"),
        (
            sign_with(KEY, r#"{"alg":"HS512","typ":"at+jwt"}"#, &good),
            "alg not allowed",
        ),
        (
            sign_with(KEY, r#"{"alg":"none","typ":"at+jwt"}"#, &good),
            "alg none",
        ),
        (
            sign_with(OTHER_KEY, AT_JWT, &good),
            "another issuer's key under this issuer's name",
        ),
        (
            sign_with(KEY, AT_JWT, &good.replace(ISS, OTHER_ISS)),
            "this issuer's key under another issuer's name",
        ),
        (
            sign_with(KEY, AT_JWT, &good.replace(ISS, "https://evil.test")),
            "untrusted issuer",
        ),
        (
            sign_with(
                KEY,
                AT_JWT,
                &good.replace(&format!(r#""iss":"{ISS}","#), ""),
            ),
            "no iss",
        ),
        (
            sign_with(
                KEY,
                AT_JWT,
                &good.replace(&format!(r#""aud":"{HUB}","#), ""),
            ),
            "missing aud",
        ),
        (
            sign_with(KEY, AT_JWT, &good.replace(HUB, "https://elsewhere.test/")),
            "wrong aud",
        ),
        (
            sign_with(KEY, AT_JWT, &good.replace(&format!(",{exp}"), "")),
            "missing exp",
        ),
        (
            sign_with(
                KEY,
                AT_JWT,
                &good.replace(&exp, &format!(r#""exp":{}"#, epoch_in(-5))),
            ),
            "expired",
        ),
        (
            sign_with(
                KEY,
                AT_JWT,
                &good.replace(&exp, &format!(r#"{exp},"nbf":{}"#, epoch_in(300))),
            ),
            "future nbf",
        ),
        (
            access(&format!(
                "[{},{}]",
                detail(r#"["publish","subscribe"]"#, r#"[{"match":"*"}]"#),
                detail(
                    r#"["subscribe"]"#,
                    r#"[{"match":"a","match_type":"regexp"}]"#
                )
            )),
            "malformed detail (unknown match_type)",
        ),
        (
            access(&format!(
                "[{},{}]",
                detail(r#"["publish"]"#, r#"[{"match":"*"}]"#),
                detail(r#"["subscribe"]"#, r#"["a"]"#)
            )),
            "malformed detail (a bare string topic)",
        ),
        (
            access(&format!(
                "[{}]",
                detail(
                    r#"["publish"]"#,
                    r#"[{"match":"https://x.test/:id(","match_type":"urlpattern"}]"#
                )
            )),
            "malformed detail (a malformed URL pattern)",
        ),
        (
            access(&format!("[{}]", detail(r#"[]"#, r#"[{"match":"*"}]"#))),
            "malformed detail (no actions)",
        ),
    ];
    for (token, why) in &cases {
        assert_invalid(&server, token, why);
    }
    // A token in the URL is a malformed presentation.
    let query = get(
        &server,
        &format!(
            "/.well-known/mercure?match=a&authorization={}",
            everything()
        ),
        "",
    );
    assert_eq!(query.status, 400, "{}", query.text());
    assert!(challenge(&query).contains(r#"error="invalid_request""#));
    // No token where one is needed: a bare challenge pointing at the metadata.
    let none = post(&server, "", "topic=a");
    assert_eq!(none.status, 401);
    assert_eq!(
        challenge(&none),
        format!(r#"Bearer resource_metadata="{METADATA}""#)
    );
    // A valid token without the grant: 403 insufficient_scope, nothing published.
    let narrow = access(&format!(
        "[{}]",
        detail(
            r#"["publish"]"#,
            r#"[{"match":"https://x.test/books/:id","match_type":"urlpattern"}]"#
        )
    ));
    assert_eq!(
        post(&server, &bearer(&narrow), "topic=https://x.test/books/1").status,
        200
    );
    let both = post(
        &server,
        &bearer(&narrow),
        "topic=https://x.test/books/1&topic=https://x.test/users/1",
    );
    assert_eq!(both.status, 403, "{}", both.text());
    assert_eq!(
        challenge(&both),
        format!(r#"Bearer error="insufficient_scope", resource_metadata="{METADATA}""#)
    );
}

#[test]
fn matcher_parameters_are_checked_and_compiled() {
    let server = TestServer::start(config());
    for (query, parameter) in [
        ("match_regexp=a", "match_regexp"),
        ("Match=a", "Match"),
        ("matchx=a", "matchx"),
        ("MATCH_EXACT=a", "MATCH_EXACT"),
        ("match=a%E2%80%AEb", "match"),
        ("match_exact=a%00", "match_exact"),
        ("match_urlpattern=https://x.test/:id(", "match_urlpattern"),
        ("match_urlpattern=a%C2%85", "match_urlpattern"),
    ] {
        let refused = get(&server, &format!("/.well-known/mercure?{query}"), "");
        assert_eq!(refused.status, 400, "{query}: {}", refused.text());
        assert!(
            refused.text().contains(parameter),
            "{query}: {}",
            refused.text()
        );
    }
    let many: String = (0..101).map(|i| format!("match=t{i}&")).collect();
    assert_eq!(
        get(&server, &format!("/.well-known/mercure?{many}"), "").status,
        400
    );
    let long = format!("/.well-known/mercure?match={}", "x".repeat(2049));
    assert_eq!(get(&server, &long, "").status, 400);
    // No matcher at all is no subscription.
    assert_eq!(
        get(&server, "/.well-known/mercure?last_event_id=x", "").status,
        400
    );

    let mut exact = server.subscribe("/.well-known/mercure?match=https://x.test/%7Bid%7D", "");
    let mut explicit = server.subscribe("/.well-known/mercure?match_exact=books", "");
    let mut pattern = server.subscribe(
        "/.well-known/mercure?match_urlpattern=https://x.test/books/:id&match=other",
        "",
    );
    let mut relative = server.subscribe("/.well-known/mercure?match_urlpattern=/books/*", "");
    let mut star = server.subscribe("/.well-known/mercure?match_urlpattern=*", "");
    server.wait_subscribers(5);
    let publisher = bearer(&everything());
    for (topic, id) in [
        ("https://x.test/books/1", "1"),
        ("https://x.test/{id}", "2"),
        ("books", "3"),
        ("https://hub.test/books/9", "4"),
    ] {
        let form = format!(
            "topic={}&id={id}&data=d",
            topic.replace('{', "%7B").replace('}', "%7D")
        );
        assert_eq!(post(&server, &publisher, &form).status, 200);
    }
    let id = |sse: &mut Sse| sse.next_event().id.unwrap();
    assert_eq!(id(&mut pattern), "1");
    assert_eq!(id(&mut exact), "2", "exact is byte for byte: no template");
    assert_eq!(id(&mut explicit), "3");
    assert_eq!(id(&mut relative), "4", "relative to the hub's URL");
    let all: Vec<String> = (0..4).map(|_| id(&mut star)).collect();
    assert_eq!(all, ["1", "2", "3", "4"]);
}

#[test]
fn publication_rules_of_the_draft() {
    let server = TestServer::start(config());
    let publisher = bearer(&everything());
    for form in [
        "topic=*",
        "topic=a&type=mercure",
        "topic=a&topic=/.well-known/mercure/subscriptions/exact/a/b",
        "topic=https://elsewhere.test/.well-known/mercure",
        "topic=/.well-known/%6Dercure/x",
        "topic=/x/../.well-known/mercure/y",
        "topic=a&id=%23frag",
        "topic=a&id=earliest",
        "topic=a%E2%80%8Bb",
        "topic=a&type=t%7F",
        "topic=a&retry=1s",
    ] {
        let refused = post(&server, &publisher, form);
        assert_eq!(refused.status, 400, "{form}: {}", refused.text());
    }
    assert_eq!(server.handle.stats().events_published, 0);
    // Unknown fields are ignored for a 1.0 publisher (future extensions), and the update's
    // first topic is canonical, the others alternate.
    let mut alternate = server.subscribe(
        "/.well-known/mercure?match=https://x.test/users/42/books/1",
        "",
    );
    server.wait_subscribers(1);
    let published = post(
        &server,
        &publisher,
        "topic=https://x.test/books/1&topic=https://x.test/users/42/books/1&data=the%20content&future=1",
    );
    assert_eq!(published.status, 200, "{}", published.text());
    assert_eq!(
        published.header("Content-Type").unwrap(),
        "text/plain; charset=utf-8"
    );
    assert!(
        published.text().starts_with("urn:uuid:"),
        "{}",
        published.text()
    );
    let event = alternate.next_event();
    assert_eq!(event.data.as_deref(), Some("the content"));
    assert_eq!(event.id.as_deref(), Some(&*published.text()));
}

#[test]
fn private_updates_follow_the_grants_live_and_in_replay() {
    let server = TestServer::start(config());
    let publisher = bearer(&everything());
    // The draft's example: all books routed, books 1 and 7 readable; and a reader of its own
    // namespace that alternate topics reach.
    let reader = access(&format!(
        "[{}]",
        detail(
            r#"["subscribe"]"#,
            r#"[{"match":"https://x.test/books/1"},{"match":"https://x.test/books/7","match_type":"exact"}]"#
        )
    ));
    let namespace = access(&format!(
        "[{}]",
        detail(
            r#"["subscribe"]"#,
            r#"[{"match":"https://x.test/users/42/*","match_type":"urlpattern"}]"#
        )
    ));
    let target = "/.well-known/mercure?match_urlpattern=https://x.test/books/:id";
    let mut books = server.subscribe(target, &bearer(&reader));
    let mut user = server.subscribe(target, &bearer(&namespace));
    let mut anonymous = server.subscribe(target, "");
    server.wait_subscribers(3);
    for form in [
        "topic=https://x.test/books/2&private=on&id=p2",
        "topic=https://x.test/books/1&private=on&id=p1",
        "topic=https://x.test/books/3&topic=https://x.test/users/42/books/3&private&id=p3",
        "topic=https://x.test/books/4&id=public",
    ] {
        assert_eq!(post(&server, &publisher, form).status, 200, "{form}");
    }
    let id = |sse: &mut Sse| sse.next_event().id.unwrap();
    assert_eq!(id(&mut books), "p1");
    assert_eq!(id(&mut books), "public");
    assert_eq!(id(&mut user), "p3", "an alternate topic grants the update");
    assert_eq!(id(&mut user), "public");
    assert_eq!(id(&mut anonymous), "public");
    // The same in replay, with the cursor in Mercure-Last-Event-ID.
    for (token, expected) in [
        (&reader, vec!["p1", "public"]),
        (&namespace, vec!["p3", "public"]),
    ] {
        let mut replay = Sse::open(
            server.addr,
            &format!("{target}&last_event_id=p2"),
            &bearer(token),
        );
        let got: Vec<String> = expected.iter().map(|_| id(&mut replay)).collect();
        assert_eq!(got, expected);
    }
}

#[test]
fn the_replay_cursor_is_in_mercure_last_event_id() {
    let server = TestServer::start(config());
    let publisher = bearer(&everything());
    assert_eq!(post(&server, &publisher, "topic=a&id=one").status, 200);
    for (query, header, cursor) in [
        ("match=a&last_event_id=one", "", "one"),
        ("match=a&last_event_id=unknown", "", "earliest"),
        ("match=a&last_event_id=earliest", "", "earliest"),
        (
            "match=a&last_event_id=unknown",
            "Last-Event-ID: one\r\n",
            "one",
        ),
    ] {
        use std::io::Write;
        let mut stream = common::connect(server.addr);
        let request =
            format!("GET /.well-known/mercure?{query} HTTP/1.1\r\nHost: t\r\n{header}\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let head = common::read_response_head(&mut stream);
        assert!(
            head.contains(&format!("Mercure-Last-Event-ID: {cursor}\r\n")),
            "{query}: {head}"
        );
    }
}

#[test]
fn discovery_metadata() {
    let server = TestServer::start(Config {
        subscriptions: true,
        ..config()
    });
    let metadata = get(
        &server,
        "/.well-known/oauth-protected-resource/.well-known/mercure",
        "",
    );
    assert_eq!(metadata.status, 200);
    assert_eq!(metadata.header("Content-Type").unwrap(), "application/json");
    assert_eq!(
        metadata.header("Link").unwrap(),
        format!(r#"<{HUB}>; rel="mercure""#)
    );
    let text = metadata.text();
    for member in [
        format!(r#""resource":"{HUB}""#),
        format!(r#""authorization_details_types_supported":["{DETAIL}"]"#),
        r#""bearer_methods_supported":["header"]"#.into(),
        r#""mercure_cookie":"__Secure-mercure_access_token""#.into(),
        r#""mercure_matcher_types_supported":["exact","urlpattern"]"#.into(),
        r#""mercure_subscriptions":true"#.into(),
    ] {
        assert!(text.contains(&member), "{member} in {text}");
    }
    // Without active subscriptions, the member is left out.
    let plain = TestServer::start(config());
    let text = get(
        &plain,
        "/.well-known/oauth-protected-resource/.well-known/mercure",
        "",
    )
    .text();
    assert!(!text.contains("mercure_subscriptions"), "{text}");
}

#[test]
fn the_zero_x_hub_keeps_its_tokens_and_its_checks() {
    // The same secret as a 0.x key and a 1.0 issuer's, as a Symfony app mid-migration has.
    let server = TestServer::start(Config {
        publisher_jwt_key: Some(KEY.into()),
        subscriber_jwt_key: Some(KEY.into()),
        ..config()
    });
    let legacy = token(r#"{"mercure":{"publish":["*"],"subscribe":["*"]}}"#);
    // A 0.x token (no typ at+jwt, no aud, no exp) still publishes, and its unknown fields are
    // still refused; a 0.x refusal keeps its bare challenge.
    assert_eq!(
        post(&server, &bearer(&legacy), "topic=a&data=x").status,
        200
    );
    let unknown = post(&server, &bearer(&legacy), "topic=a&future=1");
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    let spoiled = post(&server, &bearer(&format!("{legacy}x")), "topic=a");
    assert_eq!(spoiled.status, 401);
    assert_eq!(challenge(&spoiled), "Bearer");
    // A 0.x hub (no issuers) takes no access token: its 0.x checks refuse the typ.
    let zero = TestServer::start(Config {
        publisher_jwt_key: Some(KEY.into()),
        ..Config::default()
    });
    let refused = zero.request(format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\ntopic=a",
        bearer(&everything())
    ));
    assert_eq!(refused.status, 401);
    assert_eq!(challenge(&refused), "Bearer");
}

#[test]
fn active_subscriptions_events_and_api() {
    let server = TestServer::start(Config {
        subscriptions: true,
        ..config()
    });
    let watcher = access(&format!(
        "[{}]",
        detail(
            r#"["subscribe"]"#,
            r#"[{"match":"/.well-known/mercure/subscriptions{/*}?","match_type":"urlpattern"}]"#
        )
    ));
    let member = access(&format!(
        r#"[{{"type":"{DETAIL}","actions":["subscribe"],"topics":[{{"match":"https://x.test/rooms/:id","match_type":"urlpattern"}}],"payload":{{"nick":"ann"}}}}]"#
    ));
    let mut watch = server.subscribe(
        "/.well-known/mercure?match_urlpattern=/.well-known/mercure/subscriptions/*",
        &bearer(&watcher),
    );
    let mut anonymous = server.subscribe("/.well-known/mercure?match_urlpattern=*", "");
    server.wait_subscribers(2);
    // The watcher sees its own subscription start first.
    let own = watch.next_event();
    assert_eq!(own.event.as_deref(), Some("mercure"));
    let joiner = server.subscribe(
        "/.well-known/mercure?match_urlpattern=https://x.test/rooms/:id",
        &bearer(&member),
    );
    // The anonymous subscriber's start, then the joiner's.
    let data = loop {
        let data = watch.next_event().data.unwrap();
        if data.contains("rooms") {
            break data;
        }
    };
    assert!(data.contains(r#""active":true"#), "{data}");
    assert!(
        data.contains(r#""match":"https://x.test/rooms/:id""#),
        "{data}"
    );
    assert!(data.contains(r#""match_type":"urlpattern""#), "{data}");
    assert!(data.contains(r#""payload":{"nick":"ann"}"#), "{data}");
    assert!(data.contains(r#""type":"subscription""#), "{data}");
    let subscriber = data
        .split(r#""subscriber":""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert!(subscriber.starts_with("urn:uuid:"), "{subscriber}");
    let encoded = subscriber.replace(':', "%3A");
    let topic = format!(
        "/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fx.test%2Frooms%2F%3Aid/{encoded}"
    );
    assert!(data.contains(&format!(r#""id":"{topic}""#)), "{data}");
    // The API: the collection, the matcher's collection, the subscription itself.
    common::wait_until(
        || {
            get(
                &server,
                "/.well-known/mercure/subscriptions",
                &bearer(&watcher),
            )
            .text()
            .contains(&subscriber)
        },
        "the subscription in the API",
    );
    let all = get(
        &server,
        "/.well-known/mercure/subscriptions",
        &bearer(&watcher),
    );
    assert_eq!(all.status, 200);
    assert_eq!(all.header("Content-Type").unwrap(), "application/json");
    let link = all.header("Link").unwrap();
    assert!(
        link.starts_with(&format!(
            r#"<{HUB}>; rel="mercure"; last-event-id="urn:uuid:"#
        )),
        "{link}"
    );
    assert!(
        link.ends_with(r#"; type="mercure"; content-type="application/json""#),
        "{link}"
    );
    assert!(all.text().contains(r#""type":"subscriptions""#));
    let (collection, _) = topic.rsplit_once('/').unwrap();
    let some = get(&server, collection, &bearer(&watcher));
    assert!(
        some.text().contains(&format!(r#""id":"{collection}""#)),
        "{}",
        some.text()
    );
    assert!(some.text().contains(&subscriber));
    let one = get(&server, &topic, &bearer(&watcher));
    assert_eq!(one.status, 200, "{}", one.text());
    assert!(
        one.text()
            .starts_with(&format!(r#"{{"active":true,"id":"{topic}""#)),
        "{}",
        one.text()
    );
    let missing = get(
        &server,
        &format!("{collection}/urn%3Auuid%3Anobody"),
        &bearer(&watcher),
    );
    assert_eq!(missing.status, 404);
    // Authorized like a subscription: no token 401, a token without the grant 403.
    assert_eq!(
        get(&server, "/.well-known/mercure/subscriptions", "").status,
        401
    );
    let denied = get(
        &server,
        "/.well-known/mercure/subscriptions",
        &bearer(&member),
    );
    assert_eq!(denied.status, 403);
    assert!(challenge(&denied).contains("insufficient_scope"));
    // Subscription events are private updates of the reserved type: an anonymous `*` never
    // sees one.
    drop(joiner);
    let left = watch.next_event().data.unwrap();
    assert!(
        left.contains(r#""active":false"#) && left.contains(&subscriber),
        "{left}"
    );
    common::wait_until(
        || {
            !get(
                &server,
                "/.well-known/mercure/subscriptions",
                &bearer(&watcher),
            )
            .text()
            .contains(&subscriber)
        },
        "the subscription gone from the API",
    );
    assert_eq!(
        post(&server, &bearer(&everything()), "topic=public&id=last").status,
        200
    );
    assert_eq!(anonymous.next_event().id.as_deref(), Some("last"));
    // And nobody may publish one: not on the hub, not on /publish.
    let own = |form: &str| {
        server.request(format!(
            "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            bearer(&everything()),
            form.len()
        ))
    };
    assert_eq!(own("topic=a&event=mercure").status, 400);
    assert_eq!(own(&format!("topic={topic}")).status, 400);
    assert_eq!(own("topic=a&event=other").status, 200);
}

/// The draft's publication example, byte for byte but for the token and the length, answered as
/// the draft shows: `200`, `text/plain; charset=utf-8`, a `urn:uuid:` id.
#[test]
fn the_drafts_publication_example() {
    let server = TestServer::start(Config {
        hub_url: Some("https://example.com/.well-known/mercure".into()),
        ..config()
    });
    let token = sign_with(
        KEY,
        AT_JWT,
        &format!(
            r#"{{"iss":"{ISS}","aud":"https://example.com/.well-known/mercure","sub":"s","client_id":"c","iat":0,"exp":{},"jti":"j","authorization_details":[{}]}}"#,
            epoch_in(60),
            detail(r#"["publish"]"#, r#"[{"match":"https://example.com/foo"}]"#)
        ),
    );
    let mut subscriber = server.subscribe("/.well-known/mercure?match=https://example.com/foo", "");
    server.wait_subscribers(1);
    let body = "topic=https://example.com/foo&data=the%20content";
    let answer = server.request(format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: example.com\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("Content-Type").unwrap(),
        "text/plain; charset=utf-8"
    );
    let id = answer.text();
    assert!(id.starts_with("urn:uuid:") && id.len() == 45, "{id}");
    let event = subscriber.next_event();
    assert_eq!(
        (event.id.as_deref(), event.data.as_deref()),
        (Some(&*id), Some("the content"))
    );
}

/// Symfony's Mercure component (Debian's php-symfony-mercure, which predates the component's
/// 1.0 mode) publishing unchanged to a hub that speaks 1.0 only, with the access tokens its
/// 1.0 mode mints (`typ` `at+jwt`, `iss`, `aud` the hub's URL, `sub`, `client_id`, `exp`, and
/// `authorization_details`): the wire of a publication is the same in both protocols.
#[test]
fn symfony_publishes_with_access_tokens() {
    use common::external::{Ssed, available, skip};
    use std::path::Path;

    const SYMFONY_MERCURE: &str = "/usr/share/php/Symfony/Component/Mercure/autoload.php";
    if !available(&["php"], "the Symfony Mercure 1.0 test") {
        return;
    }
    if !Path::new(SYMFONY_MERCURE).exists() {
        skip("the Symfony Mercure 1.0 test: php-symfony-mercure is missing");
        return;
    }
    let ssed = Ssed::start(&["--issuer", ISS, "--issuer-key", KEY, "--anonymous"]);
    let hub = format!("http://{}/.well-known/mercure", ssed.addr);
    let minted = |details: String| {
        let claims = format!(
            r#"{{"iss":"{ISS}","aud":"{hub}","sub":"{ISS}","client_id":"{ISS}","iat":{},"exp":{},"jti":"j","authorization_details":[{details}]}}"#,
            epoch_in(0),
            epoch_in(3600)
        );
        sign_with(KEY, AT_JWT, &claims)
    };
    let books = r#"[{"match":"https://example.com/books/:id","match_type":"urlpattern"}]"#;
    let all = minted(detail(r#"["publish"]"#, r#"[{"match":"*"}]"#));
    let books_only = minted(detail(r#"["publish"]"#, books));
    let reader = minted(detail(r#"["subscribe"]"#, books));
    let target = "/.well-known/mercure?match_urlpattern=https://example.com/books/:id\
                  &match_urlpattern=https://example.com/reviews/:id";
    let mut anonymous = Sse::open(ssed.addr, target, "");
    let mut allowed = Sse::open(ssed.addr, target, &bearer(&reader));
    let stdout = common::external::symfony_publish(&hub, &all, &books_only);
    let ids: Vec<&str> = stdout.lines().collect();
    assert_eq!(ids.len(), 7, "{stdout}");
    assert_eq!(ids[3], "book-3-v2");
    assert_eq!(ids[4], "refused 403", "a topic outside the token's details");
    let until_end = |sse: &mut Sse| {
        let mut seen = Vec::new();
        loop {
            let event = sse.next_event();
            let data = event.data.unwrap();
            if data == "end" {
                return seen;
            }
            seen.push(data);
        }
    };
    assert_eq!(
        until_end(&mut anonymous),
        ["{\"title\":\"public\"}", "several", "custom\nlines"]
    );
    assert_eq!(
        until_end(&mut allowed),
        [
            "{\"title\":\"public\"}",
            "{\"title\":\"private\"}",
            "several",
            "custom\nlines",
            "allowed"
        ]
    );
}

/// The host's access hook hears what a Mercure 1.0 subscription asks for, its matchers, as the
/// stream hook and the per-topic counts do.
#[cfg(feature = "host")]
#[test]
fn the_access_hook_hears_the_matchers_of_a_subscription() {
    use std::sync::{Arc, Mutex};

    use ssed::{Access, AccessRequest, Hooks};

    let asked: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let heard = asked.clone();
    let server = TestServer::start(Config {
        hooks: Hooks {
            access: Some(Arc::new(move |request: &AccessRequest<'_>| {
                heard.lock().unwrap().push(request.topics.to_vec());
                Access::Allow
            })),
            ..Hooks::default()
        },
        ..config()
    });
    let _stream = server.subscribe(
        "/.well-known/mercure?match_exact=https://example.com/a&topic=b",
        "",
    );
    server.wait_subscribers(1);
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].len(), 2, "{asked:?}");
    assert!(asked[0].iter().any(|t| t == "b"), "{asked:?}");
    assert!(
        asked[0].iter().any(|t| t.contains("example.com/a")),
        "{asked:?}"
    );
}
