//! The C API: every `extern "C"` item of libssed, and nothing else.
//!
//! build.rs runs cbindgen on this file alone to write `include/ssed.h`, so every type a C caller
//! sees is declared here, and the `///` docs are the C manual. The conventions, stated once in
//! the header's preamble and repeated per function:
//! - every body runs inside `guard`, so a panic becomes `SSE_RESULT_PANIC` (or NULL, 0) instead
//!   of unwinding into C; NULL and malformed arguments are error codes, never a crash;
//! - a failure also leaves a message for [`sse_last_error`] on the calling thread;
//! - the library allocates and frees its one object, `sse_server`; strings passed in are
//!   borrowed for the call only and copied when kept;
//! - the state a C caller can race on lives behind an `Arc`, so that `sse_server_free` on one
//!   thread can end an `sse_server_run` on another without freeing memory that call still uses.
//!
//! Functions that take no pointer are safe `extern "C"` fns: they have no precondition to state.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int};
use std::fmt::Display;
use std::io::{self, Write as _};
use std::mem::{offset_of, size_of};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Config, Cors, Event, FieldError, Handle, LogLevel, PublishError, Server};

/// Version of the C ABI: bumped whenever a change breaks programs built against an older header.
/// Compare it with `sse_abi_version()` at run time (PHP, which cannot see macros, must).
pub const SSE_ABI_VERSION: u32 = 1;

/// What a call returned: 0 is success, every failure is negative. `sse_publish` returns these
/// same negative values in its `int64_t`. `sse_result_str` names a code; `sse_last_error` gives
/// the message of the latest failure on the calling thread.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sse_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = -1,
    /// An argument or configuration value is malformed or out of range.
    InvalidArgument = -2,
    /// A string argument or the data is not valid UTF-8.
    InvalidUtf8 = -3,
    /// The event type or id contains CR, LF or NUL, which would inject fields into the stream.
    InvalidField = -4,
    /// The queue to the loop is full: the loop is behind. Nothing was published; retry later.
    QueueFull = -5,
    /// The server has been stopped (or its loop has ended).
    Stopped = -6,
    /// The loop is already running: `sse_server_start` or `sse_server_run` was called before.
    Busy = -7,
    /// A system call failed: binding the port, starting a thread, or the loop itself.
    Io = -8,
    /// An internal error was caught at the API boundary; the library has a bug.
    Panic = -9,
}

/// How much the server writes on the process's stderr (the `log_level` of `sse_config`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sse_log_level {
    /// Nothing.
    Off = 0,
    /// Errors only (the library's default: the host program owns stderr).
    Quiet = 1,
    /// Also start, refused clients and slow subscribers dropped (the daemon's default).
    Info = 2,
    /// Also every connection accepted and closed.
    Verbose = 3,
}

/// Server settings. Declare one, fill it with `sse_config_init(&config, sizeof config)`, change
/// the fields you care about, and pass it to `sse_server_new`, which copies what it needs: the
/// struct and its strings may be freed as soon as `sse_server_new` returns.
///
/// Fields are only ever added at the end, with 0 meaning their default. `size` tells the
/// library how much of the struct a caller has, so a program built against an older header
/// keeps working with a newer library, and a newer one gets a clear error from an older library
/// when it sets a field that library does not know.
///
/// Not safe for concurrent use: one thread at a time.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sse_config {
    /// Size of the caller's struct, set by `sse_config_init`. Do not change it.
    pub size: usize,
    /// Address to listen on, `"HOST:PORT"` (`"[::1]:8080"` for IPv6); port 0 picks a free port
    /// (read it back with `sse_server_port`). Default "127.0.0.1:8080"; NULL also means it.
    pub listen: *const c_char,
    /// Events kept for `Last-Event-ID` replay. Default 1024; 0 keeps none.
    pub history: usize,
    /// Most open client connections, subscribers and requests alike. Default 10000.
    pub max_clients: usize,
    /// Most bytes waiting for one subscriber before it is dropped. Default 1 MiB.
    pub max_queue: usize,
    /// Largest HTTP publish body, in bytes. Default 1 MiB.
    pub max_body: usize,
    /// Most events waiting between publishers and the loop; beyond it `sse_publish` returns
    /// `SSE_RESULT_QUEUE_FULL`. Default 65536.
    pub publish_queue: usize,
    /// Milliseconds between heartbeat comments on every stream; 0 turns them off. Default 15000.
    pub heartbeat_ms: u64,
    /// Milliseconds a client has to send its whole request head. Default 10000; must not be 0.
    pub head_timeout_ms: u64,
    /// `retry:` milliseconds sent at the start of every stream, at most 4294967295; negative
    /// sends none. Default -1.
    pub retry_ms: i64,
    /// CORS: NULL (default) sends no CORS headers; "*" allows any origin; otherwise a
    /// comma-separated list of origins.
    pub cors_origin: *const c_char,
    /// When not NULL, publishing over HTTP needs `Authorization: Bearer <token>`. Default NULL.
    pub publish_token: *const c_char,
    /// When not NULL, subscribing needs the bearer token or `?token=`. Default NULL.
    pub subscribe_token: *const c_char,
    /// One of `sse_log_level`. Default `SSE_LOG_LEVEL_QUIET`.
    pub log_level: i64,
}

