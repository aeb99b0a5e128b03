//! `loadgen chaos`: subscribers over several topics whose connections are cut at random
//! (closed, reset, or starved until the server drops them for --max-queue) and who reconnect
//! with their Last-Event-ID, while several publishers publish. At the end every subscriber's
//! record must be exactly the events published to its topics, each once, in publish order.

use crate::http1::{self, Metrics};
use crate::options::Options;
use crate::paced::{self, PacedConfig, Published};
use crate::procstat::monotonic_ns;
use crate::report::Report;
use crate::socket::{Rng, SocketOptions};
use crate::streams::{self, Check, Comparison, Shared, StreamsConfig, CUT_CLOSE, CUT_RESET, CUT_STALL};
use crate::watch::{self, Curve};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const USAGE: &str = "\
usage: loadgen chaos --target 127.0.0.1:PORT [options]

Subscribers over several topics are cut at random (close, reset, stall until dropped for
--max-queue) and reconnect with Last-Event-ID while publishers publish; every subscriber must
end with exactly the events of its topics, each once, in order. Exits 1 if one does not.

  --subscribers N      default 1000        --topics N        default 4 (at most 16)
  --publishers N       default 4           --events N        default 20000
  --rate N|max         events/s over all publishers, default 1000
  --size BYTES         event data, default 200
  --cuts-per-s X       cuts per subscriber per second, default 0.5
  --stall-ms MS        how long a stalled subscriber stops reading, default 3000
  --mss BYTES          TCP_MAXSEG of subscribers, default 1400 (0: loopback's)
  --rcvbuf BYTES       SO_RCVBUF of subscribers, default 16384 (0: autotuned); with the MSS,
                       this keeps what the kernels buffer for a stalled stream to some 100 KB
  --seed N             default 1               --drain-timeout SECS  default 120
  --server-pid PID     for RSS and descriptors  --scenario, --label  copied into the JSON line
";

struct ChaosConfig {
    subscribers: usize,
    topics: usize,
    publishers: usize,
    events: u64,
    rate: Option<f64>,
    size: usize,
    cuts_per_s: f64,
    seed: u64,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args, &[])?;
    let target = opts.target()?;
    let rate_text = opts.text("rate", "1000");
    let config = ChaosConfig {
        subscribers: opts.number("subscribers", 1000)?,
        topics: opts.number::<usize>("topics", 4)?.clamp(1, 16),
        publishers: opts.number::<usize>("publishers", 4)?.max(1),
        events: opts.number("events", 20000)?,
        rate: if rate_text == "max" { None } else { Some(opts.number("rate", 1000.0)?) },
        size: opts.number::<usize>("size", 200)?.max(48),
        cuts_per_s: opts.number("cuts-per-s", 0.5)?,
        seed: opts.number("seed", 1)?,
    };
    let server_pid: Option<u32> = if opts.has("server-pid") { Some(opts.number("server-pid", 0)?) } else { None };
    let mss: u32 = opts.number("mss", 1400)?;
    let rcvbuf: u32 = opts.number("rcvbuf", 16384)?;
    let topic_names: Vec<String> = (0..config.topics).map(|t| format!("t{t}")).collect();
    let mut report = Report::new(&opts.text("scenario", "chaos"), &opts.text("label", "server"));
    let mut curve = Curve::new(server_pid);
    curve.take();
    let fds_baseline = server_pid.map(watch::fd_count);

    let before = http1::metrics(target)?;
    let cpu_start = watch::cpu_seconds(server_pid);
    report.num("machine_load_avg_start", watch::load_average());
    // The mark: every subscriber's first Last-Event-ID, so that no connection starts without one.
    let every_topic: Vec<String> = topic_names.iter().map(|t| format!("topic={t}")).collect();
    let mark = http1::publish_once(target, &every_topic.join("&"), &paced::event_data(0, 0, config.size))?;

    let topic_sets = pick_topic_sets(config.subscribers, config.topics, config.seed);
    let shared = Arc::new(Shared::default());
    let engine = streams::spawn(
        StreamsConfig {
            target,
            topic_names: topic_names.clone(),
            topic_sets: topic_sets.clone(),
            start_id: mark,
            source_ips: opts.number("source-ips", 200)?,
            source_offset: 0,
            socket: SocketOptions { mss: (mss > 0).then_some(mss), receive_buffer: (rcvbuf > 0).then_some(rcvbuf) },
            check: Check::List,
            event_size: config.size,
            max_pending: opts.number("max-pending", 256)?,
            stall: Duration::from_millis(opts.number("stall-ms", 3000)?),
            seed: config.seed,
        },
        shared.clone(),
    );
    let started = monotonic_ns();
    let connected = watch::wait_until(Duration::from_secs(60), || {
        shared.streaming.load(Ordering::Acquire) == config.subscribers as u64
    });
    if !connected {
        shared.stop.store(true, Ordering::Release);
        let _ = engine.join();
        return Err(format!(
            "only {} of {} subscribers connected",
            shared.streaming.load(Ordering::Acquire),
            config.subscribers
        ));
    }
    report.num("connect_s", (monotonic_ns() - started) as f64 / 1e9);

    shared.set_cuts(config.cuts_per_s, CUT_CLOSE | CUT_RESET | CUT_STALL);
    let abort = Arc::new(AtomicBool::new(false));
    let template = PacedConfig {
        target,
        events: config.events,
        rate: config.rate,
        size: config.size,
        topics: topic_names.clone(),
        first_seq: 1,
        seed: config.seed,
        abort: abort.clone(),
        retry_for: Duration::from_secs(30),
    };
    let publishers = config.publishers;
    let publishing = std::thread::spawn(move || paced::run_many(publishers, template));
    while !publishing.is_finished() {
        curve.take();
        std::thread::sleep(Duration::from_millis(500));
    }
    let outcomes = publishing.join().map_err(|_| "publisher threads panicked")?;
    shared.set_cuts(0.0, 0);
    let publish_end = monotonic_ns();

    let mut published: Vec<Published> = outcomes.iter().flat_map(|o| o.published.iter().copied()).collect();
    published.sort_by_key(|p| p.id);
    let mut finals = vec![0u64; config.topics];
    for p in &published {
        finals[p.topic as usize] = p.id;
    }
    *shared.final_ids.lock().unwrap_or_else(|p| p.into_inner()) = Some(finals);
    let drain_timeout = Duration::from_secs(opts.number("drain-timeout", 120)?);
    let drained = watch::wait_until(drain_timeout, || shared.done.load(Ordering::Acquire) == config.subscribers as u64);
    report.num("drain_s", (monotonic_ns() - publish_end) as f64 / 1e9);
    curve.take();
    let cpu_end = watch::cpu_seconds(server_pid);
    shared.stop.store(true, Ordering::Release);
    let outcome = engine.join().map_err(|_| "subscriber thread panicked")??;
    let after = http1::metrics(target)?;
    // Descriptors come back once the server has seen every close (a closed request
    // connection may linger up to 5 s for its client).
    let fds_back = match (server_pid, fds_baseline) {
        (Some(pid), Some(baseline)) => watch::wait_until(Duration::from_secs(15), || watch::fd_count(pid) <= baseline),
        _ => true,
    };

    report.num("subscribers", config.subscribers as f64);
    report.num("topics", config.topics as f64);
    report.num("publishers", config.publishers as f64);
    publisher_figures(&mut report, &outcomes, &published);
    let totals = &outcome.totals;
    for (key, value) in [
        ("cuts_close", totals.cuts_close),
        ("cuts_reset", totals.cuts_reset),
        ("stalls", totals.stalls),
        ("stalls_dropped", totals.stalls_dropped),
        ("server_closed_other", totals.server_closed),
        ("reconnects", totals.connects.saturating_sub(config.subscribers as u64)),
        ("connect_failures", totals.connect_failures),
    ] {
        report.num(key, value as f64);
    }
    let dropped_slow = delta(&before, &after, "ssed_subscribers_dropped_slow_total");
    report.num("ssed_dropped_slow", dropped_slow);
    report.num("events_received", totals.received as f64);

    let (expected_total, faults, exact) = check_records(&published, &topic_sets, &outcome.records);
    report.num("events_expected", expected_total as f64);
    report.num("subs_exact", exact as f64);
    report.num("subs_wrong", (config.subscribers - exact) as f64);
    report.num("missing", faults.missing as f64);
    report.num("duplicated", faults.duplicated as f64);
    report.num("reordered", faults.reordered as f64);
    report.num("unexpected", faults.unexpected as f64);
    report.num("foreign_topic", totals.foreign as f64);
    report.num("gaps", totals.gaps as f64);
    report.num("malformed", totals.malformed as f64);
    let ms = |ns: u64| ns as f64 / 1e6;
    report.num("latency_p50_ms", ms(outcome.histogram.quantile(0.5)));
    report.num("latency_p99_ms", ms(outcome.histogram.quantile(0.99)));
    report.num("latency_max_ms", ms(outcome.histogram.max()));
    report.num("server_rss_max_mb", curve.max_rss() as f64 / 1048576.0);
    if let Some(last) = curve.last() {
        report.num("server_rss_end_mb", last.rss as f64 / 1048576.0);
    }
    if let (Some(pid), Some(baseline)) = (server_pid, fds_baseline) {
        report.num("server_rss_after_close_mb", watch::rss(pid) as f64 / 1048576.0);
        report.num("fds_baseline", baseline as f64);
        report.num("fds_peak", curve.max_fds() as f64);
        report.num("fds_end", watch::fd_count(pid) as f64);
    }
    report.text("first_error", totals.first_error.as_deref().unwrap_or(""));

    let mut problems = Vec::new();
    if exact != config.subscribers {
        problems.push(format!("{} subscribers did not get exactly their events", config.subscribers - exact));
    }
    if totals.gaps + totals.foreign + totals.malformed > 0 {
        problems.push("gaps, foreign or malformed events".into());
    }
    if !drained {
        problems.push("not every subscriber got its last event before the drain timeout".into());
    }
    if let Some(e) = outcomes.iter().find_map(|o| o.error.as_ref()) {
        problems.push(format!("a publisher failed: {e}"));
    }
    if !fds_back {
        problems.push("the server's descriptors did not come back to where they were".into());
    }
    if totals.stalls > 0 && dropped_slow == 0.0 {
        problems.push("no subscriber was dropped for --max-queue: the stalls tested nothing".into());
    }
    watch::report_cpu(&mut report, server_pid, cpu_start, cpu_end);
    report.text("verdict", if problems.is_empty() { "pass" } else { "FAIL" });
    report.text("problems", &problems.join("; "));
    report.print();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("chaos: {}", problems.join("; ")))
    }
}

