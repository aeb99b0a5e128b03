//! One client connection: where it is in its life, and the frames waiting to be written to it.
//!
//! Output is a queue of shared frames plus an offset into the first one, drained with one
//! vectored write per turn. Frames are never copied per connection; the read buffer exists only
//! while a request head or body is incomplete.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;

use crate::auth::Publishing;
use crate::http::Request;
use crate::input::Input;
use crate::subscription::Subscription;
use crate::sys;

/// Most frames handed to one `sendmsg` (Linux's IOV_MAX).
const IOV_BATCH: usize = 1024;
/// Frames that fit the small batch array.
const SMALL_BATCH: usize = 8;
/// Frames of room a drained queue keeps. A live stream seldom has more waiting between two
/// writes; a long replay does, once, and the room it took (16 bytes per frame: 160 KB for
/// 10,000 events) would otherwise stay with the stream for as long as it lives.
const KEPT_ROOM: usize = 1024;

/// Where a connection is in its life. It only moves forward, except that a keep-alive request
/// connection goes back to `Head` after each response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading a request head.
    Head,
    /// Reading the body of a publish request.
    Body,
    /// An open event stream.
    Streaming,
    /// Writing a last response, then closing.
    Closing,
    /// Output done and our side shut; reading until the client closes, so that unread input
    /// does not turn our close into a reset that destroys the response.
    Lingering,
}

/// A request whose body is still arriving.
pub struct PendingBody {
    pub request: Request,
    pub length: usize,
    /// The topics its credentials may publish to.
    pub publishing: Publishing,
    /// A publish to the Mercure hub (`/.well-known/mercure`), which speaks that protocol.
    pub hub: bool,
}

/// How reading left a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// Nothing more to read for now.
    Open,
    /// Reading stopped before the socket was drained; no new readiness event will come for
    /// what is left.
    Paused,
    /// The client closed its side; it may still read an answer.
    Closed,
    /// The connection was reset: nothing more can be sent either.
    Failed,
    /// The TLS handshake or a record failed (`tls::Session::failure` says why); the alert was
    /// sent.
    #[cfg(feature = "tls")]
    TlsFailed,
    /// The first bytes on an HTTPS connection are not TLS; `http`: they look like an HTTP
    /// request.
    #[cfg(feature = "tls")]
    NotTls { http: bool },
}

/// What one flush achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Nothing is left to write.
    All,
    /// The socket is full; a writable event will come.
    Blocked,
    /// The batch was written but more frames are queued.
    More,
    /// What comes next is an answer not ready yet (a publish waiting for the history file):
    /// writing resumes once it is filled in.
    Waiting,
}

pub struct Conn {
    pub stream: TcpStream,
    pub phase: Phase,
    /// Frames to write, oldest first.
    out: VecDeque<Arc<[u8]>>,
    /// Bytes of `out[0]` already written.
    out_offset: usize,
    /// Bytes queued and not yet written.
    pub out_bytes: usize,
    /// Replayed bytes allowed beyond `max_queue` until the queue first drains: history frames
    /// are shared with the ring, so they cost no memory, and a large replay must not get a
    /// reconnecting subscriber dropped again and again.
    pub replay_allowance: usize,
    /// Request bytes not yet handled; unallocated once a stream starts.
    pub input: Input,
    /// What a stream receives.
    pub subscription: Subscription,
    pub body: Option<Box<PendingBody>>,
    /// The CORS header lines of each publish whose answer waits (for the history file), oldest
    /// first; their places are held in `out`. Boxed: most connections never have one, and the
    /// pointer keeps every subscriber's slot small.
    #[allow(clippy::box_collection)]
    pub waiting_publishes: Option<Box<VecDeque<Box<str>>>>,
    /// When the current head (or linger) must be done.
    pub deadline: Option<Instant>,
    /// The deadline of this connection's entry in the loop's timer heap, if it has one.
    pub armed: Option<Instant>,
    /// Position in the loop's subscriber list while streaming.
    pub sub_index: u32,
    pub keep_alive: bool,
    pub peer_loopback: bool,
    /// A write returned short: wait for a writable event.
    pub write_blocked: bool,
    /// Listed for a flush this turn.
    pub dirty: bool,
    /// The client has closed its side.
    pub read_closed: bool,
    /// Came through the publish socket (see publish_socket.rs).
    pub local: bool,
    /// The client may still be sending (a body not read, pipelined input): after a last answer
    /// the connection half-closes and waits for the client to close (`Lingering`), so that
    /// the kernel does not reset it and destroy the answer. Without it, it closes at once.
    pub linger: bool,
    /// On an HTTPS listener: the connection's TLS, through which every byte goes. Boxed, so
    /// that a plain connection's slot grows by a pointer only.
    #[cfg(feature = "tls")]
    pub tls: Option<Box<crate::tls::Session>>,
}

