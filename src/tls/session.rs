//! One connection's TLS, through rustls's unbuffered API: the connection owns every buffer.
//!
//! Received ciphertext waits in `incoming` only while a record is incomplete; the handshake's
//! answers and any ciphertext the socket did not take wait in `pending`. Application data is
//! encrypted on the way out of the connection's queue of shared frames: the frames queued
//! since the last write are gathered into the loop's plaintext buffer (up to four full records),
//! encrypted at once into the loop's ciphertext buffer, and sent with what was pending in one
//! `sendmsg`. So a turn makes as few records as the queued frames fill, writes once, and keeps
//! nothing per connection unless the socket is full. (rustls 0.23 builds each record in a
//! buffer of its own before copying it out: one short-lived allocation per record, never per
//! frame.)

use std::os::fd::RawFd;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError};
use std::io::{self, IoSlice};

use crate::sys;

/// Largest TLS plaintext record.
const RECORD: usize = 16 * 1024;
/// Plaintext encrypted for one connection in one turn: four full records.
const PLAIN_BATCH: usize = 4 * RECORD;
/// Room for the records' headers, nonces, tags and padding, and a key update before them.
const CIPHER_SLACK: usize = 4 * 256 + 1024;
/// Most ciphertext kept for a connection: past it nothing more is encrypted until the socket
/// takes some. With `PLAIN_BATCH` this bounds what a connection holds beyond its frames.
const PENDING_ROOM: usize = PLAIN_BATCH;
/// Most received ciphertext waiting for the rest of its record: a whole record with its
/// overhead. rustls refuses longer records, so more means a broken peer.
const MAX_INCOMING: usize = 5 + RECORD + 2048;
/// The first byte of a TLS handshake record. Anything else is not TLS (plain HTTP starts with
/// a method's letter).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The loop's buffers for encrypting, shared by every connection (one is encrypted at a time).
pub(crate) struct Buffers {
    plain: Box<[u8]>,
    cipher: Box<[u8]>,
}

impl Buffers {
    pub fn new() -> Buffers {
        Buffers {
            plain: vec![0; PLAIN_BATCH].into_boxed_slice(),
            cipher: vec![0; PLAIN_BATCH + CIPHER_SLACK].into_boxed_slice(),
        }
    }

    /// Where the frames to encrypt are gathered.
    pub fn plain(&mut self) -> &mut [u8] {
        &mut self.plain
    }
}

/// How processing received bytes ended.
#[derive(Debug)]
pub(crate) enum Read {
    /// Everything complete was processed.
    Done,
    /// The consumer of application data asked to stop (`each` returned false).
    Paused,
    /// The peer sent close_notify.
    PeerClosed,
    /// The first bytes are not TLS: plain HTTP sent to the HTTPS port, when they start with a
    /// letter.
    NotTls { http: bool },
    /// The handshake or a record failed; the alert for the peer is pending.
    Failed(String),
}

pub(crate) struct Session {
    tls: UnbufferedServerConnection,
    /// Ciphertext received and not processed yet: a record in part.
    incoming: Vec<u8>,
    /// Ciphertext made and not yet taken by the socket, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    /// The handshake is done: application data can be sent.
    established: bool,
    /// Nothing has been received yet.
    fresh: bool,
    /// Why the handshake or a record failed, for the log.
    failure: Option<Box<str>>,
}

impl Session {
    pub fn new(config: Arc<ServerConfig>) -> Result<Session, rustls::Error> {
        Ok(Session {
            tls: UnbufferedServerConnection::new(config)?,
            incoming: Vec::new(),
            pending: Vec::new(),
            sent: 0,
            established: false,
            fresh: true,
            failure: None,
        })
    }

    /// Notes why the session failed.
    pub fn fail(&mut self, why: &str) {
        self.failure = Some(why.into());
    }

