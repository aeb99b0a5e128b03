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
 */

#ifndef SSED_H
#define SSED_H

#include <stddef.h>
#include <stdint.h>

/**
 * Version of the C ABI: bumped whenever a change breaks programs built against an older header.
 * Compare it with `sse_abi_version()` at run time (PHP, which cannot see macros, must).
 */
#define SSE_ABI_VERSION 1

/**
 * What a call returned: 0 is success, every failure is negative. `sse_publish` returns these
 * same negative values in its `int64_t`. `sse_result_str` names a code; `sse_last_error` gives
 * the message of the latest failure on the calling thread.
 */
typedef enum sse_result {
  /**
   * Success.
   */
  SSE_RESULT_OK = 0,
  /**
   * A required pointer argument was NULL.
   */
  SSE_RESULT_NULL_ARGUMENT = -1,
  /**
   * An argument or configuration value is malformed or out of range.
   */
  SSE_RESULT_INVALID_ARGUMENT = -2,
  /**
   * A string argument or the data is not valid UTF-8.
   */
  SSE_RESULT_INVALID_UTF8 = -3,
  /**
   * The event type or id contains CR, LF or NUL, which would inject fields into the stream.
   */
  SSE_RESULT_INVALID_FIELD = -4,
  /**
   * The queue to the loop is full: the loop is behind. Nothing was published; retry later.
   */
  SSE_RESULT_QUEUE_FULL = -5,
  /**
   * The server has been stopped (or its loop has ended).
   */
  SSE_RESULT_STOPPED = -6,
  /**
   * The loop is already running: `sse_server_start` or `sse_server_run` was called before.
   */
  SSE_RESULT_BUSY = -7,
  /**
   * A system call failed: binding the port, starting a thread, or the loop itself.
   */
  SSE_RESULT_IO = -8,
  /**
   * An internal error was caught at the API boundary; the library has a bug.
   */
  SSE_RESULT_PANIC = -9,
  /**
   * The history file cannot be written now (a full or failing disk): nothing was published.
   * Publishing recovers by itself when the disk does; retry later.
   */
  SSE_RESULT_STORAGE = -10,
  /**
   * In a cluster (`redis_url`), Redis cannot be reached or did not answer in time: the event
   * was not acknowledged (when Redis failed in the middle of the call, it may still have been
   * published). Publishing recovers by itself when Redis does; retry later.
   */
  SSE_RESULT_UNAVAILABLE = -11,
} sse_result;

/**
 * How much the server writes on the process's stderr (the `log_level` of `sse_config`).
 */
typedef enum sse_log_level {
  /**
   * Nothing.
   */
  SSE_LOG_LEVEL_OFF = 0,
  /**
   * Errors only (the library's default: the host program owns stderr).
   */
  SSE_LOG_LEVEL_QUIET = 1,
  /**
   * Also start, refused clients and slow subscribers dropped (the daemon's default).
   */
  SSE_LOG_LEVEL_INFO = 2,
  /**
   * Also every connection accepted and closed.
   */
  SSE_LOG_LEVEL_VERBOSE = 3,
} sse_log_level;

/**
 * A request the access callback decides on (see `access_callback` in `sse_config`). Opaque and
 * owned by the library; valid only during the call, as is every string read from it.
 */
typedef struct sse_request sse_request;

/**
 * A server: bound by `sse_server_new`, its loop run by `sse_server_start` (on a library
 * thread) or `sse_server_run` (on the caller's thread), stopped by `sse_server_stop`, freed by
 * `sse_server_free`. Opaque. `sse_publish`, `sse_server_port`, `sse_server_stats` and
 * `sse_server_stop` may be called from any thread at any time until `sse_server_free`.
 */
typedef struct sse_server sse_server;

/**
 * A trusted issuer of Mercure 1.0 access tokens (`typ` `at+jwt`): the `iss` its tokens carry,
 * and the keys its publishers' and subscribers' tokens are signed with. A key is written
 * "HS256:SECRET" (or the bare secret, 32 bytes or more), "RS256:PEM" or "ES256:PEM" (in a
 * libssed built with those algorithms); NULL: that role's tokens are not accepted from this
 * issuer. Only the issuer's own keys ever verify its tokens.
 *
 * The caller owns the struct and its strings; `sse_server_new` copies what it needs.
 */
typedef struct sse_issuer {
  /**
   * The issuer identifier, exactly as tokens' `iss` (e.g. "https://example.com"). Not NULL.
   */
  const char *issuer;
  /**
   * The key of its publishers' tokens, or NULL.
   */
  const char *publisher_key;
  /**
   * The key of its subscribers' tokens, or NULL.
   */
  const char *subscriber_key;
} sse_issuer;