/// Counters of a server, filled by `sse_server_stats`. Fields are only ever added at the end.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct sse_stats {
    /// Open client connections.
    pub connections: u64,
    /// Open event streams.
    pub subscribers: u64,
    /// Events published since start.
    pub events_published: u64,
    /// Bytes written to clients since start.
    pub bytes_sent: u64,
    /// Subscribers dropped for falling more than `max_queue` bytes behind.
    pub subscribers_dropped_slow: u64,
    /// Events retained for replay.
    pub history_events: u64,
    /// Requests and connections refused, all reasons together.
    pub requests_refused: u64,
}

/// A server: bound by `sse_server_new`, its loop run by `sse_server_start` (on a library
/// thread) or `sse_server_run` (on the caller's thread), stopped by `sse_server_stop`, freed by
/// `sse_server_free`. Opaque. `sse_publish`, `sse_server_port`, `sse_server_stats` and
/// `sse_server_stop` may be called from any thread at any time until `sse_server_free`.
pub struct sse_server {
    shared: Arc<Shared>,
}

/// What every call on one server shares, kept alive by whichever call still needs it.
struct Shared {
    handle: Handle,
    port: u16,
    state: Mutex<LoopState>,
    /// Signalled whenever `state` becomes `Ended`.
    ended: Condvar,
}

/// Where the server's loop is.
enum LoopState {
    /// Bound; the loop has not started. (Boxed: a `Server` is large, the other states small.)
    Ready(Box<Server>),
    /// Running on the library's thread.
    Thread(JoinHandle<io::Result<()>>),
    /// Running in `sse_server_run` on a caller's thread, or being joined by `sse_server_stop`.
    Busy,
    /// The loop has ended, or was stopped before it started: how it ended.
    Ended(Result<(), Failure>),
}

/// A failure remembered so that every later `sse_server_stop` reports it the same way.
#[derive(Clone)]
struct Failure {
    code: sse_result,
    message: String,
}

// ---------------------------------------------------------------------------------------------
// Versions, result codes, last error

/// The library's version, such as "0.1.0". A static string: never free it.
/// Thread-safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sse_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version of the library, to compare with `SSE_ABI_VERSION` from the header it was
/// built against. Thread-safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sse_abi_version() -> u32 {
    SSE_ABI_VERSION
}

/// A short static description of a result code, such as "the publish queue is full"; an
/// unknown code gives "unknown result code". Never NULL; never free it.
/// Thread-safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sse_result_str(code: c_int) -> *const c_char {
    // Taken as an int and matched, never cast to the enum: C may pass any value.
    let text: &'static CStr = match code {
        0 => c"success",
        -1 => c"a required pointer argument is NULL",
        -2 => c"invalid argument",
        -3 => c"not valid UTF-8",
        -4 => c"the event type or id contains CR, LF or NUL",
        -5 => c"the publish queue is full",
        -6 => c"the server is stopped",
        -7 => c"the server's loop is already running",
        -8 => c"system error",
        -9 => c"internal error (panic)",
        _ => c"unknown result code",
    };
    text.as_ptr()
}

thread_local! {
    /// The latest failure's message on this thread, NUL-terminated; empty until one fails.
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The message of the latest failed call on the calling thread (for example "cannot listen on
/// 127.0.0.1:8080: Address in use (os error 98)"), or "" if none has failed. Successful calls
/// leave it unchanged. Owned by the library: valid until the next failing call on this thread
/// or until the thread exits; copy it to keep it. Never NULL.
/// Thread-safety: any thread; each thread sees its own.
#[unsafe(no_mangle)]
pub extern "C" fn sse_last_error() -> *const c_char {
    guard(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|buf| {
                let buf = buf.borrow();
                if buf.is_empty() {
                    c"".as_ptr()
                } else {
                    buf.as_ptr().cast::<c_char>()
                }
            })
            .unwrap_or(c"".as_ptr())
    })
}

