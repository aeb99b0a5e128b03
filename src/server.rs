//! The public Rust API: bind a server, run its loop, publish to it from any thread, stop it.
//!
//! The daemon is a thin command line over this module, and the C API wraps it too.

use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};

use crate::config::Config;
#[cfg(feature = "history-file")]
use crate::config::LogLevel;
use crate::event::Event;
use crate::event_loop::{EventLoop, LISTENER, WAKER};
use crate::host::Host;
use crate::log::Logger;
#[cfg(feature = "host")]
use crate::presence::Presence;
use crate::publish_socket::PublishSocket;
use crate::stats::{Counters, Stats};
#[cfg(feature = "history-file")]
use crate::store::file;
use crate::store::{Intake, PublishError, Store};
use crate::sys;

/// Backlog of the listening socket (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// A bound server whose loop has not started yet.
pub struct Server {
    event_loop: EventLoop,
    handle: Handle,
    /// With `Config::loops` above 1: the other loops, until they start on threads of their
    /// own, their inboxes, and their threads once started.
    #[cfg(feature = "loops")]
    others: Others,
}

#[cfg(feature = "loops")]
#[derive(Default)]
struct Others {
    waiting: Vec<EventLoop>,
    inboxes: Vec<Arc<crate::loops::Inbox>>,
    running: Vec<JoinHandle<io::Result<()>>>,
}

/// A cheap, cloneable, `Send + Sync` handle to a server: publish, stop, read stats.
#[derive(Clone)]
pub struct Handle {
    intake: Arc<Intake>,
    counters: Arc<Counters>,
    #[cfg(feature = "host")]
    presence: Arc<Presence>,
    local_addr: SocketAddr,
    /// In a cluster, where publishes go instead of the intake.
    #[cfg(feature = "redis")]
    cluster: Option<Arc<crate::store::Publisher>>,
    /// Over HTTPS: the certificate and key, reloaded by `reload_tls`.
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::Certificates>>,
}

impl Server {
    /// Binds `config.listen` at once (port 0 picks a free port), opens the history file when
    /// there is one (loading what it retains), and prepares the loop. An error says what
    /// failed: the address, or the history file's path.
    pub fn bind(mut config: Config) -> io::Result<Server> {
        config
            .validate()
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let listener = listening_socket(&config)?;
        let local_addr = listener.local_addr()?;
        // The hub's URL names the port bound, not 0.
        config.listen = local_addr;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let publish_socket = PublishSocket::open(&config, &poll)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let counters = Arc::new(Counters::default());
        let mut intake = Intake::new(waker, config.publish_queue, counters.clone());
        if !config.has_subscriber_key() {
            intake = intake.without_private_readers();
        }
        let intake = Arc::new(intake);
        // Before the history file is loaded, so that the host hears what loading it says.
        #[cfg(feature = "host")]
        let logger = Logger::new(config.log, config.hooks.log.clone())?;
        #[cfg(not(feature = "host"))]
        let logger = Logger::new(config.log, None)?;
        #[cfg(feature = "tls")]
        let tls = open_tls(&config, &logger)?;
        let store = open_store(&config, intake.clone(), &logger)?;
        #[cfg(feature = "redis")]
        let cluster = store.cluster_publisher();
        let host = Host::new(&config, logger);
        #[cfg(feature = "host")]
        let presence = host.presence.clone();
        #[cfg(feature = "loops")]
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut others = Others::new(&config, &intake, &store, &host, &counters)?;
        let mut event_loop =
            EventLoop::new(poll, Some(listener), store, counters.clone(), config, host);
        event_loop.publish_socket = publish_socket;
        #[cfg(feature = "loops")]
        others.lead(&mut event_loop);
        #[cfg(feature = "tls")]
        if let Some(certificates) = &tls {
            event_loop.use_tls(certificates.clone());
            #[cfg(feature = "loops")]
            for other in &mut others.waiting {
                other.use_tls(certificates.clone());
            }
        }
        Ok(Server {
            event_loop,
            #[cfg(feature = "loops")]
            others,
            handle: Handle {
                intake,
                counters,
                #[cfg(feature = "host")]
                presence,
                local_addr,
                #[cfg(feature = "redis")]
                cluster,
                #[cfg(feature = "tls")]
                tls,
            },
        })
    }

