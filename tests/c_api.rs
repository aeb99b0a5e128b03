//! The C API from the outside: runs the C test programs of c-tests/ (as they are, under
//! valgrind, and the PHP ones), and checks that the headers in include/ are what build.rs
//! generates from src/ffi.rs.
//!
//! A missing tool (make, a C compiler, valgrind, php, phpize) skips its test with the reason
//! on stderr, unless the environment variable CI is set: then it is a failure.

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const HEADERS: [&str; 2] = ["ssed.h", "ssed_ffi.h"];

/// The make targets share c-tests/build, so they run one at a time.
static C_TESTS: Mutex<()> = Mutex::new(());

#[test]
fn c_tests() {
    if available(&["make", "cc", "c++"], "the C tests") {
        make("test");
    }
}

#[test]
fn c_tests_under_valgrind() {
    if available(&["make", "cc", "valgrind"], "the C tests under valgrind") {
        make("valgrind");
    }
}

#[test]
fn php_ffi_and_php_extension() {
    if available(&["make", "cc", "php", "phpize"], "the PHP tests") {
        make("php");
    }
}

#[test]
fn headers_are_what_build_rs_generates() {
    for name in HEADERS {
        let generated_path = Path::new(env!("OUT_DIR")).join(name);
        let generated = fs::read(&generated_path).expect("build.rs writes its headers to OUT_DIR");
        let committed = fs::read(Path::new(ROOT).join("include").join(name)).unwrap_or_default();
        assert!(
            generated == committed,
            "include/{name} is not what build.rs generates from src/ffi.rs (see {}): \
             run `cargo build` to regenerate it, and commit it",
            generated_path.display()
        );
    }
    committed_headers_are_current();
}

/// In a git checkout, the committed headers must be the generated ones: a build that changed
/// them means src/ffi.rs was committed without its header. Fatal in CI, a note elsewhere.
fn committed_headers_are_current() {
    let paths: Vec<String> = HEADERS.iter().map(|h| format!("include/{h}")).collect();
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(ROOT)
            .args(args)
            .args(&paths)
            .output()
    };
    let Ok(tracked) = git(&["ls-files", "--error-unmatch", "--"]) else {
        return; // no git: nothing committed to compare with
    };
    let problem = if !tracked.status.success() {
        "are not committed"
    } else if !git(&["diff", "--quiet", "--"]).is_ok_and(|o| o.status.success()) {
        "differ from the committed copies"
    } else {
        return;
    };
    let message = format!(
        "{} {problem}: commit the headers build.rs generated",
        paths.join(" and ")
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    note(&format!("note: {message}"));
}

/// Runs `make -C c-tests <target>`, failing with its whole output.
fn make(target: &str) {
    let _one_at_a_time = C_TESTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let output = Command::new("make")
        .args(["--no-print-directory", "-C", "c-tests", target])
        .current_dir(ROOT)
        .output()
        .expect("make runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "make -C c-tests {target} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // A target that skipped itself says so; the reason must be seen, not captured.
    for line in stdout.lines().filter(|l| l.starts_with("SKIP")) {
        note(line);
    }
}

/// True when every tool is on the PATH. Otherwise skips (with the reason on stderr), or fails
/// when CI is set.
fn available(tools: &[&str], what: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!("{what}: {} not found", missing.join(", "));
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason}, and CI is set: they must run"
    );
    note(&format!("skipped {reason} (set CI to make this a failure)"));
    false
}

/// Writes to the real stderr: the test harness captures `eprintln!`, which would hide a skip.
fn note(text: &str) {
    let _ = writeln!(io::stderr(), "{text}");
}
