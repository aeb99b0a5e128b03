//! The publish socket: a Unix-domain socket on which programs of the same machine publish
//! without a TCP port or a token. Whoever may open the socket file (its permissions, 0660 when
//! ssed creates it) may publish; nothing else is served on it but `/health` and `/metrics`.
//!
//! Its connections have a limit of their own, apart from `--max-clients` and the reserve, so
//! no TCP client, however many connections it holds, can take the way in a local publisher
//! needs.
//!
//! Cargo feature `sockets` (in the default build); without it there is no publish socket.
#![allow(unsafe_code)]

use mio::Token;

use crate::http::Method;

/// The publish socket's token: far above any connection's (whose low bits are a slot index).
pub(crate) const PUBLISH_LISTENER: Token = Token(usize::MAX);

/// What a connection on the publish socket may ask for.
pub(crate) fn served_locally(method: Method, path: &str) -> bool {
    match method {
        Method::Post => path == "/publish" || path == "/.well-known/mercure",
        Method::Get => path == "/health" || path == "/metrics",
        _ => false,
    }
}

/// What a connection on the publish socket is told when it asks for something else.
pub(crate) const NOT_SERVED_LOCALLY: &str = "the publish socket serves POST /publish and \
    /.well-known/mercure, GET /health and /metrics; subscribe over TCP";

#[cfg(feature = "sockets")]
pub(crate) use served::PublishSocket;
#[cfg(not(feature = "sockets"))]
pub(crate) use stand_in::PublishSocket;

#[cfg(feature = "sockets")]
mod served {
    use std::io::{self, Write};
    use std::os::fd::{FromRawFd, IntoRawFd};
    use std::time::Instant;

    use mio::net::{TcpStream, UnixListener};
    use mio::{Interest, Poll};

    use super::PUBLISH_LISTENER;
    use crate::config::{Config, LogLevel};
    use crate::event_loop::EventLoop;
    use crate::http::{self, Status};
    use crate::sockets::{self, SocketFile};
    use crate::stats::Refusal;

    /// Connections the publish socket serves at once.
    const LOCAL_CONNECTIONS: usize = 64;

    /// The listening socket, and the file ssed made for it (removed when it stops).
    pub(crate) struct PublishSocket {
        listener: UnixListener,
        _file: Option<SocketFile>,
    }

    impl PublishSocket {
        /// The publish socket of `config`, registered with `poll`: the one handed over
        /// (`publish_socket_fd`), one made at `publish_socket`, or none.
        pub fn open(config: &Config, poll: &Poll) -> io::Result<Option<PublishSocket>> {
            let (listener, file) = match (&config.publish_socket, config.publish_socket_fd) {
                (_, Some(fd)) => {
                    let listener = sockets::inherited_unix(fd).map_err(|e| {
                        io::Error::new(e.kind(), format!("publish_socket_fd {fd}: {e}"))
                    })?;
                    (listener, None)
                }
                (Some(path), None) => {
                    let (listener, file) = sockets::create_publish_socket(path)?;
                    (listener, Some(file))
                }
                (None, None) => return Ok(None),
            };
            let mut listener = UnixListener::from_std(listener);
            poll.registry()
                .register(&mut listener, PUBLISH_LISTENER, Interest::READABLE)?;
            Ok(Some(PublishSocket {
                listener,
                _file: file,
            }))
        }

        /// Stops accepting (at shutdown).
        pub fn close(mut self, poll: &Poll) {
            let _ = poll.registry().deregister(&mut self.listener);
        }
    }

    impl EventLoop {
        /// Accepts every pending connection of the publish socket.
        pub(crate) fn accept_local(&mut self, now: Instant) {
            if self.shutdown_by.is_some() {
                return;
            }
            loop {
                let Some(socket) = &self.publish_socket else {
                    return;
                };
                match socket.listener.accept() {
                    Ok((stream, _)) => self.admit_local(stream, now),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                    Err(e) => {
                        // Out of descriptors: the connection waits in the backlog; the next one
                        // that arrives (or a retry of the client) tries again.
                        self.log(
                            LogLevel::Quiet,
                            format_args!("publish socket: accept failed ({e})"),
                        );
                        return;
                    }
                }
            }
        }

        fn admit_local(&mut self, mut stream: mio::net::UnixStream, now: Instant) {
            if self.local_open >= LOCAL_CONNECTIONS {
                self.counters.refused(Refusal::MaxClients);
                let busy = http::error(
                    Status::UNAVAILABLE,
                    "Retry-After: 1\r\n",
                    "too many connections on the publish socket, try again later",
                );
                let _ = stream.write(&busy);
                return;
            }
            // A connection is served through a TcpStream, whatever its socket: reads, `sendmsg`
            // and `shutdown` are the same calls on a Unix-domain stream socket, and what is TCP's
            // own (the peer's address, TCP_NODELAY) is never asked of a local connection.
            // SAFETY: the descriptor is an open, nonblocking stream socket, handed over whole.
            let stream = unsafe { TcpStream::from_raw_fd(stream.into_raw_fd()) };
            if let Some(slot) = self.install(stream, true, now)
                && let Some(conn) = self.take_conn(slot)
            {
                let mut conn = conn;
                conn.local = true;
                self.put_conn(slot, conn);
                self.local_open += 1;
                self.log(
                    LogLevel::Verbose,
                    format_args!("accepted a connection on the publish socket"),
                );
            }
        }
    }
}

/// Without the feature `sockets` (the tiny daemon): no publish socket can exist.
#[cfg(not(feature = "sockets"))]
mod stand_in {
    use std::io;
    use std::time::Instant;

    use mio::Poll;

    use crate::config::Config;
    use crate::event_loop::EventLoop;

    pub(crate) enum PublishSocket {}

    impl PublishSocket {
        pub fn open(_: &Config, _: &Poll) -> io::Result<Option<PublishSocket>> {
            Ok(None)
        }

        pub fn close(self, _: &Poll) {
            match self {}
        }
    }

    impl EventLoop {
        pub(crate) fn accept_local(&mut self, _: Instant) {}
    }
}
