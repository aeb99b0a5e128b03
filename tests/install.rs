//! `make install` into a staging directory (DESTDIR), then the C example built against the
//! installed tree with `pkg-config --cflags --libs ssed`, exactly as the README shows: it runs
//! with the installed libssed.so and publishes an event a subscriber receives.
//!
//! Without make, a C compiler or pkg-config the test is skipped with the reason, unless the
//! environment variable CI is set: then it fails.

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

use common::Sse;
use common::external::{Lines, Process, ROOT, TempDir, available, run};

const PREFIX: &str = "/usr";

#[test]
fn make_install_then_pkg_config_builds_the_c_example() {
    if !available(&["make", "cc", "pkg-config"], "the install test") {
        return;
    }
    let stage = TempDir::new("install");
    let root = stage.join("root");
    run(Command::new("make")
        .args(["--no-print-directory", "install"])
        .arg(format!("DESTDIR={}", root.display()))
        .arg(format!("PREFIX={PREFIX}"))
        .current_dir(ROOT));
    for file in [
        "bin/ssed",
        "lib/libssed.so",
        "lib/libssed.a",
        "include/ssed.h",
        "lib/pkgconfig/ssed.pc",
        "lib/systemd/system/ssed.service",
        "lib/systemd/system/ssed.socket",
        "share/man/man1/ssed.1",
    ] {
        let path = root.join(format!("usr/{file}"));
        assert!(
            path.is_file(),
            "make install did not install {}",
            path.display()
        );
    }
    let unit = fs::read_to_string(root.join("usr/lib/systemd/system/ssed.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/ssed "),
        "the installed unit: {unit}"
    );
    let socket = fs::read_to_string(root.join("usr/lib/systemd/system/ssed.socket")).unwrap();
    assert!(
        socket.contains("systemd-analyze verify /usr/lib/systemd/system/ssed.socket"),
        "the installed socket unit names where it is: {socket}"
    );

    // The README's line, with pkg-config looking only into the staged tree.
    let lib = root.join("usr/lib");
    let program = stage.join("publish");
    let build = format!(
        "cc examples/c/publish.c $(pkg-config --cflags --libs ssed) -Wl,-rpath,{} -o {}",
        lib.display(),
        program.display()
    );
    run(Command::new("sh")
        .args(["-c", &build])
        .env("PKG_CONFIG_LIBDIR", lib.join("pkgconfig"))
        .env("PKG_CONFIG_SYSROOT_DIR", &root)
        .current_dir(ROOT));

    let mut publisher = Process::start(
        Command::new(&program)
            .args(["127.0.0.1:0", "news"])
            // cargo test points it at target/*/deps, which would win over the rpath.
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut log = Lines::new(publisher.child.stderr.take().expect("piped stderr"));
    let line = log.wait_for("the listening line", |l| l.contains("listening on http://"));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/events"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let maps = fs::read_to_string(format!("/proc/{}/maps", publisher.pid())).unwrap();
    assert!(
        maps.contains(&format!("{}/libssed.so", lib.display())),
        "the example did not load the installed libssed.so:\n{maps}"
    );

    let mut sse = Sse::open(addr, "/events?topic=news", "");
    let mut stdin = publisher.child.stdin.take().expect("piped stdin");
    stdin.write_all(b"hello from C\n").unwrap();
    assert_eq!(sse.next_event().data.as_deref(), Some("hello from C"));

    drop(stdin); // end of input: the example flushes and exits
    let status = publisher
        .wait_exit(common::PATIENCE)
        .expect("the example exits");
    assert!(status.success(), "the example exited with {status}");
}
