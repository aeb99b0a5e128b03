//! HTTPS (cargo feature `tls`): the certificate and key a server presents, reloadable while it
//! runs, and each connection's TLS session.
//!
//! `certificate.rs` reads and checks a certificate chain and its key and builds the rustls
//! configuration from them; [`Certificates`] holds the one new connections get, swapped whole
//! by a reload (a signal or the C API, on the caller's thread: files are never read on the
//! loop's). `session.rs` is one connection's TLS: the handshake, decrypting requests, and
//! encrypting the queued shared frames into as few records as they fill, one send per turn.

mod certificate;
mod session;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::server::ProducesTickets;

use crate::config::LogLevel;
use crate::log::Logger;

pub(crate) use certificate::load;
pub(crate) use session::{Buffers, Read, Session};

/// Where the certificate chain and its key are read from, at start and at every reload.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The configuration new connections get, and where it is reloaded from.
pub(crate) struct Certificates {
    files: Files,
    /// Kept across reloads, so that a session resumed with a ticket issued before a renewal
    /// still resumes after it.
    ticketer: Arc<dyn ProducesTickets>,
    current: Mutex<Arc<ServerConfig>>,
    log: Logger,
}

impl Certificates {
    /// Loads the pair, refusing what would not serve (the error names the file and why).
    pub fn open(files: Files, log: Logger) -> io::Result<Certificates> {
        let ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| io::Error::other(format!("TLS session tickets: {e}")))?;
        let loaded = load(&files, &ticketer)?;
        if log.enabled(LogLevel::Info) {
            log.line(
                LogLevel::Info,
                format_args!("TLS: {}", loaded.describe(&files)),
            );
        }
        Ok(Certificates {
            files,
            ticketer,
            current: Mutex::new(loaded.config),
            log,
        })
    }

    /// The configuration a connection accepted now gets.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.lock().clone()
    }

    /// Reads the pair again. On success new connections get it, and open ones go on with what
    /// they had; on failure the pair in use stays, and the error says which file and why.
    pub fn reload(&self) -> io::Result<()> {
        match load(&self.files, &self.ticketer) {
            Ok(loaded) => {
                *self.lock() = loaded.config.clone();
                if self.log.enabled(LogLevel::Info) {
                    let what = loaded.describe(&self.files);
                    self.log
                        .line(LogLevel::Info, format_args!("TLS: reloaded {what}"));
                }
                Ok(())
            }
            Err(e) => {
                self.log.line(
                    LogLevel::Quiet,
                    format_args!("TLS: keeping the certificate in use: {e}"),
                );
                Err(e)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<ServerConfig>> {
        // A swap is one assignment: a poisoned lock still holds a whole configuration.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