/// A random non-empty set of topics per subscriber; the set of every topic is asked for as
/// /events without a topic parameter (bits 0), which covers that form too.
fn pick_topic_sets(subscribers: usize, topics: usize, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let all = (1u64 << topics) - 1;
    (0..subscribers)
        .map(|_| {
            let set = 1 + rng.below(all);
            if set == all {
                0
            } else {
                set
            }
        })
        .collect()
}

fn publisher_figures(report: &mut Report, outcomes: &[paced::PacedOutcome], published: &[Published]) {
    let start = outcomes.iter().map(|o| o.start_ns).min().unwrap_or(0);
    let end = outcomes.iter().map(|o| o.end_ns).max().unwrap_or(0);
    let seconds = (end.saturating_sub(start)) as f64 / 1e9;
    report.num("events_published", published.len() as f64);
    report.num("publish_s", seconds);
    report.num("publish_per_s", published.len() as f64 / seconds.max(1e-9));
    report.num("publish_refused_full", outcomes.iter().map(|o| o.refused_full).sum::<u64>() as f64);
    report.num("publish_lost_answers", outcomes.iter().map(|o| o.lost_answers).sum::<u64>() as f64);
    let distinct_ids = published.windows(2).all(|w| w[0].id < w[1].id);
    report.num("publish_ids_distinct", distinct_ids as u8 as f64);
}

/// Compares every record with the events of its subscriber's topics in publish (id) order.
/// Returns the events expected over all subscribers, the faults summed, and how many
/// subscribers got exactly their events.
fn check_records(published: &[Published], topic_sets: &[u64], records: &[Vec<u64>]) -> (u64, Comparison, usize) {
    let mut total = Comparison::default();
    let mut expected_total = 0;
    let mut exact = 0;
    for (&topics, received) in topic_sets.iter().zip(records) {
        let expected: Vec<u64> =
            published.iter().filter(|p| topics == 0 || topics & (1 << p.topic) != 0).map(|p| p.id).collect();
        expected_total += expected.len() as u64;
        let found = streams::compare(&expected, received);
        exact += found.exact() as usize;
        total.missing += found.missing;
        total.duplicated += found.duplicated;
        total.reordered += found.reordered;
        total.unexpected += found.unexpected;
    }
    (expected_total, total, exact)
}

pub fn delta(before: &Metrics, after: &Metrics, name: &str) -> f64 {
    after.get(name) - before.get(name)
}
