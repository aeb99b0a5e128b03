//! examples/nginx/ssed.conf in front of the daemon, with real nginx (TLS and HTTP/2), curl and
//! headless Chromium: events stream through it as they are published, replay works through it,
//! a browser opens ten EventSources to its origin, and publishing through it needs the token.
//!
//! The tested file is the shipped one, with only its placeholders replaced: ssed's address, the
//! two ports and the certificate paths. A test-only nginx.conf includes it in its `http` block,
//! as Debian's /etc/nginx/nginx.conf includes conf.d/*.conf.
//!
//! Without nginx, openssl or curl (with HTTP/2) the tests are skipped with the reason, unless the
//! environment variable CI is set: then they fail.

mod common;

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::PATIENCE;
use common::external::{
    Lines, Process, ROOT, Ssed, TempDir, available, browser_available, find_tool, free_port, run,
    run_browser_script, skip,
};

const EXAMPLE: &str = "examples/nginx/ssed.conf";
const TOKEN: &str = "test-publish-token";

#[test]
fn the_readme_nginx_section_is_the_example() {
    let example = fs::read_to_string(Path::new(ROOT).join(EXAMPLE)).expect("read the example");
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).expect("read README.md");
    assert!(
        readme.contains(&format!("```nginx\n{example}```\n")),
        "README.md's nginx section must be {EXAMPLE} verbatim, in an ```nginx block"
    );
}

#[test]
fn events_stream_through_nginx_over_http2_as_they_are_published() {
    let Some(proxy) = Proxy::start(Some(TOKEN)) else {
        return;
    };
    let topic = "live";
    let mut stream = proxy.subscribe(topic, None);
    for n in 1..=3 {
        let data = format!("event {n}");
        let id = proxy.publish_ok(topic, &data);
        // Each event arrives before the next one is published: nothing waits for a buffer.
        stream.wait_for(&format!("id {id}"), |l| l == format!("id: {id}"));
        stream.wait_for(&format!("data of {id}"), |l| l == format!("data: {data}"));
    }
    assert_eq!(
        stream.seen[0].trim_end(),
        "HTTP/2 200",
        "curl --http2 got {:?}",
        stream.seen
    );
}

#[test]
fn publishing_through_nginx_needs_the_token() {
    let Some(proxy) = Proxy::start(Some(TOKEN)) else {
        return;
    };
    let bearer = format!("Authorization: Bearer {TOKEN}");
    for (headers, why) in [
        (vec![], "no token"),
        (vec!["Authorization: Bearer wrong"], "a wrong token"),
        (
            vec!["X-Forwarded-For: 127.0.0.1"],
            "a forged X-Forwarded-For",
        ),
        (
            vec!["Forwarded;", "X-Forwarded-For;"],
            "empty proxy headers",
        ),
    ] {
        let (status, body) = proxy.publish(&headers, "topic=t&data=x");
        assert_eq!(status, 401, "a publish with {why} got {status}: {body}");
    }
    let (status, body) = proxy.publish(&[&bearer], "topic=t&data=x");
    assert_eq!(status, 200, "a publish with the token got {status}: {body}");
    assert!(body.trim().parse::<u64>().is_ok(), "no id in {body:?}");
}

/// Bug 3: the documented setup, run without a token, must not let anyone publish through it.
#[test]
fn without_a_token_nobody_publishes_through_nginx() {
    let Some(proxy) = Proxy::start(None) else {
        return;
    };
    for (headers, why) in [
        (vec![], "nothing"),
        (
            vec!["X-Forwarded-For: 127.0.0.1"],
            "a forged X-Forwarded-For",
        ),
        (
            vec!["Forwarded;", "X-Forwarded-For;", "X-Real-IP;"],
            "empty proxy headers",
        ),
        (vec!["Authorization: Bearer anything"], "some token"),
    ] {
        let (status, body) = proxy.publish(&headers, "topic=t&data=x");
        assert_eq!(
            status, 403,
            "a proxied publish with {why} got {status}: {body}"
        );
    }
    // The same request straight from loopback is allowed: the refusal is the proxy's mark.
    let direct = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-d",
            "topic=t&data=x",
        ])
        .arg(format!("http://{}/publish", proxy.ssed.addr))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&direct.stdout), "200");
}

