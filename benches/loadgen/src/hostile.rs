//! `loadgen hostile`: normal subscribers at a steady rate while slowloris connections and slow
//! readers press on the server. The normal subscribers must lose nothing; their latency is
//! compared (by benches/run.py) with a run without attackers; the server's RSS is sampled
//! every second and /metrics is scraped every half second throughout.

use crate::attackers::{self, AttackConfig, AttackShared};
use crate::chaos::delta;
use crate::http1;
use crate::options::Options;
use crate::paced::{self, PacedConfig};
use crate::procstat::monotonic_ns;
use crate::report::Report;
use crate::socket::SocketOptions;
use crate::streams::{self, Check, Shared, StreamsConfig};
use crate::watch::{self, Curve, MetricsPoller};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub const USAGE: &str = "\
usage: loadgen hostile --target 127.0.0.1:PORT [options]

  --subscribers N          normal subscribers, default 1000
  --rate N                 events/s to them, default 50
  --duration SECS          publishing time, default 120
  --size BYTES             event data, default 200
  --slowloris N            connections trickling a head a byte at a time, default 5000
  --slow-readers N         subscribers reading one byte a second, default 1000
  --interval-ms MS         one byte per slowloris and per slow reader this often, default 1000
  --reader-lifetime SECS   mean life of a slow reader before a new one replaces it, default 120
                           (0.5x to 1.5x): long enough for many to fall --max-queue behind
                           (1 MiB by default, ~100 s at 50 events/s, after the kernel's ~350 KB)
  --reader-mss BYTES       TCP_MAXSEG of slow readers, default 1400 (0: loopback's)
  --reader-rcvbuf BYTES    SO_RCVBUF of slow readers, default 4096 (0: autotuned)
  --attacker-nice N        how much nicer the attackers' thread runs than the rest, default 9:
                           real attackers do not share the measured clients' CPU
  --server-pid PID         for RSS and descriptors
  (0 slowloris and 0 slow readers is the calm run to compare with)
";

const TOPIC: &str = "bench";

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args, &[])?;
    let target = opts.target()?;
    let server_pid: Option<u32> = if opts.has("server-pid") { Some(opts.number("server-pid", 0)?) } else { None };
    let subscribers: usize = opts.number("subscribers", 1000)?;
    let rate: f64 = opts.number("rate", 50.0)?;
    let duration_s: f64 = opts.number("duration", 120.0)?;
    let size: usize = opts.number::<usize>("size", 200)?.max(48);
    let slowloris: usize = opts.number("slowloris", 5000)?;
    let slow_readers: usize = opts.number("slow-readers", 1000)?;
    let reader_mss: u32 = opts.number("reader-mss", 1400)?;
    let reader_rcvbuf: u32 = opts.number("reader-rcvbuf", 4096)?;
    let source_ips: u32 = opts.number("source-ips", 200)?;
    if rate <= 0.0 || duration_s <= 0.0 {
        return Err("--rate and --duration must be positive".into());
    }
    let mut report = Report::new(&opts.text("scenario", "hostile"), &opts.text("label", "server"));
    let mut curve = Curve::new(server_pid);
    let before = http1::metrics(target)?;
    let cpu_start = watch::cpu_seconds(server_pid);
    report.num("machine_load_avg_start", watch::load_average());
    let mark = http1::publish_once(target, &format!("topic={TOPIC}"), &paced::event_data(0, 0, size))?;

    let shared = Arc::new(Shared::default());
    let engine = streams::spawn(
        StreamsConfig {
            target,
            topic_names: vec![TOPIC.into()],
            topic_sets: vec![1; subscribers],
            start_id: mark,
            source_ips,
            source_offset: 0,
            socket: Default::default(),
            check: Check::Consecutive,
            event_size: size,
            max_pending: 256,
            stall: Duration::ZERO,
            seed: 1,
        },
        shared.clone(),
    );
    let stop_engine = |shared: &Shared| shared.stop.store(true, Ordering::Release);
    if !watch::wait_until(Duration::from_secs(60), || shared.streaming.load(Ordering::Acquire) == subscribers as u64) {
        stop_engine(&shared);
        let _ = engine.join();
        return Err("the normal subscribers did not all connect".into());
    }
    let rss_calm = curve.take();

    let attack_shared = Arc::new(AttackShared::default());
    let attack = attackers::spawn(
        AttackConfig {
            target,
            slowloris,
            slow_readers,
            topic: TOPIC.into(),
            interval: Duration::from_millis(opts.number("interval-ms", 1000)?),
            reader_lifetime: Duration::from_secs(opts.number("reader-lifetime", 120)?),
            reader_socket: SocketOptions {
                mss: (reader_mss > 0).then_some(reader_mss),
                receive_buffer: (reader_rcvbuf > 0).then_some(reader_rcvbuf),
            },
            // ssed's head timeout.
            slowloris_spread: Duration::from_secs(10),
            source_ips,
            source_offset: subscribers,
            max_pending: 256,
            seed: 7,
            nice: opts.number("attacker-nice", 9)?,
        },
        attack_shared.clone(),
    );
    let attackers_open =
        || attack_shared.slowloris_open.load(Ordering::Acquire) + attack_shared.readers_open.load(Ordering::Acquire);
    let all_attackers = (slowloris + slow_readers) as u64;
    let attack_started = monotonic_ns();
    let attack_ready = watch::wait_until(Duration::from_secs(60), || attackers_open() >= all_attackers);
    report.num("attackers_connect_s", (monotonic_ns() - attack_started) as f64 / 1e9);

    let poller = MetricsPoller::start(target, Duration::from_millis(500), Duration::from_secs(2));
    let template = PacedConfig::steady(target, rate, duration_s, size, TOPIC);
    let publishing = std::thread::spawn(move || paced::run(template));
    let mut open_min = (u64::MAX, u64::MAX);
    let mut next_sample = monotonic_ns();
    while !publishing.is_finished() {
        if monotonic_ns() >= next_sample {
            curve.take();
            open_min.0 = open_min.0.min(attack_shared.slowloris_open.load(Ordering::Acquire));
            open_min.1 = open_min.1.min(attack_shared.readers_open.load(Ordering::Acquire));
            next_sample += 1_000_000_000;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let outcome = publishing.join().map_err(|_| "publisher thread panicked")?;
    let last_id = outcome.published.last().map_or(mark, |p| p.id);
    *shared.final_ids.lock().unwrap_or_else(|p| p.into_inner()) = Some(vec![last_id]);
    let drained = watch::wait_until(Duration::from_secs(opts.number("drain-timeout", 30)?), || {
        shared.done.load(Ordering::Acquire) == subscribers as u64
    });
    let end = curve.take();
    let cpu_end = watch::cpu_seconds(server_pid);
    let polls = poller.finish();
    let after = http1::metrics(target)?;
    attack_shared.stop.store(true, Ordering::Release);
    let attack = attack.join().map_err(|_| "attacker thread panicked")??;
    stop_engine(&shared);
    let streams = engine.join().map_err(|_| "subscriber thread panicked")??;

    let mb = |bytes: u64| bytes as f64 / 1048576.0;
    let ms = |ns: u64| ns as f64 / 1e6;
    let totals = &streams.totals;
    report.num("subscribers", subscribers as f64);
    report.num("slowloris", slowloris as f64);
    report.num("slow_readers", slow_readers as f64);
    report.num("events_published", outcome.published.len() as f64);
    report.num("publish_late", outcome.late as f64);
    report.num("publish_refused_full", outcome.refused_full as f64);
    report.num("events_received", totals.received as f64);
    report.num("lost", totals.lost as f64);
    report.num("repeated", totals.repeated as f64);
    report.num("malformed", totals.malformed as f64);
    report.num("normal_streams_closed", totals.server_closed as f64);
    report.num("latency_p50_ms", ms(streams.histogram.quantile(0.5)));
    report.num("latency_p99_ms", ms(streams.histogram.quantile(0.99)));
    report.num("latency_max_ms", ms(streams.histogram.max()));
    // The seconds (from the start of publishing) whose events waited longest.
    let start_s = outcome.start_ns / 1_000_000_000;
    let mut worst: Vec<(u64, u64)> =
        streams.worst_by_second.iter().map(|(&s, &w)| (s.saturating_sub(start_s), w)).collect();
    worst.sort_by_key(|&(_, w)| std::cmp::Reverse(w));
    let worst: Vec<String> = worst.iter().take(8).map(|(s, w)| format!("{s}s {:.0} ms", ms(*w))).collect();
    report.text("worst_seconds", &worst.join(", "));
    report.num("attackers_all_connected", attack_ready as u8 as f64);
    report.num("slowloris_open_min", if slowloris > 0 { open_min.0 as f64 } else { 0.0 });
    report.num("slow_readers_open_min", if slow_readers > 0 { open_min.1 as f64 } else { 0.0 });
    let attack_s = (monotonic_ns() - attack_started) as f64 / 1e9;
    report.num("slowloris_bytes_per_s", attack.bytes_trickled as f64 / attack_s);
    report.num("slow_reader_bytes_per_s", attack.reader_bytes as f64 / attack_s);
    report.num("slowloris_connects", attack.slowloris_connects as f64);
    report.num("slowloris_408", attack.slowloris_timed_out as f64);
    report.num("slowloris_closed_other", attack.slowloris_closed_other as f64);
    report.num("slowloris_left_first_round", attack.slowloris_left as f64);
    report.num("slow_reader_connects", attack.reader_connects as f64);
    report.num("slow_readers_closed_by_server", attack.readers_closed_by_server as f64);
    report.num("slow_readers_renewed", attack.readers_renewed as f64);
    report.num("attacker_connect_failures", attack.connect_failures as f64);
    report.num("ssed_refused_timeout", delta(&before, &after, "ssed_requests_refused_total{reason=\"timeout\"}"));
    report
        .num("ssed_refused_max_clients", delta(&before, &after, "ssed_requests_refused_total{reason=\"max_clients\"}"));
    report.num("ssed_dropped_slow", delta(&before, &after, "ssed_subscribers_dropped_slow_total"));
    report.num("metrics_polls", polls.polls as f64);
    report.num("metrics_failures", polls.failures as f64);
    report.num("metrics_p99_ms", ms(polls.latency.quantile(0.99)));
    report.num("metrics_max_ms", ms(polls.latency.max()));
    report.num("peak_connections", polls.peak_connections);
    if let (Some(calm), Some(end)) = (rss_calm, end) {
        report.num("rss_before_attack_mb", mb(calm.rss));
        report.num("rss_max_mb", mb(curve.max_rss()));
        report.num("rss_end_mb", mb(end.rss));
        report.num("fds_max", curve.max_fds() as f64);
        report.num("kernel_tcp_mem_max_mb", mb(curve.max_tcp_mem()));
        report.text("memory_curve", &curve.text(10.0));
    }
    report.text("first_error", totals.first_error.as_deref().or(attack.first_error.as_deref()).unwrap_or(""));

    let mut problems = Vec::new();
    if totals.lost + totals.repeated + totals.malformed + totals.server_closed > 0 || !drained {
        problems.push("a normal subscriber lost an event or its stream".to_string());
    }
    if polls.failures > 0 {
        problems.push(format!("/metrics failed {} times: {}", polls.failures, polls.first_failure.unwrap_or_default()));
    }
    if let Some(e) = &outcome.error {
        problems.push(format!("the publisher failed: {e}"));
    }
    watch::report_cpu(&mut report, server_pid, cpu_start, cpu_end);
    report.text("verdict", if problems.is_empty() { "pass" } else { "FAIL" });
    report.text("problems", &problems.join("; "));
    report.print();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("hostile: {}", problems.join("; ")))
    }
}
