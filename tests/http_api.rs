//! Every row of the HTTP interface, over real loopback sockets.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{HttpReader, Sse, TestServer, read_response, wait_until};
use ssed::{Config, Cors, Event};

#[test]
fn stream_head_has_the_event_stream_headers() {
    let server = TestServer::default();
    let mut stream = server.connect();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = Sse {
        stream,
        buf: Vec::new(),
    }
    .read_head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    for header in [
        "Content-Type: text/event-stream",
        "Cache-Control: no-cache",
        "X-Accel-Buffering: no",
    ] {
        assert!(
            head.contains(&format!("{header}\r\n")),
            "{header} missing in {head}"
        );
    }
    assert!(!head.to_ascii_lowercase().contains("content-length"));
}

#[test]
fn every_topic_and_chosen_topics() {
    let server = TestServer::default();
    let mut all = server.subscribe("/events", "");
    let mut ab = server.subscribe("/events?topic=a&topic=b", "");
    server.wait_subscribers(2);
    for (topic, data) in [("a", "1"), ("c", "2"), ("b", "3")] {
        assert_eq!(
            server
                .publish_form(&format!("topic={topic}&data={data}"))
                .status,
            200
        );
    }
    // One event to both a and b reaches a subscriber of both once.
    assert_eq!(server.publish_form("topic=a&topic=b&data=4").status, 200);
    let seen_all: Vec<String> = (0..4).map(|_| all.next_event().data.unwrap()).collect();
    assert_eq!(seen_all, ["1", "2", "3", "4"]);
    let seen_ab: Vec<String> = (0..3).map(|_| ab.next_event().data.unwrap()).collect();
    assert_eq!(seen_ab, ["1", "3", "4"]);
}

