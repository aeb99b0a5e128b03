//! Every core (`--loops`): events reach every stream on every loop once, in id order; the
//! server stops, counts and refuses as one; a loop left without streams serves new ones; and
//! the suites that cover each feature pass again at two loops.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::external::{Ssed, note};
use common::{PATIENCE, Sse, TestServer, wait_until};
use ssed::{Config, Event};

/// The streams each loop holds, from `/metrics` (empty with one loop).
fn streams_per_loop(server: &TestServer) -> Vec<u64> {
    let metrics = server.get("/metrics").text();
    metrics
        .lines()
        .filter(|line| line.starts_with("ssed_loop_subscribers{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

fn two_loops() -> Config {
    Config {
        loops: 2,
        ..Config::default()
    }
}

/// Publishes `data` to topic t over HTTP on the keep-alive connection `publisher`.
fn publish_over(publisher: &mut std::net::TcpStream, reader: &mut common::HttpReader, data: &str) {
    let form = format!("topic=t&data={data}");
    let request = format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{form}",
        form.len()
    );
    publisher.write_all(request.as_bytes()).unwrap();
    let answer = reader.read_response(publisher);
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn four_publishers_every_subscriber_on_every_loop_gets_every_event_once_in_id_order() {
    const SUBSCRIBERS: usize = 10;
    const EACH: usize = 150;
    let server = TestServer::start(two_loops());
    let mut subs: Vec<Sse> = (0..SUBSCRIBERS)
        .map(|_| server.subscribe("/events?topic=t", ""))
        .collect();
    server.wait_subscribers(SUBSCRIBERS as u64);
    wait_until(|| streams_per_loop(&server) == [5, 5], "spread evenly");
    // Two publish over HTTP, two through the handle, all at once.
    std::thread::scope(|scope| {
        for p in 0..4 {
            let (addr, handle) = (server.addr, &server.handle);
            scope.spawn(move || {
                let mut http =
                    (p < 2).then(|| (common::connect(addr), common::HttpReader::default()));
                for i in 0..EACH {
                    let data = format!("{p}-{i}");
                    match &mut http {
                        Some((stream, reader)) => publish_over(stream, reader, &data),
                        None => {
                            handle.publish(&Event::new(data).topic("t")).unwrap();
                        }
                    }
                }
            });
        }
    });
    let mut first: Option<Vec<String>> = None;
    for sub in &mut subs {
        let mut ids: Vec<u64> = Vec::new();
        let mut seen = HashSet::new();
        let mut next_of = [0usize; 4];
        let mut order = Vec::new();
        for _ in 0..4 * EACH {
            let event = sub.next_event();
            let data = event.data.unwrap();
            assert!(seen.insert(data.clone()), "{data} came twice");
            let (p, i) = data.split_once('-').unwrap();
            let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
            assert_eq!(
                i, next_of[p],
                "publisher {p}'s events in the order published"
            );
            next_of[p] += 1;
            ids.push(event.id.unwrap().parse().unwrap());
            order.push(data);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow");
        // Every stream, whatever its loop, saw the same sequence.
        match &first {
            None => first = Some(order),
            Some(first) => assert_eq!(first, &order),
        }
    }
    assert_eq!(server.handle.stats().events_delivered, 4 * EACH as u64);
}

#[test]
fn a_loop_whose_streams_all_left_serves_new_ones() {
    let server = TestServer::start(two_loops());
    // The first stream goes to the other loop (the first serves the requests too), the second
    // stays on the first.
    let mut on_other = server.subscribe("/events", "");
    let mut on_first = server.subscribe("/events", "");
    wait_until(
        || streams_per_loop(&server) == [1, 1],
        "one stream on each loop",
    );
    for round in 0..3 {
        drop(on_other);
        wait_until(
            || streams_per_loop(&server) == [1, 0],
            "the other loop empty",
        );
        on_other = server.subscribe("/events", "");
        wait_until(
            || streams_per_loop(&server) == [1, 1],
            "a newcomer on the other loop",
        );
        let data = format!("round {round}");
        server.handle.publish(&Event::new(&data)).unwrap();
        assert_eq!(on_other.next_event().data.as_deref(), Some(data.as_str()));
        assert_eq!(on_first.next_event().data, Some(data));
    }
}

#[test]
fn max_clients_counts_the_streams_of_every_loop_and_publishers_keep_their_reserve() {
    let server = TestServer::start(Config {
        max_clients: 4,
        ..two_loops()
    });
    let mut subs: Vec<Sse> = (0..4).map(|_| server.subscribe("/events", "")).collect();
    wait_until(
        || streams_per_loop(&server) == [2, 2],
        "two streams on each loop",
    );
    let refused = server.get("/events");
    assert_eq!(refused.status, 503, "{}", refused.text());
    let published = server.publish_form("data=still");
    assert_eq!(published.status, 200);
    for sub in &mut subs {
        assert_eq!(sub.next_event().data.as_deref(), Some("still"));
    }
    // One leaves, on either loop: one more may come.
    drop(subs.pop());
    server.wait_subscribers(3);
    let mut again = server.subscribe("/events", "");
    server.wait_subscribers(4);
    server.publish_form("data=again");
    assert_eq!(again.next_event().data.as_deref(), Some("again"));
}

#[test]
fn the_smallest_max_queue_still_delivers_on_every_loop() {
    let server = TestServer::start(Config {
        max_queue: 1,
        ..two_loops()
    });
    let mut subs: Vec<Sse> = (0..2).map(|_| server.subscribe("/events", "")).collect();
    wait_until(
        || streams_per_loop(&server) == [1, 1],
        "one stream on each loop",
    );
    for i in 0..3 {
        server
            .handle
            .publish(&Event::new(format!("small {i}")))
            .unwrap();
        for sub in &mut subs {
            assert_eq!(sub.next_event().data, Some(format!("small {i}")));
        }
    }
}

#[test]
fn replay_on_every_loop_meets_the_live_events_exactly() {
    let server = TestServer::start(two_loops());
    let ids: Vec<String> = (0..5)
        .map(|i| {
            let id = server
                .handle
                .publish(&Event::new(format!("old {i}")))
                .unwrap();
            id.unwrap().to_string()
        })
        .collect();
    // While events keep coming, streams resume from the second id, on both loops in turn.
    let publishing = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            for i in 0..200 {
                server
                    .handle
                    .publish(&Event::new(format!("new {i}")))
                    .unwrap();
            }
        });
        let header = format!("Last-Event-ID: {}\r\n", ids[1]);
        let subs: Vec<Sse> = (0..6)
            .map(|_| server.subscribe("/events", &header))
            .collect();
        publisher.join().unwrap();
        subs
    });
    for mut sub in publishing {
        let mut got = Vec::new();
        loop {
            let data = sub.next_event().data.unwrap();
            let last = data == "new 199";
            got.push(data);
            if last {
                break;
            }
        }
        let expected: Vec<String> = (2..5)
            .map(|i| format!("old {i}"))
            .chain((0..200).map(|i| format!("new {i}")))
            .collect();
        assert_eq!(got, expected, "nothing missed, nothing twice");
    }
}

