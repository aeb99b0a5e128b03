//! Generates the C headers from src/ffi/ with cbindgen.
//!
//! - `include/ssed.h`: the header for C and C++ programs (committed; CI checks it is current).
//! - `include/ssed_ffi.h`: the same declarations without preprocessor lines or comments, for
//!   PHP's `FFI::cdef`, which accepts no `#include`, `#define` or `#ifdef`.
//!
//! Both are also written to `OUT_DIR`, so tests/c_api.rs can tell whether the copies in
//! `include/` are what this build generates. cbindgen reads src/ffi/ alone (`with_src`): no
//! `cargo metadata`, no macro expansion, so it works offline and in a read-only registry.

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The preamble of `include/ssed.h`: the conventions every function follows.
const PREAMBLE: &str = "\
/* ssed.h: the C API of libssed, a tiny, fast Server-Sent Events server.
 *
 * Generated from src/ffi/ by build.rs (cbindgen). Do not edit: change src/ffi/ and run
 * `cargo build`.
 *
 * Conventions:
 * - Names are sse_<object>_<verb>; sse_publish is the one call on the hot path.
 * - Errors: functions return sse_result (0 = SSE_RESULT_OK, failures negative) or, for those
 *   returning a pointer, NULL. sse_last_error() gives a message for the latest failure on the
 *   calling thread. NULL or malformed arguments are errors, never crashes. No Rust panic
 *   crosses into C: it becomes SSE_RESULT_PANIC.
 * - Ownership: the library allocates and frees sse_server (sse_server_new ->
 *   sse_server_free); sse_config, sse_event and sse_stats are the caller's. Strings passed in are
 *   NUL-terminated UTF-8, borrowed for the call only (what is kept is copied). Strings returned
 *   are the library's: never free them.
 * - Threads: the loop runs on a library thread (sse_server_start) or on the caller's
 *   (sse_server_run, or sse_server_run_for between the caller's own work). sse_publish,
 *   sse_server_port, sse_server_stats, sse_server_topic_subscribers and sse_server_stop may be
 *   called from any thread at any time until sse_server_free. The library calls back into the
 *   program only through the callbacks it sets in sse_config: the log callback on a library
 *   thread of its own, the access and stream callbacks on the loop's thread.
 * - Structs grow only at the end; pass their size (sse_config_init, sse_event_init,
 *   sse_server_stats) so that
 *   programs built against an older header keep working with a newer library.
 * - Link: -lssed (libssed.so), or libssed.a -lpthread -ldl -lm -lrt -lutil -lgcc_s. No ABI stability
 *   before 1.0: check sse_abi_version() == SSE_ABI_VERSION.
 */";

const PHP_PREAMBLE: &str = "\
/* ssed_ffi.h: the declarations of ssed.h without preprocessor lines, for PHP's FFI::cdef.
 * Generated from src/ffi/ by build.rs (cbindgen). Do not edit. C programs include ssed.h,
 * which documents every function. */";

fn main() {
    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ffi");
    // Rerun when a header is edited or deleted by hand, so that it is regenerated.
    println!("cargo:rerun-if-changed=include/ssed.h");
    println!("cargo:rerun-if-changed=include/ssed_ffi.h");
    let source = root.join("src/ffi/mod.rs");
    generate(&source, c_config(), &out_dir, &root, "ssed.h");
    generate(&source, php_config(), &out_dir, &root, "ssed_ffi.h");
    println!("cargo:rerun-if-changed=src/viewer.html");
    compact_viewer(&root.join("src/viewer.html"), &out_dir.join("viewer.html"));
    set_soname();
}

/// With `SSED_SONAME` set (the devices' builds and the Debian packages: `make cross-ARCH`), the
/// shared library records that name (`libssed.so.ABI`), so that programs linked against it
/// load it by that name, as Debian's libraries are. Plain builds keep a library without one
/// (README.md, "Install").
fn set_soname() {
    println!("cargo:rerun-if-env-changed=SSED_SONAME");
    if let Some(soname) = env::var_os("SSED_SONAME").filter(|s| !s.is_empty()) {
        let soname = soname.to_str().expect("SSED_SONAME is UTF-8");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
}

/// Writes the viewer page without what a browser does not need: indentation, blank lines,
/// whole-line `//` comments (the script has no multi-line strings), and the spaces beside the
/// style sheet's punctuation. The daemon embeds the page, and every byte counts in the smallest
/// build. Line breaks stay, so the script parses as written.
fn compact_viewer(source: &Path, target: &Path) {
    let page = fs::read_to_string(source).expect("src/viewer.html is readable");
    let mut compact = String::with_capacity(page.len());
    let mut in_style = false;
    for line in page.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        match line {
            "<style>" => in_style = true,
            "</style>" => in_style = false,
            _ if in_style => {
                compact_css(line, &mut compact);
                continue;
            }
            _ => {}
        }
        compact.push_str(line);
        compact.push('\n');
    }
    fs::write(target, compact).expect("OUT_DIR is writable");
}

/// Appends one line of CSS without the spaces after `:`, `;`, `,` and `{` or before `{` and
/// `}`, nor the `;` before `}`. (A space before a `:` can matter, as in `a :hover`; it stays.)
fn compact_css(line: &str, out: &mut String) {
    for c in line.chars() {
        if c == ' ' && out.ends_with([':', ';', ',', '{']) {
            continue;
        }
        if c == '{' || c == '}' {
            let kept = out.trim_end_matches(' ').len();
            out.truncate(kept);
        }
        if c == '}' && out.ends_with(';') {
            out.pop();
        }
        out.push(c);
    }
}

/// The settings shared by both headers.
fn base_config() -> cbindgen::Config {
    let mut config = cbindgen::Config {
        language: cbindgen::Language::C,
        // usize is size_t, not uintptr_t.
        usize_is_size_t: true,
        // `typedef struct sse_config {...} sse_config;`: usable with or without `struct`.
        style: cbindgen::Style::Both,
        ..cbindgen::Config::default()
    };
    // SSE_RESULT_QUEUE_FULL rather than QueueFull. The enums are repr(C) in src/ffi/: a
    // repr(u32) enum would be wrapped in #if blocks that PHP's FFI cannot parse.
    config.enumeration.prefix_with_name = true;
    config.enumeration.rename_variants = cbindgen::RenameRule::ScreamingSnakeCase;
    // Not used in any signature (log_level is an int64_t), but callers need its names.
    config.export.include = vec!["sse_log_level".into()];
    config
}

fn c_config() -> cbindgen::Config {
    cbindgen::Config {
        header: Some(PREAMBLE.into()),
        include_guard: Some("SSED_H".into()),
        // extern "C" guards, for C++ programs.
        cpp_compat: true,
        no_includes: true,
        sys_includes: vec!["stddef.h".into(), "stdint.h".into()],
        documentation_style: cbindgen::DocumentationStyle::Doxy,
        ..base_config()
    }
}

fn php_config() -> cbindgen::Config {
    let mut config = cbindgen::Config {
        header: Some(PHP_PREAMBLE.into()),
        no_includes: true,
        documentation: false,
        ..base_config()
    };
    // A constant would be a #define; PHP calls sse_abi_version() instead.
    config.export.exclude = vec!["SSE_ABI_VERSION".into()];
    config
}

/// Generates one header into `OUT_DIR`, and into `include/` when that copy differs.
fn generate(source: &Path, config: cbindgen::Config, out_dir: &Path, root: &Path, name: &str) {
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(source)
        .generate()
        .expect("cbindgen could not read src/ffi/");
    let mut text = Vec::new();
    bindings.write(&mut text);
    fs::write(out_dir.join(name), &text).expect("cannot write to OUT_DIR");
    let committed = root.join("include").join(name);
    if fs::read(&committed).ok().as_deref() == Some(&text[..]) {
        return;
    }
    // A read-only source tree (a vendored copy) still builds; tests/c_api.rs reports the
    // stale header.
    if let Err(e) = replace_file(&committed, &text) {
        println!("cargo:warning=cannot update {}: {e}", committed.display());
    }
}

/// Writes `path` through a temporary file and a rename, so that a compiler reading the header
/// meanwhile (another build, `make -C c-tests`) never sees half of it.
fn replace_file(path: &Path, text: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension(format!("h.tmp{}", std::process::id()));
    fs::write(&temporary, text)?;
    fs::rename(&temporary, path).inspect_err(|_| {
        let _ = fs::remove_file(&temporary);
    })
}