/// Records `message` for `sse_last_error` and returns `code`.
fn fail(code: sse_result, message: impl Display) -> sse_result {
    // During thread teardown the buffer may be gone; the code alone still tells what happened.
    let _ = LAST_ERROR.try_with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        let _ = write!(buf, "{message}");
        // A C string ends at the first NUL, so none may hide inside the message.
        buf.retain(|&b| b != 0);
        buf.push(0);
    });
    code
}

/// Runs an exported function's body, turning a panic into `on_panic` (and a message for
/// `sse_last_error`) instead of letting it unwind into C.
fn guard<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            fail(
                sse_result::Panic,
                format_args!("internal error (panic): {}", panic_message(&*payload)),
            );
            on_panic
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "unknown cause"
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// Where the listen address points by default (a static string, so `sse_config_init` allocates
/// nothing the caller would have to free).
const DEFAULT_LISTEN: &CStr = c"127.0.0.1:8080";

/// Bytes of the smallest `sse_config` a caller may pass: the first published layout.
const CONFIG_MIN_SIZE: usize = offset_of!(sse_config, log_level) + size_of::<i64>();
/// Bytes of the smallest `sse_stats` a caller may pass: the first published layout.
const STATS_MIN_SIZE: usize = offset_of!(sse_stats, requests_refused) + size_of::<u64>();
/// Larger sizes are taken for an uninitialised struct rather than a newer header's.
const MAX_STRUCT_SIZE: usize = 4096;

/// Fills `*config` with the defaults. `size` is `sizeof *config` as the caller's header has it,
/// so that a program built against an older header is never written past its struct.
/// Strings the defaults point to are static. Nothing to free afterwards.
/// Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL `config`, `SSE_RESULT_INVALID_ARGUMENT` when
/// `size` is smaller than the first published `sse_config` or implausibly large.
/// Thread-safety: any thread, each on its own struct.
///
/// # Safety
/// `config` is NULL or points to `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_config_init(config: *mut sse_config, size: usize) -> sse_result {
    guard(sse_result::Panic, || {
        if config.is_null() {
            return fail(sse_result::NullArgument, "config is NULL");
        }
        if let Err(why) = check_struct_size("sse_config", size, CONFIG_MIN_SIZE) {
            return why;
        }
        let defaults = sse_config {
            size,
            ..config_defaults()
        };
        let known = size.min(size_of::<sse_config>());
        // SAFETY: the caller promises `size` writable bytes at `config`; `known <= size` bytes
        // are copied from a live `sse_config`, and fields added later treat 0 as their default,
        // so zeroing the rest gives a newer caller's unknown fields their defaults.
        unsafe {
            config.cast::<u8>().write_bytes(0, size);
            std::ptr::copy_nonoverlapping(
                (&raw const defaults).cast::<u8>(),
                config.cast::<u8>(),
                known,
            );
        }
        sse_result::Ok
    })
}

