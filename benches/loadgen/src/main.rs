//! ssed's load generator: N SSE subscribers spread over subscriber processes, one publisher,
//! and figures about the server read from /proc. Talks plain HTTP/1.1, so it measures ssed and
//! any other SSE server (nginx + nchan) the same way.

mod chaos;
mod control;
mod histogram;
mod hostile;
mod http1;
mod options;
mod paced;
mod procstat;
mod publisher;
mod report;
mod socket;
mod soak;
mod sse;
mod streams;
mod subscriber;
mod watch;
mod attackers;
mod transport;
mod handshakes;

use control::Control;
use options::Options;
use report::Report;
use histogram::Histogram;
use procstat::monotonic_ns;
use watch::wait_until;
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddrV4;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const USAGE: &str = "\
usage: loadgen bench --target 127.0.0.1:PORT [options]

Connects N subscribers, then publishes numbered, timestamped events and checks that every
subscriber gets every event in order. Prints a table, then one JSON line.

  --target ADDR            server address; must be on 127.0.0.0/8
  --subscribe-path PATH    default /events?topic=bench
  --publish-path PATH      default /publish?topic=bench
  --subscribers N          default 1000 (up to 50000: several subscriber processes)
  --rate max|EVENTS_PER_S  default max: as fast as the server answers, within --depth
  --duration SECS          publishing time, default 10
  --size BYTES             event data size, default 200 (at least 48)
  --lines N                lines of data per event (1..8), default 1
  --depth N                publish requests in flight (pipelined), default 8
  --max-lag N              pause publishing while subscribers are on average more than N
                           events behind, default 500
  --idle                   publish nothing: connect, settle, measure memory
  --settle SECS            wait after connecting before measuring, default 1
  --server-pid PID[,PID]   server processes (their descendants count too) for CPU and RSS
  --subscriber-targets ADDR,ADDR,...  spread the subscribers evenly over these servers (the
                           nodes of a cluster); events are still published to --target
  --scenario NAME --label NAME   copied into the JSON line
  --source-ips N           spread subscribers over 127.0.0.1..127.0.0.N, default 200
  --per-process N          subscribers per subscriber process, default 18000
  --connect-timeout SECS   default 30;  --drain-timeout SECS  default 15
  --max-pending N          connection attempts at once, default 256
  --tls-ca FILE            subscribe over HTTPS, trusting this CA (PEM)
  --publish-tls            publish over HTTPS too (with --tls-ca)
  --storm N                while publishing, N clients make TLS handshakes at once, every
                           --storm-every SECS (default 1)
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => run_bench(&args[1..]),
        Some("worker") => run_worker(&args[1..]),
        Some("chaos") => with_fd_limit(|| chaos::run(&args[1..])),
        Some("hostile") => with_fd_limit(|| hostile::run(&args[1..])),
        Some("soak") => with_fd_limit(|| soak::run(&args[1..])),
        Some("handshakes") => with_fd_limit(|| handshakes::run(&args[1..])),
        _ => {
            eprint!("{USAGE}\n{}\n{}\n{}\n{}", chaos::USAGE, hostile::USAGE, soak::USAGE, handshakes::USAGE);
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

fn with_fd_limit(scenario: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    procstat::raise_fd_limit();
    scenario()
}

/// The TLS client configuration `--tls-ca FILE` asks for, if it does.
fn tls_config(opts: &Options) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
    match opts.text("tls-ca", "") {
        ca if ca.is_empty() => Ok(None),
        ca => transport::client_config(&ca).map(Some),
    }
}

fn run_worker(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args, &[])?;
    procstat::raise_fd_limit();
    let size: usize = opts.number("size", 0)?;
    subscriber::run_worker(subscriber::WorkerConfig {
        target: opts.target()?,
        subscribe_path: opts.text("subscribe-path", "/events?topic=bench"),
        first_index: opts.number("first-index", 0)?,
        count: opts.number("count", 0)?,
        source_ips: opts.number("source-ips", 200)?,
        event_size: (size > 0).then_some(size),
        max_pending: opts.number("max-pending", 256)?,
        connect_timeout_s: opts.number("connect-timeout", 30)?,
        control_path: opts.text("control", "").into(),
        slot: opts.number("slot", 0)?,
        max_seconds: opts.number("max-seconds", 300)?,
        tls: tls_config(&opts)?,
    })
}

