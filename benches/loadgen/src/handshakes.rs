//! TLS handshakes as a load: clients that connect, complete a handshake, ask `GET /health` and
//! close. `loadgen handshakes` measures how many one server sustains (full handshakes, or
//! resumed ones with the tickets of earlier connections); `bench --storm N` has N clients
//! handshake at once, every few seconds, while events are published to the subscribers.

use crate::options::Options;
use crate::procstat::{self, monotonic_ns};
use crate::report::Report;
use crate::socket::{self, SocketOptions};
use crate::transport::{self, Transport};
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub const USAGE: &str = "\
usage: loadgen handshakes --target 127.0.0.1:PORT --tls-ca FILE [--resume] [options]

Keeps --concurrency clients (default 100) connecting over TLS, each asking GET /health and
closing, for --duration SECS (default 10). --resume: clients resume the sessions of earlier
ones (rustls's ticket cache); otherwise every handshake is a full one. Prints one JSON line:
handshakes per second, and the server's CPU per handshake (--server-pid).
";

/// What a run of clients achieved.
#[derive(Default, Clone, Copy)]
struct Tally {
    done: u64,
    resumed: u64,
    failed: u64,
}

struct Client {
    conn: Transport,
    sent: bool,
    answer: usize,
}

const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Runs clients until `stop` says so or `total` have finished (0: no limit), `concurrency` at a
/// time.
fn drive(
    target: SocketAddrV4,
    config: &Arc<rustls::ClientConfig>,
    concurrency: usize,
    total: u64,
    stop: &dyn Fn() -> bool,
) -> Result<Tally, String> {
    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut events = Events::with_capacity(1024);
    let mut slots: Vec<Option<Client>> = (0..concurrency).map(|_| None).collect();
    let mut tally = Tally::default();
    let mut started = 0u64;
    let mut opened = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        for (index, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() && (total == 0 || started < total) && !stop() {
                let source = socket::source_address(opened, 200);
                opened += 1;
                let client = socket::open(source, target, SocketOptions::default()).and_then(|mut stream| {
                    poll.registry().register(&mut stream, Token(index), Interest::READABLE | Interest::WRITABLE)?;
                    Ok(Client { conn: Transport::new(stream, Some(config))?, sent: false, answer: 0 })
                });
                started += 1;
                match client {
                    Ok(client) => *slot = Some(client),
                    Err(_) => tally.failed += 1,
                }
            }
        }
        if slots.iter().all(Option::is_none) {
            return Ok(tally);
        }
        poll.poll(&mut events, Some(Duration::from_millis(50))).map_err(|e| format!("poll: {e}"))?;
        for event in events.iter() {
            let index = event.token().0;
            let Some(client) = slots[index].as_mut() else { continue };
            match step(client, &mut buf) {
                Ok(false) => {}
                Ok(true) => {
                    tally.done += 1;
                    if let Transport::Tls(_, conn) = &client.conn {
                        if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                            tally.resumed += 1;
                        }
                    }
                    let mut client = slots[index].take().unwrap();
                    let _ = poll.registry().deregister(client.conn.tcp());
                }
                Err(_) => {
                    tally.failed += 1;
                    let mut client = slots[index].take().unwrap();
                    let _ = poll.registry().deregister(client.conn.tcp());
                }
            }
        }
    }
}

/// Moves one client on; true once its answer is complete and the server closed.
fn step(client: &mut Client, buf: &mut [u8]) -> io::Result<bool> {
    if !client.sent {
        if client.conn.tcp().peer_addr().is_err() {
            return Ok(false); // still connecting
        }
        client.conn.write(REQUEST)?;
        client.sent = true;
    }
    loop {
        match client.conn.read(buf) {
            Ok(0) if client.answer > 0 => return Ok(true),
            Ok(0) => return Err(io::Error::other("closed before answering")),
            Ok(n) => client.answer += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                client.conn.flush()?;
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args, &["resume"])?;
    let target = opts.target()?;
    let ca = opts.text("tls-ca", "");
    if ca.is_empty() {
        return Err(format!("--tls-ca is required\n{USAGE}"));
    }
    let mut config = (*transport::client_config(&ca)?).clone();
    let resume = opts.has("resume");
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    let config = Arc::new(config);
    let duration_s: f64 = opts.number("duration", 10.0)?;
    let concurrency: usize = opts.number("concurrency", 100)?;
    let server_pids: Vec<u32> = opts
        .text("server-pid", "")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|_| format!("--server-pid: {p}")))
        .collect::<Result<_, _>>()?;
    let tree = || server_pids.iter().flat_map(|&pid| procstat::process_tree(pid)).collect::<Vec<_>>();
    if resume {
        // One connection first, so that the others have a ticket to resume with.
        drive(target, &config, 1, 1, &|| false)?;
    }
    let cpu_start = procstat::cpu_ns(&tree());
    let start = monotonic_ns();
    let end = start + (duration_s * 1e9) as u64;
    let tally = drive(target, &config, concurrency.max(1), 0, &|| monotonic_ns() >= end)?;
    let elapsed = (monotonic_ns() - start) as f64 / 1e9;
    let cpu = procstat::cpu_ns(&tree()).saturating_sub(cpu_start) as f64 / 1e9;
    let mut report = Report::new(&opts.text("scenario", "handshakes"), &opts.text("label", "server"));
    report.num("concurrency", concurrency as f64);
    report.num("handshakes", tally.done as f64);
    report.num("resumed", tally.resumed as f64);
    report.num("failed", tally.failed as f64);
    report.num("handshakes_per_s", tally.done as f64 / elapsed);
    report.num("server_cpu_s", cpu);
    report.num("server_cpu_ms_per_handshake", cpu * 1e3 / tally.done.max(1) as f64);
    report.num("handshakes_per_server_cpu_s", tally.done as f64 / cpu.max(1e-9));
    report.print();
    Ok(())
}

/// `bench --storm N`: N clients handshake at once, every `--storm-every` seconds, on a thread
/// of their own, while the publisher runs.
pub struct Storm {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, u64)>,
}

impl Storm {
    pub fn start(opts: &Options, target: SocketAddrV4) -> Result<Option<Storm>, String> {
        let clients: usize = opts.number("storm", 0)?;
        if clients == 0 {
            return Ok(None);
        }
        let ca = opts.text("tls-ca", "");
        if ca.is_empty() {
            return Err("--storm needs --tls-ca".into());
        }
        let mut config = (*transport::client_config(&ca)?).clone();
        config.resumption = rustls::client::Resumption::disabled();
        let config = Arc::new(config);
        let every_ns = (opts.number::<f64>("storm-every", 1.0)? * 1e9) as u64;
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut storms = 0;
                let mut next = monotonic_ns() + every_ns / 2;
                while !stop.load(Ordering::Relaxed) {
                    if monotonic_ns() < next {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    next += every_ns;
                    storms += 1;
                    if let Ok(tally) = drive(target, &config, clients, clients as u64, &|| false) {
                        done.fetch_add(tally.done, Ordering::Relaxed);
                    }
                }
                (storms, done.load(Ordering::Relaxed))
            })
        };
        Ok(Some(Storm { stop, thread }))
    }

    /// Stops after the storm under way; returns the storms and the handshakes they made.
    pub fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}
