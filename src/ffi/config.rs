//! `sse_config`: the settings a C caller gives `sse_server_new`, and their defaults.

use std::ffi::{CStr, c_char, c_void};
use std::mem::{offset_of, size_of};
use std::time::Duration;

use super::callbacks::{self, sse_access_callback, sse_log_callback, sse_stream_callback};
use super::issuer::{read_issuers, sse_issuer};
use super::result::{fail, sse_result};
use super::{check_struct_size, guard, optional_str};
use crate::{Config, Cors, FsyncPolicy, LogLevel};

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
    /// Most open event streams; other requests keep a reserve of a tenth as many connections
    /// (at least 32) on top. Default 10000.
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
    /// When not NULL, the path of the history file: every accepted event is appended to it
    /// before it is delivered, and the retained history is loaded from it by `sse_server_new`
    /// (which fails, naming the path, when the file cannot be used). Default NULL.
    pub history_file: *const c_char,
    /// When the history file is synced: 0 (the default) after every write, before events are
    /// delivered; -1 never (left to the OS); N > 0 at most every N milliseconds.
    pub fsync_ms: i64,
    /// When not NULL, the HS256 secret (at least 32 bytes, used as written) of publishers'
    /// JSON Web Tokens: publishing over HTTP then needs a token whose `mercure.publish` topic
    /// selectors match every topic of the event (or `publish_token`). Default NULL.
    /// `sse_server_new` fails with `SSE_RESULT_INVALID_ARGUMENT` for a shorter key, or in a
    /// library built without JWT support.
    pub publisher_jwt_key: *const c_char,
    /// When not NULL, the HS256 secret of subscribers' tokens: subscribing then needs one
    /// (unless `anonymous`), and private events reach only the streams whose token's
    /// `mercure.subscribe` selectors match one of their topics. Default NULL.
    pub subscriber_jwt_key: *const c_char,
    /// Non-zero: with `subscriber_jwt_key`, subscribers without a token may read public
    /// events. Default 0.
    pub anonymous: i64,
    /// When not NULL, the URL of the Redis (7 or later) or Valkey server whose stream this
    /// server shares with the other nodes of a cluster: "redis://HOST:PORT" (optionally with
    /// ":PASSWORD@" before the host and "/DB" after the port) or "unix:///PATH". Events are
    /// then appended to the stream, which assigns their ids, and every node delivers them all;
    /// `sse_publish` waits for Redis's answer (a round trip, at most a few seconds) and returns
    /// `SSE_RESULT_UNAVAILABLE` when Redis cannot be reached. Needs a libssed built with the
    /// cargo feature `redis` (otherwise `sse_server_new` fails saying so); excludes
    /// `history_file`. Redis being down when `sse_server_new` runs is no error: publishing
    /// fails until it is back. Default NULL.
    pub redis_url: *const c_char,
    /// The key of the cluster's stream. NULL (the default) means "ssed".
    pub redis_stream: *const c_char,
    /// Entries the cluster's stream keeps for replay; 0 (the default) keeps `history`, and at
    /// least 1024 in any case.
    pub redis_history: usize,
    /// When not NULL, with `tls_key`: the listener speaks HTTPS (TLS 1.3 and 1.2, ALPN
    /// http/1.1), presenting the PEM certificate chain in this file (the server's certificate
    /// first). `sse_server_new` reads it and fails, naming the file and the reason, when the
    /// pair cannot serve (a file missing or unreadable, a key that is not the certificate's, a
    /// certificate expired or not valid yet); `sse_server_reload_tls` rereads both. Needs a
    /// libssed built with the cargo feature `tls`. Default NULL.
    pub tls_cert: *const c_char,
    /// The PEM private key of `tls_cert` (RSA, ECDSA or Ed25519). Default NULL.
    pub tls_key: *const c_char,
    /// Mercure 1.0: the hub's public URL, as browsers and publishers reach it (behind a proxy,
    /// the proxy's): the base of relative topics and URL patterns, and the root of the
    /// namespace reserved to the hub. NULL (the default): "http://", the bound address and
    /// "/.well-known/mercure".
    pub hub_url: *const c_char,
    /// Mercure 1.0: the resource identifier access tokens' `aud` must contain. NULL (the
    /// default): the hub URL.
    pub resource_identifier: *const c_char,
    /// Mercure 1.0: the trusted issuers of access tokens, `issuer_count` of them (see
    /// `sse_issuer`). Default NULL and 0: no 1.0 token is accepted.
    pub issuers: *const sse_issuer,
    pub issuer_count: usize,
    /// Non-zero: Mercure 1.0's active subscriptions (subscription events and the subscription
    /// API). Default 0.
    pub subscriptions: i64,
    /// When not NULL, receives the log lines (up to `log_level`) instead of stderr, on a thread
    /// of the library's own (see `sse_log_callback`). Default NULL.
    pub log_callback: sse_log_callback,
    /// When not NULL, asked before a stream opens and before a publish is accepted, on the
    /// loop's thread (see `sse_access_callback`). Default NULL.
    pub access_callback: sse_access_callback,
    /// When not NULL, told of every stream that opens and closes, on the loop's thread (see
    /// `sse_stream_callback`; with several `loops`, on the thread of the stream's loop).
    /// Default NULL.
    pub stream_callback: sse_stream_callback,
    /// Passed as is to every callback above; the library never reads it. Default NULL.
    pub callback_data: *mut c_void,
    /// Non-zero: `GET /metrics` lists the open streams per topic
    /// (`ssed_topic_subscribers{topic="..."}`); every topic listened to is one more series.
    /// Default 0.
    pub metrics_topics: i64,
    /// When not 0, a listening TCP socket the server takes over instead of binding `listen`
    /// (one systemd passes, say): the server owns and closes it. Descriptor 0 (standard input)
    /// cannot be passed. Default 0.
    pub listen_fd: i64,
    /// When not NULL, the path of a Unix-domain socket the server creates (mode 0660; a stale
    /// socket file there is replaced) for local publishers: `POST /publish` and the hub's
    /// `POST` on it need no token, since the file's permissions are its access control; only
    /// `/health` and `/metrics` are served besides, and its connections have a limit of their
    /// own that no TCP client can take. The file is removed when the server stops. Default
    /// NULL.
    pub publish_socket: *const c_char,
    /// When not 0, a listening Unix-domain socket the server takes over as its publish socket
    /// instead of creating one (socket activation). Default 0.
    pub publish_socket_fd: i64,
    /// Event loops, each on a thread of its own: the first (the thread that runs
    /// `sse_server_run` or `sse_server_run_for`) serves every request, and the streams are
    /// spread over all of them, so that a fan-out uses that many cores. 0 (the default) and 1
    /// mean one loop. With more, the stream callback hears a stream close on the thread of the
    /// loop that holds it, so it may be called from several threads at once. At most 64; needs
    /// a libssed built with the cargo feature `loops` beyond 1; negative is refused.
    pub loops: i64,
}

