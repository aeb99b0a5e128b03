//! Reading a certificate chain and its private key from PEM files, checking that they can
//! serve, and the rustls server configuration built from them.
//!
//! Refused, with the file and the reason: a file that cannot be read, one without a
//! certificate or key in it, a key rustls cannot sign with, a key that is not the
//! certificate's, and a certificate outside its validity period (expired, or not valid yet):
//! every browser would refuse it, and a renewal that put an old file in place must not replace
//! a good pair.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::ProducesTickets;
use rustls::sign::CertifiedKey;

use super::Files;

/// The protocol a stream speaks inside TLS, offered by ALPN.
const HTTP_1_1: &[u8] = b"http/1.1";
/// Tickets sent after a TLS 1.3 handshake, for clients that open several connections.
const TLS13_TICKETS: usize = 2;
const DAY: u64 = 86_400;

/// A pair that loaded, and the configuration connections get from it.
pub(crate) struct Loaded {
    pub config: Arc<ServerConfig>,
    /// Seconds since the epoch after which the certificate is no longer valid.
    not_after: Option<u64>,
}

impl Loaded {
    /// For the log: which files, and for how long the certificate is valid.
    pub fn describe(&self, files: &Files) -> String {
        let mut text = format!(
            "certificate {} and key {}",
            files.cert.display(),
            files.key.display()
        );
        if let Some(not_after) = self.not_after {
            let left = not_after.saturating_sub(now_secs());
            text.push_str(&format!(
                " (the certificate expires in {} days)",
                left / DAY
            ));
        }
        text
    }
}

/// Reads and checks the pair named by `files` and builds the configuration: TLS 1.3 and 1.2
/// with rustls's default cipher suites (AEADs only, forward secrecy only), ALPN `http/1.1`,
/// resumption through `ticketer`'s stateless tickets.
pub(crate) fn load(files: &Files, ticketer: &Arc<dyn ProducesTickets>) -> io::Result<Loaded> {
    let provider = Arc::new(provider());
    let chain = read_chain(files)?;
    let key = read_key(files)?;
    let not_after = check_validity(files, &chain[0])?;
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => invalid(format!(
            "the key in {} does not belong to the certificate in {}",
            files.key.display(),
            files.cert.display()
        )),
        other => invalid(format!(
            "the key in {} cannot be used: {other}",
            files.key.display()
        )),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    config.ticketer = ticketer.clone();
    config.send_tls13_tickets = TLS13_TICKETS;
    // Stateless tickets carry the session: nothing is kept per client on the server.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
    })
}

fn read_chain(files: &Files) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = &files.cert;
    let text = std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read the certificate {}: {e}", path.display()),
        )
    })?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| invalid(format!("{}: malformed PEM: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(invalid(format!(
            "{} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
            path.display()
        )));
    }
    Ok(chain)
}

fn read_key(files: &Files) -> io::Result<PrivateKeyDer<'static>> {
    let path = &files.key;
    let text = std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read the key {}: {e}", path.display()),
        )
    })?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(format!(
            "{} holds no private key (a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)",
            path.display()
        )),
        other => invalid(format!("{}: malformed PEM: {other}", path.display())),
    })
}

/// Refuses a certificate outside its validity period. Returns when it expires.
///
/// webpki checks the validity period of the end-entity certificate before anything else, so
/// a chain check without trust anchors fails with the period's error when there is one, and
/// with an unknown issuer otherwise. The same check at the farthest time the format can hold
/// tells the end of the period.
fn check_validity(files: &Files, end_entity: &CertificateDer<'_>) -> io::Result<Option<u64>> {
    let path = files.cert.display();
    let cert = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| invalid(format!("the certificate in {path} cannot be parsed: {e}")))?;
    let verify = |at: UnixTime| {
        cert.verify_for_usage(
            &[],
            &[],
            &[],
            at,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
    };
    match verify(UnixTime::now()) {
        Err(webpki::Error::CertExpired { not_after, .. }) => {
            let ago = now_secs().saturating_sub(not_after.as_secs()) / DAY;
            return Err(invalid(format!(
                "the certificate in {path} has expired ({ago} days ago)"
            )));
        }
        Err(webpki::Error::InvalidCertValidity) => {
            return Err(invalid(format!(
                "the certificate in {path} has a validity period that ends before it begins"
            )));
        }
        Err(webpki::Error::CertNotValidYet { not_before, .. }) => {
            let days = not_before
                .as_secs()
                .saturating_sub(now_secs())
                .div_ceil(DAY);
            return Err(invalid(format!(
                "the certificate in {path} is not valid yet (for {days} more days)"
            )));
        }
        _ => {}
    }
    let end_of_time = UnixTime::since_unix_epoch(Duration::from_secs(253_402_300_799));
    Ok(match verify(end_of_time) {
        Err(webpki::Error::CertExpired { not_after, .. }) => Some(not_after.as_secs()),
        _ => None,
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The crypto provider: *ring* (see the README's "HTTPS" for why). rustls 0.23.48 marks it
/// deprecated because it has no post-quantum key exchange: connections use X25519 (or P-256,
/// P-384) ECDHE, which every client offers.
///
/// The key exchange prefers X25519: it is the share every browser and curl send first, and
/// *ring* computes it many times faster than P-384 (which has no assembly there). *ring*'s
/// defaults put P-384 first: a client that sent no P-384 share would be asked for one, a
/// HelloRetryRequest, one more round trip and the slow curve.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    rustls::crypto::CryptoProvider {
        kx_groups: vec![X25519, SECP256R1, SECP384R1],
        ..rustls::crypto::ring::default_provider()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_offers_only_aead_suites_with_forward_secrecy() {
        for suite in provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                "{name}"
            );
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name}"
            );
        }
    }

    #[test]
    fn x25519_is_the_first_key_exchange() {
        let names: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(format!("{names:?}"), "[X25519, secp256r1, secp384r1]");
    }

    #[test]
    fn a_missing_file_is_named() {
        let files = Files {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
        let Err(e) = load(&files, &ticketer) else {
            panic!("a missing file must not load");
        };
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    }
}