#[cfg(feature = "host")]
#[test]
fn the_stream_hook_hears_a_stream_close_on_its_loop_with_the_id_it_opened_with() {
    use std::sync::{Arc, Mutex};
    type Heard = Vec<(bool, u64, Option<std::net::SocketAddr>)>;
    let heard: Arc<Mutex<Heard>> = Arc::default();
    let mut config = two_loops();
    let into = heard.clone();
    config.hooks.streams = Some(Arc::new(move |event: &ssed::StreamEvent| {
        into.lock()
            .unwrap()
            .push((event.opened, event.id, event.peer));
    }));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.log = ssed::LogLevel::Off;
    let server = ssed::Server::bind(config).unwrap();
    let (handle, addr) = (server.handle(), server.local_addr());
    let thread = server.spawn().unwrap();
    let subs: Vec<Sse> = (0..4)
        .map(|_| Sse::open(addr, "/events?topic=h", ""))
        .collect();
    wait_until(|| handle.stats().subscribers == 4, "four streams");
    assert_eq!(handle.topic_subscribers(Some("h")), 4);
    drop(subs);
    wait_until(|| handle.stats().subscribers == 0, "no stream");
    wait_until(
        || heard.lock().unwrap().len() == 8,
        "every open and close heard",
    );
    let heard = heard.lock().unwrap();
    // Each close names the id and the peer its stream opened with, whichever loop held it.
    let opened: HashSet<_> = heard.iter().filter(|h| h.0).map(|h| (h.1, h.2)).collect();
    let closed: HashSet<_> = heard.iter().filter(|h| !h.0).map(|h| (h.1, h.2)).collect();
    assert_eq!(opened.len(), 4, "{heard:?}");
    assert!(opened.iter().all(|(_, peer)| peer.is_some()), "{heard:?}");
    assert_eq!(opened, closed, "{heard:?}");
    assert_eq!(handle.topic_subscribers(Some("h")), 0);
    drop(heard);
    handle.stop();
    thread.join().unwrap().unwrap();
}

/// A server bound for `run_for`, and the thread that will run its slices.
fn bound_two_loops() -> (ssed::Server, ssed::Handle, std::net::SocketAddr) {
    let mut config = two_loops();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.log = ssed::LogLevel::Off;
    let server = ssed::Server::bind(config).unwrap();
    let (handle, addr) = (server.handle(), server.local_addr());
    (server, handle, addr)
}

