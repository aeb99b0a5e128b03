//! Every shell recipe of README.md, run as a reader would paste it, so that a recipe that
//! breaks fails the tests. Each fenced `sh` block must be named in `RECIPES` below (a block no
//! recipe names fails the test, as does a recipe that names no block), with what it must show.
//!
//! The recipes run one after another, in the README's order, in the source tree, as pasted:
//! the same ports (8080, 6379...), `sudo make install`, `/etc/ssed`, `/tmp/...`, builds with
//! other features. So that this harms nothing on a shared machine, they run in a sandbox: a
//! network namespace of their own (its loopback is theirs alone), and the source tree,
//! `/usr/local`, `/etc` and `/tmp` seen through overlays whose writes go to a scratch
//! directory, shared by the recipes of one run (what one installs, the next finds) and removed
//! at the end. That needs root (CI runs as root); elsewhere the test is skipped with the
//! reason. The only stand-ins: `sudo` (the sandbox is root already), and `systemctl` and
//! `journalctl`, since systemd is not the test machine's PID 1: the stand-in `systemctl enable`
//! checks that each unit it names is installed and passes `systemd-analyze verify`.
//!
//! What a recipe runs for ever (a daemon, a program publishing for a minute) is stopped once
//! its output shows it works. Every process a recipe starts is stopped after it.

mod common;

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::external::{ROOT, skip};

/// How long a recipe may take: builds of the release and tiny daemons included.
const RECIPE_TIME: Duration = Duration::from_secs(900);

/// How a recipe is run, and what it must show.
struct Recipe {
    /// Which block: one whose text contains this (or, starting with `=`, equals the rest).
    block: &'static str,
    /// Files the reader saves first, from the README's other fenced blocks: (name, the first
    /// line of the block).
    files: &'static [(&'static str, &'static str)],
    /// Run in the same shell before the recipe: what the README assumes is running.
    before: &'static str,
    /// Lines the test leaves out, each with the reason.
    leave_out: &'static [(&'static str, &'static str)],
    run: Run,
    /// Checks run in the same shell after the recipe (a failing one fails it).
    after: &'static str,
    /// What its output must contain.
    shows: &'static [&'static str],
}

