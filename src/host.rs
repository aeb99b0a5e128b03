//! The loop's side of the host's say and view: its hooks, its logger, the per-topic counts it
//! keeps for any thread to read, and the calls into the stream and access hooks.
//!
//! Nothing here runs per event: the counts change when a stream opens or closes, the stream hook
//! is called then, the access hook once per stream or publish request. With no hook set, what
//! is left is the counts' small lock at each open and close.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::LogLevel;
use crate::conn::Conn;
use crate::hooks::{Access, AccessRequest, Hooks, StreamEvent};
use crate::log::Logger;
use crate::presence::Presence;

/// An access hook slower than this is logged: every client waited for it.
const SLOW_ACCESS: Duration = Duration::from_millis(100);

pub(crate) struct Host {
    pub hooks: Hooks,
    pub logger: Logger,
    pub presence: Arc<Presence>,
    /// The peer of each open stream, by stream id, kept only for the stream hook's close.
    peers: HashMap<u64, SocketAddr>,
}

/// The answer to a refused request: its status and body.
pub(crate) struct Refused {
    pub status: u16,
    pub reason: String,
}

impl Host {
    pub fn new(hooks: Hooks, logger: Logger, presence: Arc<Presence>) -> Host {
        Host {
            hooks,
            logger,
            presence,
            peers: HashMap::new(),
        }
    }

    /// Whether request heads must be kept for the access hook.
    pub fn wants_heads(&self) -> bool {
        self.hooks.access.is_some()
    }

    /// A stream joined the subscribers: count it, and tell the stream hook.
    pub fn stream_opened(&mut self, conn: &Conn, id: u64) {
        let topics = conn.subscription.asked();
        self.presence.joined(&topics);
        let Some(hook) = &self.hooks.streams else {
            return;
        };
        let peer = conn.stream.peer_addr().ok();
        if let Some(peer) = peer {
            self.peers.insert(id, peer);
        }
        hook(&StreamEvent {
            opened: true,
            id,
            topics: &topics,
            peer,
        });
    }

    /// A stream that had joined the subscribers closed.
    pub fn stream_closed(&mut self, conn: &Conn, id: u64) {
        let topics = conn.subscription.asked();
        self.presence.left(&topics);
        let Some(hook) = &self.hooks.streams else {
            return;
        };
        let peer = self.peers.remove(&id);
        if self.peers.is_empty() && self.peers.capacity() > 1024 {
            self.peers.shrink_to_fit();
        }
        hook(&StreamEvent {
            opened: false,
            id,
            topics: &topics,
            peer,
        });
    }

    /// Asks the access hook, when there is one, about `request`.
    pub fn access(&self, request: &AccessRequest) -> Result<(), Refused> {
        let Some(hook) = &self.hooks.access else {
            return Ok(());
        };
        let start = Instant::now();
        let answer = hook(request);
        let took = start.elapsed();
        if took >= SLOW_ACCESS {
            self.logger.line(
                LogLevel::Quiet,
                format_args!(
                    "the access callback took {} ms: every client of the server waited for it",
                    took.as_millis()
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
        self.logger.finish();
    }
}
