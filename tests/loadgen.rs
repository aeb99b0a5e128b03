//! The benchmark's load generator is a package of its own (benches/loadgen); its unit tests (the
//! client-side SSE parser above all) run with the rest, so that a benchmark never rests on an
//! untested parser.

use std::process::Command;

#[test]
fn load_generator_unit_tests() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(env!("CARGO"))
        .args([
            "test",
            "--release",
            "--manifest-path",
            "benches/loadgen/Cargo.toml",
        ])
        .args(["--target-dir", "target/loadgen"])
        .current_dir(root)
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "benches/loadgen tests failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("test result: ok"), "{stdout}");
}
