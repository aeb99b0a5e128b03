//! `sse_server`: an opaque server handle and its lifecycle (new, start or run, stop, free).

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::config::{read_config, sse_config, to_config};
use super::guard;
use super::panic::panic_message;
use super::result::{fail, sse_result};
use crate::{Handle, Server};

/// A server: bound by `sse_server_new`, its loop run by `sse_server_start` (on a library
/// thread) or `sse_server_run` (on the caller's thread), stopped by `sse_server_stop`, freed by
/// `sse_server_free`. Opaque. `sse_publish`, `sse_server_port`, `sse_server_stats` and
/// `sse_server_stop` may be called from any thread at any time until `sse_server_free`.
pub struct sse_server {
    shared: Arc<Shared>,
}

impl sse_server {
    /// The Rust handle that publishes to this server and reads its counters.
    pub(super) fn handle(&self) -> &Handle {
        &self.shared.handle
    }
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
        let server = match Server::bind(config) {
            Ok(server) => server,
            Err(e) => {
                fail(sse_result::Io, e);
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

/// Runs the server's loop on the calling thread for up to `timeout_ms` milliseconds, then
/// returns, leaving the server bound with its connections open, ready to be run again: for a
/// host whose own thread must run the callbacks (a PHP worker, a program with a loop of its
/// own that calls this between its own work). Events published meanwhile from any thread wait
/// in the publish queue and go out on the next call; clients are served only during calls.
/// Returns `SSE_RESULT_OK` when the time was up (call it again), `SSE_RESULT_STOPPED` once the
/// server has stopped (by `sse_server_stop` from another thread, or before this call: the
/// loop then flushes for up to a second and closes everything, as `sse_server_run` does);
/// `SSE_RESULT_BUSY` if the loop already runs elsewhere; `SSE_RESULT_IO` or
/// `SSE_RESULT_PANIC` if the loop failed.
/// Thread-safety: any thread, one call at a time; it blocks that thread for the time given.
///
/// # Safety
/// `server` is NULL or a server from `sse_server_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sse_server_run_for(
    server: *mut sse_server,
    timeout_ms: u32,
) -> sse_result {
    guard(sse_result::Panic, || {
        // A clone, as in sse_server_run.
        // SAFETY: NULL or live (the caller's promise).
        let shared = match unsafe { server.as_ref() } {
            Some(server) => Arc::clone(&server.shared),
            None => return fail(sse_result::NullArgument, "server is NULL"),
        };
        run_here_for(&shared, Duration::from_millis(u64::from(timeout_ms)))
    })
}

fn run_here_for(shared: &Shared, time: Duration) -> sse_result {
    let mut ready = {
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
    let outcome = catch_unwind(AssertUnwindSafe(|| ready.run_for(time)));
    let ended = match outcome {
        Ok(Ok(false)) => {
            *shared.lock() = LoopState::Ready(ready);
            // A stop waiting meanwhile finishes the server (see stop_and_wait).
            shared.ended.notify_all();
            return sse_result::Ok;
        }
        Ok(Ok(true)) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(
            sse_result::Io,
            format!("the loop failed: {e}"),
        )),
        Err(payload) => Err(Failure::new(
            sse_result::Panic,
            format!("the loop panicked: {}", panic_message(&*payload)),
        )),
    };
    let code = match &ended {
        Ok(()) => fail(sse_result::Stopped, "the server is stopped"),
        Err(failure) => failure.report(),
    };
    *shared.lock() = LoopState::Ended(ended);
    shared.ended.notify_all();
    code
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
                // Not running (never started, or between `sse_server_run_for` calls): run it
                // to its end here, which flushes what it holds and closes everything.
                drop(state);
                let ended = ended_by(catch_unwind(AssertUnwindSafe(|| (*ready).run())));
                state = shared.lock();
                *state = LoopState::Ended(ended);
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