#[test]
fn a_host_that_runs_the_first_loop_in_slices_has_every_loop_serve_and_stop() {
    let slice = std::time::Duration::from_millis(20);
    let (mut server, handle, addr) = bound_two_loops();
    let runner = std::thread::spawn(move || while !server.run_for(slice).unwrap() {});
    let mut subs: Vec<Sse> = (0..2).map(|_| Sse::open(addr, "/events", "")).collect();
    wait_until(|| handle.stats().subscribers == 2, "two streams");
    handle.publish(&Event::new("sliced")).unwrap();
    for sub in &mut subs {
        assert_eq!(sub.next_event().data.as_deref(), Some("sliced"));
    }
    handle.stop();
    runner.join().unwrap();
    for sub in &mut subs {
        assert!(sub.read_to_close().iter().any(|b| b.retry.is_some()));
    }

    // Dropped between slices, without a stop: the other loop stops too, and closes its stream.
    let (mut server, handle, addr) = bound_two_loops();
    let runner = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < PATIENCE && handle.stats().subscribers < 2 {
            assert!(!server.run_for(slice).unwrap());
        }
        drop(server);
    });
    let mut subs: Vec<Sse> = (0..2).map(|_| Sse::open(addr, "/events", "")).collect();
    runner.join().unwrap();
    for sub in &mut subs {
        sub.read_to_close();
    }
}

#[test]
fn one_loop_has_no_loop_metrics_and_the_flag_is_checked() {
    let server = TestServer::start(Config {
        loops: 1,
        ..Config::default()
    });
    if common::target::loops() == 1 {
        assert!(streams_per_loop(&server).is_empty());
    }
    for bad in ["0", "65", "two"] {
        let output = common::target::daemon()
            .args(["--loops", bad])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--loops {bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--loops"), "{stderr}");
    }
}

#[test]
fn shutdown_flushes_and_closes_the_streams_of_every_loop() {
    let mut ssed = Ssed::start(&["--loops", "3", "--max-clients", "100"]);
    let mut subs: Vec<Sse> = (0..6)
        .map(|_| Sse::open(ssed.addr, "/events?topic=s", ""))
        .collect();
    let metrics = || {
        let mut stream = common::connect(ssed.addr);
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        common::read_response(&mut stream).text()
    };
    wait_until(
        || {
            metrics()
                .lines()
                .filter(|l| l.starts_with("ssed_loop_subscribers{"))
                .filter(|l| l.ends_with(" 2"))
                .count()
                == 3
        },
        "two streams on each of the three loops",
    );
    let mut publish = common::connect(ssed.addr);
    let form = "topic=s&data=last";
    write!(
        publish,
        "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    assert_eq!(common::read_response(&mut publish).status, 200);
    ssed.process.signal(libc::SIGTERM);
    let started = Instant::now();
    for sub in &mut subs {
        let blocks = sub.read_to_close();
        assert!(
            blocks.iter().any(|b| b.data.as_deref() == Some("last")),
            "the last event before the close: {blocks:?}"
        );
        assert!(
            blocks.iter().any(|b| b.retry.is_some()),
            "a retry before the close: {blocks:?}"
        );
    }
    let exit = ssed.process.wait_exit(PATIENCE).expect("it stops");
    assert!(exit.success(), "{exit}");
    assert!(started.elapsed() < PATIENCE);
}

/// The suites that cover each feature, run again with every server at two loops: the
/// HTTP API, delivery and replay, heartbeats, authorization and JWT expiry, the history file,
/// the Mercure hub (0.x with Symfony's component, and 1.0 with active subscriptions), HTTPS,
/// the daemon (signals, shutdown, metrics), the cluster on Redis, and the listeners (socket
/// activation, the publish socket).
#[test]
fn the_suites_pass_at_two_loops() {
    if common::target::loops() != 1 {
        return; // Already running at more loops.
    }
    const SUITES: [&str; 11] = [
        "http_api",
        "delivery",
        "authorization",
        "history_file",
        "mercure",
        "mercure1",
        "tls",
        "daemon",
        "cluster",
        "listening",
        "viewer",
    ];
    for suite in SUITES {
        let started = Instant::now();
        let summary = common::target::suite_passes(
            Command::new(common::target::suite_binary(suite))
                .args(["--test-threads", "2"])
                .env(common::target::LOOPS_VAR, "2")
                .current_dir(env!("CARGO_MANIFEST_DIR")),
            &format!("{suite} at two loops"),
        );
        note(&format!(
            "at two loops, {suite}: {summary} ({:.0?})",
            started.elapsed()
        ));
    }
}