struct BenchConfig {
    target: SocketAddrV4,
    subscribers: usize,
    rate: Option<f64>,
    duration_s: f64,
    size: usize,
    idle: bool,
    settle_s: f64,
    server_pids: Vec<u32>,
    per_process: usize,
    /// Where subscriber processes connect, round robin; empty: --target.
    subscriber_targets: Vec<SocketAddrV4>,
    connect_timeout_s: u64,
    drain_timeout_s: u64,
}

/// The subscriber processes; killed if the run ends early, so nothing outlives it.
struct Workers {
    children: Vec<Child>,
    results: mpsc::Receiver<(usize, String)>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Workers {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits for every worker's RESULT line (they print it when told to stop).
    fn collect(&mut self, timeout: Duration) -> Result<Vec<String>, String> {
        let mut lines = vec![String::new(); self.children.len()];
        let deadline = std::time::Instant::now() + timeout;
        for _ in 0..self.children.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let (slot, text) = self.results.recv_timeout(left).map_err(|_| "subscriber processes did not report")?;
            lines[slot] = text
                .lines()
                .find(|l| l.starts_with("RESULT "))
                .ok_or(format!("subscriber process {slot} failed (see its message above)"))?
                .to_string();
        }
        Ok(lines)
    }
}

fn spawn_workers(args: &[String], opts: &Options, config: &BenchConfig, control: &Control) -> Result<Workers, String> {
    let mut count = config.subscribers.div_ceil(config.per_process).max(1);
    if !config.subscriber_targets.is_empty() {
        // As many subscriber processes for each server.
        count = count.div_ceil(config.subscriber_targets.len()) * config.subscriber_targets.len();
    }
    if count > control::MAX_WORKERS {
        return Err("too many subscriber processes".into());
    }
    let per_worker = config.subscribers.div_ceil(count);
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let (sender, results) = mpsc::channel();
    let mut workers = Workers { children: Vec::new(), results };
    for slot in 0..count {
        let first = slot * per_worker;
        let n = per_worker.min(config.subscribers - first);
        let mut command = Command::new(&exe);
        command.arg("worker").args(pass_through(args)).stdout(Stdio::piped());
        if !config.subscriber_targets.is_empty() {
            let target = config.subscriber_targets[slot % config.subscriber_targets.len()];
            command.args(["--target", &target.to_string()]);
        }
        command.args(["--first-index", &first.to_string(), "--count", &n.to_string(), "--slot", &slot.to_string()]);
        command.args(["--control", &control.path().to_string_lossy(), "--size", &config.size.to_string()]);
        command.args(["--connect-timeout", &opts.text("connect-timeout", "30")]);
        let mut child = command.spawn().map_err(|e| format!("starting a subscriber process: {e}"))?;
        let mut stdout = child.stdout.take().unwrap();
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            let _ = sender.send((slot, text));
        });
        workers.children.push(child);
    }
    Ok(workers)
}

/// The options a subscriber process shares with the coordinator.
fn pass_through(args: &[String]) -> Vec<String> {
    let shared = ["--target", "--subscribe-path", "--source-ips", "--max-pending", "--tls-ca"];
    let mut out = Vec::new();
    for pair in args.windows(2) {
        if shared.contains(&pair[0].as_str()) {
            out.extend_from_slice(pair);
        }
    }
    out
}

/// The server's process tree, re-read at each use: nginx may restart a worker.
fn server_tree(config: &BenchConfig) -> Vec<u32> {
    config.server_pids.iter().flat_map(|&pid| procstat::process_tree(pid)).collect()
}