enum Run {
    /// Runs to its end, successfully.
    ToEnd,
    /// Serves for ever: stopped once its output shows this.
    Until(&'static str),
}

const RECIPE: Recipe = Recipe {
    block: "",
    files: &[],
    before: "",
    leave_out: &[],
    run: Run::ToEnd,
    after: "",
    shows: &[],
};

const HELLO_C: (&str, &str) = ("hello.c", "#include <stdio.h>");

const RECIPES: &[Recipe] = &[
    Recipe {
        block: "target/release/ssed --listen 127.0.0.1:8080 &",
        shows: &["data: hello"],
        ..RECIPE
    },
    Recipe {
        block: "cargo run --release -- --demo",
        leave_out: &[(
            "cargo test --release --all-features",
            "the test command this test runs within (.ci/run runs it)",
        )],
        run: Run::Until("ssed: viewer:    http://127.0.0.1:8080/?topic=demo"),
        ..RECIPE
    },
    Recipe {
        block: "=cargo build --release",
        after: "test -x target/release/ssed -a -f target/release/libssed.so",
        ..RECIPE
    },
    Recipe {
        block: "cargo tiny",
        after: "test -x target/tiny/ssed",
        ..RECIPE
    },
    Recipe {
        block: "sudo apt install ./ssed_0.1.0_amd64.deb",
        leave_out: &[
            (
                "sudo apt install ./ssed_0.1.0_amd64.deb",
                "it installs into /usr and the package database, outside the sandbox: \
                 tests/devices.rs builds, unpacks and checks (lintian) the three packages",
            ),
            (
                "sudo apt install ./ssed_0.1.0_arm64.deb",
                "another machine's package",
            ),
            (
                "sudo apt install ./ssed_0.1.0_armhf.deb",
                "another machine's package",
            ),
        ],
        // The packages it names are the ones `make deb-ARCH` makes (tests/devices.rs made them).
        after: "for arch in amd64 arm64 armhf; do dpkg-deb -I target/deb/ssed_0.1.0_$arch.deb \
                >/dev/null; done",
        ..RECIPE
    },
    Recipe {
        block: "sudo apt install ./libssed1_0.1.0_arm64.deb",
        leave_out: &[
            (
                "sudo apt install ./libssed1_0.1.0_arm64.deb",
                "an arm64 machine's packages, installed outside the sandbox: tests/devices.rs \
                 installs the amd64 ones and builds hello.c against them this way",
            ),
            ("cc hello.c $(pkg-config", "(with the packages above)"),
        ],
        // The packages hold what the lines need: the library, its header and its .pc file.
        after: "dpkg-deb -c target/deb/libssed1_0.1.0_arm64.deb | grep -q 'libssed.so.1$' && \
                dpkg-deb -c target/deb/libssed-dev_0.1.0_arm64.deb > /tmp/dev.list && \
                grep -q 'include/ssed.h$' /tmp/dev.list && grep -q 'pkgconfig/ssed.pc$' /tmp/dev.list",
        ..RECIPE
    },
    Recipe {
        block: "sudo dpkg --add-architecture arm64",
        leave_out: &[
            (
                "sudo dpkg --add-architecture",
                "the system's package setup: .ci/run does it",
            ),
            (
                "sudo apt-get update",
                "the network: .ci/run installs these packages",
            ),
            (
                "sudo apt-get install rustc-web",
                "the network: .ci/run installs these packages",
            ),
            ("    gcc-aarch64-linux-gnu", "(the same command)"),
            ("    libstd-rust-web-dev:arm64", "(the same command)"),
            ("    libc6:arm64", "(the same command)"),
        ],
        // Every package it names is installed.
        after: "dpkg-query -W rustc-web cargo-web rust-web-llvm lld-22 qemu-user-static \
                gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf gcc-i686-linux-gnu \
                libstd-rust-web-dev:arm64 libstd-rust-web-dev:armhf libstd-rust-web-dev:i386 \
                libc6:arm64 libc6:armhf libc6:i386 >/dev/null",
        ..RECIPE
    },
    Recipe {
        block: "make cross-arm64      # or cross-armhf, cross-i386",
        after: "test -x target/cross/aarch64-unknown-linux-gnu/tiny/ssed \
                -a -f target/cross/aarch64-unknown-linux-gnu/release/libssed.so",
        ..RECIPE
    },
    Recipe {
        block: "SSED_TEST_DAEMON=target/cross/armv7-unknown-linux-gnueabihf/release/ssed",
        leave_out: &[
            (
                "SSED_TEST_DAEMON=",
                "tests/devices.rs runs these suites against this daemon under qemu-arm-static",
            ),
            (
                "    cargo test --release --all-features --test http_api",
                "(the same command)",
            ),
            (
                "make -C c-tests run CC=arm-linux-gnueabihf-gcc",
                "tests/devices.rs builds and runs the C tests so under qemu-arm-static",
            ),
            ("    LIBDIR=$PWD/target/cross/armv7", "(the same command)"),
        ],
        after: "test -x target/cross/armv7-unknown-linux-gnueabihf/release/ssed",
        ..RECIPE
    },
    Recipe {
        block: "# PREFIX=/usr/local",
        after: "test -x /usr/local/bin/ssed -a -f /usr/local/lib/pkgconfig/ssed.pc \
                -a -f /usr/local/lib/systemd/system/ssed.socket",
        ..RECIPE
    },
    Recipe {
        block: "# static: libssed.a and the system libraries it needs (Libs.private)",
        files: &[HELLO_C],
        after: "test -x hello -a -x hello-static",
        ..RECIPE
    },
    Recipe {
        block: "printf '{\"price\": 42}' > msg.json",
        // The daemon the reader has running, and a subscriber to see what the recipe sends.
        before: "target/release/ssed 2>/dev/null & sleep 1\n\
                 curl -sN 'http://127.0.0.1:8080/events?topic=news' & sleep 1",
        after: "sleep 1",
        shows: &[
            "data: hello",
            "event: update\ndata: {\"price\": 42}",
            "retry: 10000\ndata: both",
        ],
        ..RECIPE
    },
    Recipe {
        block: "sudo systemctl enable --now ssed.socket ssed.service",
        after: "test \"$(stat -c %a /etc/ssed)\" = 700 && grep -q '^SSED_PUBLISH_TOKEN=.' /etc/ssed/ssed.env",
        shows: &["systemctl (stand-in): enabled ssed.socket ssed.service"],
        ..RECIPE
    },
    Recipe {
        block: "systemd-socket-activate -l",
        shows: &["data: hello"],
        ..RECIPE
    },
    Recipe {
        block: "--publish-socket /tmp/ssed.sock",
        shows: &["data: local"],
        ..RECIPE
    },
    Recipe {
        block: "cc -Iinclude hello.c -Ltarget/release",
        files: &[HELLO_C],
        run: Run::Until("curl -N http://127.0.0.1:8080/events"),
        ..RECIPE
    },
    Recipe {
        block: "make -C examples/c host",
        run: Run::Until("[host] session: "),
        ..RECIPE
    },
    Recipe {
        block: "require \"examples/php/ssed.php\"",
        run: Run::Until("curl -N http://127.0.0.1:8080/events"),
        ..RECIPE
    },
    Recipe {
        block: "examples/php/host.php",
        run: Run::Until("[host] session: "),
        ..RECIPE
    },
    Recipe {
        block: "cargo build --release --features redis",
        shows: &["data: hello"],
        ..RECIPE
    },
    Recipe {
        block: "--tls-cert cert.pem --tls-key key.pem &",
        shows: &["data: hello"],
        ..RECIPE
    },
    Recipe {
        block: "PUBLISHER_KEY=$(head -c 32",
        run: Run::Until("ssed: listening on http://127.0.0.1:8080"),
        ..RECIPE
    },
    Recipe {
        block: "MERCURE_URL=http://127.0.0.1:8080",
        after: "test -n \"$MERCURE_JWT_SECRET\"",
        ..RECIPE
    },
    Recipe {
        block: "SSED_PUBLISHER_JWT_KEY='!ChangeThis",
        run: Run::Until("ssed: listening on http://127.0.0.1:8080"),
        ..RECIPE
    },
    Recipe {
        block: "     --anonymous --subscriptions --cors-origin https://example.com",
        // The key file the next recipe writes.
        before: "mkdir -p /etc/ssed\n\
                 printf '%s' '!ChangeThisMercureHubJWTSecretKey!' > /etc/ssed/mercure.key",
        run: Run::Until("ssed: listening on http://127.0.0.1:8080"),
        ..RECIPE
    },
    Recipe {
        block: "> /etc/ssed/mercure.key   # 32 bytes or more",
        run: Run::Until("ssed: listening on http://127.0.0.1:8080"),
        ..RECIPE
    },
];

/// The README's fenced blocks of a language, in order, without their fence's indentation.
fn blocks(readme: &str, language: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut current {
            None if trimmed == format!("```{language}") => current = Some((indent, Vec::new())),
            None => {}
            Some(_) if trimmed.starts_with("```") => {
                let (_, lines) = current.take().unwrap();
                found.push(lines.join("\n") + "\n");
            }
            Some((fence, lines)) => {
                lines.push(line.get(*fence..).unwrap_or(line.trim_start()).to_owned())
            }
        }
    }
    found
}