/**
 * Receives one log line: its level (an `sse_log_level`: 1 for an error, 2 for information, 3
 * for every connection), the line (NUL-terminated UTF-8, without a trailing newline or a
 * "ssed: " prefix), its length in bytes, and the config's `callback_data`.
 * Called on a thread of the library's own, one line at a time, in order: never on the loop's
 * thread, never concurrently with itself. A slow callback holds up only that thread: lines
 * wait (up to 1024) and are then dropped and counted, and the callback is told how many with
 * its next line. The line is the library's, valid during the call: copy it to keep it.
 */
typedef void (*sse_log_callback)(int level, const char *line, size_t len, void *data);

/**
 * Decides whether a stream may open or a publish be accepted, once the request has passed the
 * server's tokens and JSON Web Tokens (a request must pass both). Returns 0 to allow, or an
 * HTTP status from 400 to 599 to refuse (401, 403, 429...): the client gets that status and
 * nothing is published (`sse_request_set_reason` sets the answer's body). Any other value
 * refuses with 500 and is logged.
 * `request` and every string read from it are valid only during the call (see
 * `sse_request_*`). Called on the loop's thread, synchronously: while it runs no other
 * client is served, so it must be fast (a lookup in memory, not a network round trip). Events
 * published meanwhile wait in the publish queue and none is lost; a call that takes more than
 * 100 ms is logged. It must not call `sse_server_stop`, `sse_server_free` or
 * `sse_server_run*` on its own server.
 */
typedef int (*sse_access_callback)(struct sse_request *request, void *data);

/**
 * A stream that opened or closed, as `sse_stream_callback` is told. The library's; valid,
 * with every string it points to, only during the call. Fields may be added at the end.
 */
typedef struct sse_stream_event {
  /**
   * 1 when the stream opened (its head and any replay are queued), 0 when it closed.
   */
  int32_t opened;
  /**
   * The stream's id: the same when it opens and when it closes, unique among open streams.
   */
  uint64_t stream_id;
  /**
   * The topics (or selectors) the stream asked for, as sent; `topic_count` of them, none
   * when it asked for every topic.
   */
  const char *const *topics;
  size_t topic_count;
  /**
   * The client's address ("127.0.0.1:51234"), or NULL when unknown.
   */
  const char *peer;
} sse_stream_event;

/**
 * Told of every stream that opens and closes (for hosts that keep presence themselves; the
 * counts alone are `sse_server_topic_subscribers`). Called on the loop's thread,
 * synchronously, so it must be fast: while it runs no other client is served. With several
 * `loops`, a stream's close is heard on the thread of the loop that holds it, so the callback
 * may run on several threads at once; a stream's open and close carry the same id. It must not
 * call `sse_server_stop`, `sse_server_free` or `sse_server_run*` on its own server.
 */
typedef void (*sse_stream_callback)(const struct sse_stream_event *event, void *data);

/**
 * Server settings. Declare one, fill it with `sse_config_init(&config, sizeof config)`, change
 * the fields you care about, and pass it to `sse_server_new`, which copies what it needs: the
 * struct and its strings may be freed as soon as `sse_server_new` returns.
 *
 * Fields are only ever added at the end, with 0 meaning their default. `size` tells the
 * library how much of the struct a caller has, so a program built against an older header
 * keeps working with a newer library, and a newer one gets a clear error from an older library
 * when it sets a field that library does not know.
 *
 * Not safe for concurrent use: one thread at a time.
 */
