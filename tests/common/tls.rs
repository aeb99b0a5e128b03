//! HTTPS in tests: a test CA made with openssl, certificates it issues, what a server presents
//! (its serial, read with `openssl s_client`), and a TLS event-stream client (rustls) for the
//! tests that hold many streams.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::external::{TempDir, run};
use super::{PATIENCE, find};

/// A certificate authority of the test's own, in a temporary directory.
pub struct Pki {
    pub dir: TempDir,
    pub ca: PathBuf,
    ca_key: PathBuf,
}

impl Pki {
    pub fn new(what: &str) -> Pki {
        let dir = TempDir::new(what);
        let ca = dir.join("ca.pem");
        let ca_key = dir.join("ca.key");
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "30", "-subj", "/CN=ssed test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca));
        Pki { dir, ca, ca_key }
    }

    /// A server certificate for localhost and 127.0.0.1 with this serial, valid for `days`
    /// (0: it expires as it is made), and its key (`algorithm`: `ec`, `rsa` or `ed25519`).
    /// Returns the certificate's and the key's paths, `NAME.pem` and `NAME.key`.
    pub fn issue(&self, name: &str, serial: u32, days: u32, algorithm: &str) -> (PathBuf, PathBuf) {
        let cert = self.dir.join(&format!("{name}.pem"));
        let key = self.dir.join(&format!("{name}.key"));
        let csr = self.dir.join(&format!("{name}.csr"));
        let ext = self.dir.join(&format!("{name}.ext"));
        let mut genkey = Command::new("openssl");
        genkey.args(["genpkey", "-algorithm", algorithm]);
        match algorithm {
            "ec" => genkey.args(["-pkeyopt", "ec_paramgen_curve:P-256"]),
            "rsa" => genkey.args(["-pkeyopt", "rsa_keygen_bits:2048"]),
            _ => &mut genkey,
        };
        run(genkey.arg("-out").arg(&key));
        run(Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=localhost", "-key"])
            .arg(&key)
            .arg("-out")
            .arg(&csr));
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&self.ca)
            .arg("-CAkey")
            .arg(&self.ca_key)
            .args([
                "-set_serial",
                &serial.to_string(),
                "-days",
                &days.to_string(),
            ])
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert));
        (cert, key)
    }

    /// A rustls client configuration trusting this CA only (with *ring*, as the server).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client_config_for(rustls::DEFAULT_VERSIONS)
    }

    /// The same, speaking only these TLS versions.
    #[allow(deprecated)]
    pub fn client_config_for(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            // As browsers and curl: X25519 first.
            kx_groups: vec![
                rustls::crypto::ring::kx_group::X25519,
                rustls::crypto::ring::kx_group::SECP256R1,
            ],
            ..rustls::crypto::ring::default_provider()
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// The serial number (hex, as openssl prints it) of the certificate a new connection to
/// `addr` is shown, verified against `ca` (the handshake fails otherwise).
pub fn served_serial(addr: SocketAddr, ca: &Path) -> String {
    let shown = run(Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .arg("-CAfile")
        .arg(ca)
        .arg("-verify_return_error")
        .stdin(Stdio::null()))
    .stdout;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    x509.stdin.take().unwrap().write_all(&shown).unwrap();
    let out = x509.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("no serial in {text:?}"))
        .to_owned()
}

/// An event stream read over TLS by rustls.
pub struct TlsSse {
    pub stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsSse {
    /// Opens `target` over TLS and checks the stream's head.
    pub fn open(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, target: &str) -> TlsSse {
        let tcp = super::connect(addr);
        let name = ServerName::try_from("localhost").unwrap();
        let tls = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let mut sse = TlsSse {
            stream: rustls::StreamOwned::new(tls, tcp),
            buf: Vec::new(),
        };
        let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        sse.stream.write_all(request.as_bytes()).unwrap();
        let head = sse.read_until(b"\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        sse
    }

    fn read_until(&mut self, end: &[u8]) -> String {
        let started = std::time::Instant::now();
        loop {
            if let Some(i) = find(&self.buf, end) {
                let text = String::from_utf8(self.buf[..i + end.len()].to_vec()).unwrap();
                self.buf.drain(..i + end.len());
                return text;
            }
            assert!(started.elapsed() < PATIENCE, "nothing more on the stream");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "the stream closed; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("stream read: {e}"),
            }
        }
    }

    /// The `data` of the next block that has some (comments and retry blocks skipped).
    pub fn next_data(&mut self) -> String {
        loop {
            let block = self.read_until(b"\n\n");
            let data: Vec<&str> = block
                .lines()
                .filter_map(|line| line.strip_prefix("data: "))
                .collect();
            if !data.is_empty() {
                return data.join("\n");
            }
        }
    }
}