#[test]
fn publish_by_query_form_and_raw_body() {
    let server = TestServer::default();
    let mut sub = server.subscribe("/events", "");
    server.wait_subscribers(1);

    let by_query = server.request(
        "POST /publish?topic=q&data=from%20query&event=tick HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(by_query.status, 200);
    let by_form = server.publish_form("topic=f&data=line1%0D%0Aline2&id=custom-1&retry=2500");
    assert_eq!(by_form.status, 200);
    assert_eq!(by_form.text(), "custom-1", "the body is the event's id");
    let json = "{\"a\": 1}";
    let by_raw = server.request(format!(
        "POST /publish?topic=r&type=update HTTP/1.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    ));
    assert_eq!(by_raw.status, 200);

    let first = sub.next_event();
    assert_eq!(first.event.as_deref(), Some("tick"));
    assert_eq!(first.data.as_deref(), Some("from query"));
    assert_eq!(first.id.as_deref(), Some(by_query.text().as_str()));
    let second = sub.next_event();
    assert_eq!(second.id.as_deref(), Some("custom-1"));
    assert_eq!(second.data.as_deref(), Some("line1\nline2"));
    assert_eq!(second.retry.as_deref(), Some("2500"));
    let third = sub.next_event();
    assert_eq!(third.event.as_deref(), Some("update"));
    assert_eq!(third.data.as_deref(), Some(json));
}

#[test]
fn assigned_ids_are_time_seeded_and_only_grow() {
    let now_micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let server = TestServer::default();
    let ids: Vec<u64> = (0..5)
        .map(|i| {
            server
                .publish_form(&format!("data={i}"))
                .text()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        ids[0] >= now_micros,
        "ids start at the time in microseconds"
    );
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");
}

#[test]
fn refused_publishes_change_nothing() {
    let server = TestServer::default();
    let cases = [
        ("event=a%0Ab&data=x", "event type"),
        ("id=1%0D&data=x", "id"),
        ("event=a%00&data=x", "event type"),
        ("retry=soon&data=x", "retry"),
        ("data=%FF", "UTF-8"),
    ];
    for (form, why) in cases {
        let response = server.publish_form(form);
        assert_eq!(response.status, 400, "{form}");
        assert!(response.text().contains(why), "{form}: {}", response.text());
    }
    let raw_with_data = server.request(
        "POST /publish?data=x HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\ny",
    );
    assert_eq!(raw_with_data.status, 400);
    let not_utf8 = server.request(
        &b"POST /publish HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n\xC3\x28"[..],
    );
    assert_eq!(not_utf8.status, 400);
    assert_eq!(server.handle.stats().events_published, 0);
    assert_eq!(server.handle.stats().history_events, 0);
}

#[test]
fn no_data_is_an_event_with_empty_data() {
    let server = TestServer::default();
    let mut sub = server.subscribe("/events", "");
    server.wait_subscribers(1);
    assert_eq!(
        server
            .request("POST /publish HTTP/1.1\r\nConnection: close\r\n\r\n")
            .status,
        200
    );
    assert_eq!(sub.next_event().data.as_deref(), Some(""));
}

#[test]
fn keep_alive_and_pipelined_publishes() {
    let server = TestServer::default();
    let mut stream = server.connect();
    let mut reader = HttpReader::default();
    let one = "POST /publish?data=a HTTP/1.1\r\nHost: t\r\n\r\n";
    stream.write_all(one.as_bytes()).unwrap();
    let first = reader.read_response(&mut stream);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("connection"), None);
    // Two more in one write.
    stream.write_all(format!("{one}{one}").as_bytes()).unwrap();
    let second = reader.read_response(&mut stream);
    let third = reader.read_response(&mut stream);
    let ids: Vec<u64> = [&first, &second, &third]
        .iter()
        .map(|r| r.text().parse().unwrap())
        .collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);
    assert_eq!(server.handle.stats().events_published, 3);
}

#[test]
fn a_request_that_arrives_byte_by_byte() {
    let server = TestServer::default();
    let mut stream = server.connect();
    stream.set_nodelay(true).unwrap();
    let body = "topic=t&data=slow";
    let request = format!(
        "POST /publish HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for byte in request.as_bytes() {
        stream.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(read_response(&mut stream).status, 200);
}

#[test]
fn expect_100_continue_is_answered() {
    let server = TestServer::default();
    let mut stream = server.connect();
    stream
        .write_all(b"POST /publish HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let mut reader = HttpReader::default();
    let interim = reader.read_response(&mut stream);
    assert_eq!(interim.status, 100);
    stream.write_all(b"hello").unwrap();
    assert_eq!(reader.read_response(&mut stream).status, 200);
}

#[test]
fn health_metrics_and_viewer() {
    let server = TestServer::default();
    server.publish_form("data=x&event=tick");
    let health = server.get("/health");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for name in [
        "ssed_connections",
        "ssed_subscribers",
        "ssed_events_published_total",
        "ssed_bytes_sent_total",
        "ssed_subscribers_dropped_slow_total",
        "ssed_history_events",
        "ssed_requests_refused_total",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    assert!(text.contains("ssed_events_published_total 1\n"));
    let viewer = server.get("/");
    assert_eq!(viewer.status, 200);
    assert!(
        viewer
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let page = viewer.text();
    assert!(page.contains("new EventSource("));
    assert!(
        page.contains(r#"const page = {"types":["tick"],"#),
        "types seen are listened to"
    );
}

#[test]
fn error_statuses_have_plain_text_reasons() {
    let server = TestServer::start(Config {
        max_body: 16,
        ..Config::default()
    });
    let cases: Vec<(String, u16, &str)> = vec![
        ("GET /nowhere HTTP/1.1\r\n\r\n".into(), 404, "no such path"),
        ("DELETE /events HTTP/1.1\r\n\r\n".into(), 405, "GET"),
        ("GET /publish HTTP/1.1\r\n\r\n".into(), 405, "POST"),
        ("GARBAGE\r\n\r\n".into(), 400, "malformed"),
        (
            "POST /publish HTTP/1.1\r\nContent-Length: 17\r\n\r\n".into(),
            413,
            "larger",
        ),
        (
            "POST /publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            411,
            "Content-Length",
        ),
        (
            format!(
                "GET /events HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
                "a".repeat(9000)
            ),
            431,
            "too large",
        ),
    ];
    for (raw, status, why) in cases {
        let response = server.request(&raw);
        assert_eq!(response.status, status, "{}", &raw[..20.min(raw.len())]);
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(
            response.text().contains(why),
            "{status}: {}",
            response.text()
        );
        assert_eq!(response.header("connection").as_deref(), Some("close"));
    }
    let allow = server
        .request("DELETE /events HTTP/1.1\r\n\r\n")
        .header("allow");
    assert_eq!(allow.as_deref(), Some("GET"));
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("ssed_requests_refused_total{reason=\"too_large\"} 2"));
    assert!(metrics.contains("ssed_requests_refused_total{reason=\"bad_request\"} 2"));
}

#[test]
fn a_body_announced_beyond_4_gib_is_too_large_on_every_target() {
    // Such a length does not fit a 32-bit target's usize: it must still read as a number, and
    // be refused as too large rather than as malformed.
    let server = TestServer::default();
    let response = server.request("POST /publish HTTP/1.1\r\nContent-Length: 5000000000\r\n\r\n");
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(response.text().contains("larger"), "{}", response.text());
}

#[test]
fn max_clients_answers_503_with_retry_after() {
    let config = Config {
        max_clients: 2,
        ..Config::default()
    };
    let reserve = config.connection_reserve();
    let server = TestServer::start(config);
    let _a = server.subscribe("/events", "");
    let _b = server.subscribe("/events", "");
    server.wait_subscribers(2);
    let mut third = server.connect();
    third.write_all(b"GET /events HTTP/1.1\r\n\r\n").unwrap();
    let refused = read_response(&mut third);
    assert_eq!(refused.status, 503);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(server.handle.stats().requests_refused, 1);
    // Past the reserve of connections kept for other requests, a connection is refused at once.
    // (The last one of the reserve is taken after the count, which a daemon answers on a
    // connection of the reserve.)
    let mut held: Vec<TcpStream> = (1..reserve).map(|_| server.connect()).collect();
    wait_until(
        || server.handle.stats().connections == 1 + reserve as u64,
        "the reserve to fill",
    );
    held.push(server.connect());
    let mut over = server.connect();
    let refused = read_response(&mut over);
    assert_eq!(refused.status, 503);
    assert!(refused.header("retry-after").is_some());
    drop(held);
}

#[test]
fn a_server_full_of_subscribers_can_still_be_published_to_checked_and_scraped() {
    let server = TestServer::start(Config {
        max_clients: 3,
        ..Config::default()
    });
    let mut streams: Vec<_> = (0..3).map(|_| server.subscribe("/events", "")).collect();
    server.wait_subscribers(3);
    assert_eq!(server.get("/health").status, 200);
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("ssed_subscribers 3\n"));
    let published = server.publish_form("data=still+here");
    assert_eq!(published.status, 200);
    for stream in &mut streams {
        assert_eq!(stream.next_event().data.as_deref(), Some("still here"));
    }
}

#[test]
fn publish_token_is_required_when_set() {
    let server = TestServer::start(Config {
        publish_token: Some("s3cret".into()),
        ..Config::default()
    });
    let none = server.publish_form("data=x");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate").as_deref(), Some("Bearer"));
    let wrong = server.request("POST /publish?data=x HTTP/1.1\r\nAuthorization: Bearer s3creT\r\nConnection: close\r\n\r\n");
    assert_eq!(wrong.status, 401);
    let right = server.request("POST /publish?data=x HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n");
    assert_eq!(right.status, 200);
    assert_eq!(server.handle.stats().events_published, 1);
}

#[test]
fn without_a_token_proxied_publishes_are_forbidden() {
    let server = TestServer::default();
    for header in [
        "X-Forwarded-For: 203.0.113.9",
        "Forwarded: for=203.0.113.9",
        "X-Real-IP: 203.0.113.9",
    ] {
        let response = server.request(format!(
            "POST /publish?data=x HTTP/1.1\r\n{header}\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(response.status, 403, "{header}");
        assert!(response.text().contains("--publish-token"));
    }
    assert_eq!(server.handle.stats().events_published, 0);
}

#[test]
fn subscribe_token_by_header_or_query() {
    let server = TestServer::start(Config {
        subscribe_token: Some("tok".into()),
        ..Config::default()
    });
    let refused = server.get("/events");
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate").as_deref(),
        Some("Bearer")
    );
    let _by_header = server.subscribe("/events", "Authorization: Bearer tok\r\n");
    let _by_query = server.subscribe("/events?token=tok", "");
    server.wait_subscribers(2);
}

#[test]
fn cors_any_origin() {
    let server = TestServer::start(Config {
        cors: Cors::Any,
        ..Config::default()
    });
    let health = server
        .request("GET /health HTTP/1.1\r\nOrigin: https://x.test\r\nConnection: close\r\n\r\n");
    assert_eq!(
        health.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let preflight = server.request(
        "OPTIONS /events HTTP/1.1\r\nOrigin: https://x.test\r\nAccess-Control-Request-Method: GET\r\n\
         Access-Control-Request-Headers: last-event-id\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(preflight.status, 204);
    let allowed = preflight.header("access-control-allow-headers").unwrap();
    for header in [
        "Last-Event-ID",
        "Authorization",
        "Content-Type",
        "Cache-Control",
    ] {
        assert!(allowed.contains(header), "{header}");
    }
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
}

#[test]
fn cors_origin_list_echoes_with_credentials() {
    let origins = Cors::parse("https://a.test,https://b.test").unwrap();
    let server = TestServer::start(Config {
        cors: origins,
        ..Config::default()
    });
    let mut sse = server.connect();
    sse.write_all(b"GET /events HTTP/1.1\r\nOrigin: https://b.test\r\n\r\n")
        .unwrap();
    let head = Sse {
        stream: sse,
        buf: Vec::new(),
    }
    .read_head();
    assert!(head.contains("Access-Control-Allow-Origin: https://b.test\r\n"));
    assert!(head.contains("Access-Control-Allow-Credentials: true\r\n"));
    assert!(head.contains("Vary: Origin\r\n"));
    let other = server
        .request("GET /health HTTP/1.1\r\nOrigin: https://evil.test\r\nConnection: close\r\n\r\n");
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn options_without_cors_is_not_allowed() {
    let server = TestServer::default();
    assert_eq!(
        server
            .request("OPTIONS /events HTTP/1.1\r\nConnection: close\r\n\r\n")
            .status,
        405
    );
}

#[test]
fn retry_is_sent_first_on_every_stream() {
    let server = TestServer::start(Config {
        retry: Some(1234),
        ..Config::default()
    });
    let mut sub = server.subscribe("/events", "");
    let first = sub.next_block().unwrap();
    assert_eq!(first.retry.as_deref(), Some("1234"));
    assert_eq!(first.data, None);
}

#[test]
fn the_library_publisher_and_http_share_one_id_sequence() {
    let server = TestServer::default();
    let mut sub = server.subscribe("/events", "");
    server.wait_subscribers(1);
    let a = server
        .handle
        .publish(&Event::new("from rust"))
        .unwrap()
        .unwrap();
    let b: u64 = server
        .publish_form("data=from+http")
        .text()
        .parse()
        .unwrap();
    assert_eq!(b, a + 1);
    assert_eq!(sub.next_event().id, Some(a.to_string()));
    assert_eq!(sub.next_event().id, Some(b.to_string()));
}

#[test]
fn a_client_that_pipelines_without_reading_is_closed() {
    let server = TestServer::start(Config {
        max_queue: 64 * 1024,
        ..Config::default()
    });
    let mut greedy = server.connect();
    let request = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    // 100,000 requests, never reading an answer: without a bound the answers would pile up.
    let batch = request.repeat(1000);
    for _ in 0..100 {
        if greedy.write_all(&batch).is_err() {
            break; // Closed by the server: what this test wants.
        }
    }
    common::wait_until(
        || server.handle.stats().connections == 0,
        "the greedy client to be closed",
    );
    assert_eq!(server.get("/health").status, 200, "others are still served");
}

#[test]
fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let server = TestServer::default();
    for _ in 0..20 {
        let mut stream = server.connect();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let answer = read_response(&mut stream);
        assert_eq!((answer.status, answer.text().as_str()), (200, "ok\n"));
    }
}

#[test]
fn large_pipelined_publishes_are_all_read() {
    let server = TestServer::default();
    let body = "z".repeat(600 * 1024);
    let mut requests = Vec::new();
    for _ in 0..5 {
        requests.extend_from_slice(
            format!(
                "POST /publish HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    requests.extend_from_slice(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    let mut stream = server.connect();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&requests).unwrap())
    };
    let mut reader = HttpReader::default();
    for _ in 0..5 {
        assert_eq!(reader.read_response(&mut stream).status, 200);
    }
    assert_eq!(reader.read_response(&mut stream).text(), "ok\n");
    writer.join().unwrap();
    // Each was answered when queued; the loop takes them from the queue over the next turns.
    common::wait_until(
        || server.handle.stats().events_delivered == 5,
        "five events taken",
    );
}

#[test]
fn a_form_that_is_not_publish_parameters_is_refused_by_name() {
    let server = TestServer::default();
    // `curl --data-binary hello URL` and `curl -d dat=hello URL`: both send a form.
    for (form, name) in [("hello", "'hello'"), ("dat=hello", "'dat'")] {
        let refused = server.publish_form(form);
        assert_eq!(refused.status, 400, "{form}");
        assert!(refused.text().contains(name), "{}", refused.text());
    }
    let refused =
        server.request("POST /publish?topic=a&evnt=x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("'evnt'"), "{}", refused.text());
    assert_eq!(server.handle.stats().events_published, 0);
}