#[test]
fn replay_with_last_event_id_through_nginx() {
    let Some(proxy) = Proxy::start(Some(TOKEN)) else {
        return;
    };
    let topic = "replay";
    let ids: Vec<String> = (1..=3)
        .map(|n| proxy.publish_ok(topic, &format!("kept {n}")))
        .collect();
    let mut stream = proxy.subscribe(topic, Some(&ids[0]));
    let replayed: Vec<String> = (0..2)
        .map(|_| stream.wait_for("a replayed id", |l| l.starts_with("id: ")))
        .collect();
    assert_eq!(
        replayed,
        [format!("id: {}", ids[1]), format!("id: {}", ids[2])]
    );
    assert!(
        !stream.seen.iter().any(|l| l.contains("kept 1")),
        "the event named by Last-Event-ID was sent again: {:?}",
        stream.seen
    );
}

#[test]
fn plain_http_redirects_to_https() {
    let Some(proxy) = Proxy::start(None) else {
        return;
    };
    let output = run(Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!("http://127.0.0.1:{}/events", proxy.http_port)));
    let answer = String::from_utf8_lossy(&output.stdout);
    assert_eq!(answer, "301 https://127.0.0.1/events");
}

#[test]
fn chromium_opens_ten_eventsources_to_the_proxy_origin() {
    if !browser_available("the Chromium test through nginx") {
        return;
    }
    let Some(proxy) = Proxy::start(Some(TOKEN)) else {
        return;
    };
    let stdout = run_browser_script(
        "many_eventsources.mjs",
        &[proxy.origin().as_str(), TOKEN, "10"],
        40,
    );
    assert!(stdout.contains("ok: 10 EventSources"), "{stdout}");
    common::external::note(stdout.trim_end());
}

/// ssed behind nginx running the example configuration; both stopped by PID on drop.
struct Proxy {
    // Field order is drop order: nginx stops before ssed, and the directory goes last.
    _nginx: Process,
    ssed: Ssed,
    https_port: u16,
    http_port: u16,
    _dir: TempDir,
}

impl Proxy {
    /// ssed started as the example says (with `token`, or without a publish token), and
    /// nginx in front of it. None (after saying why) when a tool is missing and CI is not set.
    fn start(token: Option<&str>) -> Option<Proxy> {
        if !available(&["nginx", "openssl", "curl"], "the nginx tests") || !curl_speaks_http2() {
            return None;
        }
        let dir = TempDir::new("nginx");
        make_certificate(&dir);
        let args = documented_ssed_args(token);
        let ssed = Ssed::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
        // A port found free can be taken before nginx binds it: try again with new ones.
        for _ in 0..3 {
            let (https_port, http_port) = (free_port(), free_port());
            write_config(&dir, ssed.addr, https_port, http_port);
            let nginx = start_nginx(&dir);
            if let Some(nginx) = wait_listening(nginx, &dir, https_port) {
                return Some(Proxy {
                    _nginx: nginx,
                    ssed,
                    https_port,
                    http_port,
                    _dir: dir,
                });
            }
        }
        panic!("nginx could not bind free ports: {}", error_log(&dir));
    }

    fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// `curl --http2 -N` on the stream, its lines (response head included) read as they come.
    fn subscribe(&self, topic: &str, last_event_id: Option<&str>) -> Stream {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "-N", "-k", "--http2", "-D", "-", "--max-time", "30"])
            .arg(format!("{}/events?topic={topic}", self.origin()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(id) = last_event_id {
            command.args(["-H", &format!("Last-Event-ID: {id}")]);
        }
        let mut process = Process::start(&mut command);
        let mut lines = Lines::new(process.child.stdout.take().expect("piped stdout"));
        // nginx sends the head once ssed has answered, so ssed has the subscriber from now on.
        lines.wait_for("the end of the stream's head", |l| l.trim_end().is_empty());
        Stream {
            lines,
            _curl: process,
        }
    }

    /// POSTs a form to /publish through the proxy with extra headers; the status and body.
    fn publish(&self, headers: &[&str], form: &str) -> (u16, String) {
        let mut command = Command::new("curl");
        command.args(["-sS", "-k", "--http2", "-w", "\n%{http_code}", "-d", form]);
        for header in headers {
            command.args(["-H", header]);
        }
        let output = run(command.arg(format!("{}/publish", self.origin())));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').expect("curl prints the status");
        (status.parse().expect("a status code"), body.to_owned())
    }

    /// Publishes with the token and returns the event's id.
    fn publish_ok(&self, topic: &str, data: &str) -> String {
        let form = format!("topic={topic}&data={}", data.replace(' ', "+"));
        let (status, body) = self.publish(&[&format!("Authorization: Bearer {TOKEN}")], &form);
        assert_eq!(status, 200, "publish through nginx: {body}");
        body.trim().to_owned()
    }
}