fn run_bench(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args, &["idle", "publish-tls"])?;
    let rate_text = opts.text("rate", "max");
    let config = BenchConfig {
        target: opts.target()?,
        subscribers: opts.number("subscribers", 1000)?,
        rate: if rate_text == "max" { None } else { Some(opts.number("rate", 0.0)?) },
        duration_s: opts.number("duration", 10.0)?,
        size: opts.number("size", 200)?,
        idle: opts.has("idle"),
        settle_s: opts.number("settle", 1.0)?,
        server_pids: opts
            .text("server-pid", "")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(|_| format!("--server-pid: not a number: {p}")))
            .collect::<Result<_, String>>()?,
        subscriber_targets: opts
            .text("subscriber-targets", "")
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| match t.parse::<SocketAddrV4>() {
                Ok(addr) if addr.ip().octets()[0] == 127 => Ok(addr),
                _ => Err(format!("--subscriber-targets: not a loopback IPv4:PORT: {t}")),
            })
            .collect::<Result<_, String>>()?,
        per_process: opts.number::<usize>("per-process", 18000)?.max(1),
        connect_timeout_s: opts.number("connect-timeout", 30)?,
        drain_timeout_s: opts.number("drain-timeout", 15)?,
    };
    if config.size < publisher::MIN_SIZE {
        return Err(format!("--size must be at least {}", publisher::MIN_SIZE));
    }
    if config.rate.is_some_and(|r| r <= 0.0 || r > 1e6) {
        return Err("--rate must be max or between 0 and 1000000".into());
    }
    let mut report = Report::new(&opts.text("scenario", "custom"), &opts.text("label", "server"));
    report.num("subscribers", config.subscribers as f64);

    let rss_before = procstat::rss_bytes(&server_tree(&config));
    let pss_before = procstat::pss_bytes(&server_tree(&config));
    let control = Control::create().map_err(|e| format!("control block: {e}"))?;
    let spawned_ns = monotonic_ns();
    let mut workers = spawn_workers(args, &opts, &config, &control)?;
    let worker_count = workers.children.len();

    let all_connected = wait_until(Duration::from_secs(config.connect_timeout_s + 30), || {
        control.sum(worker_count, control::CONNECT_DONE) == worker_count as u64
    });
    let connect_s = (monotonic_ns() - spawned_ns) as f64 / 1e9;
    let connected = control.sum(worker_count, control::CONNECTED);
    if !all_connected || connected == 0 {
        control.set_phase(control::PHASE_STOP);
        let _ = workers.collect(Duration::from_secs(5)).map(|lines| eprintln!("{}", lines.join("\n")));
        return Err(format!("only {connected} of {} subscribers connected", config.subscribers));
    }
    report.num("connect_s", connect_s);

    std::thread::sleep(Duration::from_secs_f64(config.settle_s));
    let rss_idle = procstat::rss_bytes(&server_tree(&config));
    let pss_idle = procstat::pss_bytes(&server_tree(&config));
    report.num("server_rss_idle_mb", rss_idle as f64 / 1048576.0);
    report.num("rss_per_sub_bytes", rss_idle.saturating_sub(rss_before) as f64 / connected as f64);
    report.num("pss_per_sub_bytes", pss_idle.saturating_sub(pss_before) as f64 / connected as f64);

    let mut measured = None;
    if !config.idle {
        measured = Some(measure_publishing(&opts, &config, &control, &workers, &mut report)?);
    }
    control.set_phase(control::PHASE_STOP);
    let lines = workers.collect(Duration::from_secs(20))?;
    let totals = WorkerTotals::sum(&lines)?;
    report.num("connected", totals.get("streaming") as f64);
    report.num("connect_failed", totals.get("failed") as f64);
    if let Some((publish_start_ns, outcome)) = measured {
        report.delivery_figures(&totals, publish_start_ns, outcome.ok);
    }
    report.text("first_error", totals.first_error.as_deref().unwrap_or(""));
    report.print();
    Ok(())
}