    /// True when the listener speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.handle.is_tls()
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr
    }

    /// A handle to publish to, stop, and watch this server.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs the loop on the calling thread until [`Handle::stop`] is called, then flushes for
    /// up to a second and closes every connection.
    pub fn run(mut self) -> io::Result<()> {
        // However the loop ends, even by a panic, publishers must learn that it is gone.
        struct StopOnExit(Arc<Intake>);
        impl Drop for StopOnExit {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        let _guard = StopOnExit(self.handle.intake.clone());
        #[cfg(feature = "loops")]
        self.others.start(&self.handle.intake)?;
        // However the first loop ends, the others stop too: here, or when `self.others` is
        // dropped.
        #[cfg(feature = "loops")]
        let ran = {
            let ran = self.event_loop.run();
            self.others.stop();
            ran.and(self.others.join())
        };
        #[cfg(not(feature = "loops"))]
        let ran = self.event_loop.run();
        ran
    }

    /// Runs the loop on the calling thread for `time` at most, then returns, leaving the server
    /// ready to run again: for a program whose own thread must serve its hooks (a PHP worker
    /// that runs the loop between publishes). Returns `Ok(true)` once the server has stopped
    /// (after a [`Handle::stop`], within this call or before it: it then flushes for up to a
    /// second and closes every connection, as [`Server::run`] does), `Ok(false)` when the time
    /// was up first. Events published meanwhile from any thread wait in the publish queue.
    pub fn run_for(&mut self, time: Duration) -> io::Result<bool> {
        let until = Instant::now() + time.min(crate::config::MAX_INTERVAL);
        #[cfg(feature = "loops")]
        self.others.start(&self.handle.intake)?;
        let ran = catch_unwind(AssertUnwindSafe(|| self.event_loop.run_until(until)));
        match ran {
            Ok(Ok(false)) => Ok(false),
            ended => {
                // However the loop ends, publishers must learn that it is gone.
                self.handle.intake.stop();
                #[cfg(feature = "loops")]
                self.others.stop();
                #[cfg(feature = "loops")]
                let others = self.others.join();
                #[cfg(not(feature = "loops"))]
                let others = Ok(());
                match ended {
                    Ok(result) => result.and_then(|stopped| others.map(|()| stopped)),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
    }

    /// Runs the loop on a new thread named `ssed`.
    pub fn spawn(self) -> io::Result<JoinHandle<io::Result<()>>> {
        std::thread::Builder::new()
            .name("ssed".into())
            .spawn(move || self.run())
    }
}

/// The loops beyond the first (`Config::loops`), each with its inbox (see `loops.rs`).
#[cfg(feature = "loops")]
impl Others {
    /// `config.loops - 1` loops that take their events from the first loop and publish to
    /// `store`'s intake; `counters` (the first loop's) add theirs up.
    fn new(
        config: &Config,
        intake: &Arc<Intake>,
        store: &Store,
        host: &Host,
        counters: &Counters,
    ) -> io::Result<Others> {
        let mut others = Others::default();
        let mut counted = Vec::new();
        for _ in 1..config.loops {
            let poll = Poll::new()?;
            let inbox = Arc::new(crate::loops::Inbox::new(Waker::new(
                poll.registry(),
                WAKER,
            )?));
            let own = Arc::new(Counters::default());
            let mut event_loop = EventLoop::new(
                poll,
                None,
                store.another(),
                own.clone(),
                config.clone(),
                host.another(),
            );
            event_loop.role = Some(crate::loops::Role::Other {
                inbox: inbox.clone(),
                intake: intake.clone(),
            });
            others.waiting.push(event_loop);
            others.inboxes.push(inbox);
            counted.push(own);
        }
        if !counted.is_empty() {
            let _ = counters.others.set(counted);
        }
        Ok(others)
    }

    /// Makes `first` the loop that hands these their events and streams.
    fn lead(&self, first: &mut EventLoop) {
        if !self.inboxes.is_empty() {
            first.role = Some(crate::loops::Role::First {
                others: self.inboxes.clone(),
            });
        }
    }

    /// Runs every loop not yet started on a thread of its own. A loop that ends, even by a
    /// panic, stops the server: its streams are gone.
    fn start(&mut self, intake: &Arc<Intake>) -> io::Result<()> {
        struct Gone(Arc<crate::loops::Inbox>, Arc<Intake>);
        impl Drop for Gone {
            fn drop(&mut self) {
                self.0.close();
                self.1.stop();
            }
        }
        while !self.waiting.is_empty() {
            let index = self.running.len();
            let mut other = self.waiting.remove(0);
            let gone = Gone(self.inboxes[index].clone(), intake.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ssed-loop-{}", index + 1))
                .spawn(move || {
                    let _gone = gone;
                    other.run()
                });
            match spawned {
                Ok(thread) => self.running.push(thread),
                Err(e) => {
                    // Those not started never read their inboxes.
                    self.waiting.clear();
                    for inbox in &self.inboxes[index..] {
                        inbox.close();
                    }
                    intake.stop();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Tells every other loop to stop after what it was handed.
    fn stop(&self) {
        crate::loops::stop_all(&self.inboxes);
    }

    /// Waits for every started loop to end.
    fn join(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.running.drain(..) {
            let ended = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("an event loop panicked")));
            result = result.and(ended);
        }
        result
    }
}

/// A server dropped while its other loops run (after `run_for`) stops them and waits for them:
/// no thread outlives it with its streams.
#[cfg(feature = "loops")]
impl Drop for Others {
    fn drop(&mut self) {
        if !self.running.is_empty() {
            self.stop();
            let _ = self.join();
        }
    }
}

/// The listening TCP socket: the one handed over (`listen_fd`), or a new one on `listen`.
fn listening_socket(config: &Config) -> io::Result<std::net::TcpListener> {
    #[cfg(feature = "sockets")]
    if let Some(fd) = config.listen_fd {
        return crate::sockets::inherited_tcp(fd)
            .map_err(|e| io::Error::new(e.kind(), format!("listen_fd {fd}: {e}")));
    }
    let listen = config.listen;
    sys::listen(listen, BACKLOG)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))
}

/// The certificate and key, when the listener speaks HTTPS: loaded now, so that a pair that
/// cannot serve stops the server from starting, with the file and the reason.
#[cfg(feature = "tls")]
fn open_tls(config: &Config, logger: &Logger) -> io::Result<Option<Arc<crate::tls::Certificates>>> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let files = crate::tls::Files {
        cert: cert.clone(),
        key: key.clone(),
    };
    let certificates = crate::tls::Certificates::open(files, logger.clone())?;
    Ok(Some(Arc::new(certificates)))
}

/// The store the loop takes events from: memory only, through the history file, or from a
/// cluster's Redis stream.
#[cfg_attr(
    not(any(feature = "history-file", feature = "redis")),
    allow(unused_variables)
)]
fn open_store(config: &Config, intake: Arc<Intake>, logger: &Logger) -> io::Result<Store> {
    let store = Store::new(intake.clone(), config.history);
    #[cfg(feature = "redis")]
    if config.redis.is_some() {
        let cluster = crate::store::Cluster::open(config, intake, logger.clone())?;
        return Ok(store.with_cluster(cluster));
    }
    #[cfg(feature = "history-file")]
    if let Some(path) = &config.history_file {
        return with_history_file(store, config, path, intake, logger);
    }
    Ok(store)
}

/// Loads the history file into `store`, which delivers through it from then on.
#[cfg(feature = "history-file")]
fn with_history_file(
    store: Store,
    config: &Config,
    path: &std::path::Path,
    intake: Arc<Intake>,
    logger: &Logger,
) -> io::Result<Store> {
    let options = file::Options {
        retained: config.history,
        fsync: config.fsync,
        ..file::Options::default()
    };
    let retry_after = options.retry_after;
    let wake = Box::new(move || intake.wake());
    let (loaded, writer) =
        file::open(path, options, wake).map_err(|e| io::Error::other(e.to_string()))?;
    for cut in &loaded.cut {
        logger.line(
            LogLevel::Quiet,
            format_args!("history file {}: {cut}", path.display()),
        );
    }
    logger.line(
        LogLevel::Info,
        format_args!(
            "history file {}: {} events loaded",
            path.display(),
            loaded.records.len()
        ),
    );
    Ok(store.with_file(loaded, writer, retry_after, logger.clone()))
}

impl Handle {
    /// Publishes one event: validates it, assigns an id when it has none, encodes it once and
    /// queues it for the loop. Never blocks on the loop.
    ///
    /// In a cluster (`Config::redis`) the event is appended to the Redis stream, which assigns
    /// its id, and this waits for Redis's answer (a round trip; at most a few seconds when Redis
    /// does not answer, then `PublishError::Unavailable`). Redis down fails at once.
    ///
    /// Returns the id the server assigned, or `None` when the event carried its own.
    pub fn publish(&self, event: &Event) -> Result<Option<u64>, PublishError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.publish(event);
        }
        self.intake.publish(event)
    }

    /// Asks the loop to stop. Returns at once; publishing fails from now on.
    pub fn stop(&self) {
        self.intake.stop();
    }

    /// True once the server has been stopped or its loop has ended.
    pub fn is_stopped(&self) -> bool {
        self.intake.is_stopped()
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Open streams that asked for `topic` (as written: an exact topic, or a selector); with
    /// `None`, open streams that asked for no topic, which receive every topic. A stream that
    /// asked for several topics is counted under each. Consistent with `/metrics`.
    /// (Cargo feature `host`.)
    #[cfg(feature = "host")]
    pub fn topic_subscribers(&self, topic: Option<&str>) -> u64 {
        self.presence.of(topic)
    }

    /// Every topic (or selector) open streams asked for now, with how many did, sorted.
    /// (Cargo feature `host`.)
    #[cfg(feature = "host")]
    pub fn topics(&self) -> Vec<(String, u64)> {
        self.presence.topics()
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// True when the listener speaks HTTPS (`Config::tls_cert`).
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Rereads the certificate and key files (`Config::tls_cert`, `tls_key`) on the calling
    /// thread. When they load, connections accepted from now on get them and open ones go on
    /// with what they had; when they do not (a file missing or unreadable, a key that is not
    /// the certificate's, a certificate expired or not valid yet), the pair in use stays and
    /// the error names the file and the reason. Both are logged at the server's log level.
    /// An error of kind `InvalidInput` when the server does not speak HTTPS.
    pub fn reload_tls(&self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(certificates) = &self.tls {
            return certificates.reload();
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "this server does not speak HTTPS (no TLS certificate is set)",
        ))
    }
}