/// Where the listen address points by default (a static string, so `sse_config_init` allocates
/// nothing the caller would have to free).
const DEFAULT_LISTEN: &CStr = c"127.0.0.1:8080";

/// Bytes of the smallest `sse_config` a caller may pass: the first published layout.
const CONFIG_MIN_SIZE: usize = offset_of!(sse_config, log_level) + size_of::<i64>();

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
        history_file: std::ptr::null(),
        fsync_ms: 0,
        publisher_jwt_key: std::ptr::null(),
        subscriber_jwt_key: std::ptr::null(),
        anonymous: 0,
        redis_url: std::ptr::null(),
        redis_stream: std::ptr::null(),
        redis_history: 0,
        tls_cert: std::ptr::null(),
        tls_key: std::ptr::null(),
        hub_url: std::ptr::null(),
        resource_identifier: std::ptr::null(),
        issuers: std::ptr::null(),
        issuer_count: 0,
        subscriptions: 0,
        log_callback: None,
        access_callback: None,
        stream_callback: None,
        callback_data: std::ptr::null_mut(),
        metrics_topics: 0,
        listen_fd: 0,
        publish_socket: std::ptr::null(),
        publish_socket_fd: 0,
        loops: 0,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Reads the caller's config: the fields its `size` covers, defaults for the rest.
