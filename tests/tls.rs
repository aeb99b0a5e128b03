//! HTTPS (SPEC section 12): the daemon with `--tls-cert` and `--tls-key`, against real clients
//! (curl and openssl with a test CA the test makes, rustls for the tests that hold a hundred
//! streams, the PHP bindings of the C API): every request over TLS 1.3 and 1.2 with ALPN
//! http/1.1, a certificate renewed under 100 open streams without dropping one, every pair
//! that cannot serve refused at start and at reload with the file and the reason, plain HTTP
//! to the HTTPS port refused, and a trickled ClientHello cut at the head timeout.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::external::{Lines, ROOT, Ssed, TempDir, available, run};
use common::tls::{Pki, TlsSse, served_serial};
use common::{PATIENCE, connect, wait_until};

fn tools() -> bool {
    available(&["openssl", "curl"], "the HTTPS tests")
}

/// Runs curl trusting only `ca`, and returns what it printed; fails unless it succeeds.
fn curl(ca: &Path, args: &[&str]) -> String {
    let output = run(Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(args));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn https(addr: SocketAddr, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", addr.port())
}

fn start(cert: &Path, key: &Path, extra: &[&str]) -> Ssed {
    let mut args = vec![
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ssed::start(&args)
}

/// A `curl -N` subscriber whose output lines are read as they come.
fn curl_stream(ca: &Path, url: &str, headers: &[&str]) -> (common::external::Process, Lines) {
    let mut command = Command::new("curl");
    command
        .args(["-sSN", "--max-time", "30", "--cacert"])
        .arg(ca);
    for header in headers {
        command.args(["-H", header]);
    }
    let mut process = common::external::Process::start(
        command
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let lines = Lines::new(process.child.stdout.take().unwrap());
    (process, lines)
}

#[test]
fn curl_speaks_every_request_over_tls_13_and_12_with_alpn_http11() {
    if !tools() {
        return;
    }
    let pki = Pki::new("tls-curl");
    let (cert, key) = pki.issue("server", 1001, 30, "ec");
    let history = TempDir::new("tls-history");
    let file = history.join("events");
    let ssed = start(&cert, &key, &["--history-file", file.to_str().unwrap()]);
    for version in [
        ["--tlsv1.3", "--tls-max", "1.3"],
        ["--tlsv1.2", "--tls-max", "1.2"],
    ] {
        let mut args = vec!["-v"];
        args.extend(version);
        let url = https(ssed.addr, "/health");
        args.push(&url);
        let output = run(Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&pki.ca)
            .args(&args));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "ok",
            "{version:?}"
        );
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(log.contains("ALPN: server accepted http/1.1"), "{log}");
        let wanted = if version[0] == "--tlsv1.3" {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        };
        assert!(
            log.contains(&format!("SSL connection using {wanted}")),
            "{log}"
        );
    }
    // Nothing older than TLS 1.2.
    let old = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--tlsv1.1",
            "--tls-max",
            "1.1",
            "--cacert",
        ])
        .arg(&pki.ca)
        .arg(https(ssed.addr, "/health"))
        .output()
        .unwrap();
    assert!(!old.status.success(), "TLS 1.1 must be refused");

    // A stream, a publish, a replay with Last-Event-ID, the metrics and the viewer.
    let (_sub, mut lines) = curl_stream(&pki.ca, &https(ssed.addr, "/events?topic=news"), &[]);
    wait_until(
        || curl(&pki.ca, &[&https(ssed.addr, "/metrics")]).contains("ssed_subscribers 1"),
        "the curl stream",
    );
    let id = curl(
        &pki.ca,
        &[
            "-d",
            "topic=news",
            "-d",
            "data=over TLS",
            &https(ssed.addr, "/publish"),
        ],
    )
    .trim()
    .to_owned();
    lines.wait_for("the event", |l| l == "data: over TLS");
    let second = curl(
        &pki.ca,
        &[
            "-d",
            "topic=news",
            "-d",
            "data=second",
            &https(ssed.addr, "/publish"),
        ],
    )
    .trim()
    .to_owned();
    lines.wait_for("the second event", |l| l == "data: second");
    // A stream never ends: curl gives up after two seconds (exit 28) with what it received.
    let replay = Command::new("curl")
        .args(["-sSN", "--max-time", "2", "--cacert"])
        .arg(&pki.ca)
        .args(["-H", &format!("Last-Event-ID: {id}")])
        .arg(https(ssed.addr, "/events?topic=news"))
        .output()
        .unwrap();
    assert_eq!(replay.status.code(), Some(28));
    let replay = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.contains(&format!("id: {second}\ndata: second\n\n")),
        "{replay}"
    );
    assert!(!replay.contains("over TLS"), "{replay}");
    let metrics = curl(&pki.ca, &[&https(ssed.addr, "/metrics")]);
    assert!(
        metrics.contains("ssed_events_published_total 2"),
        "{metrics}"
    );
    let page = curl(&pki.ca, &[&https(ssed.addr, "/")]);
    assert!(page.contains("EventSource"), "the viewer page");
}

