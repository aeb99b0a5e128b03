//! A short run of every fuzz target in fuzz/ (fuzz/ci.sh: 30 seconds each, from the committed
//! seeds), failing on any crash or failed check. Long runs and their figures are in
//! BENCHMARKS.md.
//!
//! Without cargo-fuzz the test is skipped with the reason, unless the environment variable CI
//! is set: then it fails.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn cargo_fuzz_missing() -> Option<String> {
    let version = Command::new("cargo").args(["fuzz", "--version"]).output();
    match version {
        Ok(out) if out.status.success() => None,
        _ => Some("cargo-fuzz is not installed: cargo install --locked cargo-fuzz".into()),
    }
}

#[test]
fn every_fuzz_target_survives_a_short_run() {
    if let Some(reason) = cargo_fuzz_missing() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the fuzz targets, but {reason}"
        );
        eprintln!("skipping the fuzz targets: {reason}");
        return;
    }
    // Niced, so that the tests running beside it keep their share of the machine; bounded, so
    // that a hang fails instead of stalling the run.
    let output = Command::new("timeout")
        .args(["1500", "nice", "-n", "10", "bash", "fuzz/ci.sh"])
        .current_dir(ROOT)
        // The fuzz package builds in fuzz/target, away from this build.
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run fuzz/ci.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a fuzz target failed:\n{stdout}{stderr}"
    );
    let targets = [
        "request_head",
        "publish_params",
        "frame_roundtrip",
        "c_publish",
        "access_token",
        "matchers",
        "conn_input",
        "history_record",
        "jwt",
    ];
    for target in targets {
        assert!(
            stdout.contains(&format!("fuzz: {target}: ")),
            "{target} did not run:\n{stdout}"
        );
    }
    eprint!("{stdout}");
}