impl Conn {
    pub fn new(stream: TcpStream, peer_loopback: bool, deadline: Instant) -> Conn {
        Conn {
            stream,
            phase: Phase::Head,
            out: VecDeque::new(),
            out_offset: 0,
            out_bytes: 0,
            replay_allowance: 0,
            input: Input::default(),
            subscription: Subscription::default(),
            body: None,
            waiting_publishes: None,
            deadline: Some(deadline),
            armed: None,
            sub_index: u32::MAX,
            keep_alive: false,
            peer_loopback,
            write_blocked: false,
            dirty: false,
            read_closed: false,
            local: false,
            linger: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Came through the publish socket: never, in a build without one (the tiny daemon),
    /// which lets the compiler leave the publish socket's paths out.
    pub fn is_local(&self) -> bool {
        cfg!(feature = "sockets") && self.local
    }

    /// True while anything waits to be written: queued frames, or ciphertext made from them.
    pub fn has_output(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return self.out_bytes > 0 || tls.pending() > 0;
        }
        self.out_bytes > 0
    }

    /// Queues a frame; returns the bytes now waiting.
    pub fn push(&mut self, frame: Arc<[u8]>) -> usize {
        self.out_bytes += frame.len();
        self.out.push_back(frame);
        self.out_bytes
    }

    /// Holds the place of an answer not ready yet (an empty frame, which nothing else ever is), so
    /// that what is queued after it waits: HTTP answers go out in the order of the requests.
    pub fn hold_answer(&mut self) {
        self.out.push_back(Arc::from(&[][..]));
    }

    /// Puts `answer` in the first place held; false when none is held.
    pub fn fill_answer(&mut self, answer: Arc<[u8]>) -> bool {
        let Some(place) = self.out.iter_mut().find(|frame| frame.is_empty()) else {
            return false;
        };
        self.out_bytes += answer.len();
        *place = answer;
        true
    }

    /// What the queue costs: the bytes waiting, and each queued frame's reference, so that many
    /// small frames cannot hold more memory than `--max-queue` allows.
    pub fn queued_cost(&self) -> usize {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return self.out_bytes + self.out.len() * size_of::<Arc<[u8]>>() + tls.pending();
        }
        self.out_bytes + self.out.len() * size_of::<Arc<[u8]>>()
    }

    /// The queue's cost behind the frame being written: what the client has not started to
    /// receive.
    pub fn backlog(&self) -> usize {
        let in_flight = self
            .out
            .front()
            .map_or(0, |front| front.len() - self.out_offset);
        self.queued_cost() - in_flight
    }

    /// Writes as much of the queue as one `sendmsg` takes. Returns the bytes written too.
    pub fn flush(&mut self) -> io::Result<(Flushed, usize)> {
        let fd = self.stream.as_raw_fd();
        // A small array for the usual few frames: filling a full-size one costs more than the
        // copy of a short frame.
        if self.out.front().is_some_and(|front| front.is_empty()) {
            return Ok((Flushed::Waiting, 0));
        }
        let sent = match self.out.len() {
            0 => return Ok((Flushed::All, 0)),
            1..=SMALL_BATCH => send_frames(
                fd,
                &self.out,
                self.out_offset,
                &mut [IoSlice::new(&[]); SMALL_BATCH],
            ),
            _ => send_frames(
                fd,
                &self.out,
                self.out_offset,
                &mut [IoSlice::new(&[]); IOV_BATCH],
            ),
        };
        let (written, offered) = match sent {
            Ok(sent) => sent,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((Flushed::Blocked, 0)),
            Err(e) => return Err(e),
        };
        self.consume(written);
        let state = if self.out.is_empty() {
            self.replay_allowance = 0;
            if self.out.capacity() > KEPT_ROOM {
                self.out = VecDeque::new();
            }
            Flushed::All
        } else if written < offered {
            Flushed::Blocked
        } else if self.out.front().is_some_and(|front| front.is_empty()) {
            Flushed::Waiting
        } else {
            Flushed::More
        };
        Ok((state, written))
    }