typedef struct sse_config {
  /**
   * Size of the caller's struct, set by `sse_config_init`. Do not change it.
   */
  size_t size;
  /**
   * Address to listen on, `"HOST:PORT"` (`"[::1]:8080"` for IPv6); port 0 picks a free port
   * (read it back with `sse_server_port`). Default "127.0.0.1:8080"; NULL also means it.
   */
  const char *listen;
  /**
   * Events kept for `Last-Event-ID` replay. Default 1024; 0 keeps none.
   */
  size_t history;
  /**
   * Most open event streams; other requests keep a reserve of a tenth as many connections
   * (at least 32) on top. Default 10000.
   */
  size_t max_clients;
  /**
   * Most bytes waiting for one subscriber before it is dropped. Default 1 MiB.
   */
  size_t max_queue;
  /**
   * Largest HTTP publish body, in bytes. Default 1 MiB.
   */
  size_t max_body;
  /**
   * Most events waiting between publishers and the loop; beyond it `sse_publish` returns
   * `SSE_RESULT_QUEUE_FULL`. Default 65536.
   */
  size_t publish_queue;
  /**
   * Milliseconds between heartbeat comments on every stream; 0 turns them off. Default 15000.
   */
  uint64_t heartbeat_ms;
  /**
   * Milliseconds a client has to send its whole request head. Default 10000; must not be 0.
   */
  uint64_t head_timeout_ms;
  /**
   * `retry:` milliseconds sent at the start of every stream, at most 4294967295; negative
   * sends none. Default -1.
   */
  int64_t retry_ms;
  /**
   * CORS: NULL (default) sends no CORS headers; "*" allows any origin; otherwise a
   * comma-separated list of origins.
   */
  const char *cors_origin;
  /**
   * When not NULL, publishing over HTTP needs `Authorization: Bearer <token>`. Default NULL.
   */
  const char *publish_token;
  /**
   * When not NULL, subscribing needs the bearer token or `?token=`. Default NULL.
   */
  const char *subscribe_token;
  /**
   * One of `sse_log_level`. Default `SSE_LOG_LEVEL_QUIET`.
   */
  int64_t log_level;
  /**
   * When not NULL, the path of the history file: every accepted event is appended to it
   * before it is delivered, and the retained history is loaded from it by `sse_server_new`
   * (which fails, naming the path, when the file cannot be used). Default NULL.
   */
  const char *history_file;
  /**
   * When the history file is synced: 0 (the default) after every write, before events are
   * delivered; -1 never (left to the OS); N > 0 at most every N milliseconds.
   */
  int64_t fsync_ms;
  /**
   * When not NULL, the HS256 secret (at least 32 bytes, used as written) of publishers'
   * JSON Web Tokens: publishing over HTTP then needs a token whose `mercure.publish` topic
   * selectors match every topic of the event (or `publish_token`). Default NULL.
   * `sse_server_new` fails with `SSE_RESULT_INVALID_ARGUMENT` for a shorter key, or in a
   * library built without JWT support.
   */
  const char *publisher_jwt_key;
  /**
   * When not NULL, the HS256 secret of subscribers' tokens: subscribing then needs one
   * (unless `anonymous`), and private events reach only the streams whose token's
   * `mercure.subscribe` selectors match one of their topics. Default NULL.
   */
  const char *subscriber_jwt_key;
  /**
   * Non-zero: with `subscriber_jwt_key`, subscribers without a token may read public
   * events. Default 0.
   */
  int64_t anonymous;
  /**
   * When not NULL, the URL of the Redis (7 or later) or Valkey server whose stream this
   * server shares with the other nodes of a cluster: "redis://HOST:PORT" (optionally with
   * ":PASSWORD@" before the host and "/DB" after the port) or "unix:///PATH". Events are
   * then appended to the stream, which assigns their ids, and every node delivers them all;
   * `sse_publish` waits for Redis's answer (a round trip, at most a few seconds) and returns
   * `SSE_RESULT_UNAVAILABLE` when Redis cannot be reached. Needs a libssed built with the
   * cargo feature `redis` (otherwise `sse_server_new` fails saying so); excludes
   * `history_file`. Redis being down when `sse_server_new` runs is no error: publishing
   * fails until it is back. Default NULL.
   */
  const char *redis_url;
  /**
   * The key of the cluster's stream. NULL (the default) means "ssed".
   */
  const char *redis_stream;
  /**
   * Entries the cluster's stream keeps for replay; 0 (the default) keeps `history`, and at
   * least 1024 in any case.
   */
  size_t redis_history;
  /**
   * When not NULL, with `tls_key`: the listener speaks HTTPS (TLS 1.3 and 1.2, ALPN
   * http/1.1), presenting the PEM certificate chain in this file (the server's certificate
   * first). `sse_server_new` reads it and fails, naming the file and the reason, when the
   * pair cannot serve (a file missing or unreadable, a key that is not the certificate's, a
   * certificate expired or not valid yet); `sse_server_reload_tls` rereads both. Needs a
   * libssed built with the cargo feature `tls`. Default NULL.
   */
  const char *tls_cert;
  /**
   * The PEM private key of `tls_cert` (RSA, ECDSA or Ed25519). Default NULL.
   */
  const char *tls_key;
  /**
   * Mercure 1.0: the hub's public URL, as browsers and publishers reach it (behind a proxy,
   * the proxy's): the base of relative topics and URL patterns, and the root of the
   * namespace reserved to the hub. NULL (the default): "http://", the bound address and
   * "/.well-known/mercure".
   */
  const char *hub_url;
  /**
   * Mercure 1.0: the resource identifier access tokens' `aud` must contain. NULL (the
   * default): the hub URL.
   */
  const char *resource_identifier;
  /**
   * Mercure 1.0: the trusted issuers of access tokens, `issuer_count` of them (see
   * `sse_issuer`). Default NULL and 0: no 1.0 token is accepted.
   */
  const struct sse_issuer *issuers;
  size_t issuer_count;
  /**
   * Non-zero: Mercure 1.0's active subscriptions (subscription events and the subscription
   * API). Default 0.
   */
  int64_t subscriptions;
  /**
   * When not NULL, receives the log lines (up to `log_level`) instead of stderr, on a thread
   * of the library's own (see `sse_log_callback`). Default NULL.
   */
  sse_log_callback log_callback;
  /**
   * When not NULL, asked before a stream opens and before a publish is accepted, on the
   * loop's thread (see `sse_access_callback`). Default NULL.
   */
  sse_access_callback access_callback;
  /**
   * When not NULL, told of every stream that opens and closes, on the loop's thread (see
   * `sse_stream_callback`; with several `loops`, on the thread of the stream's loop).
   * Default NULL.
   */
  sse_stream_callback stream_callback;
  /**
   * Passed as is to every callback above; the library never reads it. Default NULL.
   */
  void *callback_data;
  /**
   * Non-zero: `GET /metrics` lists the open streams per topic
   * (`ssed_topic_subscribers{topic="..."}`); every topic listened to is one more series.
   * Default 0.
   */
  int64_t metrics_topics;
  /**
   * When not 0, a listening TCP socket the server takes over instead of binding `listen`
   * (one systemd passes, say): the server owns and closes it. Descriptor 0 (standard input)
   * cannot be passed. Default 0.
   */
  int64_t listen_fd;
  /**
   * When not NULL, the path of a Unix-domain socket the server creates (mode 0660; a stale
   * socket file there is replaced) for local publishers: `POST /publish` and the hub's
   * `POST` on it need no token, since the file's permissions are its access control; only
   * `/health` and `/metrics` are served besides, and its connections have a limit of their
   * own that no TCP client can take. The file is removed when the server stops. Default
   * NULL.
   */
  const char *publish_socket;
  /**
   * When not 0, a listening Unix-domain socket the server takes over as its publish socket
   * instead of creating one (socket activation). Default 0.
   */
  int64_t publish_socket_fd;
  /**
   * Event loops, each on a thread of its own: the first (the thread that runs
   * `sse_server_run` or `sse_server_run_for`) serves every request, and the streams are
   * spread over all of them, so that a fan-out uses that many cores. 0 (the default) and 1
   * mean one loop. With more, the stream callback hears a stream close on the thread of the
   * loop that holds it, so it may be called from several threads at once. At most 64; needs
   * a libssed built with the cargo feature `loops` beyond 1; negative is refused.
   */
  int64_t loops;
} sse_config;

