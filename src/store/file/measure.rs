//! Figures for BENCHMARKS.md, run by hand (they time things, so they assert nothing about
//! speed):
//!
//! ```text
//! nice -n 10 cargo test --release --lib store::file::measure -- --ignored --nocapture --test-threads=1
//! ```

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::testing::{TempDir, record};
use super::*;
use crate::config::FsyncPolicy;
use crate::store::ring::Ring;

const EVENTS: u64 = 200_000;

/// A typical small event: a numeric id, a type, one topic, about 100 bytes of data.
fn event(n: u64) -> Record {
    let data = format!("{{\"n\":{n},\"payload\":\"{}\"}}", "x".repeat(80));
    record(Some(n), &n.to_string(), &["prices"], &data)
}

/// A writer on a new file with `--history 1024`, and the channel its wake callback signals.
fn started(policy: FsyncPolicy) -> (TempDir, Writer, mpsc::Receiver<()>) {
    let dir = TempDir::new("measure");
    let (tx, woken) = mpsc::channel();
    let (_, writer) = open(
        &dir.join("history"),
        Options {
            retained: 1024,
            fsync: policy,
            ..Options::default()
        },
        Box::new(move || {
            let _ = tx.send(());
        }),
    )
    .unwrap();
    (dir, writer, woken)
}

/// Appends `EVENTS` events as fast as the writer takes them (keeping fewer in flight than the
/// queue holds, so that no append is refused); returns events per second, from the first
/// append to the last outcome.
fn pipelined(policy: FsyncPolicy) -> f64 {
    const IN_FLIGHT: u64 = 30_000;
    let (_dir, writer, woken) = started(policy);
    let events: Vec<Record> = (1..=EVENTS).map(event).collect();
    let start = Instant::now();
    let mut last = 0;
    for e in events {
        while last - writer.settled_through() >= IN_FLIGHT {
            let _ = woken.recv_timeout(Duration::from_millis(50));
        }
        last = writer.append(e).unwrap();
    }
    while writer.settled_through() < last {
        let _ = woken.recv_timeout(Duration::from_millis(50));
    }
    let rate = EVENTS as f64 / start.elapsed().as_secs_f64();
    writer.stop().unwrap();
    rate
}

/// The same events without a file: pushed into the memory ring.
fn memory_only() -> f64 {
    let events: Vec<Record> = (1..=EVENTS).map(event).collect();
    let mut ring = Ring::new(1024);
    let start = Instant::now();
    for e in &events {
        ring.push(e.entry());
    }
    EVENTS as f64 / start.elapsed().as_secs_f64()
}

/// Appends one event at a time and waits for its outcome; returns each wait.
fn lone_latencies(policy: FsyncPolicy, n: u64) -> Vec<Duration> {
    let (_dir, writer, woken) = started(policy);
    let mut times = Vec::new();
    for i in 1..=n {
        let e = event(i);
        let start = Instant::now();
        let seq = writer.append(e).unwrap();
        while writer.settled_through() < seq {
            let _ = woken.recv_timeout(Duration::from_millis(50));
        }
        times.push(start.elapsed());
    }
    writer.stop().unwrap();
    times
}

#[test]
#[ignore = "a measurement, run by hand"]
fn measure_append_rates() {
    const ROUNDS: usize = 3;
    let policies = [
        FsyncPolicy::Never,
        FsyncPolicy::Interval(Duration::from_millis(10)),
        FsyncPolicy::Always,
    ];
    // Rounds interleave the policies, so that a busy moment of the machine hits them all alike.
    let mut base = Vec::new();
    let mut rates = vec![Vec::new(); policies.len()];
    let mut latencies = vec![Vec::new(); policies.len()];
    for _ in 0..ROUNDS {
        base.push(memory_only());
        for (i, policy) in policies.iter().enumerate() {
            rates[i].push(pipelined(*policy));
            latencies[i].extend(lone_latencies(*policy, 300));
        }
    }
    let base = median(&mut base);
    println!("median of {ROUNDS} rounds of {EVENTS} events; memory ring only: {base:.0} events/s");
    for (i, policy) in policies.iter().enumerate() {
        let rate = median(&mut rates[i]);
        let times = &mut latencies[i];
        times.sort();
        println!(
            "{policy:?}: {rate:.0} events/s pipelined ({:.3} of memory only); one event at a \
             time, append to outcome: p50 {:?}, p99 {:?}",
            rate / base,
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
#[ignore = "a measurement, run by hand"]
fn measure_load_times() {
    for retained in [1024usize, 100_000] {
        let dir = TempDir::new("measure-load");
        let path = dir.join("history");
        let options = Options {
            retained,
            fsync: FsyncPolicy::Never,
            ..Options::default()
        };
        let (_, writer) = open(&path, options.clone(), Box::new(|| {})).unwrap();
        let mut last = 0;
        for n in 1..=retained as u64 {
            loop {
                match writer.append(event(n)) {
                    Ok(seq) => {
                        last = seq;
                        break;
                    }
                    Err(AppendError::Full) => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        while writer.settled_through() < last {
            std::thread::sleep(Duration::from_millis(1));
        }
        writer.stop().unwrap();
        let bytes = std::fs::metadata(&path).unwrap().len();
        let image = std::fs::read(&path).unwrap();
        let start = Instant::now();
        let recovered = recover::load_image(&image, retained).unwrap();
        let verify = start.elapsed();
        assert_eq!(recovered.records.len(), retained);
        let start = Instant::now();
        let (loaded, writer) = open(&path, options, Box::new(|| {})).unwrap();
        let total = start.elapsed();
        assert_eq!(loaded.records.len(), retained);
        writer.stop().unwrap();
        println!(
            "load {retained} retained ({bytes} bytes): verify and copy {verify:?}, \
             open with rewrite and fsyncs {total:?}"
        );
    }
}

#[test]
#[ignore = "a measurement, run by hand"]
fn measure_a_million_events_with_history_1024() {
    let (dir, writer, woken) = started(FsyncPolicy::Never);
    let path = dir.join("history");
    let total = 1_000_000u64;
    let mut largest = 0u64;
    let mut written_bytes = 0u64;
    let start = Instant::now();
    let mut n = 1;
    while n <= total {
        let e = event(n);
        let len = e.encoded_len() as u64;
        match writer.append(e) {
            Ok(_) => {
                written_bytes += len;
                n += 1;
            }
            Err(AppendError::Full) => {
                let _ = woken.recv_timeout(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
        if n % 10_000 == 0 {
            largest = largest.max(writer.status().file_bytes);
        }
    }
    while writer.settled_through() < total {
        let _ = woken.recv_timeout(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    let status = writer.status();
    writer.stop().unwrap();
    let retained_bytes = 24 + 1024 * event(total).encoded_len() as u64;
    println!(
        "1,000,000 events ({written_bytes} bytes appended) with --history 1024 in {elapsed:?}: \
         file {} bytes at the end, at most {largest} bytes sampled, retained records alone \
         {retained_bytes} bytes; {} compactions",
        std::fs::metadata(&path).unwrap().len(),
        status.compactions
    );
}