///
/// # Safety
/// `config` is non-NULL, was filled by `sse_config_init`, and covers `config.size` bytes.
pub(super) unsafe fn read_config(config: *const sse_config) -> Result<sse_config, sse_result> {
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
pub(super) unsafe fn to_config(c: &sse_config) -> Result<Config, sse_result> {
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
        config.listen = crate::config::resolve_listen(listen)
            .map_err(|why| invalid(format!("listen: {why}")))?;
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
    if !c.history_file.is_null() {
        // SAFETY: NULL-checked; NUL-terminated (the caller's promise).
        let path = unsafe { optional_str(c.history_file, "history_file") }?;
        if path.is_empty() {
            return Err(invalid("history_file: an empty path".into()));
        }
        config.history_file = Some(path.into());
    }
    // SAFETY: NULL or NUL-terminated (the caller's promise).
    let (redis_url, redis_stream) = unsafe {
        (
            optional_str(c.redis_url, "redis_url")?,
            optional_str(c.redis_stream, "redis_stream")?,
        )
    };
    config.redis = (!c.redis_url.is_null()).then(|| redis_url.to_owned());
    if !c.redis_stream.is_null() {
        config.redis_stream = redis_stream.to_owned();
    }
    config.redis_history = (c.redis_history != 0).then_some(c.redis_history);
    // SAFETY: NULL or NUL-terminated (the caller's promise).
    let (tls_cert, tls_key) = unsafe {
        (
            optional_str(c.tls_cert, "tls_cert")?,
            optional_str(c.tls_key, "tls_key")?,
        )
    };
    config.tls_cert = (!c.tls_cert.is_null()).then(|| tls_cert.into());
    config.tls_key = (!c.tls_key.is_null()).then(|| tls_key.into());
    config.fsync = match c.fsync_ms {
        0 => FsyncPolicy::Always,
        -1 => FsyncPolicy::Never,
        ms if ms > 0 => FsyncPolicy::Interval(Duration::from_millis(ms as u64)),
        other => {
            return Err(invalid(format!(
                "fsync_ms: {other} is not 0 (always), -1 (never) or a number of milliseconds"
            )));
        }
    };
    // SAFETY: NULL or NUL-terminated (the caller's promise); a key is never quoted back.
    let (publisher_jwt_key, subscriber_jwt_key) = unsafe {
        (
            optional_str(c.publisher_jwt_key, "publisher_jwt_key")?,
            optional_str(c.subscriber_jwt_key, "subscriber_jwt_key")?,
        )
    };
    config.publisher_jwt_key =
        (!c.publisher_jwt_key.is_null()).then(|| publisher_jwt_key.to_owned());
    config.subscriber_jwt_key =
        (!c.subscriber_jwt_key.is_null()).then(|| subscriber_jwt_key.to_owned());
    config.anonymous = c.anonymous != 0;
    // SAFETY: NULL or NUL-terminated (the caller's promise).
    let (hub_url, resource_identifier) = unsafe {
        (
            optional_str(c.hub_url, "hub_url")?,
            optional_str(c.resource_identifier, "resource_identifier")?,
        )
    };
    config.hub_url = (!c.hub_url.is_null()).then(|| hub_url.to_owned());
    config.resource_identifier =
        (!c.resource_identifier.is_null()).then(|| resource_identifier.to_owned());
    // SAFETY: the caller's promise on `issuers` and `issuer_count`.
    config.issuers = unsafe { read_issuers(c.issuers, c.issuer_count) }?;
    config.subscriptions = c.subscriptions != 0;
    config.loops = match c.loops {
        0 => 1,
        n => usize::try_from(n).map_err(|_| invalid(format!("loops: {n} is negative")))?,
    };
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
    // SAFETY: NULL or NUL-terminated (the caller's promise).
    unsafe { host_settings(c, &mut config) }?;
    config.validate().map_err(invalid)?;
    Ok(config)
}

/// The callbacks, the per-topic metrics and the sockets handed over.
///
/// # Safety
/// `c.publish_socket` is NULL or NUL-terminated and valid for the call.
unsafe fn host_settings(c: &sse_config, config: &mut Config) -> Result<(), sse_result> {
    config.hooks = callbacks::hooks(
        c.log_callback,
        c.access_callback,
        c.stream_callback,
        c.callback_data,
    )
    .map_err(|why| fail(sse_result::InvalidArgument, why))?;
    config.metrics_topics = c.metrics_topics != 0;
    let descriptor = |name: &str, fd: i64| match fd {
        0 => Ok(None),
        fd => i32::try_from(fd)
            .ok()
            .filter(|fd| *fd > 0)
            .map(Some)
            .ok_or_else(|| {
                fail(
                    sse_result::InvalidArgument,
                    format!("{name}: {fd} is not a file descriptor"),
                )
            }),
    };
    config.listen_fd = descriptor("listen_fd", c.listen_fd)?;
    config.publish_socket_fd = descriptor("publish_socket_fd", c.publish_socket_fd)?;
    if !c.publish_socket.is_null() {
        // SAFETY: NULL-checked; NUL-terminated (the caller's promise).
        let path = unsafe { optional_str(c.publish_socket, "publish_socket") }?;
        config.publish_socket = Some(path.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_has_no_padding_between_fields() {
        // Fields are read by byte count (see sse_config): every byte up to the size must belong
        // to a field, or a padding byte could be read as a field added later.
        assert_eq!(
            offset_of!(sse_config, loops) + size_of::<i64>(),
            size_of::<sse_config>()
        );
        assert_eq!(CONFIG_MIN_SIZE, offset_of!(sse_config, history_file));
    }
}
