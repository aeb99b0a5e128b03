//! The loop's side of the host's say and view: its hooks, its logger, the per-topic counts it
//! keeps for any thread to read, and the calls into the stream and access hooks.
//!
//! Nothing here runs per event: the counts change when a stream opens or closes, the stream hook
//! is called then, the access hook once per stream or publish request. With no hook set, what
//! is left is the counts' small lock at each open and close. Without the cargo feature `host`
//! (the tiny daemon) only the logger is left.

#[cfg(feature = "host")]
use std::net::SocketAddr;
#[cfg(feature = "host")]
use std::sync::Arc;
#[cfg(feature = "host")]
use std::time::{Duration, Instant};

use crate::config::Config;
#[cfg(feature = "host")]
use crate::config::LogLevel;
use crate::conn::Conn;
use crate::hooks::AccessRequest;
#[cfg(feature = "host")]
use crate::hooks::{Access, Hooks, StreamEvent};
use crate::log::Logger;
#[cfg(feature = "host")]
use crate::presence::Presence;

/// An access hook slower than this is logged: every client waited for it.
#[cfg(feature = "host")]
const SLOW_ACCESS: Duration = Duration::from_millis(100);

pub(crate) struct Host {
    pub logger: Logger,
    #[cfg(feature = "host")]
    hooks: Hooks,
    /// Open streams per topic, shared with every `Handle`.
    #[cfg(feature = "host")]
    pub presence: Arc<Presence>,
    /// The id the stream hook was told and the peer of each open stream, by its connection's
    /// slot, kept only for the stream hook's close.
    #[cfg(feature = "host")]
    peers: Vec<Option<(u64, Option<SocketAddr>)>>,
    /// The first loop's: it lets the log hook's thread finish when it ends.
    finishes: bool,
}

/// The answer to a refused request: its status and body.
pub(crate) struct Refused {
    pub status: u16,
    pub reason: String,
}

impl Host {
    /// The host's side of a server of `config`, logging through `logger`.
    #[cfg_attr(not(feature = "host"), allow(unused_variables))]
    pub fn new(config: &Config, logger: Logger) -> Host {
        Host {
            logger,
            #[cfg(feature = "host")]
            hooks: config.hooks.clone(),
            #[cfg(feature = "host")]
            presence: Arc::default(),
            #[cfg(feature = "host")]
            peers: Vec::new(),
            finishes: true,
        }
    }

    /// The host's side of another loop of the same server: the same hooks, counts and log.
    #[cfg(feature = "loops")]
    pub fn another(&self) -> Host {
        Host {
            logger: self.logger.clone(),
            #[cfg(feature = "host")]
            hooks: self.hooks.clone(),
            #[cfg(feature = "host")]
            presence: self.presence.clone(),
            #[cfg(feature = "host")]
            peers: Vec::new(),
            finishes: false,
        }
    }

    /// What the stream hook knows of the stream in `slot`, which leaves for another loop.
    #[cfg(all(feature = "loops", feature = "host"))]
    pub fn moved_out(&mut self, slot: u32) -> Option<(u64, Option<SocketAddr>)> {
        self.peers.get_mut(slot as usize).and_then(Option::take)
    }

    /// Takes in what the stream hook knows of a stream handed over into `slot`.
    #[cfg(all(feature = "loops", feature = "host"))]
    pub fn moved_in(&mut self, slot: u32, hooked: Option<(u64, Option<SocketAddr>)>) {
        let Some(hooked) = hooked else { return };
        let slot = slot as usize;
        if self.peers.len() <= slot {
            self.peers.resize(slot + 1, None);
        }
        self.peers[slot] = Some(hooked);
    }

    /// Whether request heads must be kept for the access hook.
    pub fn wants_heads(&self) -> bool {
        #[cfg(feature = "host")]
        return self.hooks.access.is_some();
        #[cfg(not(feature = "host"))]
        false
    }

    /// A stream joined the subscribers: count it, and tell the stream hook.
    #[cfg_attr(not(feature = "host"), allow(unused_variables))]
    pub fn stream_opened(&mut self, conn: &Conn, slot: u32, id: u64) {
        #[cfg(feature = "host")]
        {
            let topics = conn.subscription.asked();
            self.presence.joined(&topics);
            let Some(hook) = &self.hooks.streams else {
                return;
            };
            let peer = conn.stream.peer_addr().ok();
            let slot = slot as usize;
            if self.peers.len() <= slot {
                self.peers.resize(slot + 1, None);
            }
            self.peers[slot] = Some((id, peer));
            hook(&StreamEvent {
                opened: true,
                id,
                topics: &topics,
                peer,
            });
        }
    }

    /// A stream that had joined the subscribers closed.
    #[cfg_attr(not(feature = "host"), allow(unused_variables))]
    pub fn stream_closed(&mut self, conn: &Conn, slot: u32, id: u64) {
        #[cfg(feature = "host")]
        {
            let topics = conn.subscription.asked();
            self.presence.left(&topics);
            let Some(hook) = &self.hooks.streams else {
                return;
            };
            // A stream handed over from another loop keeps the id it opened with.
            let (id, peer) = self
                .peers
                .get_mut(slot as usize)
                .and_then(Option::take)
                .unwrap_or((id, None));
            hook(&StreamEvent {
                opened: false,
                id,
                topics: &topics,
                peer,
            });
        }
    }

    /// Asks the access hook, when there is one, about `request`.
    #[cfg_attr(not(feature = "host"), allow(unused_variables))]
    pub fn access(&self, request: &AccessRequest) -> Result<(), Refused> {
        #[cfg(feature = "host")]
        if let Some(hook) = &self.hooks.access {
            return self.ask(hook, request);
        }
        Ok(())
    }

    #[cfg(feature = "host")]
    fn ask(&self, hook: &crate::hooks::AccessHook, request: &AccessRequest) -> Result<(), Refused> {
        let start = Instant::now();
        let answer = hook(request);
        let took = start.elapsed();
        if took >= SLOW_ACCESS {
            self.logger.line(
                LogLevel::Quiet,
                format_args!(
                    "the access callback took {} ms: every client of the server waited for it",
                    took.as_millis() as u64
                ),
            );
        }
        match answer {
            Access::Allow => Ok(()),
            Access::Deny { status, reason } if (400..=599).contains(&status) => Err(Refused {
                status,
                reason: if reason.is_empty() {
                    "access denied".into()
                } else {
                    reason
                },
            }),
            Access::Deny { status, .. } => {
                self.logger.line(
                    LogLevel::Quiet,
                    format_args!(
                        "the access callback answered {status}, which is no refusal (400 to 599)"
                    ),
                );
                Err(Refused {
                    status: 500,
                    reason: "the server's access check failed".into(),
                })
            }
        }
    }
}

impl Drop for Host {
    /// The loop is gone: every queued log line reaches the log hook before the server is.
    fn drop(&mut self) {
        if self.finishes {
            self.logger.finish();
        }
    }
}