    /// Why the session failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn is_established(&self) -> bool {
        self.established
    }

    /// Ciphertext waiting for the socket.
    pub fn pending(&self) -> usize {
        self.pending.len() - self.sent
    }

    /// True when this turn may encrypt more: the handshake is done and the ciphertext waiting
    /// is within bounds.
    pub fn may_encrypt(&self) -> bool {
        self.established && self.pending() < PENDING_ROOM
    }

    /// Takes received ciphertext. False when a record is longer than TLS allows.
    pub fn receive(&mut self, bytes: &[u8]) -> bool {
        // What is left after processing is one record in part, never more than a record.
        if self.incoming.len() > MAX_INCOMING {
            return false;
        }
        self.incoming.extend_from_slice(bytes);
        true
    }

    /// Processes every complete record received: answers the handshake (into `pending`),
    /// hands application data to `each`.
    pub fn process(&mut self, mut each: impl FnMut(&[u8]) -> bool) -> Read {
        if self.fresh && !self.incoming.is_empty() {
            self.fresh = false;
            if self.incoming[0] != HANDSHAKE_RECORD {
                let http = self.incoming[0].is_ascii_uppercase();
                return Read::NotTls { http };
            }
        }
        let mut paused = false;
        let end = loop {
            let status = self.tls.process_tls_records(&mut self.incoming);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(e) => {
                    self.incoming.drain(..discard.min(self.incoming.len()));
                    break Read::Failed(e.to_string());
                }
            };
            let mut done = false;
            let mut outcome = None;
            match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                if !each(record.payload) {
                                    paused = true;
                                }
                            }
                            Err(e) => {
                                outcome = Some(Read::Failed(e.to_string()));
                                break;
                            }
                        }
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    if let Err(e) = encode_into(&mut self.pending, |out| encode.encode(out)) {
                        outcome = Some(Read::Failed(e.to_string()));
                    }
                }
                // What was encoded is in `pending`, sent in order before anything later.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::WriteTraffic(_) => {
                    self.established = true;
                    done = true;
                }
                ConnectionState::BlockedHandshake => done = true,
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    outcome = Some(Read::PeerClosed)
                }
                // Early data is never accepted (the configuration allows none).
                ConnectionState::ReadEarlyData(_) => {
                    outcome = Some(Read::Failed("unexpected early data".into()))
                }
                _ => outcome = Some(Read::Failed("unexpected TLS state".into())),
            }
            self.incoming.drain(..discard.min(self.incoming.len()));
            if let Some(outcome) = outcome {
                break outcome;
            }
            if done {
                break if paused { Read::Paused } else { Read::Done };
            }
        };
        if let Read::Failed(_) = end {
            self.encode_alerts();
        }
        if self.incoming.is_empty() && self.incoming.capacity() > 0 {
            self.incoming = Vec::new();
        }
        end
    }

    /// After a failure, puts the alert rustls has for the peer into `pending`.
    fn encode_alerts(&mut self) {
        for _ in 0..4 {
            let status = self.tls.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    if encode_into(&mut self.pending, |out| encode.encode(out)).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Encrypts `plain` (when not empty) into `buffers`, and sends what was pending followed by
    /// it in one `sendmsg`; keeps what the socket did not take. Returns the bytes written and
    /// whether everything went (false: the socket is full).
    pub fn send(
        &mut self,
        fd: RawFd,
        plain: usize,
        buffers: &mut Buffers,
    ) -> io::Result<(usize, bool)> {
        let made = if plain > 0 {
            self.encrypt(&buffers.plain[..plain], &mut buffers.cipher)?
        } else {
            0
        };
        let made = &buffers.cipher[..made];
        let waiting = &self.pending[self.sent..];
        if waiting.is_empty() && made.is_empty() {
            return Ok((0, true));
        }
        let written = match sys::send_vectored(fd, &[IoSlice::new(waiting), IoSlice::new(made)]) {
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        let offered = waiting.len() + made.len();
        if written >= waiting.len() {
            let rest = &made[written - waiting.len()..];
            self.pending.clear();
            self.sent = 0;
            self.pending.extend_from_slice(rest);
        } else {
            self.sent += written;
            if !made.is_empty() {
                self.pending.drain(..self.sent);
                self.sent = 0;
                self.pending.extend_from_slice(made);
            }
        }
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            // A subscriber that keeps up holds nothing between turns: the handshake's flight,
            // or what a full socket left, is given back once sent.
            self.pending = Vec::new();
        }
        Ok((written, written == offered))
    }

    /// Encrypts application data into `cipher`; returns the bytes made.
    fn encrypt(&mut self, plain: &[u8], cipher: &mut [u8]) -> io::Result<usize> {
        let status = self.tls.process_tls_records(&mut self.incoming);
        let discard = status.discard;
        let made = match status.state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => traffic
                .encrypt(plain, cipher)
                .map_err(|e| io::Error::other(format!("TLS: {e}"))),
            Ok(other) => Err(io::Error::other(format!(
                "TLS: cannot encrypt in state {other:?}"
            ))),
            Err(e) => Err(io::Error::other(format!("TLS: {e}"))),
        };
        self.incoming.drain(..discard.min(self.incoming.len()));
        made
    }

    /// Sends close_notify, as a courtesy before the connection closes: best effort, never
    /// waiting.
    pub fn close_notify(&mut self, fd: RawFd) {
        if !self.established {
            return;
        }
        let mut alert = [0u8; 64];
        let status = self.tls.process_tls_records(&mut []);
        let made = match status.state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                traffic.queue_close_notify(&mut alert).unwrap_or(0)
            }
            _ => 0,
        };
        let waiting = &self.pending[self.sent..];
        let _ = sys::send_vectored(fd, &[IoSlice::new(waiting), IoSlice::new(&alert[..made])]);
    }

    /// Sends what is pending (an alert after a failure), best effort, never waiting, and
    /// forgets it.
    pub fn send_pending_now(&mut self, fd: RawFd) {
        let waiting = &self.pending[self.sent..];
        if !waiting.is_empty() {
            let _ = sys::send_vectored(fd, &[IoSlice::new(waiting)]);
        }
        self.pending = Vec::new();
        self.sent = 0;
    }
}

/// Appends what `encode` writes to `pending`, sized as it asks.
fn encode_into(
    pending: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), EncodeError> {
    let start = pending.len();
    let needed = match encode(&mut []) {
        Ok(_) => return Ok(()),
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            required_size
        }
        Err(e) => return Err(e),
    };
    pending.resize(start + needed, 0);
    match encode(&mut pending[start..]) {
        Ok(n) => {
            pending.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            pending.truncate(start);
            Err(e)
        }
    }
}