#[test]
fn plain_http_to_the_https_port_is_refused_and_noise_is_closed_at_once() {
    if !tools() {
        return;
    }
    let pki = Pki::new("tls-plain");
    let (cert, key) = pki.issue("server", 7, 30, "ec");
    let ssed = start(&cert, &key, &[]);
    // curl http:// to the port gets nginx's kind of answer, in plain HTTP.
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{}/health", ssed.addr.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.ends_with("\n400"), "{text}");
    assert!(
        text.contains("plain HTTP request was sent to an HTTPS port"),
        "{text}"
    );
    // Bytes that are neither TLS nor HTTP: the connection is closed at once.
    let mut stream = connect(ssed.addr);
    stream.write_all(b"\x00\x01\x02 not TLS\r\n\r\n").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let metrics = curl(&pki.ca, &[&https(ssed.addr, "/metrics")]);
    assert!(
        metrics.contains("ssed_requests_refused_total{reason=\"tls\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_trickled_client_hello_is_cut_at_the_head_timeout() {
    if !tools() {
        return;
    }
    let pki = Pki::new("tls-slowloris");
    let (cert, key) = pki.issue("server", 8, 30, "ec");
    let server = common::TestServer::start(ssed::Config {
        tls_cert: Some(cert),
        tls_key: Some(key),
        head_timeout: Duration::from_millis(1500),
        ..ssed::Config::default()
    });
    let mut stream = connect(server.addr);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // A handshake record announcing 512 bytes of ClientHello, sent a byte at a time.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.resize(517, 0x2a);
    let started = Instant::now();
    let mut cut = None;
    for byte in &hello {
        if stream.write_all(&[*byte]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(0) | Err(_)
                if started.elapsed() > Duration::from_millis(1400)
                    && (matches!(stream.read(&mut buf), Ok(0)) || started.elapsed() > PATIENCE) =>
            {
                cut = Some(started.elapsed());
                break;
            }
            _ => {}
        }
        assert!(started.elapsed() < PATIENCE, "never cut");
    }
    let cut = cut.expect("the trickled ClientHello was never cut");
    assert!(
        cut >= Duration::from_millis(1400) && cut < Duration::from_secs(4),
        "cut after {cut:?}"
    );
    wait_until(
        || server.handle.stats().connections == 0,
        "the connection closed",
    );
    assert_eq!(server.handle.stats().requests_refused, 1);
}

/// Waits out the one second of validity of a certificate issued with `-days 0` at `issued`.
fn wait_until_expired(issued: Instant) {
    let over = issued + Duration::from_millis(1100);
    std::thread::sleep(over.saturating_duration_since(Instant::now()));
}

/// Writes `name`.pem and .key over the served pair's paths, as a renewal (certbot, say) does.
fn install(pki: &Pki, name: &str, cert: &Path, key: &Path) {
    std::fs::copy(pki.dir.join(&format!("{name}.pem")), cert).unwrap();
    std::fs::copy(pki.dir.join(&format!("{name}.key")), key).unwrap();
}

#[test]
fn a_renewal_under_100_streams_drops_none_and_new_connections_see_it() {
    if !tools() {
        return;
    }
    let pki = Pki::new("tls-reload");
    pki.issue("first", 0x1001, 30, "ec");
    pki.issue("renewed", 0x1002, 60, "rsa");
    pki.issue("other", 0x1003, 30, "ec");
    pki.issue("expired", 0x1004, 0, "ec");
    let expired_at = Instant::now();
    let live = TempDir::new("tls-live");
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    install(&pki, "first", &cert, &key);
    let mut ssed = start(&cert, &key, &["--heartbeat", "0"]);
    assert_eq!(served_serial(ssed.addr, &pki.ca), "1001");
    let client = pki.client_config();
    let mut streams: Vec<TlsSse> = (0..100)
        .map(|_| TlsSse::open(ssed.addr, &client, "/events?topic=t"))
        .collect();
    let publish = |data: &str| {
        curl(
            &pki.ca,
            &[
                "-d",
                "topic=t",
                "-d",
                &format!("data={data}"),
                &https(ssed.addr, "/publish"),
            ],
        )
    };
    let every_stream_gets = |streams: &mut Vec<TlsSse>, data: &str| {
        for (n, stream) in streams.iter_mut().enumerate() {
            assert_eq!(stream.next_data(), data, "stream {n}");
        }
    };
    wait_until(
        || curl(&pki.ca, &[&https(ssed.addr, "/metrics")]).contains("ssed_subscribers 100"),
        "100 streams",
    );
    publish("before");
    every_stream_gets(&mut streams, "before");

    install(&pki, "renewed", &cert, &key);
    ssed.process.signal(libc::SIGHUP);
    ssed.log
        .wait_for("the reload", |l| l.contains("TLS: reloaded"));
    assert_eq!(served_serial(ssed.addr, &pki.ca), "1002");
    publish("after");
    every_stream_gets(&mut streams, "after");

    // Every pair that cannot serve keeps the renewed one, with the file and the reason.
    let keep = "TLS: keeping the certificate in use";
    // What is broken, how, and the log line that says so.
    type Fault<'a> = (&'a str, Box<dyn Fn() + 'a>, String);
    let faults: [Fault<'_>; 4] = [
        (
            "a missing key",
            Box::new(|| std::fs::remove_file(&key).unwrap()),
            format!("cannot read the key {}: No such file", key.display()),
        ),
        (
            "an unreadable certificate",
            Box::new(|| {
                std::fs::copy(pki.dir.join("renewed.key"), &key).unwrap();
                std::fs::remove_file(&cert).unwrap();
                std::fs::create_dir(&cert).unwrap();
            }),
            format!(
                "cannot read the certificate {}: Is a directory",
                cert.display()
            ),
        ),
        (
            "a key that is not the certificate's",
            Box::new(|| {
                std::fs::remove_dir(&cert).unwrap();
                std::fs::copy(pki.dir.join("renewed.pem"), &cert).unwrap();
                std::fs::copy(pki.dir.join("other.key"), &key).unwrap();
            }),
            format!(
                "the key in {} does not belong to the certificate in {}",
                key.display(),
                cert.display()
            ),
        ),
        (
            "an expired certificate",
            Box::new(|| {
                wait_until_expired(expired_at);
                install(&pki, "expired", &cert, &key)
            }),
            format!("the certificate in {} has expired", cert.display()),
        ),
    ];
    for (what, damage, why) in faults {
        damage();
        ssed.process.signal(libc::SIGHUP);
        let line = ssed.log.wait_for(what, |l| l.contains(keep));
        assert!(line.contains(&why), "{what}: {line}");
        assert_eq!(served_serial(ssed.addr, &pki.ca), "1002", "{what}");
    }
    publish("still here");
    every_stream_gets(&mut streams, "still here");
    let metrics = curl(&pki.ca, &[&https(ssed.addr, "/metrics")]);
    assert!(metrics.contains("ssed_subscribers 100"), "{metrics}");
}

#[test]
fn a_pair_that_cannot_serve_stops_the_daemon_naming_the_file_and_why() {
    if !tools() {
        return;
    }
    let pki = Pki::new("tls-start");
    let (cert, key) = pki.issue("good", 1, 30, "ed25519");
    let (_, other_key) = pki.issue("other", 2, 30, "ec");
    let (expired, expired_key) = pki.issue("expired", 3, 0, "ec");
    let expired_at = Instant::now();
    let directory = pki.dir.join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let missing = pki.dir.join("missing.pem");
    let not_pem = pki.dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    wait_until_expired(expired_at);
    let cases: [(&PathBuf, &PathBuf, String); 6] = [
        (
            &missing,
            &key,
            format!(
                "cannot read the certificate {}: No such file",
                missing.display()
            ),
        ),
        (
            &cert,
            &missing,
            format!("cannot read the key {}: No such file", missing.display()),
        ),
        (
            &directory,
            &key,
            format!(
                "cannot read the certificate {}: Is a directory",
                directory.display()
            ),
        ),
        (
            &not_pem,
            &key,
            format!("{} holds no certificate", not_pem.display()),
        ),
        (
            &cert,
            &other_key,
            format!(
                "the key in {} does not belong to the certificate in {}",
                other_key.display(),
                cert.display()
            ),
        ),
        (
            &expired,
            &expired_key,
            format!("the certificate in {} has expired", expired.display()),
        ),
    ];
    for (cert, key, why) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_ssed"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&why), "expected {why:?} in {stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
    // Half a pair is a usage error.
    let output = Command::new(env!("CARGO_BIN_EXE_ssed"))
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key"));
    // The good pair (an Ed25519 key) serves.
    let ssed = start(&cert, &key, &[]);
    assert_eq!(curl(&pki.ca, &[&https(ssed.addr, "/health")]).trim(), "ok");
}

/// The PHP FFI wrapper and the PHP extension, both over libssed's C API: HTTPS from
/// `tls_cert` and `tls_key`, and a reload that keeps the pair in use when the new one fails.
#[test]
fn php_serves_https_through_the_c_api_and_reloads() {
    if !tools() || !available(&["php", "phpize", "make"], "the PHP HTTPS test") {
        return;
    }
    let pki = Pki::new("tls-php");
    pki.issue("first", 0x501, 30, "ec");
    pki.issue("renewed", 0x502, 30, "ec");
    pki.issue("other", 0x503, 30, "ec");
    let live = TempDir::new("tls-php-live");
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    install(&pki, "first", &cert, &key);
    // libssed as `make -C c-tests lib` builds it.
    let lib = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target"))
        .join("release");
    run(Command::new("make")
        .args(["-C", "c-tests", "--no-print-directory", "lib"])
        .current_dir(ROOT));
    let ext = TempDir::new("tls-php-ext");
    run(Command::new("make")
        .args(["-C", "c-tests", "--no-print-directory", "php-ext-module"])
        .arg(format!("PHP_EXT={}", ext.path().display()))
        .current_dir(ROOT));
    let script = Path::new(ROOT).join("tests/tls/php_https.php");
    for binding in ["ffi", "ext"] {
        install(&pki, "first", &cert, &key);
        let mut php = Command::new("php");
        if binding == "ext" {
            php.arg("-d").arg(format!(
                "extension={}/modules/ssed.so",
                ext.path().display()
            ));
        } else {
            php.args(["-d", "ffi.enable=1"]);
        }
        let mut process = common::external::Process::start(
            php.arg(&script)
                .arg(binding)
                .arg(&cert)
                .arg(&key)
                .env("SSED_LIB", lib.join("libssed.so"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let mut stdin = process.child.stdin.take().unwrap();
        let mut lines = Lines::new(process.child.stdout.take().unwrap());
        let port = lines.wait_for("the port", |l| l.starts_with("port "))[5..].to_owned();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert_eq!(served_serial(addr, &pki.ca), "0501", "{binding}");
        let (_sub, mut events) = curl_stream(&pki.ca, &https(addr, "/events"), &[]);
        wait_until(
            || curl(&pki.ca, &[&https(addr, "/metrics")]).contains("ssed_subscribers 1"),
            "the stream",
        );
        writeln!(stdin, "publish").unwrap();
        events.wait_for("the event from PHP", |l| l == "data: from PHP");
        // A key that is not the certificate's: refused, the first pair stays.
        std::fs::copy(pki.dir.join("other.key"), &key).unwrap();
        writeln!(stdin, "reload").unwrap();
        let refused = lines.wait_for("a refused reload", |l| l.starts_with("reload "));
        assert!(
            refused.contains("reload -2 ") && refused.contains("does not belong"),
            "{refused}"
        );
        assert_eq!(served_serial(addr, &pki.ca), "0501", "{binding}");
        install(&pki, "renewed", &cert, &key);
        writeln!(stdin, "reload").unwrap();
        let done = lines.wait_for("a reload", |l| l.starts_with("reload "));
        assert_eq!(done, "reload 0 ", "{binding}");
        assert_eq!(served_serial(addr, &pki.ca), "0502", "{binding}");
        writeln!(stdin, "publish").unwrap();
        events.wait_for("the event after the reload", |l| l == "data: from PHP");
        drop(stdin);
        assert!(
            process.wait_exit(PATIENCE).is_some_and(|s| s.success()),
            "{binding}"
        );
    }
}

/// The SHA-256 of the certificate's public key, base64, as Chromium's pin flag takes it.
fn spki_pin(cert: &Path) -> String {
    let pipeline = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let output = run(Command::new("sh").args(["-c", &pipeline]));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[cfg(feature = "jwt")]
#[test]
fn chromium_eventsource_and_the_secure_mercure_cookie_over_https() {
    use common::external::{browser_available, run_browser_script};
    use common::jwt::{KEY, token};
    if !tools() || !browser_available("the HTTPS browser test") {
        return;
    }
    let pki = Pki::new("tls-browser");
    let (cert, key) = pki.issue("server", 0x77, 30, "ec");
    let ssed = start(&cert, &key, &["--subscriber-jwt-key", KEY, "--anonymous"]);
    let reader = token(r#"{"mercure":{"subscribe":["https://example.com/books/{id}"]}}"#);
    let png = Path::new(ROOT).join("target/viewer-https.png");
    let _ = std::fs::remove_file(&png);
    let stdout = run_browser_script(
        "https_eventsource.mjs",
        &[
            https(ssed.addr, ""),
            spki_pin(&cert),
            reader,
            png.display().to_string(),
        ],
        60,
    );
    assert!(stdout.contains("ok: over HTTPS"), "{stdout}");
    assert!(png.exists(), "no screenshot at {}", png.display());
}

/// Symfony's Mercure component publishes to the hub over HTTPS unchanged, trusting the test CA
/// through PHP's settings.
#[cfg(feature = "jwt")]
#[test]
fn symfony_publishes_over_https() {
    use common::jwt::{KEY, token};
    const SYMFONY_MERCURE: &str = "/usr/share/php/Symfony/Component/Mercure/autoload.php";
    if !tools() || !available(&["php"], "the Symfony HTTPS test") {
        return;
    }
    if !Path::new(SYMFONY_MERCURE).exists() {
        common::external::skip("the Symfony HTTPS test: php-symfony-mercure is missing");
        return;
    }
    let pki = Pki::new("tls-symfony");
    let (cert, key) = pki.issue("server", 0x55, 30, "rsa");
    let ssed = start(
        &cert,
        &key,
        &["--publisher-jwt-key", KEY, "--subscriber-jwt-key", KEY],
    );
    let hub = https(ssed.addr, "/.well-known/mercure");
    let reader = token(r#"{"mercure":{"subscribe":["*"]}}"#);
    let (_sub, mut events) = curl_stream(
        &pki.ca,
        &format!("{hub}?topic=*"),
        &[&format!("Authorization: Bearer {reader}")],
    );
    wait_until(
        || {
            let metrics = Command::new("curl")
                .args(["-sS", "--cacert"])
                .arg(&pki.ca)
                .arg(https(ssed.addr, "/metrics"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&metrics.stdout).contains("ssed_subscribers 1")
        },
        "the hub subscriber",
    );
    let ca = format!("{}", pki.ca.display());
    let output = Command::new("timeout")
        .args(["60", "php", "-d", &format!("openssl.cafile={ca}"), "-d"])
        .arg(format!("curl.cainfo={ca}"))
        .arg(Path::new(ROOT).join("tests/mercure/symfony_publish.php"))
        .args([
            &hub,
            &token(r#"{"mercure":{"publish":["*"]}}"#),
            &token(r#"{"mercure":{"publish":["https://example.com/books/{id}"]}}"#),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<&str> = stdout.lines().collect();
    assert_eq!(answers.len(), 7, "{stdout}");
    assert_eq!(answers[3], "book-3-v2");
    assert_eq!(answers[4], "refused 403");
    assert!(answers[6].starts_with("urn:uuid:"), "{stdout}");
    events.wait_for("Symfony's last update", |l| l == "data: end");
    assert!(
        events
            .seen
            .iter()
            .any(|l| l == "data: {\"title\":\"private\"}")
    );
}

/// Counts the TLS records in a byte stream as it passes: the 5-byte header of each gives its
/// type and length.
#[derive(Default)]
struct RecordCounter {
    header: Vec<u8>,
    left: usize,
    application_data: usize,
}

impl RecordCounter {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.left > 0 {
                let skip = self.left.min(bytes.len());
                self.left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let take = (5 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() == 5 {
                if self.header[0] == 0x17 {
                    self.application_data += 1;
                }
                self.left = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                self.header.clear();
            }
        }
    }
}

/// A replay of 200 events is queued at once: it goes out in as few records as its bytes fill
/// (one), not one record per event. TLS 1.2, where the session ticket travels in the
/// handshake, so that every application-data record on the wire is the stream's.
#[test]
fn queued_frames_go_out_in_as_few_records_as_they_fill() {
    if !tools() {
        return;
    }
    let pki = Pki::new("tls-records");
    let (cert, key) = pki.issue("server", 9, 30, "ec");
    let ssed = start(&cert, &key, &["--heartbeat", "0"]);
    let publish = |data: &str| {
        curl(
            &pki.ca,
            &[
                "-d",
                "topic=r",
                "-d",
                &format!("data={data}"),
                &https(ssed.addr, "/publish"),
            ],
        )
        .trim()
        .to_owned()
    };
    let first = publish("event 0");
    for n in 1..200 {
        publish(&format!("event {n}"));
    }
    // A relay that counts the records ssed sends.
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let upstream = ssed.addr;
    let counter = std::sync::Arc::new(std::sync::Mutex::new(RecordCounter::default()));
    let seen = counter.clone();
    std::thread::spawn(move || {
        let (mut client, _) = relay.accept().unwrap();
        let mut server = std::net::TcpStream::connect(upstream).unwrap();
        let (mut client_in, mut server_out) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || std::io::copy(&mut client_in, &mut server_out));
        let mut buf = [0u8; 16384];
        while let Ok(n) = server.read(&mut buf) {
            if n == 0 || client.write_all(&buf[..n]).is_err() {
                break;
            }
            seen.lock().unwrap().feed(&buf[..n]);
        }
    });
    let tls12 = pki.client_config_for(&[&rustls::version::TLS12]);
    let mut stream = TlsSse::open(
        relay_addr,
        &tls12,
        &format!("/events?topic=r&lastEventId={first}"),
    );
    for n in 1..200 {
        assert_eq!(stream.next_data(), format!("event {n}"));
    }
    let records = counter.lock().unwrap().application_data;
    // The head and 199 events of about 40 bytes: some 8 KB, one record (two, if the head went
    // out in a turn of its own).
    assert!(
        (1..=2).contains(&records),
        "{records} records for 199 events"
    );
}