fn matches(recipe: &Recipe, block: &str) -> bool {
    match recipe.block.strip_prefix('=') {
        Some(whole) => block.trim() == whole,
        None => block.contains(recipe.block),
    }
}

#[test]
fn every_recipe_is_named_here() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let sh = blocks(&readme, "sh");
    assert!(sh.len() >= 18, "{} shell blocks", sh.len());
    for block in &sh {
        let named: Vec<&str> = RECIPES
            .iter()
            .filter(|r| matches(r, block))
            .map(|r| r.block)
            .collect();
        assert!(
            named.len() == 1,
            "README recipe named by {} entries of RECIPES in tests/readme.rs ({named:?}); \
             each recipe needs exactly one:\n{block}",
            named.len()
        );
    }
    for recipe in RECIPES {
        assert!(
            sh.iter().any(|b| matches(recipe, b)),
            "no README recipe matches {:?}",
            recipe.block
        );
    }
}

#[test]
fn every_recipe_runs_as_pasted() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("the README recipes: they run as root in a sandbox of namespaces and overlays");
        return;
    }
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let c_blocks = blocks(&readme, "c");
    let sandbox = Sandbox::new();
    for block in blocks(&readme, "sh") {
        let recipe = RECIPES
            .iter()
            .find(|r| matches(r, &block))
            .expect("every_recipe_is_named_here");
        let script = script(recipe, &block, &c_blocks, &sandbox);
        let started = Instant::now();
        let (ok, output) = sandbox.run(&script, &recipe.run);
        let missing: Vec<&&str> = recipe
            .shows
            .iter()
            .filter(|s| !output.contains(**s))
            .collect();
        assert!(
            ok && missing.is_empty(),
            "the README recipe failed ({}) after {:?}{}:\n{block}\n--- its output:\n{output}",
            if ok { "ran" } else { "did not succeed" },
            started.elapsed(),
            if missing.is_empty() {
                String::new()
            } else {
                format!(", not showing {missing:?}")
            }
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "recipe ok in {:.1?}: {}\n",
                started.elapsed(),
                block.lines().next().unwrap_or("")
            )
            .as_bytes(),
        );
    }
}