/**
 * Counters of a server, filled by `sse_server_stats`. Fields are only ever added at the end.
 */
typedef struct sse_stats {
  /**
   * Open client connections.
   */
  uint64_t connections;
  /**
   * Open event streams.
   */
  uint64_t subscribers;
  /**
   * Events published since start, counted when acknowledged: when `sse_publish` returns
   * the id, or an HTTP publish is answered `200`. Right after a successful `sse_publish`
   * its event is counted.
   */
  uint64_t events_published;
  /**
   * Bytes written to clients since start.
   */
  uint64_t bytes_sent;
  /**
   * Subscribers dropped for falling more than `max_queue` bytes behind.
   */
  uint64_t subscribers_dropped_slow;
  /**
   * Events retained for replay.
   */
  uint64_t history_events;
  /**
   * Requests and connections refused, all reasons together.
   */
  uint64_t requests_refused;
  /**
   * Events the loop has handed to the subscribers that want them since start (it takes
   * published events on its next turn; in a cluster, those of every node).
   */
  uint64_t events_delivered;
} sse_stats;

/**
 * One event for `sse_publish_event`. Declare one, fill it with
 * `sse_event_init(&event, sizeof event)`, set what you need, and publish it; the library only
 * reads it during the call, so it and everything it points to may be reused at once.
 *
 * Fields are only ever added at the end, with 0 meaning their default; `size` lets a newer
 * library read an older caller's struct, as with `sse_config`.
 *
 * Not safe for concurrent use: one thread at a time (publish copies of it from other threads).
 */