fn config_defaults() -> sse_config {
    let config = Config::default();
    sse_config {
        size: size_of::<sse_config>(),
        listen: DEFAULT_LISTEN.as_ptr(),
        history: config.history,
        max_clients: config.max_clients,
        max_queue: config.max_queue,
        max_body: config.max_body,
        publish_queue: config.publish_queue,
        heartbeat_ms: millis(config.heartbeat),
        head_timeout_ms: millis(config.head_timeout),
        retry_ms: config.retry.map_or(-1, i64::from),
        cors_origin: std::ptr::null(),
        publish_token: std::ptr::null(),
        subscribe_token: std::ptr::null(),
        log_level: sse_log_level::Quiet as i64,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn check_struct_size(name: &str, size: usize, min: usize) -> Result<(), sse_result> {
    if size < min || size > MAX_STRUCT_SIZE {
        return Err(fail(
            sse_result::InvalidArgument,
            format_args!(
                "{name} size {size} is not a size this library accepts \
                 (pass sizeof({name}) from ssed.h)"
            ),
        ));
    }
    Ok(())
}

/// Reads the caller's config: the fields its `size` covers, defaults for the rest.
///
/// # Safety
/// `config` is non-NULL, was filled by `sse_config_init`, and covers `config.size` bytes.
unsafe fn read_config(config: *const sse_config) -> Result<sse_config, sse_result> {
    // SAFETY: `size` is the first field of every layout (the caller's promise).
    let size = unsafe { (*config).size };
    check_struct_size("sse_config", size, CONFIG_MIN_SIZE)?;
    let mut copy = config_defaults();
    let known = size.min(size_of::<sse_config>());
    // SAFETY: `known` bytes are readable at `config` and fit in `copy`; every field is an
    // integer or a raw pointer, valid for any bit pattern.
    unsafe {
        std::ptr::copy_nonoverlapping(config.cast::<u8>(), (&raw mut copy).cast::<u8>(), known);
    }
    // A newer header's fields this library does not know must be left at 0 (their default).
    // SAFETY: the caller's struct has `size` readable bytes.
    let tail = unsafe { std::slice::from_raw_parts(config.cast::<u8>().add(known), size - known) };
    if let Some(offset) = tail.iter().position(|&b| b != 0) {
        return Err(fail(
            sse_result::InvalidArgument,
            format_args!(
                "sse_config sets a field at byte {} that this libssed {} does not know; \
                 use the library that matches ssed.h",
                known + offset,
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    Ok(copy)
}

/// Turns the C config into the library's, refusing what it cannot run with.
///
/// # Safety
/// Every non-NULL string in `c` is NUL-terminated and valid for the call.
unsafe fn to_config(c: &sse_config) -> Result<Config, sse_result> {
    let invalid = |why: String| fail(sse_result::InvalidArgument, why);
    // SAFETY: the caller's promise on the strings of `c`.
    let (listen, cors, publish_token, subscribe_token) = unsafe {
        (
            optional_str(c.listen, "listen")?,
            optional_str(c.cors_origin, "cors_origin")?,
            optional_str(c.publish_token, "publish_token")?,
            optional_str(c.subscribe_token, "subscribe_token")?,
        )
    };
    let mut config = Config::default();
    if !c.listen.is_null() {
        config.listen = listen.parse::<SocketAddr>().map_err(|_| {
            invalid(format!(
                "listen: expected an address such as 127.0.0.1:8080, got {listen:?}"
            ))
        })?;
    }
    config.history = c.history;
    config.max_clients = c.max_clients;
    config.max_queue = c.max_queue;
    config.max_body = c.max_body;
    config.publish_queue = c.publish_queue;
    config.heartbeat = Duration::from_millis(c.heartbeat_ms);
    config.head_timeout = Duration::from_millis(c.head_timeout_ms);
    config.retry = match c.retry_ms {
        ms if ms < 0 => None,
        ms => Some(
            u32::try_from(ms).map_err(|_| invalid(format!("retry_ms: {ms} is over 4294967295")))?,
        ),
    };
    if !c.cors_origin.is_null() {
        config.cors = Cors::parse(cors).map_err(|why| invalid(format!("cors_origin: {why}")))?;
    }
    config.publish_token = (!c.publish_token.is_null()).then(|| publish_token.to_owned());
    config.subscribe_token = (!c.subscribe_token.is_null()).then(|| subscribe_token.to_owned());
    config.log = match c.log_level {
        0 => LogLevel::Off,
        1 => LogLevel::Quiet,
        2 => LogLevel::Info,
        3 => LogLevel::Verbose,
        other => {
            return Err(invalid(format!(
                "log_level: {other} is not an sse_log_level"
            )));
        }
    };
    config.validate().map_err(invalid)?;
    Ok(config)
}

/// Borrows an optional C string as UTF-8; NULL reads as "".
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for `'a`.
unsafe fn optional_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, sse_result> {
    if ptr.is_null() {
        return Ok("");
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's promise).
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|_| {
        fail(
            sse_result::InvalidUtf8,
            format_args!("{what} is not valid UTF-8"),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Server lifecycle

/// Creates a server from `config` and binds its listening socket at once, so the port is known
/// (and taken) when this returns; no connection is served until `sse_server_start` or
/// `sse_server_run`. Returns NULL on failure: NULL `config`, an invalid setting, or a bind
/// error such as the address being in use; `sse_last_error` then says why.
/// Ownership: `config` and its strings are only read during the call. The caller owns the
/// returned server and must pass it to `sse_server_free` exactly once.
/// Thread-safety: any thread.
///
/// # Safety
/// `config` is NULL or points to a struct filled by `sse_config_init` whose strings are NULL
/// or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_new(config: *const sse_config) -> *mut sse_server {
    guard(std::ptr::null_mut(), || {
        if config.is_null() {
            fail(sse_result::NullArgument, "config is NULL");
            return std::ptr::null_mut();
        }
        // SAFETY: non-NULL and initialised by sse_config_init (the caller's promise).
        let Ok(c_config) = (unsafe { read_config(config) }) else {
            return std::ptr::null_mut();
        };
        // SAFETY: the strings in the config are NULL or NUL-terminated (the caller's promise).
        let Ok(config) = (unsafe { to_config(&c_config) }) else {
            return std::ptr::null_mut();
        };
        let listen = config.listen;
        let server = match Server::bind(config) {
            Ok(server) => server,
            Err(e) => {
                fail(
                    sse_result::Io,
                    format_args!("cannot listen on {listen}: {e}"),
                );
                return std::ptr::null_mut();
            }
        };
        let shared = Shared {
            handle: server.handle(),
            port: server.local_addr().port(),
            state: Mutex::new(LoopState::Ready(Box::new(server))),
            ended: Condvar::new(),
        };
        Box::into_raw(Box::new(sse_server {
            shared: Arc::new(shared),
        }))
    })
}

/// Starts the server's loop on a thread of the library's own, and returns at once.
/// Returns `SSE_RESULT_BUSY` if the loop already runs, `SSE_RESULT_STOPPED` after a stop,
/// `SSE_RESULT_IO` if the thread cannot be created (the server is then stopped).
/// Thread-safety: any thread.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_start(server: *mut sse_server) -> sse_result {
    guard(sse_result::Panic, || {
        // SAFETY: NULL or live (the caller's promise).
        let Some(server) = (unsafe { server.as_ref() }) else {
            return fail(sse_result::NullArgument, "server is NULL");
        };
        let shared = &server.shared;
        let mut state = shared.lock();
        match std::mem::replace(&mut *state, LoopState::Busy) {
            LoopState::Ready(ready) => match (*ready).spawn() {
                Ok(thread) => {
                    *state = LoopState::Thread(thread);
                    sse_result::Ok
                }
                Err(e) => {
                    shared.handle.stop();
                    let failure =
                        Failure::new(sse_result::Io, format!("cannot start the loop: {e}"));
                    *state = LoopState::Ended(Err(failure.clone()));
                    shared.ended.notify_all();
                    failure.report()
                }
            },
            other => {
                let code = not_ready(&other);
                *state = other;
                code
            }
        }
    })
}

/// Runs the server's loop on the calling thread until the server is stopped (by
/// `sse_server_stop` or `sse_server_free` from another thread), flushes for up to a second, and
/// returns `SSE_RESULT_OK`; or `SSE_RESULT_IO` if the loop failed. Returns at once with
/// `SSE_RESULT_BUSY` if the loop already runs, `SSE_RESULT_STOPPED` after a stop.
/// Thread-safety: any thread; it blocks that thread. Never call it from a signal handler.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed. Once the loop runs, the
/// server may be freed from another thread: this call then returns without touching it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_run(server: *mut sse_server) -> sse_result {
    guard(sse_result::Panic, || {
        // A clone of the shared state, so that nothing here refers to `*server` once the loop
        // runs: `sse_server_free` may free it from another thread meanwhile.
        // SAFETY: NULL or live (the caller's promise).
        let shared = match unsafe { server.as_ref() } {
            Some(server) => Arc::clone(&server.shared),
            None => return fail(sse_result::NullArgument, "server is NULL"),
        };
        run_here(&shared)
    })
}

fn run_here(shared: &Shared) -> sse_result {
    let ready = {
        let mut state = shared.lock();
        match std::mem::replace(&mut *state, LoopState::Busy) {
            LoopState::Ready(ready) => ready,
            other => {
                let code = not_ready(&other);
                *state = other;
                return code;
            }
        }
    };
    // Caught here, not only by the guard: the state must reach `Ended` whatever happens, or a
    // `sse_server_stop` would wait for ever.
    let ended = ended_by(catch_unwind(AssertUnwindSafe(|| (*ready).run())));
    let code = report(&ended);
    *shared.lock() = LoopState::Ended(ended);
    shared.ended.notify_all();
    code
}

/// Stops the server: publishing fails with `SSE_RESULT_STOPPED` from now on, the loop flushes
/// what it can within a second, closes every connection and releases the port; this call waits
/// for that, whichever thread runs the loop. Idempotent: calling it again (or after a failed
/// start) returns the same result. Returns `SSE_RESULT_OK`, or how the loop failed
/// (`SSE_RESULT_IO`, `SSE_RESULT_PANIC`). The server stays allocated: its port and stats can
/// still be read, and `sse_server_free` is still required.
/// Thread-safety: any thread, concurrently with any call; once it waits for the loop, the
/// server may even be freed by another thread (see `sse_server_free`).
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_stop(server: *mut sse_server) -> sse_result {
    guard(sse_result::Panic, || {
        // A clone, as in sse_server_run: a `sse_server_free` on another thread may free
        // `*server` while this call waits for the loop.
        // SAFETY: NULL or live (the caller's promise).
        let shared = match unsafe { server.as_ref() } {
            Some(server) => Arc::clone(&server.shared),
            None => return fail(sse_result::NullArgument, "server is NULL"),
        };
        stop_and_wait(&shared)
    })
}

fn stop_and_wait(shared: &Shared) -> sse_result {
    shared.handle.stop();
    let mut state = shared.lock();
    loop {
        match std::mem::replace(&mut *state, LoopState::Busy) {
            LoopState::Ready(ready) => {
                // Never ran: dropping it closes the listening socket.
                drop(ready);
                *state = LoopState::Ended(Ok(()));
                shared.ended.notify_all();
            }
            LoopState::Thread(thread) => {
                // `Busy` meanwhile, so that concurrent stops wait for this join.
                drop(state);
                let ended = ended_by(thread.join());
                state = shared.lock();
                *state = LoopState::Ended(ended);
                shared.ended.notify_all();
            }
            LoopState::Busy => {
                *state = LoopState::Busy;
                state = shared
                    .ended
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            LoopState::Ended(ended) => {
                let code = report(&ended);
                *state = LoopState::Ended(ended);
                return code;
            }
        }
    }
}

/// Stops the server as `sse_server_stop` does (waiting for its loop, whichever thread runs
/// it), frees it, and sets `*server` to NULL, so that freeing the same variable twice is
/// harmless. `server == NULL` or `*server == NULL` does nothing.
/// Ownership: ends the caller's ownership; the pointer must not be used afterwards, and other
/// copies of it are dangling (freeing through one of them is undefined behaviour, as with
/// free(3)).
/// Thread-safety: any thread, but no other call on the same server may be in progress or
/// follow, except an `sse_server_run` or `sse_server_stop` already in progress on another
/// thread, which it waits for (they return without touching the freed server).
///
/// # Safety
/// `server` is NULL or points to a variable holding NULL or a server from `sse_server_new` not
/// yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_free(server: *mut *mut sse_server) {
    guard((), || {
        // SAFETY: `server` is NULL or points to a readable, writable pointer variable.
        let Some(slot) = (unsafe { server.as_mut() }) else {
            return;
        };
        let owned = std::mem::replace(slot, std::ptr::null_mut());
        if owned.is_null() {
            return;
        }
        // SAFETY: `owned` came from Box::into_raw in sse_server_new and, by the caller's
        // promise, is freed only here, once.
        let owned = unsafe { Box::from_raw(owned) };
        stop_and_wait(&owned.shared);
        // An `sse_server_run` still returning holds its own reference to the shared state.
        drop(owned);
    })
}

/// The TCP port the server is bound to (the one picked when `listen` asked for port 0); still
/// readable after a stop. 0 if `server` is NULL.
/// Thread-safety: any thread.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_port(server: *const sse_server) -> u16 {
    guard(0, || {
        // SAFETY: NULL or live (the caller's promise).
        unsafe { server.as_ref() }.map_or(0, |server| server.shared.port)
    })
}

/// Copies the server's counters into `*stats_out`; `stats_size` is `sizeof *stats_out` as the
/// caller's header has it (fields the library does not know are set to 0). Counters are read
/// one by one, so they may be a few events apart from each other. Works after a stop too.
/// Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL pointer, `SSE_RESULT_INVALID_ARGUMENT` for a
/// size smaller than the first published `sse_stats`. `*stats_out` is only written on success.
/// Thread-safety: any thread.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed; `stats_out` is NULL or
/// points to `stats_size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_stats(
    server: *const sse_server,
    stats_out: *mut sse_stats,
    stats_size: usize,
) -> sse_result {
    guard(sse_result::Panic, || {
        // SAFETY: NULL or live (the caller's promise).
        let Some(server) = (unsafe { server.as_ref() }) else {
            return fail(sse_result::NullArgument, "server is NULL");
        };
        if stats_out.is_null() {
            return fail(sse_result::NullArgument, "stats_out is NULL");
        }
        if let Err(code) = check_struct_size("sse_stats", stats_size, STATS_MIN_SIZE) {
            return code;
        }
        let s = server.shared.handle.stats();
        let stats = sse_stats {
            connections: s.connections,
            subscribers: s.subscribers,
            events_published: s.events_published,
            bytes_sent: s.bytes_sent,
            subscribers_dropped_slow: s.subscribers_dropped_slow,
            history_events: s.history_events,
            requests_refused: s.requests_refused,
        };
        let known = stats_size.min(size_of::<sse_stats>());
        // SAFETY: `stats_size` writable bytes at `stats_out` (the caller's promise); `known` of
        // them are copied from a live `sse_stats`, the rest are zeroed.
        unsafe {
            stats_out.cast::<u8>().write_bytes(0, stats_size);
            std::ptr::copy_nonoverlapping(
                (&raw const stats).cast::<u8>(),
                stats_out.cast::<u8>(),
                known,
            );
        }
        sse_result::Ok
    })
}

// ---------------------------------------------------------------------------------------------
// Publishing

/// Publishes one event to the subscribers of `topic` and appends it to the history. Copies
/// everything it needs before returning; never blocks on the loop or the network.
/// - `topic`: NULL or "" for the empty topic (which `GET /events` without `topic=` receives).
/// - `event_type`: NULL or "" for the default type `message`; must not contain CR or LF.
/// - `data`, `data_len`: the payload, `data_len` bytes of UTF-8, not necessarily
///   NUL-terminated; `data` may be NULL when `data_len` is 0. Line breaks (LF, CRLF, CR) become
///   one `data:` line each.
/// - `id`: NULL or "" to let the server assign the next id; otherwise the event's id, which
///   must not contain CR or LF.
///
/// Strings are NUL-terminated UTF-8, so a NUL can only end them. Returns, on success, the id
/// the server assigned (a decimal integer, always > 0: ids start at the current time in
/// microseconds and count up, so they also grow across restarts), or 0 when the caller gave its
/// own `id` (the event then carries exactly that id). On failure, nothing is published and a
/// negative `sse_result` comes back: `SSE_RESULT_NULL_ARGUMENT` (NULL `server`, or NULL `data`
/// with `data_len` > 0), `SSE_RESULT_INVALID_UTF8`, `SSE_RESULT_INVALID_FIELD` (CR or LF in
/// `event_type` or `id`), `SSE_RESULT_QUEUE_FULL` (the loop is `publish_queue` events behind:
/// retry later or drop the event), `SSE_RESULT_STOPPED`.
/// Events published before the loop starts are queued (up to `publish_queue`) and sent when it
/// does. Events published from one thread reach every subscriber in that order.
/// Thread-safety: any thread, concurrently, until `sse_server_free`.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed; `topic`, `event_type` and
/// `id` are NULL or NUL-terminated; `data` is NULL or points to `data_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_publish(
    server: *const sse_server,
    topic: *const c_char,
    event_type: *const c_char,
    data: *const c_char,
    data_len: usize,
    id: *const c_char,
) -> i64 {
    guard(sse_result::Panic as i64, || {
        // SAFETY: NULL or live (the caller's promise).
        let Some(server) = (unsafe { server.as_ref() }) else {
            return fail(sse_result::NullArgument, "server is NULL") as i64;
        };
        with_scratch_event(|event| {
            // SAFETY: the caller's promise on each pointer, as stated above.
            if let Err(code) = unsafe { fill_event(event, topic, event_type, data, data_len, id) } {
                return code as i64;
            }
            match server.shared.handle.publish(event) {
                // Ids start near 2^50 (microseconds since 1970) and count up by one per event,
                // so they stay below 2^63 for far longer than any server runs.
                Ok(Some(assigned)) => i64::try_from(assigned).unwrap_or(i64::MAX),
                Ok(None) => 0,
                Err(e) => publish_failed(e) as i64,
            }
        })
    })
}

thread_local! {
    /// Each publishing thread's `Event`, refilled on every call so that its strings keep their
    /// capacity: the hot path then allocates nothing of its own.
    static SCRATCH_EVENT: RefCell<Event> = RefCell::new(Event::default());
}

/// Bytes a scratch event may keep between calls; a bigger event's buffers are released.
const SCRATCH_KEEP: usize = 64 * 1024;

fn with_scratch_event<R>(mut f: impl FnMut(&mut Event) -> R) -> R {
    let reused = SCRATCH_EVENT.try_with(|scratch| {
        let mut event = scratch.borrow_mut();
        let result = f(&mut event);
        let kept = [&event.data, &event.event_type, &event.id]
            .into_iter()
            .chain(&event.topics)
            .map(String::capacity)
            .sum::<usize>();
        if kept > SCRATCH_KEEP {
            *event = Event::default();
        }
        result
    });
    // Err: the thread is exiting and its scratch is gone; a fresh event does the job.
    reused.unwrap_or_else(|_| f(&mut Event::default()))
}

/// Copies the arguments of `sse_publish` into `event`, reusing its buffers.
///
/// # Safety
/// As for `sse_publish`.
unsafe fn fill_event(
    event: &mut Event,
    topic: *const c_char,
    event_type: *const c_char,
    data: *const c_char,
    data_len: usize,
    id: *const c_char,
) -> Result<(), sse_result> {
    let data: &[u8] = match (data.is_null(), data_len) {
        (_, 0) => &[],
        (true, _) => {
            return Err(fail(
                sse_result::NullArgument,
                "data is NULL but data_len > 0",
            ));
        }
        (false, len) if len > isize::MAX as usize => {
            return Err(fail(sse_result::InvalidArgument, "data_len is too large"));
        }
        // SAFETY: `data` points to `data_len` readable bytes (the caller's promise).
        (false, len) => unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) },
    };
    let data = std::str::from_utf8(data)
        .map_err(|_| fail(sse_result::InvalidUtf8, "data is not valid UTF-8"))?;
    // SAFETY: NULL or NUL-terminated (the caller's promise).
    let (topic, event_type, id) = unsafe {
        (
            optional_str(topic, "topic")?,
            optional_str(event_type, "event_type")?,
            optional_str(id, "id")?,
        )
    };
    // One topic always: "" is the empty topic, the same as none.
    event.topics.resize_with(1, String::new);
    replace(&mut event.topics[0], topic);
    replace(&mut event.event_type, event_type);
    replace(&mut event.data, data);
    replace(&mut event.id, id);
    event.retry = None;
    Ok(())
}

fn replace(buffer: &mut String, text: &str) {
    buffer.clear();
    buffer.push_str(text);
}

fn publish_failed(e: PublishError) -> sse_result {
    let code = match e {
        PublishError::Invalid(FieldError::Utf8) => sse_result::InvalidUtf8,
        PublishError::Invalid(FieldError::EventType | FieldError::Id) => sse_result::InvalidField,
        PublishError::Invalid(FieldError::Retry) => sse_result::InvalidArgument,
        PublishError::QueueFull => sse_result::QueueFull,
        PublishError::Stopped => sse_result::Stopped,
    };
    fail(code, e)
}

// ---------------------------------------------------------------------------------------------
// Helpers for the loop state

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LoopState> {
        // Every transition is a single assignment, so a poisoned lock holds a consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Failure {
    fn new(code: sse_result, message: String) -> Failure {
        Failure { code, message }
    }

    /// Records the message for this thread's `sse_last_error` and returns the code.
    fn report(&self) -> sse_result {
        fail(self.code, &self.message)
    }
}

/// The code for starting a loop that is not `Ready`.
fn not_ready(state: &LoopState) -> sse_result {
    match state {
        LoopState::Ended(_) => fail(sse_result::Stopped, "the server is stopped"),
        _ => fail(sse_result::Busy, "the server's loop is already running"),
    }
}

/// How a loop ended, from its result or its panic.
fn ended_by(outcome: std::thread::Result<io::Result<()>>) -> Result<(), Failure> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(
            sse_result::Io,
            format!("the loop failed: {e}"),
        )),
        Err(payload) => Err(Failure::new(
            sse_result::Panic,
            format!("the loop panicked: {}", panic_message(&*payload)),
        )),
    }
}

