//! A server with every host hook set, for `benches/host.py` to measure what the hooks cost.
//!
//!     cargo build --release --example hooked
//!     target/release/examples/hooked --listen 127.0.0.1:8080 [--max-clients N] [--heartbeat SECS]
//!                                    [--history N] [-q | -v]
//!
//! The flags mean what they mean to the daemon. The log hook counts lines (at the `Info` level
//! unless `-q` or `-v`), the access hook reads the request's `User-Agent` and allows everything,
//! the stream hook counts opens and closes. On SIGINT or SIGTERM it stops and prints the counts.

#[cfg(feature = "host")]
fn main() -> std::process::ExitCode {
    match host::run(std::env::args().skip(1).collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("hooked: {why}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(not(feature = "host"))]
fn main() -> std::process::ExitCode {
    eprintln!("hooked: needs the cargo feature host");
    std::process::ExitCode::from(2)
}

#[cfg(feature = "host")]
mod host {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Duration;

    use ssed::{Access, Config, Hooks, LogLevel, Server};

    /// What the hooks heard.
    #[derive(Default)]
    struct Counts {
        log_lines: AtomicU64,
        access_asked: AtomicU64,
        with_user_agent: AtomicU64,
        opened: AtomicU64,
        closed: AtomicU64,
    }

    pub fn run(args: Vec<String>) -> Result<(), String> {
        let mut config = parse_args(&args)?;
        let counts = Arc::new(Counts::default());
        config.hooks = hooks(&counts);
        ssed::sys::block_termination_signals().map_err(|e| format!("signals: {e}"))?;
        let server = Server::bind(config).map_err(|e| e.to_string())?;
        eprintln!("ssed: listening on http://{}", server.local_addr());
        let handle = server.handle();
        std::thread::spawn(move || {
            ssed::sys::wait_for_termination();
            handle.stop();
        });
        server
            .run()
            .map_err(|e| format!("event loop failed: {e}"))?;
        eprintln!(
            "hooked: {} log lines, {} access calls ({} with a User-Agent), {} streams opened, {} closed",
            counts.log_lines.load(Relaxed),
            counts.access_asked.load(Relaxed),
            counts.with_user_agent.load(Relaxed),
            counts.opened.load(Relaxed),
            counts.closed.load(Relaxed),
        );
        Ok(())
    }

    fn hooks(counts: &Arc<Counts>) -> Hooks {
        let (log, access, streams) = (counts.clone(), counts.clone(), counts.clone());
        Hooks {
            log: Some(Arc::new(move |_level, _line: &str| {
                log.log_lines.fetch_add(1, Relaxed);
            })),
            access: Some(Arc::new(move |request| {
                access.access_asked.fetch_add(1, Relaxed);
                if request.header("user-agent").is_some() {
                    access.with_user_agent.fetch_add(1, Relaxed);
                }
                Access::Allow
            })),
            streams: Some(Arc::new(move |stream| {
                let count = if stream.opened {
                    &streams.opened
                } else {
                    &streams.closed
                };
                count.fetch_add(1, Relaxed);
            })),
        }
    }

    fn parse_args(args: &[String]) -> Result<Config, String> {
        let mut config = Config {
            log: LogLevel::Info,
            ..Config::default()
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if flag == "-q" || flag == "-v" {
                config.log = if flag == "-q" {
                    LogLevel::Quiet
                } else {
                    LogLevel::Verbose
                };
                continue;
            }
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{flag}: not a number: {value}"))
            };
            match flag.as_str() {
                "--listen" => config.listen = ssed::resolve_listen(value)?,
                "--max-clients" => config.max_clients = number()? as usize,
                "--heartbeat" => config.heartbeat = Duration::from_secs(number()?),
                "--history" => config.history = number()? as usize,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        Ok(config)
    }
}