typedef struct sse_event {
  /**
   * Size of the caller's struct, set by `sse_event_init`. Do not change it.
   */
  size_t size;
  /**
   * `topic_count` topics, NUL-terminated UTF-8 strings: the event goes to the subscribers of
   * any of them, once each. NULL (with `topic_count` 0) means the empty topic. At most 1024.
   */
  const char *const *topics;
  /**
   * Number of strings at `topics`.
   */
  size_t topic_count;
  /**
   * The event type; NULL or "" for the default `message`. Must not contain CR or LF.
   */
  const char *event_type;
  /**
   * `data_len` bytes of UTF-8, not necessarily NUL-terminated; NULL when `data_len` is 0.
   */
  const char *data;
  /**
   * Length of `data` in bytes.
   */
  size_t data_len;
  /**
   * The id; NULL or "" to let the server assign the next one. Must not contain CR or LF.
   */
  const char *id;
  /**
   * `retry:` milliseconds sent with the event (the browser's reconnection delay), at most
   * 4294967295; negative sends none. Default -1.
   */
  int64_t retry_ms;
  /**
   * Non-zero: a private event, which reaches only the subscribers whose token's
   * `mercure.subscribe` selectors match one of its topics (never one without a token).
   * Default 0. (Not `private`, which C++ reserves.)
   */
  int64_t is_private;
} sse_event;

/**
 * Receives one topic and how many open streams asked for it, from `sse_server_each_topic`, on
 * the thread that called it; `topic` is valid during the call.
 */
typedef void (*sse_topic_callback)(const char *topic, uint64_t subscribers, void *data);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The library's version, such as "0.1.0". A static string: never free it.
 * Thread-safety: any thread.
 */
const char *sse_version(void);

/**
 * The ABI version of the library, to compare with `SSE_ABI_VERSION` from the header it was
 * built against. Thread-safety: any thread.
 */
uint32_t sse_abi_version(void);

/**
 * A short static description of a result code, such as "the publish queue is full"; an
 * unknown code gives "unknown result code". Never NULL; never free it.
 * Thread-safety: any thread.
 */
const char *sse_result_str(int code);

/**
 * The message of the latest failed call on the calling thread (for example "cannot listen on
 * 127.0.0.1:8080: Address in use (os error 98)"), or "" if none has failed. Successful calls
 * leave it unchanged. Owned by the library: valid until the next failing call on this thread
 * or until the thread exits; copy it to keep it. Never NULL.
 * Thread-safety: any thread; each thread sees its own.
 */
const char *sse_last_error(void);

/**
 * The request's method: "GET" (a stream) or "POST" (a publish). Never NULL for a valid
 * request; NULL for a NULL one.
 * Ownership: the library's, valid until the access callback returns.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress.
 */
const char *sse_request_method(const struct sse_request *request);

/**
 * The request's path: "/events", "/publish" or "/.well-known/mercure".
 * Ownership: the library's, valid until the access callback returns.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress.
 */
const char *sse_request_path(const struct sse_request *request);

/**
 * The request's query string, without the `?` ("" when there is none), as sent.
 * Ownership: the library's, valid until the access callback returns.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress.
 */
const char *sse_request_query(const struct sse_request *request);

/**
 * 1 for a publish, 0 for a stream (and for a NULL request).
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress.
 */
int32_t sse_request_is_publish(const struct sse_request *request);

/**
 * How many topics the request names: those the stream asks for (0: every topic), or the
 * event's (0: the empty topic). 0 for a NULL request.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress.
 */
size_t sse_request_topic_count(const struct sse_request *request);

/**
 * Topic number `index` (from 0) of the request (a topic or a selector, as sent), or NULL
 * beyond `sse_request_topic_count`.
 * Ownership: the library's, valid until the access callback returns.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress.
 */
const char *sse_request_topic(const struct sse_request *request, size_t index);

/**
 * The client's address, such as "127.0.0.1:51234" or "[::1]:51234"; NULL for a request on
 * the publish socket.
 * Ownership: the library's, valid until the access callback returns.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress.
 */
const char *sse_request_peer(const struct sse_request *request);

/**
 * The value of the request's first header line named `name` (compared without regard to
 * case), without surrounding blanks; NULL when there is none, when it is not UTF-8, or when
 * `name` is NULL.
 * Ownership: the library's, valid until the access callback returns; `name` is only read.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress; `name` is NULL
 * or NUL-terminated.
 */
const char *sse_request_header(const struct sse_request *request, const char *name);