fn report(ended: &Result<(), Failure>) -> sse_result {
    match ended {
        Ok(()) => sse_result::Ok,
        Err(failure) => failure.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: sse_last_error returns a NUL-terminated string valid until the next failure.
        unsafe { CStr::from_ptr(sse_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_an_error_code_and_a_message() {
        let code = guard(sse_result::Panic, || -> sse_result { panic!("boom") });
        assert_eq!(code, sse_result::Panic);
        assert_eq!(last_error(), "internal error (panic): boom");
        let null = guard(std::ptr::null_mut::<sse_server>(), || panic!("again"));
        assert!(null.is_null());
    }

    #[test]
    fn messages_never_carry_an_inner_nul() {
        fail(sse_result::InvalidArgument, "a\0b");
        assert_eq!(last_error(), "ab");
    }

    #[test]
    fn the_config_has_no_padding_between_fields() {
        // Fields are read by byte count (see sse_config): every byte up to the size must belong
        // to a field, or a padding byte could be read as a field added later.
        assert_eq!(CONFIG_MIN_SIZE, size_of::<sse_config>());
        assert_eq!(STATS_MIN_SIZE, size_of::<sse_stats>());
    }

    #[test]
    fn result_codes_match_their_descriptions() {
        for code in -9..=0 {
            // SAFETY: static NUL-terminated strings.
            let text = unsafe { CStr::from_ptr(sse_result_str(code)) };
            assert_ne!(text.to_bytes(), b"unknown result code", "code {code}");
        }
        assert_eq!(sse_result::Panic as i32, -9);
    }
}
