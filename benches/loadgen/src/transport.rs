//! A client connection in plain TCP or in TLS (rustls), read and written the same way by the
//! subscribers, the publisher and the handshake scenario.

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{self, Read, Write};
use std::sync::Arc;

pub enum Transport {
    Plain(TcpStream),
    Tls(TcpStream, Box<rustls::ClientConnection>),
}

/// A TLS client configuration trusting the CA in `ca_file` (PEM), offering http/1.1, with
/// rustls's default session cache (so that a second connection resumes).
#[allow(deprecated)]
pub fn client_config(ca_file: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("{ca_file}: {e}"))? {
        roots.add(cert.map_err(|e| format!("{ca_file}: {e}"))?).map_err(|e| format!("{ca_file}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        // As browsers and curl: X25519 first.
        kx_groups: vec![
            rustls::crypto::ring::kx_group::X25519,
            rustls::crypto::ring::kx_group::SECP256R1,
        ],
        ..rustls::crypto::ring::default_provider()
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Transport {
    pub fn new(stream: TcpStream, tls: Option<&Arc<rustls::ClientConfig>>) -> io::Result<Transport> {
        Ok(match tls {
            None => Transport::Plain(stream),
            Some(config) => {
                let name = ServerName::try_from("localhost").expect("a valid name");
                let conn = rustls::ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
                Transport::Tls(stream, Box::new(conn))
            }
        })
    }

    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(stream) | Transport::Tls(stream, _) => stream,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(..))
    }


    /// Reads plaintext; `Ok(0)` at the end, `WouldBlock` when the socket has nothing more.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(buf),
            Transport::Tls(stream, conn) => loop {
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                match conn.read_tls(stream) {
                    Ok(0) => return Ok(0),
                    Ok(_) => {
                        conn.process_new_packets().map_err(io::Error::other)?;
                        flush_tls(stream, conn)?;
                    }
                    Err(e) => return Err(e),
                }
            },
        }
    }

    /// Writes plaintext: over TLS it is taken whole (rustls keeps it until the handshake is
    /// done and the socket takes it; `flush` sends more).
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.write(data),
            Transport::Tls(stream, conn) => {
                let n = conn.writer().write(data)?;
                flush_tls(stream, conn)?;
                Ok(n)
            }
        }
    }

    /// Sends what TLS holds, as far as the socket takes it.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(stream, conn) => flush_tls(stream, conn),
        }
    }
}

fn flush_tls(stream: &mut TcpStream, conn: &mut rustls::ClientConnection) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