/**
 * The value of the cookie `name` (compared exactly, as cookies are) in the request's
 * `Cookie` header lines, without the double quotes a cookie value may have; NULL when there
 * is none, or when `name` is NULL.
 * Ownership: the library's, valid until the access callback returns; `name` is only read.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress; `name` is NULL
 * or NUL-terminated.
 */
const char *sse_request_cookie(const struct sse_request *request, const char *name);

/**
 * Sets the body of the refusal the access callback is about to return (such as "log in
 * first"); without one, the body is "access denied". Copied; at most 1024 bytes are kept.
 * Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL pointer, `SSE_RESULT_INVALID_UTF8`.
 * Thread-safety: the access callback's thread (the loop's), during the call.
 *
 * # Safety
 * `request` is NULL or the request passed to the access callback in progress; `reason` is
 * NULL or NUL-terminated.
 */
enum sse_result sse_request_set_reason(struct sse_request *request, const char *reason);

/**
 * Fills `*config` with the defaults. `size` is `sizeof *config` as the caller's header has it,
 * so that a program built against an older header is never written past its struct.
 * Strings the defaults point to are static. Nothing to free afterwards.
 * Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL `config`, `SSE_RESULT_INVALID_ARGUMENT` when
 * `size` is smaller than the first published `sse_config` or implausibly large.
 * Thread-safety: any thread, each on its own struct.
 *
 * # Safety
 * `config` is NULL or points to `size` writable bytes.
 */
enum sse_result sse_config_init(struct sse_config *config, size_t size);

/**
 * Creates a server from `config` and binds its listening socket at once, so the port is known
 * (and taken) when this returns; no connection is served until `sse_server_start` or
 * `sse_server_run`. Returns NULL on failure: NULL `config`, an invalid setting, or a bind
 * error such as the address being in use; `sse_last_error` then says why.
 * Ownership: `config` and its strings are only read during the call. The caller owns the
 * returned server and must pass it to `sse_server_free` exactly once.
 * Thread-safety: any thread.
 *
 * # Safety
 * `config` is NULL or points to a struct filled by `sse_config_init` whose strings are NULL
 * or NUL-terminated.
 */
struct sse_server *sse_server_new(const struct sse_config *config);

/**
 * Starts the server's loop on a thread of the library's own, and returns at once.
 * Returns `SSE_RESULT_BUSY` if the loop already runs, `SSE_RESULT_STOPPED` after a stop,
 * `SSE_RESULT_IO` if the thread cannot be created (the server is then stopped).
 * Thread-safety: any thread.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed.
 */
enum sse_result sse_server_start(struct sse_server *server);

/**
 * Runs the server's loop on the calling thread until the server is stopped (by
 * `sse_server_stop` or `sse_server_free` from another thread), flushes for up to a second, and
 * returns `SSE_RESULT_OK`; or `SSE_RESULT_IO` if the loop failed. Returns at once with
 * `SSE_RESULT_BUSY` if the loop already runs, `SSE_RESULT_STOPPED` after a stop.
 * Thread-safety: any thread; it blocks that thread. Never call it from a signal handler.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed. Once the loop runs, the
 * server may be freed from another thread: this call then returns without touching it.
 */
enum sse_result sse_server_run(struct sse_server *server);

/**
 * Runs the server's loop on the calling thread for up to `timeout_ms` milliseconds, then
 * returns, leaving the server bound with its connections open, ready to be run again: for a
 * host whose own thread must run the callbacks (a PHP worker, a program with a loop of its
 * own that calls this between its own work). Events published meanwhile from any thread wait
 * in the publish queue and go out on the next call; clients are served only during calls.
 * Returns `SSE_RESULT_OK` when the time was up (call it again), `SSE_RESULT_STOPPED` once the
 * server has stopped (by `sse_server_stop` from another thread, or before this call: the
 * loop then flushes for up to a second and closes everything, as `sse_server_run` does);
 * `SSE_RESULT_BUSY` if the loop already runs elsewhere; `SSE_RESULT_IO` or
 * `SSE_RESULT_PANIC` if the loop failed.
 * Thread-safety: any thread, one call at a time; it blocks that thread for the time given.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed.
 */
enum sse_result sse_server_run_for(struct sse_server *server, uint32_t timeout_ms);