/// The shell script of one recipe: the files saved first, what runs before, the recipe as
/// pasted (less the lines left out), the checks after.
fn script(recipe: &Recipe, block: &str, c_blocks: &[String], sandbox: &Sandbox) -> String {
    let mut script = format!(
        "set -e\nexec 2>&1\nexport PATH=\"{}:$PATH\"\ncd {ROOT}\n",
        sandbox.shims.display()
    );
    for (name, first_line) in recipe.files {
        let content = c_blocks
            .iter()
            .find(|b| b.starts_with(first_line))
            .unwrap_or_else(|| panic!("no ```c block of the README starts with {first_line}"));
        script.push_str(&format!(
            "cat > {name} <<'SSED_README_FILE'\n{content}SSED_README_FILE\n"
        ));
    }
    script.push_str(recipe.before);
    script.push('\n');
    for line in block.lines() {
        match recipe
            .leave_out
            .iter()
            .find(|(left, _)| line.starts_with(left))
        {
            Some((_, why)) => script.push_str(&format!("# left out: {why}\n")),
            None => {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    script.push_str(recipe.after);
    script.push('\n');
    script
}

/// Where the recipes run: a scratch directory for the overlays' writes, and the stand-ins.
struct Sandbox {
    scratch: PathBuf,
    shims: PathBuf,
    /// (the directory seen through an overlay, its mount options)
    overlays: Vec<(CString, CString)>,
}

/// The stand-ins on the recipes' PATH.
const SHIMS: [(&str, &str); 3] = [
    (
        "sudo",
        "#!/bin/sh\n# The sandbox runs as root already.\nexec \"$@\"\n",
    ),
    (
        "systemctl",
        "#!/bin/sh\n# systemd is not PID 1 here: check the units named instead.\nset -e\n\
         case \"$1\" in\n\
         daemon-reload) ;;\n\
         enable) shift; [ \"$1\" = --now ] && shift\n\
           for unit in \"$@\"; do\n\
             file=/usr/local/lib/systemd/system/$unit\n\
             [ -f \"$file\" ] || { echo \"systemctl (stand-in): $unit is not installed\"; exit 1; }\n\
             systemd-analyze verify \"$file\"\n\
           done\n\
           echo \"systemctl (stand-in): enabled $*\" ;;\n\
         *) echo \"systemctl (stand-in): $* is not known here\"; exit 1 ;;\n\
         esac\n",
    ),
    (
        "journalctl",
        "#!/bin/sh\necho \"journalctl (stand-in): $*\"\n",
    ),
];

impl Sandbox {
    fn new() -> Sandbox {
        // Not under a directory that is overlaid.
        let scratch = PathBuf::from(format!("/var/tmp/ssed-readme-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let shims = scratch.join("shims");
        std::fs::create_dir_all(&shims).unwrap();
        for (name, text) in SHIMS {
            let path = shims.join(name);
            std::fs::write(&path, text).unwrap();
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(&path, mode).unwrap();
        }
        let overlays = [ROOT, "/usr/local", "/etc", "/tmp"]
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let upper = scratch.join(format!("upper-{i}"));
                let work = scratch.join(format!("work-{i}"));
                std::fs::create_dir_all(&upper).unwrap();
                std::fs::create_dir_all(&work).unwrap();
                let options = format!(
                    "lowerdir={dir},upperdir={},workdir={}",
                    upper.display(),
                    work.display()
                );
                (CString::new(*dir).unwrap(), CString::new(options).unwrap())
            })
            .collect();
        Sandbox {
            scratch,
            shims,
            overlays,
        }
    }

    /// Runs `script` with bash in the sandbox. Returns whether it succeeded (or showed what
    /// `Until` waits for) and everything it wrote.
    fn run(&self, script: &str, run: &Run) -> (bool, String) {
        let overlays = self.overlays.clone();
        let root = CString::new(ROOT).unwrap();
        let mut command = Command::new("bash");
        command
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0);
        // SAFETY: between fork and exec only system calls, on memory prepared before the fork.
        unsafe {
            command.pre_exec(move || enter_sandbox(&overlays, &root));
        }
        let mut child = command.spawn().expect("run bash");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + RECIPE_TIME;
        let mut output = String::new();
        let ok = loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    output.push_str(&line);
                    output.push('\n');
                    if let Run::Until(shown) = run
                        && line.contains(shown)
                    {
                        break true;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                // What it printed last, after its end.
                while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                    output.push_str(&line);
                    output.push('\n');
                }
                output.push_str(&format!("({status})\n"));
                // A recipe that serves for ever must not end on its own.
                break matches!(run, Run::ToEnd) && status.success();
            }
            if Instant::now() > deadline {
                output.push_str("(timed out)\n");
                break false;
            }
        };
        self.stop(&mut child);
        (ok, output)
    }

    /// Stops every process a recipe started: its process group, and Redis, which detaches.
    fn stop(&self, child: &mut Child) {
        let group = child.id() as i32;
        // SAFETY: kill(2) on the process group this test started.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = child.wait();
        // /tmp's overlay is the fourth: Redis's pid file, when a recipe started it.
        let pid_file = self.scratch.join("upper-3/ssed-redis/redis.pid");
        if let Ok(pid) = std::fs::read_to_string(&pid_file)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            // SAFETY: kill(2) on the Redis the recipe started (its pid file is in our sandbox).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = std::fs::remove_file(pid_file);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// In the child, before exec: a mount and a network namespace of its own, the overlays, the
/// loopback interface up, and the source tree as seen through its overlay as the directory.
fn enter_sandbox(overlays: &[(CString, CString)], root: &CString) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: system calls on C strings made before the fork; no allocation here.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        for (dir, options) in overlays {
            check(libc::mount(
                c"overlay".as_ptr(),
                dir.as_ptr(),
                c"overlay".as_ptr(),
                0,
                options.as_ptr().cast(),
            ))?;
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        check(fd)?;
        let mut request: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            request.ifr_name[i] = *b as libc::c_char;
        }
        check(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request))?;
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(fd, libc::SIOCSIFFLAGS, &request))?;
        libc::close(fd);
        check(libc::chdir(root.as_ptr()))?;
    }
    Ok(())
}