    /// The TLS flush: encrypts what is queued, as far as one turn takes (see `tls::Session`),
    /// and writes it with what was pending in one `sendmsg`. Returns the ciphertext bytes
    /// written.
    #[cfg(feature = "tls")]
    pub fn flush_tls(&mut self, buffers: &mut crate::tls::Buffers) -> io::Result<(Flushed, usize)> {
        let fd = self.stream.as_raw_fd();
        let Some(session) = self.tls.as_deref_mut() else {
            return self.flush();
        };
        let plain = if session.may_encrypt() {
            gather(&self.out, self.out_offset, buffers.plain())
        } else {
            0
        };
        let (written, all) = session.send(fd, plain, buffers)?;
        let established = session.is_established();
        self.consume(plain);
        let state = if !all {
            Flushed::Blocked
        } else if self.out.is_empty() {
            self.replay_allowance = 0;
            if self.out.capacity() > KEPT_ROOM {
                self.out = VecDeque::new();
            }
            Flushed::All
        } else if !established || self.out.front().is_some_and(|front| front.is_empty()) {
            // Frames wait for the handshake (marked again when it is done) or for an answer.
            Flushed::Waiting
        } else {
            Flushed::More
        };
        Ok((state, written))
    }

    fn consume(&mut self, mut written: usize) {
        self.out_bytes -= written;
        while written > 0 {
            let Some(front) = self.out.front() else { break };
            let left = front.len() - self.out_offset;
            if written < left {
                self.out_offset += written;
                return;
            }
            written -= left;
            self.out_offset = 0;
            self.out.pop_front();
        }
    }

    /// Reads everything available into `scratch`-sized pieces, handing each to `each` until it
    /// returns false.
    pub fn read_available(
        &mut self,
        scratch: &mut [u8],
        mut each: impl FnMut(&mut Conn, &[u8]) -> bool,
    ) -> ReadEnd {
        #[cfg(feature = "tls")]
        if let Some(session) = self.tls.take() {
            return self.read_tls(session, scratch, each);
        }
        loop {
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.read_closed = true;
                    return ReadEnd::Closed;
                }
                Ok(n) => {
                    if !each(self, &scratch[..n]) {
                        return ReadEnd::Paused;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.read_closed = true;
                    return ReadEnd::Failed;
                }
            }
        }
    }
}

