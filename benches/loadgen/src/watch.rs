//! Watching the server during a run: its memory and descriptors from /proc, and whether
//! /metrics keeps answering.

use crate::histogram::Histogram;
use crate::http1::{self, Metrics};
use crate::procstat::{self, monotonic_ns};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Open descriptors of a process (entries of /proc/PID/fd); 0 if it cannot be read.
pub fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// The one-minute load average of the machine (other work competes with the run for CPU).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split(' ').next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Time the threads of a process spent runnable but waiting for a CPU, in ns (the second
/// field of /proc/PID/task/TID/schedstat): how much other work delayed it.
pub fn cpu_wait_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split(' ').nth(1).and_then(|w| w.trim().parse::<u64>().ok()))
        .sum()
}

/// CPU used and CPU waited for so far, in seconds: (server used, loadgen used, server waited,
/// loadgen waited). The server's figures are 0 when its pid is not known.
pub fn cpu_seconds(server_pid: Option<u32>) -> CpuReading {
    let me = std::process::id();
    let server = server_pid.map_or(0, |pid| procstat::cpu_ns(&[pid]));
    let server_wait = server_pid.map_or(0, cpu_wait_ns);
    let s = |ns: u64| ns as f64 / 1e9;
    (s(server), s(procstat::cpu_ns(&[me])), s(server_wait), s(cpu_wait_ns(me)))
}

/// Adds the CPU used and waited for between two `cpu_seconds` readings (the second taken while
/// the load generator's threads still live: a finished thread's figures are gone), and the
/// load average.
pub type CpuReading = (f64, f64, f64, f64);

pub fn report_cpu(report: &mut crate::report::Report, server_pid: Option<u32>, start: CpuReading, now: CpuReading) {
    if server_pid.is_some() {
        report.num("server_cpu_s", now.0 - start.0);
        report.num("server_cpu_wait_s", now.2 - start.2);
    }
    report.num("loadgen_cpu_s", now.1 - start.1);
    report.num("loadgen_cpu_wait_s", now.3 - start.3);
    report.num("machine_load_avg", load_average());
}

/// Memory of every TCP socket of the machine, from /proc/net/sockstat, in bytes: what the
/// kernels hold for the connections (both ends, on loopback).
pub fn kernel_tcp_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages = text
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| l.split(" mem ").nth(1))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

/// VmRSS of one process, in bytes.
pub fn rss(pid: u32) -> u64 {
    procstat::rss_bytes(&[pid])
}

#[derive(Clone, Copy)]
pub struct Sample {
    pub at_s: f64,
    pub rss: u64,
    pub fds: u64,
    pub tcp_mem: u64,
}

/// The server's RSS and descriptors over a run, one sample per `take`.
pub struct Curve {
    pid: Option<u32>,
    start_ns: u64,
    pub samples: Vec<Sample>,
}

impl Curve {
    pub fn new(pid: Option<u32>) -> Curve {
        Curve { pid, start_ns: monotonic_ns(), samples: Vec::new() }
    }

    pub fn take(&mut self) -> Option<Sample> {
        let pid = self.pid?;
        let sample = Sample {
            at_s: (monotonic_ns() - self.start_ns) as f64 / 1e9,
            rss: rss(pid),
            fds: fd_count(pid),
            tcp_mem: kernel_tcp_memory(),
        };
        self.samples.push(sample);
        Some(sample)
    }

    /// The first sample taken at or after `at_s` seconds.
    pub fn at(&self, at_s: f64) -> Option<Sample> {
        self.samples.iter().find(|s| s.at_s >= at_s).copied()
    }

    pub fn last(&self) -> Option<Sample> {
        self.samples.last().copied()
    }

    pub fn max_rss(&self) -> u64 {
        self.samples.iter().map(|s| s.rss).max().unwrap_or(0)
    }

    pub fn max_tcp_mem(&self) -> u64 {
        self.samples.iter().map(|s| s.tcp_mem).max().unwrap_or(0)
    }

    pub fn max_fds(&self) -> u64 {
        self.samples.iter().map(|s| s.fds).max().unwrap_or(0)
    }

    /// "0s 12.3 MB 45 fds, 60s ..." every `every_s` seconds and the last sample.
    pub fn text(&self, every_s: f64) -> String {
        let mut parts = Vec::new();
        let mut next = 0.0;
        for (i, s) in self.samples.iter().enumerate() {
            if s.at_s >= next || i + 1 == self.samples.len() {
                parts.push(format!("{:.0}s {:.1} MB {} fds", s.at_s, s.rss as f64 / 1048576.0, s.fds));
                while next <= s.at_s {
                    next += every_s;
                }
            }
        }
        parts.join(", ")
    }
}

#[derive(Default)]
pub struct PollOutcome {
    pub polls: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    /// Time from connecting to the whole answer.
    pub latency: Histogram,
    /// Highest `ssed_connections` seen.
    pub peak_connections: f64,
}

/// Scrapes /metrics on its own thread every `interval`, each time on a new connection with a
/// deadline, until stopped.
pub struct MetricsPoller {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<PollOutcome>,
}

impl MetricsPoller {
    pub fn start(target: SocketAddrV4, interval: Duration, timeout: Duration) -> MetricsPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut outcome = PollOutcome::default();
            while !flag.load(Ordering::Acquire) {
                let started = monotonic_ns();
                outcome.polls += 1;
                match http1::get(target, "/metrics", timeout) {
                    Ok(answer) if answer.status == 200 => {
                        let elapsed = monotonic_ns() - started;
                        outcome.latency.record(elapsed);
                        let connections = Metrics::parse(&answer.text()).get("ssed_connections");
                        outcome.peak_connections = outcome.peak_connections.max(connections);
                    }
                    Ok(answer) => {
                        outcome.failures += 1;
                        outcome.first_failure.get_or_insert(format!("answered {}", answer.status));
                    }
                    Err(e) => {
                        outcome.failures += 1;
                        outcome.first_failure.get_or_insert(e.to_string());
                    }
                }
                let spent = Duration::from_nanos(monotonic_ns() - started);
                std::thread::sleep(interval.saturating_sub(spent));
            }
            outcome
        });
        MetricsPoller { stop, thread }
    }

    pub fn finish(self) -> PollOutcome {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap_or_default()
    }
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; true if it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}
