//! The delivery guarantees: replay, ordering, slow subscribers, heartbeats, timeouts, shutdown.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{PATIENCE, TestServer, read_response, wait_until};
use ssed::{Config, Event};

fn publish_n(server: &TestServer, topic: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            server
                .handle
                .publish(&Event::new(format!("{topic}-{i}")).topic(topic))
                .unwrap()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn replay_after_a_drop_loses_nothing() {
    let server = TestServer::default();
    let mut sub = server.subscribe("/events", "");
    server.wait_subscribers(1);
    let ids = publish_n(&server, "t", 3);
    let mut last = String::new();
    for id in &ids {
        last = sub.next_event().id.unwrap();
        assert_eq!(&last, id);
    }
    drop(sub);
    server.wait_subscribers(0);
    let later = publish_n(&server, "t", 4);
    let mut back = server.subscribe("/events", &format!("Last-Event-ID: {last}\r\n"));
    for id in &later {
        assert_eq!(back.next_event().id.as_ref(), Some(id));
    }
    // Then live events follow the replay.
    let live = publish_n(&server, "t", 1);
    assert_eq!(back.next_event().id, Some(live[0].clone()));
}

#[test]
fn replay_by_query_parameter_in_every_spelling() {
    let server = TestServer::default();
    let ids = publish_n(&server, "t", 3);
    for key in ["lastEventId", "lastEventID", "last_event_id"] {
        let mut sub = server.subscribe(&format!("/events?{key}={}", ids[0]), "");
        assert_eq!(sub.next_event().id.as_ref(), Some(&ids[1]), "{key}");
        assert_eq!(sub.next_event().id.as_ref(), Some(&ids[2]), "{key}");
    }
}

#[test]
fn replay_keeps_to_the_subscribers_topics() {
    let server = TestServer::default();
    let start = publish_n(&server, "a", 1);
    server
        .handle
        .publish(&Event::new("b-0").topic("b"))
        .unwrap();
    server
        .handle
        .publish(&Event::new("a-1").topic("a"))
        .unwrap();
    let mut sub = server.subscribe(&format!("/events?topic=a&lastEventId={}", start[0]), "");
    assert_eq!(sub.next_event().data.as_deref(), Some("a-1"));
}

#[test]
fn an_id_no_longer_retained_gets_a_gap_then_the_whole_history() {
    let server = TestServer::start(Config {
        history: 3,
        ..Config::default()
    });
    let ids = publish_n(&server, "t", 5);
    let mut sub = server.subscribe(&format!("/events?lastEventId={}", ids[0]), "");
    let gap = sub.next_block().unwrap();
    assert_eq!(gap.comments, ["gap"]);
    for id in &ids[2..] {
        assert_eq!(sub.next_event().id.as_ref(), Some(id));
    }
    // The oldest retained id is retained: no gap.
    let mut sub = server.subscribe(&format!("/events?lastEventId={}", ids[2]), "");
    let first = sub.next_block().unwrap();
    assert!(first.comments.is_empty(), "{first:?}");
    assert_eq!(first.id.as_ref(), Some(&ids[3]));
}

#[test]
fn an_id_from_before_a_restart_or_an_empty_history_is_a_gap() {
    let server = TestServer::default();
    let mut sub = server.subscribe("/events", "Last-Event-ID: 12345\r\n");
    assert_eq!(sub.next_block().unwrap().comments, ["gap"]);
}

#[test]
fn every_subscriber_sees_publish_order_across_threads() {
    let server = TestServer::default();
    let mut subs: Vec<_> = (0..3).map(|_| server.subscribe("/events", "")).collect();
    server.wait_subscribers(3);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let handle = server.handle.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    loop {
                        match handle.publish(&Event::new(format!("{t}:{i}"))) {
                            Err(ssed::PublishError::QueueFull) => std::thread::yield_now(),
                            other => {
                                other.unwrap();
                                break;
                            }
                        };
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut orders = Vec::new();
    for sub in &mut subs {
        let mut ids = Vec::new();
        let mut next_per_thread = [0usize; 4];
        for _ in 0..1000 {
            let event = sub.next_event();
            let (t, i) = event.data.as_deref().unwrap().split_once(':').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next_per_thread[t], "thread {t}'s events out of order");
            next_per_thread[t] += 1;
            ids.push(event.id.unwrap().parse::<u64>().unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in publish order");
        orders.push(ids);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "all subscribers see one order"
    );
}

#[test]
fn a_reader_that_never_reads_is_dropped_while_others_get_everything() {
    let server = TestServer::start(Config {
        max_queue: 256 * 1024,
        ..Config::default()
    });
    let mut stuck = server.connect();
    stuck.write_all(b"GET /events HTTP/1.1\r\n\r\n").unwrap();
    let mut good = server.subscribe("/events", "");
    server.wait_subscribers(2);
    let payload = "x".repeat(16 * 1024);
    let total = 1500; // 24 MiB: more than any socket buffer holds.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = seen.clone();
    let reader = std::thread::spawn(move || {
        for _ in 0..total {
            let event = good.next_event();
            assert_eq!(event.data.as_ref().map(String::len), Some(16 * 1024));
            progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        good
    });
    for sent in 0..total {
        // Keep the reading subscriber within a few events of the publisher, far under max_queue:
        // only the one that never reads can fall behind.
        wait_until(
            || sent < seen.load(std::sync::atomic::Ordering::SeqCst) + 4 || reader.is_finished(),
            "the reader",
        );
        server
            .handle
            .publish(&Event::new(payload.as_str()))
            .unwrap();
    }
    let _good = reader.join().unwrap();
    let stats = server.handle.stats();
    assert_eq!(stats.subscribers_dropped_slow, 1);
    assert_eq!(stats.subscribers, 1);
    // The stuck client finds its stream closed once it reads what was sent.
    stuck.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut sink = Vec::new();
    stuck
        .read_to_end(&mut sink)
        .expect("the dropped stream ends with a close");
}

#[test]
fn heartbeats_arrive_on_idle_streams() {
    let server = TestServer::start(Config {
        heartbeat: Duration::from_millis(300),
        ..Config::default()
    });
    let mut sub = server.subscribe("/events", "");
    let start = Instant::now();
    let mut beats = 0;
    while beats < 3 {
        let block = sub.next_block().unwrap();
        assert_eq!(block.data, None, "no events were published");
        if block.comments == [""] {
            beats += 1;
        }
    }
    let elapsed = start.elapsed();
    // Three beats at 300 ms take at least 900 ms; the upper bound only catches a stuck timer.
    assert!(elapsed >= Duration::from_millis(850), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn a_slow_head_times_out_while_others_are_served() {
    let server = TestServer::start(Config {
        head_timeout: Duration::from_millis(400),
        ..Config::default()
    });
    let mut slow = server.connect();
    slow.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let started = Instant::now();
    // Others are served meanwhile.
    let mut sub = server.subscribe("/events", "");
    assert_eq!(server.get("/health").status, 200);
    server.handle.publish(&Event::new("meanwhile")).unwrap();
    assert_eq!(sub.next_event().data.as_deref(), Some("meanwhile"));
    let answer = read_response(&mut slow);
    assert_eq!(answer.status, 408);
    assert!(started.elapsed() >= Duration::from_millis(350));
    let mut rest = Vec::new();
    assert_eq!(
        slow.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the 408"
    );
    assert!(
        server
            .get("/metrics")
            .text()
            .contains("reason=\"timeout\"} 1")
    );
}

#[test]
fn an_idle_connection_that_sends_nothing_is_closed_too() {
    let server = TestServer::start(Config {
        head_timeout: Duration::from_millis(200),
        ..Config::default()
    });
    let mut idle = server.connect();
    let mut buf = Vec::new();
    idle.read_to_end(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"));
    wait_until(
        || server.handle.stats().connections == 0,
        "the idle connection to close",
    );
}

#[test]
fn stop_flushes_and_spreads_reconnects() {
    let server = TestServer::default();
    let mut subs: Vec<_> = (0..8).map(|_| server.subscribe("/events", "")).collect();
    server.wait_subscribers(8);
    server.handle.publish(&Event::new("last words")).unwrap();
    server.handle.stop();
    let mut retries = Vec::new();
    for sub in &mut subs {
        let blocks = sub.read_to_close();
        assert_eq!(blocks[0].data.as_deref(), Some("last words"));
        let retry: u32 = blocks
            .last()
            .unwrap()
            .retry
            .as_ref()
            .expect("a retry before close")
            .parse()
            .unwrap();
        assert!((1000..5000).contains(&retry), "{retry}");
        retries.push(retry);
    }
    retries.sort();
    retries.dedup();
    assert!(
        retries.len() > 1,
        "reconnect delays are spread: {retries:?}"
    );
    assert_eq!(
        server.handle.publish(&Event::new("too late")),
        Err(ssed::PublishError::Stopped)
    );
}

#[test]
fn a_replay_larger_than_max_queue_is_not_dropped() {
    let server = TestServer::start(Config {
        max_queue: 64 * 1024,
        history: 64,
        ..Config::default()
    });
    let big = "y".repeat(128 * 1024);
    for _ in 0..64 {
        server.handle.publish(&Event::new(big.as_str())).unwrap();
    }
    // The loop takes large events from the publish queue over several turns; the replay is of
    // the whole retained history.
    wait_until(
        || server.handle.stats().history_events == 64,
        "the history to fill",
    );
    // 8 MiB of replay: more than the socket buffers take, so most of it is still queued when
    // the live event arrives.
    let mut sub = server.subscribe("/events?lastEventId=none", "");
    server.wait_subscribers(1);
    server.handle.publish(&Event::new("live")).unwrap();
    wait_until(
        || server.handle.stats().events_delivered == 65,
        "the live event",
    );
    assert_eq!(sub.next_block().unwrap().comments, ["gap"]);
    for _ in 0..64 {
        assert_eq!(sub.next_event().data.map(|d| d.len()), Some(128 * 1024));
    }
    assert_eq!(sub.next_event().data.as_deref(), Some("live"));
    assert_eq!(server.handle.stats().subscribers_dropped_slow, 0);
}

#[test]
fn publishers_faster_than_the_network_get_queue_full_not_dropped_subscribers() {
    let server = TestServer::start(Config {
        max_queue: 64 * 1024,
        ..Config::default()
    });
    let total = 20_000;
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let mut sub = server.subscribe("/events", "");
            std::thread::spawn(move || {
                for i in 0..total {
                    assert_eq!(
                        sub.next_event().data.map(|d| d.len()),
                        Some(1000),
                        "event {i}"
                    );
                }
            })
        })
        .collect();
    server.wait_subscribers(20);
    let payload = "p".repeat(1000);
    let mut full = 0u64;
    for _ in 0..total {
        loop {
            match server.handle.publish(&Event::new(payload.as_str())) {
                Err(ssed::PublishError::QueueFull) => {
                    full += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
                other => {
                    other.unwrap();
                    break;
                }
            }
        }
    }
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(server.handle.stats().subscribers_dropped_slow, 0);
    eprintln!("publisher saw a full queue {full} times");
}

/// Publishes `data` as a raw `text/plain` body over HTTP and returns the answer's status.
fn publish_raw(server: &TestServer, data: &[u8]) -> u16 {
    let mut stream = server.connect();
    let head = format!(
        "POST /publish HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        data.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(data).unwrap();
    read_response(&mut stream).status
}

/// Two live subscribers get an event of `size` bytes, then a small one, and neither is dropped.
fn a_large_event_is_delivered_live(config: Config, size: usize) {
    let server = TestServer::start(config);
    let mut subs = [
        server.subscribe("/events", ""),
        server.subscribe("/events", ""),
    ];
    server.wait_subscribers(2);
    let big = vec![b'z'; size];
    assert_eq!(publish_raw(&server, &big), 200);
    assert_eq!(publish_raw(&server, b"after"), 200);
    for sub in &mut subs {
        assert_eq!(sub.next_event().data.map(|d| d.len()), Some(size));
        assert_eq!(sub.next_event().data.as_deref(), Some("after"));
    }
    assert_eq!(server.handle.stats().subscribers_dropped_slow, 0);
}

#[test]
fn an_event_as_large_as_the_body_limit_reaches_live_subscribers_at_the_defaults() {
    a_large_event_is_delivered_live(Config::default(), Config::default().max_body);
}

#[test]
fn an_event_larger_than_max_queue_reaches_live_subscribers() {
    let config = Config {
        max_body: 3_000_000,
        ..Config::default()
    };
    a_large_event_is_delivered_live(config, 2_000_000);
}
