//! `loadgen soak`: a long run at a steady rate, a share of the subscribers reconnecting every
//! second with their Last-Event-ID. The server's RSS and descriptors are sampled every second:
//! memory must stay flat, descriptors must come back to where they started once the
//! subscribers leave, and no subscriber may miss, repeat or reorder an event.

use crate::chaos::delta;
use crate::http1;
use crate::options::Options;
use crate::paced::{self, PacedConfig};
use crate::procstat::monotonic_ns;
use crate::report::Report;
use crate::streams::{self, Check, Shared, StreamsConfig, CUT_CLOSE, CUT_RESET};
use crate::watch::{self, Curve};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub const USAGE: &str = "\
usage: loadgen soak --target 127.0.0.1:PORT --server-pid PID [options]

  --subscribers N        default 2000
  --rate N               events/s, default 200 (one publisher, one topic)
  --duration SECS        publishing time, default 600
  --reconnect-share X    share of the subscribers that reconnect each second, default 0.1
                         (half close their connection, half reset it)
  --size BYTES           event data, default 200
  --drain-timeout SECS   default 30
";

const TOPIC: &str = "soak";

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args, &[])?;
    let target = opts.target()?;
    let server_pid: u32 = opts.number("server-pid", 0)?;
    if server_pid == 0 {
        return Err("--server-pid is required: the soak is about the server's memory".into());
    }
    let subscribers: usize = opts.number("subscribers", 2000)?;
    let rate: f64 = opts.number("rate", 200.0)?;
    let duration_s: f64 = opts.number("duration", 600.0)?;
    let share: f64 = opts.number("reconnect-share", 0.1)?;
    let size: usize = opts.number::<usize>("size", 200)?.max(48);
    if rate <= 0.0 || duration_s <= 0.0 {
        return Err("--rate and --duration must be positive".into());
    }
    let mut report = Report::new(&opts.text("scenario", "soak"), &opts.text("label", "server"));
    let fds_baseline = watch::fd_count(server_pid);
    let rss_baseline = watch::rss(server_pid);
    let before = http1::metrics(target)?;
    let cpu_start = watch::cpu_seconds(Some(server_pid));
    report.num("machine_load_avg_start", watch::load_average());
    let mark = http1::publish_once(target, &format!("topic={TOPIC}"), &paced::event_data(0, 0, size))?;

    let shared = Arc::new(Shared::default());
    let engine = streams::spawn(
        StreamsConfig {
            target,
            topic_names: vec![TOPIC.into()],
            topic_sets: vec![1; subscribers],
            start_id: mark,
            source_ips: opts.number("source-ips", 200)?,
            source_offset: 0,
            socket: Default::default(),
            check: Check::Consecutive,
            event_size: size,
            max_pending: 256,
            stall: Duration::ZERO,
            seed: opts.number("seed", 1)?,
        },
        shared.clone(),
    );
    let connected =
        watch::wait_until(Duration::from_secs(60), || shared.streaming.load(Ordering::Acquire) == subscribers as u64);
    if !connected {
        shared.stop.store(true, Ordering::Release);
        let _ = engine.join();
        return Err(format!(
            "only {} of {subscribers} subscribers connected",
            shared.streaming.load(Ordering::Acquire)
        ));
    }

    // The curve's time 0 is the start of publishing, with every subscriber connected.
    let mut curve = Curve::new(Some(server_pid));
    curve.take();
    shared.set_cuts(share, CUT_CLOSE | CUT_RESET);
    let template = PacedConfig::steady(target, rate, duration_s, size, TOPIC);
    let publishing = std::thread::spawn(move || paced::run(template));
    let mut next_sample = monotonic_ns();
    while !publishing.is_finished() {
        let now = monotonic_ns();
        if now >= next_sample {
            curve.take();
            next_sample += 1_000_000_000;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let outcome = publishing.join().map_err(|_| "publisher thread panicked")?;
    shared.set_cuts(0.0, 0);
    let last_id = outcome.published.last().map_or(mark, |p| p.id);
    *shared.final_ids.lock().unwrap_or_else(|p| p.into_inner()) = Some(vec![last_id]);
    let drained = watch::wait_until(Duration::from_secs(opts.number("drain-timeout", 30)?), || {
        shared.done.load(Ordering::Acquire) == subscribers as u64
    });
    let end = curve.take().ok_or("the server is gone")?;
    let after = http1::metrics(target)?;
    let cpu_end = watch::cpu_seconds(Some(server_pid));
    shared.stop.store(true, Ordering::Release);
    let streams = engine.join().map_err(|_| "subscriber thread panicked")??;
    // Descriptors come back once the server has seen every close (a closed request
    // connection may linger up to 5 s for its client).
    let fds_back = watch::wait_until(Duration::from_secs(15), || watch::fd_count(server_pid) <= fds_baseline);
    let fds_end = watch::fd_count(server_pid);
    let rss_after_close = watch::rss(server_pid);

    let mb = |bytes: u64| bytes as f64 / 1048576.0;
    report.num("subscribers", subscribers as f64);
    report.num("duration_s", duration_s);
    report.num("events_published", outcome.published.len() as f64);
    report.num("publish_late", outcome.late as f64);
    report.num("publish_refused_full", outcome.refused_full as f64);
    let totals = &streams.totals;
    let cuts = totals.cuts_close + totals.cuts_reset;
    report.num("reconnects", cuts as f64);
    report.num("reconnects_per_s", cuts as f64 / duration_s);
    report.num("server_closed", totals.server_closed as f64);
    report.num("connect_failures", totals.connect_failures as f64);
    report.num("events_received", totals.received as f64);
    report.num("lost", totals.lost as f64);
    report.num("repeated", totals.repeated as f64);
    report.num("gaps", totals.gaps as f64);
    report.num("malformed", totals.malformed as f64);
    report.num("subs_not_done", (subscribers as u64 - shared.done.load(Ordering::Acquire)) as f64);
    report.num("ssed_dropped_slow", delta(&before, &after, "ssed_subscribers_dropped_slow_total"));
    let ms = |ns: u64| ns as f64 / 1e6;
    report.num("latency_p50_ms", ms(streams.histogram.quantile(0.5)));
    report.num("latency_p99_ms", ms(streams.histogram.quantile(0.99)));
    report.num("latency_max_ms", ms(streams.histogram.max()));
    let one_minute = curve.at(duration_s.min(60.0)).unwrap_or(end);
    report.num("rss_baseline_mb", mb(rss_baseline));
    report.num("rss_start_mb", mb(curve.samples[0].rss));
    report.num("rss_1min_mb", mb(one_minute.rss));
    report.num("rss_end_mb", mb(end.rss));
    report.num("rss_max_mb", mb(curve.max_rss()));
    report.num("rss_end_vs_1min", end.rss as f64 / one_minute.rss.max(1) as f64);
    report.num("rss_after_close_mb", mb(rss_after_close));
    report.num("fds_baseline", fds_baseline as f64);
    report.num("fds_peak", curve.max_fds() as f64);
    report.num("fds_end", fds_end as f64);
    report.num("kernel_tcp_mem_max_mb", mb(curve.max_tcp_mem()));
    report.text("memory_curve", &curve.text(60.0));
    report.text("first_error", totals.first_error.as_deref().unwrap_or(""));

    let mut problems = Vec::new();
    if totals.lost + totals.repeated + totals.gaps + totals.malformed > 0 || !drained {
        problems.push("events lost, repeated, out of order or late".to_string());
    }
    if end.rss as f64 > one_minute.rss as f64 * 1.05 {
        problems.push("RSS at the end is more than 5% above RSS after a minute".into());
    }
    if !fds_back {
        problems.push(format!("descriptors did not come back to {fds_baseline} (now {fds_end})"));
    }
    if let Some(e) = &outcome.error {
        problems.push(format!("the publisher failed: {e}"));
    }
    watch::report_cpu(&mut report, Some(server_pid), cpu_start, cpu_end);
    report.text("verdict", if problems.is_empty() { "pass" } else { "FAIL" });
    report.text("problems", &problems.join("; "));
    report.print();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("soak: {}", problems.join("; ")))
    }
}