impl Conn {
    /// `read_available` through TLS: ciphertext is read into `scratch`, the handshake is
    /// answered, and the application data it carries goes to `each`.
    #[cfg(feature = "tls")]
    fn read_tls(
        &mut self,
        mut session: Box<crate::tls::Session>,
        scratch: &mut [u8],
        mut each: impl FnMut(&mut Conn, &[u8]) -> bool,
    ) -> ReadEnd {
        use crate::tls::Read as Tls;
        let end = loop {
            match self.stream.read(scratch) {
                Ok(0) => break ReadEnd::Closed,
                Ok(n) => {
                    if !session.receive(&scratch[..n]) {
                        session.fail("a record longer than TLS allows");
                        break ReadEnd::TlsFailed;
                    }
                    match session.process(|bytes| each(self, bytes)) {
                        Tls::Done => {}
                        Tls::Paused => break ReadEnd::Paused,
                        Tls::PeerClosed => break ReadEnd::Closed,
                        Tls::NotTls { http } => break ReadEnd::NotTls { http },
                        Tls::Failed(why) => {
                            session.fail(&why);
                            session.send_pending_now(self.stream.as_raw_fd());
                            break ReadEnd::TlsFailed;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadEnd::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break ReadEnd::Failed,
            }
        };
        if !matches!(end, ReadEnd::Open | ReadEnd::Paused) {
            self.read_closed = true;
        }
        self.tls = Some(session);
        end
    }
}

/// Copies the frames of `out` (the first from `offset`) into `into`, as many bytes as fit, up
/// to an answer not ready yet. Returns the bytes copied.
#[cfg(feature = "tls")]
fn gather(out: &VecDeque<Arc<[u8]>>, offset: usize, into: &mut [u8]) -> usize {
    let mut filled = 0;
    for (index, frame) in out.iter().enumerate() {
        if frame.is_empty() {
            break;
        }
        let bytes = if index == 0 { &frame[offset..] } else { frame };
        let take = bytes.len().min(into.len() - filled);
        into[filled..filled + take].copy_from_slice(&bytes[..take]);
        filled += take;
        if filled == into.len() {
            break;
        }
    }
    filled
}

/// Sends the first frames of `out` (the first from `offset`) in one `sendmsg`, as many as
/// `slices` holds. Returns the bytes written and the bytes offered.
fn send_frames<'a>(
    fd: std::os::fd::RawFd,
    out: &'a VecDeque<Arc<[u8]>>,
    offset: usize,
    slices: &mut [IoSlice<'a>],
) -> io::Result<(usize, usize)> {
    let mut count = 0;
    let mut offered = 0;
    for (slice, frame) in slices.iter_mut().zip(out.iter()) {
        if frame.is_empty() {
            break; // An answer not ready yet: what follows it waits.
        }
        let start = if count == 0 { offset } else { 0 };
        *slice = IoSlice::new(&frame[start..]);
        offered += slice.len();
        count += 1;
    }
    let written = sys::send_vectored(fd, &slices[..count])?;
    Ok((written, offered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Conn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let conn = Conn::new(TcpStream::from_std(server), true, Instant::now());
        (conn, client)
    }

    #[test]
    fn a_connection_stays_small() {
        // Every idle subscriber holds one; the flags of the publish socket and the linger fit
        // in the room the other flags leave, and HTTPS adds a pointer.
        let tls = if cfg!(feature = "tls") { 8 } else { 0 };
        assert!(size_of::<Conn>() <= 168 + tls, "{}", size_of::<Conn>());
    }

    #[test]
    fn flush_writes_shared_frames_in_order_with_offsets() {
        let (mut conn, mut client) = pair();
        let a: Arc<[u8]> = Arc::from(&b"hello "[..]);
        let b: Arc<[u8]> = Arc::from(&b"world"[..]);
        conn.push(a.clone());
        conn.push(b);
        conn.consume(2);
        assert_eq!(conn.out_bytes, 9);
        let (state, n) = conn.flush().unwrap();
        assert_eq!((state, n), (Flushed::All, 9));
        let mut got = [0u8; 9];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"llo world");
        assert_eq!(Arc::strong_count(&a), 1, "written frames are released");
    }

    #[test]
    fn a_drained_long_queue_gives_its_room_back() {
        let (mut conn, mut client) = pair();
        let frame: Arc<[u8]> = Arc::from(&b"id: 1\ndata: x\n\n"[..]);
        for _ in 0..10_000 {
            conn.push(frame.clone());
        }
        for _ in 0..100 {
            if conn.flush().unwrap().0 == Flushed::All {
                break;
            }
        }
        assert_eq!(conn.out_bytes, 0);
        assert!(conn.out.capacity() <= KEPT_ROOM, "{}", conn.out.capacity());
        let mut got = vec![0u8; 10_000 * frame.len()];
        client.read_exact(&mut got).unwrap();
    }

    #[test]
    fn an_answer_held_keeps_its_place_until_filled() {
        let (mut conn, mut client) = pair();
        conn.push(Arc::from(&b"first "[..]));
        conn.hold_answer();
        conn.push(Arc::from(&b"third"[..]));
        assert_eq!(conn.flush().unwrap(), (Flushed::Waiting, 6));
        assert_eq!(conn.flush().unwrap(), (Flushed::Waiting, 0));
        assert!(conn.fill_answer(Arc::from(&b"second "[..])));
        assert!(!conn.fill_answer(Arc::from(&b"none held"[..])));
        assert_eq!(conn.flush().unwrap(), (Flushed::All, 12));
        let mut got = [0u8; 18];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"first second third");
    }

    #[test]
    fn a_full_socket_blocks_instead_of_waiting() {
        let (mut conn, _client) = pair();
        let big: Arc<[u8]> = Arc::from(vec![b'x'; 1 << 20]);
        for _ in 0..64 {
            conn.push(big.clone());
        }
        let mut blocked = false;
        for _ in 0..64 {
            match conn.flush().unwrap().0 {
                Flushed::Blocked => {
                    blocked = true;
                    break;
                }
                Flushed::More => continue,
                Flushed::All | Flushed::Waiting => panic!("64 MiB cannot fit an unread socket"),
            }
        }
        assert!(blocked);
        assert!(conn.out_bytes > 0);
    }

    #[test]
    fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        let (mut conn, client) = pair();
        drop(client);
        conn.push(Arc::from(vec![b'x'; 1 << 16]));
        let mut failed = false;
        for _ in 0..100 {
            match conn.flush() {
                Err(_) => {
                    failed = true;
                    break;
                }
                Ok(_) => conn.push(Arc::from(vec![b'x'; 1 << 16])),
            };
        }
        assert!(failed, "a reset peer must surface as an error");
    }
}