/// A curl reading an event stream; killed on drop.
struct Stream {
    lines: Lines,
    _curl: Process,
}

impl std::ops::Deref for Stream {
    type Target = Lines;
    fn deref(&self) -> &Lines {
        &self.lines
    }
}

impl std::ops::DerefMut for Stream {
    fn deref_mut(&mut self) -> &mut Lines {
        &mut self.lines
    }
}

/// The flags of the ssed command line in the example's opening comment, less `--listen` (the
/// test picks the port), with the test's token or without `--publish-token`.
fn documented_ssed_args(token: Option<&str>) -> Vec<String> {
    let example = fs::read_to_string(Path::new(ROOT).join(EXAMPLE)).expect("read the example");
    let line = example
        .lines()
        .find_map(|l| l.strip_prefix("#   ssed "))
        .unwrap_or_else(|| panic!("{EXAMPLE} should show the ssed command line"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut args = Vec::new();
    for pair in words.chunks(2) {
        match (pair[0], token) {
            ("--listen", _) | ("--publish-token", None) => {}
            ("--publish-token", Some(token)) => {
                args.extend(["--publish-token".into(), token.into()])
            }
            _ => args.extend(pair.iter().map(|w| w.to_string())),
        }
    }
    args
}

fn curl_speaks_http2() -> bool {
    let version = Command::new("curl").arg("--version").output();
    let features = version.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    features.is_ok_and(|f| f.contains("HTTP2")) || skip("the nginx tests: curl without HTTP2")
}

fn make_certificate(dir: &TempDir) {
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem")));
}

/// The example with its placeholders replaced, and a main nginx.conf that includes it.
fn write_config(dir: &TempDir, ssed: SocketAddr, https_port: u16, http_port: u16) {
    let example = fs::read_to_string(Path::new(ROOT).join(EXAMPLE)).expect("read the example");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let site = [
        ("server 127.0.0.1:8080;", format!("server {ssed};")),
        (
            "listen 443 ssl http2;",
            format!("listen 127.0.0.1:{https_port} ssl http2;"),
        ),
        ("listen 80;", format!("listen 127.0.0.1:{http_port};")),
        (
            "/etc/ssl/certs/sse.example.com.pem",
            cert.display().to_string(),
        ),
        (
            "/etc/ssl/private/sse.example.com.key",
            key.display().to_string(),
        ),
    ]
    .iter()
    .fold(example, |text, (placeholder, value)| {
        assert_eq!(
            text.matches(placeholder).count(),
            1,
            "{EXAMPLE} should contain `{placeholder}` once, for the test to replace"
        );
        text.replace(placeholder, value)
    });
    fs::write(dir.join("ssed.conf"), site).expect("write ssed.conf");

    let d = dir.path().display();
    let main = format!(
        "worker_processes 1;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log notice;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   include {d}/ssed.conf;\n\
         }}\n"
    );
    fs::write(dir.join("nginx.conf"), main).expect("write nginx.conf");
}

fn start_nginx(dir: &TempDir) -> Process {
    let _ = fs::remove_file(dir.join("error.log"));
    let nginx = find_tool("nginx").expect("nginx was found before");
    Process::start_group(
        Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// The running nginx once its TLS port accepts; None when it exited because a port was taken.
fn wait_listening(mut nginx: Process, dir: &TempDir, port: u16) -> Option<Process> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = nginx.exited() {
            let log = error_log(dir);
            assert!(log.contains("in use"), "nginx exited ({status}):\n{log}");
            return None;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(nginx);
        }
        assert!(
            Instant::now() < deadline,
            "nginx did not listen:\n{}",
            error_log(dir)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn error_log(dir: &TempDir) -> String {
    fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}