/// The publishing part of a run: returns when every subscriber has every event, or the drain
/// time is over. Returns the publish start time and the publisher's outcome.
fn measure_publishing(
    opts: &Options,
    config: &BenchConfig,
    control: &Control,
    workers: &Workers,
    report: &mut Report,
) -> Result<(u64, publisher::PublishOutcome), String> {
    let worker_count = workers.children.len();
    let mut loadgen_pids = workers.pids();
    loadgen_pids.push(std::process::id());
    let server_cpu_start = procstat::cpu_ns(&server_tree(config));
    let loadgen_cpu_start = procstat::cpu_ns(&loadgen_pids);
    control.set_phase(control::PHASE_RUN);
    let publish_config = publisher::PublishConfig {
        target: config.target,
        publish_path: opts.text("publish-path", "/publish?topic=bench"),
        size: config.size,
        lines: opts.number::<usize>("lines", 1)?.clamp(1, 8),
        rate: config.rate,
        duration_s: config.duration_s,
        depth: opts.number::<usize>("depth", 8)?.max(1),
        max_lag: opts.number("max-lag", 500)?,
        workers: worker_count,
        subscribers: control.sum(worker_count, control::CONNECTED),
        tls: if opts.has("publish-tls") { tls_config(opts)? } else { None },
    };
    let storm = handshakes::Storm::start(opts, config.target)?;
    let outcome = publisher::publish(&publish_config, control)?;
    if let Some(storm) = storm {
        let (storms, handshakes) = storm.stop();
        report.num("storms", storms as f64);
        report.num("storm_handshakes", handshakes as f64);
    }
    control.start_drain(outcome.ok);
    wait_until(Duration::from_secs(config.drain_timeout_s), || {
        control.sum(worker_count, control::ALL_RECEIVED) == worker_count as u64
    });
    let end_ns = monotonic_ns();
    let server_cpu = procstat::cpu_ns(&server_tree(config)).saturating_sub(server_cpu_start) as f64 / 1e9;
    let loadgen_cpu = procstat::cpu_ns(&loadgen_pids).saturating_sub(loadgen_cpu_start) as f64 / 1e9;
    let tree = server_tree(config);
    let window_s = (end_ns - outcome.start_ns) as f64 / 1e9;
    let publish_s = (outcome.end_ns - outcome.start_ns) as f64 / 1e9;
    report.num("published", outcome.ok as f64);
    report.num("publish_errors", outcome.errors as f64);
    report.num("publish_per_s", outcome.ok as f64 / publish_s);
    report.num("publish_throttled_pct", 100.0 * outcome.throttled_ns as f64 / 1e9 / publish_s);
    report.num("publish_late", outcome.late as f64);
    report.num("server_rss_mb", procstat::rss_bytes(&tree) as f64 / 1048576.0);
    report.num("server_pss_mb", procstat::pss_bytes(&tree) as f64 / 1048576.0);
    report.num("server_cpu_s", server_cpu);
    report.num("loadgen_cpu_s", loadgen_cpu);
    report.num("loadgen_cpu_pct", 100.0 * loadgen_cpu / window_s);
    report.text("publish_error", outcome.first_error.as_deref().unwrap_or(""));
    Ok((outcome.start_ns, outcome))
}

/// The subscriber processes' RESULT lines, added up.
struct WorkerTotals {
    sums: HashMap<String, u64>,
    last_receive_ns: u64,
    histogram: Histogram,
    first_error: Option<String>,
}

impl WorkerTotals {
    fn sum(lines: &[String]) -> Result<WorkerTotals, String> {
        let mut totals =
            WorkerTotals { sums: HashMap::new(), last_receive_ns: 0, histogram: Histogram::default(), first_error: None };
        for line in lines {
            for field in line.split(' ').skip(1) {
                let (key, value) = field.split_once('=').ok_or("bad RESULT line")?;
                match key {
                    "hist" => totals.histogram.merge_encoded(value)?,
                    "first_error" if value != "-" => {
                        totals.first_error.get_or_insert_with(|| value.replace('_', " "));
                    }
                    "first_error" => {}
                    "last_receive_ns" => totals.last_receive_ns = totals.last_receive_ns.max(value.parse().unwrap_or(0)),
                    "max_loss" => {
                        let v = value.parse().unwrap_or(0);
                        let entry = totals.sums.entry(key.to_string()).or_insert(0);
                        *entry = (*entry).max(v);
                    }
                    _ => *totals.sums.entry(key.to_string()).or_insert(0) += value.parse::<u64>().unwrap_or(0),
                }
            }
        }
        Ok(totals)
    }

    fn get(&self, key: &str) -> u64 {
        self.sums.get(key).copied().unwrap_or(0)
    }
}

impl Report {
    fn delivery_figures(&mut self, totals: &WorkerTotals, publish_start_ns: u64, published: u64) {
        let deliveries = totals.get("received");
        let window_s = totals.last_receive_ns.saturating_sub(publish_start_ns).max(1) as f64 / 1e9;
        self.num("deliveries", deliveries as f64);
        self.num("expected_deliveries", (published * totals.get("streaming")) as f64);
        self.num("delivery_window_s", window_s);
        self.num("deliveries_per_s", deliveries as f64 / window_s);
        for key in ["lost", "subs_with_loss", "max_loss", "reordered", "subs_reordered", "malformed", "closed"] {
            self.num(key, totals.get(key) as f64);
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        self.num("latency_samples", totals.histogram.total() as f64);
        self.num("latency_p50_ms", ms(totals.histogram.quantile(0.50)));
        self.num("latency_p99_ms", ms(totals.histogram.quantile(0.99)));
        self.num("latency_max_ms", ms(totals.histogram.max()));
        if let Some(cpu) = self.get("server_cpu_s") {
            self.num("server_cpu_s_per_m_deliveries", cpu / (deliveries.max(1) as f64 / 1e6));
        }
    }
}