/**
 * Stops the server: publishing fails with `SSE_RESULT_STOPPED` from now on, the loop flushes
 * what it can within a second, closes every connection and releases the port; this call waits
 * for that, whichever thread runs the loop. Idempotent: calling it again (or after a failed
 * start) returns the same result. Returns `SSE_RESULT_OK`, or how the loop failed
 * (`SSE_RESULT_IO`, `SSE_RESULT_PANIC`). The server stays allocated: its port and stats can
 * still be read, and `sse_server_free` is still required.
 * Thread-safety: any thread, concurrently with any call; once it waits for the loop, the
 * server may even be freed by another thread (see `sse_server_free`).
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed.
 */
enum sse_result sse_server_stop(struct sse_server *server);

/**
 * Stops the server as `sse_server_stop` does (waiting for its loop, whichever thread runs
 * it), frees it, and sets `*server` to NULL, so that freeing the same variable twice is
 * harmless. `server == NULL` or `*server == NULL` does nothing.
 * Ownership: ends the caller's ownership; the pointer must not be used afterwards, and other
 * copies of it are dangling (freeing through one of them is undefined behaviour, as with
 * free(3)).
 * Thread-safety: any thread, but no other call on the same server may be in progress or
 * follow, except an `sse_server_run` or `sse_server_stop` already in progress on another
 * thread, which it waits for (they return without touching the freed server).
 *
 * # Safety
 * `server` is NULL or points to a variable holding NULL or a server from `sse_server_new` not
 * yet freed.
 */
void sse_server_free(struct sse_server **server);

/**
 * The TCP port the server is bound to (the one picked when `listen` asked for port 0); still
 * readable after a stop. 0 if `server` is NULL.
 * Thread-safety: any thread.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed.
 */
uint16_t sse_server_port(const struct sse_server *server);

/**
 * Copies the server's counters into `*stats_out`; `stats_size` is `sizeof *stats_out` as the
 * caller's header has it (fields the library does not know are set to 0). Counters are read
 * one by one, so they may be a few events apart from each other. Works after a stop too.
 * Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL pointer, `SSE_RESULT_INVALID_ARGUMENT` for a
 * size smaller than the first published `sse_stats`. `*stats_out` is only written on success.
 * Thread-safety: any thread.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed; `stats_out` is NULL or
 * points to `stats_size` writable bytes.
 */
enum sse_result sse_server_stats(const struct sse_server *server,
                                 struct sse_stats *stats_out,
                                 size_t stats_size);

/**
 * Publishes one event to the subscribers of `topic` and appends it to the history. Copies
 * everything it needs before returning; never blocks on the loop or the network, except in a
 * cluster (`redis_url`), where it waits for Redis to append the event and assign its id.
 * - `topic`: NULL or "" for the empty topic (which `GET /events` without `topic=` receives).
 * - `event_type`: NULL or "" for the default type `message`; must not contain CR or LF.
 * - `data`, `data_len`: the payload, `data_len` bytes of UTF-8, not necessarily
 *   NUL-terminated; `data` may be NULL when `data_len` is 0. Line breaks (LF, CRLF, CR) become
 *   one `data:` line each.
 * - `id`: NULL or "" to let the server assign the next id; otherwise the event's id, which
 *   must not contain CR or LF.
 *
 * Strings are NUL-terminated UTF-8, so a NUL can only end them. Returns, on success, the id
 * the server assigned (a decimal integer, always > 0: ids start at the current time in
 * microseconds and count up, so they also grow across restarts), or 0 when the caller gave its
 * own `id` (the event then carries exactly that id). On failure, nothing is published and a
 * negative `sse_result` comes back: `SSE_RESULT_NULL_ARGUMENT` (NULL `server`, or NULL `data`
 * with `data_len` > 0), `SSE_RESULT_INVALID_UTF8`, `SSE_RESULT_INVALID_FIELD` (CR or LF in
 * `event_type` or `id`), `SSE_RESULT_QUEUE_FULL` (the loop is `publish_queue` events behind:
 * retry later or drop the event), `SSE_RESULT_STOPPED`, `SSE_RESULT_STORAGE` (the history file
 * cannot be written: a full or failing disk), `SSE_RESULT_UNAVAILABLE` (a cluster's Redis cannot
 * be reached).
 * With a history file, subscribers receive the event once it is written (see `fsync_ms`), and
 * this call returns before that, once the event is queued: a crash of the process can lose
 * what it returned and the file had not yet written. In a cluster it returns once Redis has
 * the event (waiting at most 3 seconds on the calling thread, never on the loop).
 * Events published before the loop starts are queued (up to `publish_queue`) and sent when it
 * does. Events published from one thread reach every subscriber in that order.
 * Thread-safety: any thread, concurrently, until `sse_server_free`.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed; `topic`, `event_type` and
 * `id` are NULL or NUL-terminated; `data` is NULL or points to `data_len` readable bytes.
 */
int64_t sse_publish(const struct sse_server *server,
                    const char *topic,
                    const char *event_type,
                    const char *data,
                    size_t data_len,
                    const char *id);

/**
 * Fills `*event` with the defaults: no topic (the empty topic), type `message`, no data, an id
 * the server assigns, no retry. `size` is `sizeof *event` as the caller's header has it.
 * Returns `SSE_RESULT_NULL_ARGUMENT` for a NULL `event`, `SSE_RESULT_INVALID_ARGUMENT` for a
 * size this library does not accept. Nothing to free afterwards.
 * Thread-safety: any thread, each on its own struct.
 *
 * # Safety
 * `event` is NULL or points to `size` writable bytes.
 */
enum sse_result sse_event_init(struct sse_event *event, size_t size);

/**
 * Publishes `*event`, as `sse_publish` does, with all its topics and its `retry`. Copies what
 * it needs; never blocks on the loop or the network.
 * Returns the id the server assigned (> 0), 0 when the event carries its own id, or a negative
 * `sse_result`, and then nothing is published: `SSE_RESULT_NULL_ARGUMENT` (NULL `server` or
 * `event`, NULL `topics` with `topic_count` > 0, a NULL topic, NULL `data` with `data_len` >
 * 0), `SSE_RESULT_INVALID_ARGUMENT` (a size not from `sse_event_init`, more than 1024 topics,
 * `retry_ms` over 4294967295), `SSE_RESULT_INVALID_UTF8`, `SSE_RESULT_INVALID_FIELD` (CR, LF in
 * the type or id), `SSE_RESULT_QUEUE_FULL`, `SSE_RESULT_STOPPED`.
 * Thread-safety: any thread, concurrently, until `sse_server_free`.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed; `event` is NULL or points
 * to a struct filled by `sse_event_init` whose pointers are NULL or valid as documented above.
 */
int64_t sse_publish_event(const struct sse_server *server, const struct sse_event *event);

/**
 * Rereads the certificate and key files named by `tls_cert` and `tls_key` in the server's
 * config, on the calling thread. When they load, connections accepted from now on get them,
 * and open streams go on untouched; when they do not, the pair in use stays. Returns
 * `SSE_RESULT_OK`; `SSE_RESULT_IO` when a file cannot be read (missing, no permission);
 * `SSE_RESULT_INVALID_ARGUMENT` when the files hold no usable pair (no certificate or key, a
 * key that is not the certificate's, a certificate expired or not valid yet) or the server
 * has no certificate. `sse_last_error` then names the file and the reason.
 * Thread-safety: any thread, at any time until `sse_server_free`, concurrently with any call.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed.
 */
enum sse_result sse_server_reload_tls(const struct sse_server *server);

/**
 * How many open streams asked for `topic` (as sent: an exact topic, or a selector such as
 * `https://example.com/books/{id}`); with `topic` NULL, how many asked for no topic and so
 * receive every topic. A stream that asked for several topics counts under each; the total of
 * open streams is `subscribers` in `sse_stats`. The same counts `/metrics` shows with
 * `metrics_topics`. Returns the count (0 or more), or a negative `sse_result`:
 * `SSE_RESULT_NULL_ARGUMENT` for a NULL `server`, `SSE_RESULT_INVALID_UTF8`.
 * Counting costs nothing per event: the counts change when a stream opens or closes.
 * Thread-safety: any thread, at any time until `sse_server_free`.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed; `topic` is NULL or
 * NUL-terminated.
 */
int64_t sse_server_topic_subscribers(const struct sse_server *server, const char *topic);

/**
 * Calls `callback` once for each topic open streams asked for now, with how many did, in
 * the order of the topics' bytes; streams that asked for every topic are not among them (see
 * `sse_server_topic_subscribers` with NULL). The counts are taken first, then the callback
 * is called on the calling thread without any lock held, so it may call any function of the
 * library. `topic` is valid during its call only. Returns the number of topics (0 or more),
 * or a negative `sse_result`: `SSE_RESULT_NULL_ARGUMENT` for a NULL `server` or `callback`.
 * Thread-safety: any thread, at any time until `sse_server_free`.
 *
 * # Safety
 * `server` is NULL or a server from `sse_server_new` not yet freed.
 */
int64_t sse_server_each_topic(const struct sse_server *server,
                              sse_topic_callback callback,
                              void *data);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* SSED_H */
