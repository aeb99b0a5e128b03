/* The ssed PHP extension: a Server-Sent Events server inside the PHP process, fed by
 * ssed_publish(). Built with phpize against include/ssed.h and linked to libssed.so.
 *
 *   ssed_start(string $listen = "127.0.0.1:8080", array $options = []): int
 *                                                          port, or a negative sse_result
 *   ssed_reload_tls(): int                                 0, or a negative sse_result
 *   ssed_publish(string $data, array|string|null $topic = null, ?string $event = null,
 *                ?string $id = null, ?int $retry = null, bool $private = false): int
 *                                                          id (0 if $id given), or < 0
 *   ssed_run(float $seconds = 1.0): int                    runs the loop here (see below)
 *   ssed_subscribers(?string $topic = null): int           open streams (for one topic)
 *   ssed_topics(): array                                   topic => open streams
 *   ssed_request_header(string $name): ?string             inside the access callable
 *   ssed_request_cookie(string $name): ?string             inside the access callable
 *   ssed_port(): int                                       0 before ssed_start()
 *   ssed_stats(): array                                    the counters of sse_stats by name
 *   ssed_stop(): int                                       0, or a negative sse_result
 *   ssed_last_error(): string                              why the last call failed
 *
 * $options takes every setting of sse_config by its name (history, max_clients, max_queue,
 * max_body, publish_queue, heartbeat_ms, head_timeout_ms, retry_ms, cors_origin,
 * publish_token, subscribe_token, log_level, history_file, fsync_ms, publisher_jwt_key,
 * subscriber_jwt_key, anonymous, redis_url, redis_stream, redis_history, metrics_topics,
 * listen_fd, publish_socket, publish_socket_fd, tls_cert, tls_key, hub_url,
 * resource_identifier, subscriptions), "issuers" (Mercure 1.0's trusted issuers: a list of
 * ["issuer" => ..., "key" => ...], or "publisher_key" and "subscriber_key" apart; see
 * sse_issuer), and three callables:
 *   'log'     => fn(int $level, string $line)    log lines (level 1 error, 2 info, 3 verbose;
 *                                                 log_level defaults to 2 with it)
 *   'access'  => fn(array $request): bool|int|array
 *                $request: method, path, query, publish, topics, peer. Return true (or 0) to
 *                allow, false (403), an HTTP status from 400 to 599, or [status, reason].
 *   'streams' => fn(array $event)                 opened, id, topics, peer of each stream that
 *                                                 opens or closes
 *
 * Threads. PHP runs on one thread, and the library never calls PHP from another:
 * - Without 'access' and 'streams', the loop runs on a library thread from ssed_start() on, as
 *   a server that only publishes needs.
 * - With 'access' or 'streams', ssed_start() only binds: the loop runs inside ssed_run(), on
 *   PHP's thread, for the time given, and the callables are called there. Clients are served
 *   only while ssed_run() runs: a worker calls it in its loop, between its own work.
 * - Log lines are collected on the library's log thread and handed to 'log' on PHP's thread
 *   by the next ssed_* call (up to 1024 wait; beyond them lines are dropped and counted).
 *
 * ssed_publish's $topic is one topic or an array of them (the event reaches the subscribers
 * of any, once each); $retry sends `retry:` with the event, the milliseconds a browser waits
 * before reconnecting.
 *
 * Results mirror the C API: negative values are sse_result codes (-4 = a CR, LF or NUL in the
 * event type or id, -5 = queue full, -6 = stopped, ...). One server per process; the module's
 * shutdown stops and frees it, and the callables are released at the end of the request.
 * Start it in the process that publishes: threads do not survive fork(), so not before
 * pcntl_fork() or in a PHP-FPM master. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "php.h"
#include "ext/standard/info.h"
#include "zend_exceptions.h"

#include "php_ssed.h"
#include "ssed.h"

/* The process's server, or NULL before ssed_start(). */
static sse_server *server;
/* A failure the extension found itself (the library never saw the call), or NULL. */
static const char *own_error;
/* Its message when it had to be written (an option's name), for own_error to point to. */
static char own_message[256];
/* The loop runs in ssed_run(), on PHP's thread; it has been stopped. */
static int runs_here, stopped;
/* The PHP callables, IS_UNDEF when not set. */
static zval log_fn, access_fn, stream_fn;
/* The request the access callable is deciding on, for ssed_request_header() and friends. */
static sse_request *current_request;

static zend_long fail(zend_long code, const char *message)
{
    own_error = message;
    return code;
}

/* True when a PHP string argument holds a NUL, which would cut its C string short. */
static int has_nul(const char *text, size_t len)
{
    return text != NULL && memchr(text, '\0', len) != NULL;
}

/* ---- log lines: taken on the library's log thread, handed to PHP on PHP's thread --------- */

#define LOG_LINES 1024

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int level;
    char *line;
} log_ring[LOG_LINES];
static size_t log_first, log_count;
static unsigned long log_dropped;

/* The library's log thread: no PHP here, only a copy into the ring. */
static void on_log(int level, const char *line, size_t len, void *data)
{
    (void)data;
    char *copy = malloc(len + 1);
    pthread_mutex_lock(&log_lock);
    if (copy == NULL || log_count == LOG_LINES) {
        log_dropped++;
        free(copy);
    } else {
        memcpy(copy, line, len + 1);
        size_t at = (log_first + log_count) % LOG_LINES;
        log_ring[at].level = level;
        log_ring[at].line = copy;
        log_count++;
    }
    pthread_mutex_unlock(&log_lock);
}

/* Takes the oldest line waiting; 0 when none. A drop is reported as a line of its own. */
static int next_log_line(int *level, char **line)
{
    pthread_mutex_lock(&log_lock);
    int found = 1;
    if (log_dropped > 0) {
        char note[96];
        snprintf(note, sizeof note, "%lu log lines were dropped: PHP did not take them in time",
                 log_dropped);
        log_dropped = 0;
        *level = SSE_LOG_LEVEL_QUIET;
        *line = strdup(note);
    } else if (log_count > 0) {
        *level = log_ring[log_first].level;
        *line = log_ring[log_first].line;
        log_first = (log_first + 1) % LOG_LINES;
        log_count--;
    } else {
        found = 0;
    }
    pthread_mutex_unlock(&log_lock);
    return found;
}

/* Hands the waiting log lines to the 'log' callable, on PHP's thread. */
static void deliver_logs(void)
{
    int level;
    char *line;
    while (Z_TYPE(log_fn) != IS_UNDEF && !EG(exception) && next_log_line(&level, &line)) {
        if (line == NULL) {
            continue;
        }
        zval args[2], ignored;
        ZVAL_LONG(&args[0], level);
        ZVAL_STRING(&args[1], line);
        free(line);
        if (call_user_function(NULL, NULL, &log_fn, &ignored, 2, args) == SUCCESS) {
            zval_ptr_dtor(&ignored);
        }
        zval_ptr_dtor(&args[1]);
    }
}

static void drop_log_lines(void)
{
    int level;
    char *line;
    while (next_log_line(&level, &line)) {
        free(line);
    }
}

/* ---- the access and stream callables, called inside ssed_run() on PHP's thread --------- */

/* An array of the C strings `at(i)` for i < count. */
static void add_topics(zval *array, const char *name, size_t count,
                       const char *(*at)(const void *, size_t), const void *from)
{
    zval topics;
    array_init(&topics);
    for (size_t i = 0; i < count; i++) {
        add_next_index_string(&topics, at(from, i));
    }
    add_assoc_zval(array, name, &topics);
}

static const char *request_topic(const void *request, size_t i)
{
    return sse_request_topic((const sse_request *)request, i);
}

static const char *event_topic(const void *event, size_t i)
{
    return ((const sse_stream_event *)event)->topics[i];
}

/* What the callable answered, as the C callback's status: 0 allows. */
static int access_answer(sse_request *request, zval *answer)
{
    switch (Z_TYPE_P(answer)) {
    case IS_TRUE:
        return 0;
    case IS_FALSE:
        return 403;
    case IS_LONG:
        return (int)Z_LVAL_P(answer);
    case IS_ARRAY: {
        zval *status = zend_hash_index_find(Z_ARRVAL_P(answer), 0);
        zval *reason = zend_hash_index_find(Z_ARRVAL_P(answer), 1);
        if (status == NULL || Z_TYPE_P(status) != IS_LONG) {
            return 500;
        }
        if (reason != NULL && Z_TYPE_P(reason) == IS_STRING &&
            !has_nul(Z_STRVAL_P(reason), Z_STRLEN_P(reason))) {
            sse_request_set_reason(request, Z_STRVAL_P(reason));
        }
        return (int)Z_LVAL_P(status);
    }
    default:
        return 500;
    }
}

static int on_access(sse_request *request, void *data)
{
    (void)data;
    /* Released at the end of the request, or an exception pending: nobody can decide. */
    if (Z_TYPE(access_fn) == IS_UNDEF || EG(exception)) {
        return 503;
    }
    zval asked, answer;
    array_init(&asked);
    add_assoc_string(&asked, "method", (char *)sse_request_method(request));
    add_assoc_string(&asked, "path", (char *)sse_request_path(request));
    add_assoc_string(&asked, "query", (char *)sse_request_query(request));
    add_assoc_bool(&asked, "publish", sse_request_is_publish(request));
    add_topics(&asked, "topics", sse_request_topic_count(request), request_topic, request);
    const char *peer = sse_request_peer(request);
    if (peer != NULL) {
        add_assoc_string(&asked, "peer", (char *)peer);
    } else {
        add_assoc_null(&asked, "peer");
    }
    current_request = request;
    int called = call_user_function(NULL, NULL, &access_fn, &answer, 1, &asked);
    current_request = NULL;
    zval_ptr_dtor(&asked);
    if (called != SUCCESS || EG(exception)) {
        return 500;
    }
    int status = access_answer(request, &answer);
    zval_ptr_dtor(&answer);
    return status;
}

static void on_stream(const sse_stream_event *event, void *data)
{
    (void)data;
    if (Z_TYPE(stream_fn) == IS_UNDEF || EG(exception)) {
        return;
    }
    zval told, ignored;
    array_init(&told);
    add_assoc_bool(&told, "opened", event->opened);
    add_assoc_long(&told, "id", (zend_long)event->stream_id);
    add_topics(&told, "topics", event->topic_count, event_topic, event);
    if (event->peer != NULL) {
        add_assoc_string(&told, "peer", (char *)event->peer);
    } else {
        add_assoc_null(&told, "peer");
    }
    if (call_user_function(NULL, NULL, &stream_fn, &ignored, 1, &told) == SUCCESS) {
        zval_ptr_dtor(&ignored);
    }
    zval_ptr_dtor(&told);
}

static void release_callables(void)
{
    zval_ptr_dtor(&log_fn);
    zval_ptr_dtor(&access_fn);
    zval_ptr_dtor(&stream_fn);
    ZVAL_UNDEF(&log_fn);
    ZVAL_UNDEF(&access_fn);
    ZVAL_UNDEF(&stream_fn);
}

/* ---- options ------------------------------------------------------------------------- */

typedef enum { SIZE, INT64, UINT64, STRING } field_kind;

/* Every setting of sse_config that PHP may give by name. */
static const struct {
    const char *name;
    field_kind kind;
    size_t offset;
} fields[] = {
    {"history", SIZE, offsetof(sse_config, history)},
    {"max_clients", SIZE, offsetof(sse_config, max_clients)},
    {"max_queue", SIZE, offsetof(sse_config, max_queue)},
    {"max_body", SIZE, offsetof(sse_config, max_body)},
    {"publish_queue", SIZE, offsetof(sse_config, publish_queue)},
    {"heartbeat_ms", UINT64, offsetof(sse_config, heartbeat_ms)},
    {"head_timeout_ms", UINT64, offsetof(sse_config, head_timeout_ms)},
    {"retry_ms", INT64, offsetof(sse_config, retry_ms)},
    {"cors_origin", STRING, offsetof(sse_config, cors_origin)},
    {"publish_token", STRING, offsetof(sse_config, publish_token)},
    {"subscribe_token", STRING, offsetof(sse_config, subscribe_token)},
    {"log_level", INT64, offsetof(sse_config, log_level)},
    {"history_file", STRING, offsetof(sse_config, history_file)},
    {"fsync_ms", INT64, offsetof(sse_config, fsync_ms)},
    {"publisher_jwt_key", STRING, offsetof(sse_config, publisher_jwt_key)},
    {"subscriber_jwt_key", STRING, offsetof(sse_config, subscriber_jwt_key)},
    {"anonymous", INT64, offsetof(sse_config, anonymous)},
    {"redis_url", STRING, offsetof(sse_config, redis_url)},
    {"redis_stream", STRING, offsetof(sse_config, redis_stream)},
    {"redis_history", SIZE, offsetof(sse_config, redis_history)},
    {"metrics_topics", INT64, offsetof(sse_config, metrics_topics)},
    {"listen_fd", INT64, offsetof(sse_config, listen_fd)},
    {"publish_socket", STRING, offsetof(sse_config, publish_socket)},
    {"publish_socket_fd", INT64, offsetof(sse_config, publish_socket_fd)},
    {"tls_cert", STRING, offsetof(sse_config, tls_cert)},
    {"tls_key", STRING, offsetof(sse_config, tls_key)},
    {"hub_url", STRING, offsetof(sse_config, hub_url)},
    {"resource_identifier", STRING, offsetof(sse_config, resource_identifier)},
    {"subscriptions", INT64, offsetof(sse_config, subscriptions)},
};

static zend_long bad_option(const char *name, const char *why)
{
    snprintf(own_message, sizeof own_message, "option '%s': %s", name, why);
    return fail(SSE_RESULT_INVALID_ARGUMENT, own_message);
}

/* Sets one field of `config`; its strings are borrowed from `value` for the call. */
static zend_long set_field(sse_config *config, const char *name, zval *value)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(fields[i].name, name) != 0) {
            continue;
        }
        char *at = (char *)config + fields[i].offset;
        if (fields[i].kind == STRING) {
            if (Z_TYPE_P(value) == IS_NULL) {
                *(const char **)at = NULL;
                return SSE_RESULT_OK;
            }
            if (Z_TYPE_P(value) != IS_STRING || has_nul(Z_STRVAL_P(value), Z_STRLEN_P(value))) {
                return bad_option(name, "expected a string without NUL");
            }
            *(const char **)at = Z_STRVAL_P(value);
            return SSE_RESULT_OK;
        }
        zend_long n;
        if (Z_TYPE_P(value) == IS_LONG) {
            n = Z_LVAL_P(value);
        } else if (Z_TYPE_P(value) == IS_TRUE || Z_TYPE_P(value) == IS_FALSE) {
            n = Z_TYPE_P(value) == IS_TRUE;
        } else {
            return bad_option(name, "expected an integer");
        }
        if (fields[i].kind != INT64 && n < 0) {
            return bad_option(name, "must not be negative");
        }
        switch (fields[i].kind) {
        case SIZE:
            *(size_t *)at = (size_t)n;
            break;
        case UINT64:
            *(uint64_t *)at = (uint64_t)n;
            break;
        default:
            *(int64_t *)at = (int64_t)n;
        }
        return SSE_RESULT_OK;
    }
    return bad_option(name, "no such option");
}

/* The string at `key` of an issuer's array, borrowed for the call; NULL when absent. */
static int issuer_string(HashTable *fields, const char *key, const char **out)
{
    zval *value = zend_hash_str_find(fields, key, strlen(key));
    *out = NULL;
    if (value == NULL || Z_TYPE_P(value) == IS_NULL) {
        return 1;
    }
    if (Z_TYPE_P(value) != IS_STRING || has_nul(Z_STRVAL_P(value), Z_STRLEN_P(value))) {
        return 0;
    }
    *out = Z_STRVAL_P(value);
    return 1;
}

/* Mercure 1.0's issuers into `config`, the array in *issuers (emalloc'd: the caller efrees it
 * once sse_server_new has copied it). */
static zend_long read_issuers(sse_config *config, zval *list, sse_issuer **issuers)
{
    if (Z_TYPE_P(list) != IS_ARRAY) {
        return bad_option("issuers", "expected an array of arrays");
    }
    uint32_t count = zend_hash_num_elements(Z_ARRVAL_P(list));
    if (*issuers != NULL) {
        efree(*issuers);
    }
    *issuers = ecalloc(count ? count : 1, sizeof **issuers);
    uint32_t i = 0;
    zval *entry;
    ZEND_HASH_FOREACH_VAL(Z_ARRVAL_P(list), entry) {
        ZVAL_DEREF(entry);
        sse_issuer *issuer = &(*issuers)[i++];
        const char *both = NULL;
        HashTable *fields = Z_TYPE_P(entry) == IS_ARRAY ? Z_ARRVAL_P(entry) : NULL;
        if (fields == NULL || !issuer_string(fields, "issuer", &issuer->issuer)
            || !issuer_string(fields, "key", &both)
            || !issuer_string(fields, "publisher_key", &issuer->publisher_key)
            || !issuer_string(fields, "subscriber_key", &issuer->subscriber_key)) {
            return bad_option("issuers", "an issuer must be an array of strings without NUL");
        }
        if (both != NULL) {
            issuer->publisher_key = issuer->publisher_key ? issuer->publisher_key : both;
            issuer->subscriber_key = issuer->subscriber_key ? issuer->subscriber_key : both;
        }
    } ZEND_HASH_FOREACH_END();
    config->issuers = *issuers;
    config->issuer_count = count;
    return SSE_RESULT_OK;
}

/* Reads $options into `config` and the callables; 0 or a negative sse_result. The issuers
 * go to *issuers, which the caller efrees when not NULL. */
static zend_long read_options(sse_config *config, HashTable *options, int *log_level_given,
                              sse_issuer **issuers)
{
    zend_string *key;
    zval *value;
    ZEND_HASH_FOREACH_STR_KEY_VAL(options, key, value) {
        ZVAL_DEREF(value);
        if (key == NULL) {
            return fail(SSE_RESULT_INVALID_ARGUMENT, "options are named: ['history' => 100]");
        }
        const char *name = ZSTR_VAL(key);
        zval *callable = strcmp(name, "log") == 0       ? &log_fn
                         : strcmp(name, "access") == 0  ? &access_fn
                         : strcmp(name, "streams") == 0 ? &stream_fn
                                                        : NULL;
        if (callable != NULL) {
            if (!zend_is_callable(value, 0, NULL)) {
                return bad_option(name, "expected a callable");
            }
            ZVAL_COPY(callable, value);
            continue;
        }
        *log_level_given |= strcmp(name, "log_level") == 0;
        zend_long result = strcmp(name, "issuers") == 0 ? read_issuers(config, value, issuers)
                                                        : set_field(config, name, value);
        if (result != SSE_RESULT_OK) {
            return result;
        }
    } ZEND_HASH_FOREACH_END();
    return SSE_RESULT_OK;
}

/* ---- the functions ------------------------------------------------------------------- */

PHP_FUNCTION(ssed_start)
{
    char *listen = "127.0.0.1:8080";
    size_t listen_len = strlen(listen);
    HashTable *options = NULL;
    ZEND_PARSE_PARAMETERS_START(0, 2)
        Z_PARAM_OPTIONAL
        Z_PARAM_STRING(listen, listen_len)
        Z_PARAM_ARRAY_HT(options)
    ZEND_PARSE_PARAMETERS_END();
    own_error = NULL;
    deliver_logs();
    if (has_nul(listen, listen_len)) {
        RETURN_LONG(fail(SSE_RESULT_INVALID_ARGUMENT, "the address must not contain NUL"));
    }
    if (server != NULL) {
        /* SSE_RESULT_BUSY while it runs; once stopped, a new server replaces it. */
        if (runs_here && !stopped) {
            RETURN_LONG(fail(SSE_RESULT_BUSY, "the server is running: ssed_stop() first"));
        }
        if (!runs_here) {
            sse_result result = sse_server_start(server);
            if (result != SSE_RESULT_STOPPED) {
                RETURN_LONG(result);
            }
        }
        sse_server_free(&server);
    }
    release_callables();
    drop_log_lines();
    sse_config config;
    sse_config_init(&config, sizeof config);
    config.listen = listen;
    int log_level_given = 0;
    sse_issuer *issuers = NULL;
    zend_long result =
        options ? read_options(&config, options, &log_level_given, &issuers) : SSE_RESULT_OK;
    if (result != SSE_RESULT_OK) {
        if (issuers != NULL) {
            efree(issuers);
        }
        release_callables();
        RETURN_LONG(result);
    }
    if (Z_TYPE(log_fn) != IS_UNDEF) {
        config.log_callback = on_log;
        if (!log_level_given) {
            config.log_level = SSE_LOG_LEVEL_INFO;
        }
    }
    config.access_callback = Z_TYPE(access_fn) != IS_UNDEF ? on_access : NULL;
    config.stream_callback = Z_TYPE(stream_fn) != IS_UNDEF ? on_stream : NULL;
    runs_here = config.access_callback != NULL || config.stream_callback != NULL;
    stopped = 0;
    server = sse_server_new(&config);
    if (issuers != NULL) {
        efree(issuers); /* sse_server_new copied what it needs */
    }
    if (server == NULL) {
        release_callables();
        RETURN_LONG(SSE_RESULT_IO);
    }
    if (!runs_here) {
        sse_result started = sse_server_start(server);
        if (started != SSE_RESULT_OK) {
            sse_server_free(&server);
            RETURN_LONG(started);
        }
    }
    RETURN_LONG(sse_server_port(server));
}

PHP_FUNCTION(ssed_run)
{
    double seconds = 1.0;
    ZEND_PARSE_PARAMETERS_START(0, 1)
        Z_PARAM_OPTIONAL
        Z_PARAM_DOUBLE(seconds)
    ZEND_PARSE_PARAMETERS_END();
    own_error = NULL;
    if (server == NULL) {
        RETURN_LONG(fail(SSE_RESULT_STOPPED, "no server: call ssed_start() first"));
    }
    if (!runs_here) {
        deliver_logs();
        RETURN_LONG(fail(SSE_RESULT_BUSY, "the loop runs on a library thread: ssed_run() is "
                                          "for a server with 'access' or 'streams' callables"));
    }
    if (!(seconds >= 0)) {
        RETURN_LONG(fail(SSE_RESULT_INVALID_ARGUMENT, "seconds must not be negative"));
    }
    double ms = seconds * 1000;
    sse_result result = sse_server_run_for(server, ms > 4e9 ? 4000000000u : (uint32_t)ms);
    if (result == SSE_RESULT_STOPPED) {
        stopped = 1;
    }
    deliver_logs();
    RETURN_LONG(result);
}

/* Points event->topics at $topic: one string, or an array of strings, each borrowed from PHP
 * for the call. An array's pointers go to *array, which the caller efrees when not NULL. */
static zend_long set_topics(sse_event *event, zend_string *one, HashTable *many,
                            const char **single, const char ***array)
{
    if (one != NULL) {
        if (has_nul(ZSTR_VAL(one), ZSTR_LEN(one))) {
            return fail(SSE_RESULT_INVALID_ARGUMENT, "the topic contains a NUL");
        }
        *single = ZSTR_VAL(one);
        event->topics = single;
        event->topic_count = 1;
        return SSE_RESULT_OK;
    }
    if (many == NULL || zend_hash_num_elements(many) == 0) {
        return SSE_RESULT_OK; /* the empty topic */
    }
    *array = safe_emalloc(zend_hash_num_elements(many), sizeof **array, 0);
    size_t count = 0;
    zval *value;
    ZEND_HASH_FOREACH_VAL(many, value) {
        ZVAL_DEREF(value);
        if (Z_TYPE_P(value) != IS_STRING) {
            return fail(SSE_RESULT_INVALID_ARGUMENT, "a topic is not a string");
        }
        if (has_nul(Z_STRVAL_P(value), Z_STRLEN_P(value))) {
            return fail(SSE_RESULT_INVALID_ARGUMENT, "a topic contains a NUL");
        }
        (*array)[count++] = Z_STRVAL_P(value);
    } ZEND_HASH_FOREACH_END();
    event->topics = *array;
    event->topic_count = count;
    return SSE_RESULT_OK;
}

PHP_FUNCTION(ssed_publish)
{
    char *data, *event_type = NULL, *id = NULL;
    size_t data_len, event_len = 0, id_len = 0;
    zend_string *topic = NULL;
    HashTable *topics = NULL;
    zend_long retry = -1;
    bool no_retry = 1;
    bool is_private = 0;
    ZEND_PARSE_PARAMETERS_START(1, 6)
        Z_PARAM_STRING(data, data_len)
        Z_PARAM_OPTIONAL
        Z_PARAM_ARRAY_HT_OR_STR_OR_NULL(topics, topic)
        Z_PARAM_STRING_OR_NULL(event_type, event_len)
        Z_PARAM_STRING_OR_NULL(id, id_len)
        Z_PARAM_LONG_OR_NULL(retry, no_retry)
        Z_PARAM_BOOL(is_private)
    ZEND_PARSE_PARAMETERS_END();
    own_error = NULL;
    deliver_logs();
    if (server == NULL) {
        RETURN_LONG(fail(SSE_RESULT_STOPPED, "no server: call ssed_start() first"));
    }
    if (has_nul(event_type, event_len) || has_nul(id, id_len)) {
        RETURN_LONG(fail(SSE_RESULT_INVALID_FIELD, "the event type or id contains a NUL"));
    }
    if (!no_retry && retry < 0) {
        RETURN_LONG(fail(SSE_RESULT_INVALID_ARGUMENT, "retry must not be negative"));
    }
    sse_event event;
    sse_event_init(&event, sizeof event);
    event.event_type = event_type;
    event.id = id;
    /* The data goes by length: it may hold any UTF-8, NUL included. */
    event.data = data;
    event.data_len = data_len;
    event.retry_ms = no_retry ? -1 : (int64_t)retry;
    event.is_private = is_private;
    const char *single = NULL;
    const char **array = NULL;
    zend_long result = set_topics(&event, topic, topics, &single, &array);
    if (result == SSE_RESULT_OK) {
        result = sse_publish_event(server, &event);
    }
    if (array != NULL) {
        efree(array);
    }
    RETURN_LONG(result);
}

PHP_FUNCTION(ssed_subscribers)
{
    zend_string *topic = NULL;
    ZEND_PARSE_PARAMETERS_START(0, 1)
        Z_PARAM_OPTIONAL
        Z_PARAM_STR_OR_NULL(topic)
    ZEND_PARSE_PARAMETERS_END();
    own_error = NULL;
    deliver_logs();
    if (server == NULL) {
        RETURN_LONG(0);
    }
    if (topic == NULL) {
        sse_stats stats;
        sse_server_stats(server, &stats, sizeof stats);
        RETURN_LONG((zend_long)stats.subscribers);
    }
    if (has_nul(ZSTR_VAL(topic), ZSTR_LEN(topic))) {
        RETURN_LONG(fail(SSE_RESULT_INVALID_ARGUMENT, "the topic contains a NUL"));
    }
    RETURN_LONG((zend_long)sse_server_topic_subscribers(server, ZSTR_VAL(topic)));
}

static void add_topic(const char *topic, uint64_t subscribers, void *data)
{
    add_assoc_long((zval *)data, topic, (zend_long)subscribers);
}

PHP_FUNCTION(ssed_topics)
{
    ZEND_PARSE_PARAMETERS_NONE();
    deliver_logs();
    array_init(return_value);
    if (server != NULL) {
        sse_server_each_topic(server, add_topic, return_value);
    }
}

/* ssed_request_header() and ssed_request_cookie(): one lookup in the request the access
 * callable decides on; null outside it. */
static void request_lookup(INTERNAL_FUNCTION_PARAMETERS,
                           const char *(*lookup)(const sse_request *, const char *))
{
    char *name;
    size_t name_len;
    ZEND_PARSE_PARAMETERS_START(1, 1)
        Z_PARAM_STRING(name, name_len)
    ZEND_PARSE_PARAMETERS_END();
    const char *value = current_request != NULL && !has_nul(name, name_len)
                            ? lookup(current_request, name)
                            : NULL;
    if (value == NULL) {
        RETURN_NULL();
    }
    RETURN_STRING(value);
}

PHP_FUNCTION(ssed_request_header)
{
    request_lookup(INTERNAL_FUNCTION_PARAM_PASSTHRU, sse_request_header);
}

PHP_FUNCTION(ssed_request_cookie)
{
    request_lookup(INTERNAL_FUNCTION_PARAM_PASSTHRU, sse_request_cookie);
}

PHP_FUNCTION(ssed_port)
{
    ZEND_PARSE_PARAMETERS_NONE();
    deliver_logs();
    RETURN_LONG(sse_server_port(server));
}

PHP_FUNCTION(ssed_stats)
{
    ZEND_PARSE_PARAMETERS_NONE();
    deliver_logs();
    sse_stats stats;
    memset(&stats, 0, sizeof stats);
    if (server != NULL) {
        sse_server_stats(server, &stats, sizeof stats);
    }
    array_init(return_value);
    add_assoc_long(return_value, "connections", (zend_long)stats.connections);
    add_assoc_long(return_value, "subscribers", (zend_long)stats.subscribers);
    add_assoc_long(return_value, "events_published", (zend_long)stats.events_published);
    add_assoc_long(return_value, "bytes_sent", (zend_long)stats.bytes_sent);
    add_assoc_long(return_value, "subscribers_dropped_slow", (zend_long)stats.subscribers_dropped_slow);
    add_assoc_long(return_value, "history_events", (zend_long)stats.history_events);
    add_assoc_long(return_value, "requests_refused", (zend_long)stats.requests_refused);
    add_assoc_long(return_value, "events_delivered", (zend_long)stats.events_delivered);
}

PHP_FUNCTION(ssed_stop)
{
    ZEND_PARSE_PARAMETERS_NONE();
    own_error = NULL;
    if (server == NULL) {
        RETURN_LONG(fail(SSE_RESULT_STOPPED, "no server: call ssed_start() first"));
    }
    /* A server whose loop runs here is run to its end here: the callables are called. */
    sse_result result = sse_server_stop(server);
    stopped = 1;
    deliver_logs();
    RETURN_LONG(result);
}

PHP_FUNCTION(ssed_reload_tls)
{
    ZEND_PARSE_PARAMETERS_NONE();
    own_error = NULL;
    if (server == NULL) {
        RETURN_LONG(fail(SSE_RESULT_STOPPED, "no server: call ssed_start() first"));
    }
    RETURN_LONG(sse_server_reload_tls(server));
}

PHP_FUNCTION(ssed_last_error)
{
    ZEND_PARSE_PARAMETERS_NONE();
    RETURN_STRING(own_error != NULL ? own_error : sse_last_error());
}

PHP_MINIT_FUNCTION(ssed)
{
    (void)type;
    (void)module_number;
    ZVAL_UNDEF(&log_fn);
    ZVAL_UNDEF(&access_fn);
    ZVAL_UNDEF(&stream_fn);
    return SUCCESS;
}

PHP_RSHUTDOWN_FUNCTION(ssed)
{
    (void)type;
    (void)module_number;
    /* The last lines, then no PHP is called any more: the access callback refuses (503). */
    deliver_logs();
    release_callables();
    return SUCCESS;
}

PHP_MSHUTDOWN_FUNCTION(ssed)
{
    (void)type;
    (void)module_number;
    sse_server_free(&server);
    drop_log_lines();
    return SUCCESS;
}

PHP_MINFO_FUNCTION(ssed)
{
    (void)zend_module;
    php_info_print_table_start();
    php_info_print_table_row(2, "ssed support", "enabled");
    php_info_print_table_row(2, "libssed version", sse_version());
    php_info_print_table_end();
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_start, 0, 0, IS_LONG, 0)
    ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, listen, IS_STRING, 0, "\"127.0.0.1:8080\"")
    ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, options, IS_ARRAY, 0, "[]")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_publish, 0, 1, IS_LONG, 0)
    ZEND_ARG_TYPE_INFO(0, data, IS_STRING, 0)
    ZEND_ARG_TYPE_MASK(0, topic, MAY_BE_ARRAY|MAY_BE_STRING|MAY_BE_NULL, "null")
    ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, event, IS_STRING, 1, "null")
    ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, id, IS_STRING, 1, "null")
    ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, retry, IS_LONG, 1, "null")
    ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, private, _IS_BOOL, 0, "false")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_run, 0, 0, IS_LONG, 0)
    ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, seconds, IS_DOUBLE, 0, "1.0")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_subscribers, 0, 0, IS_LONG, 0)
    ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, topic, IS_STRING, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_request_lookup, 0, 1, IS_STRING, 1)
    ZEND_ARG_TYPE_INFO(0, name, IS_STRING, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_array, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_long, 0, 0, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_last_error, 0, 0, IS_STRING, 0)
ZEND_END_ARG_INFO()

static const zend_function_entry ssed_functions[] = {
    PHP_FE(ssed_start, arginfo_ssed_start)
    PHP_FE(ssed_publish, arginfo_ssed_publish)
    PHP_FE(ssed_run, arginfo_ssed_run)
    PHP_FE(ssed_subscribers, arginfo_ssed_subscribers)
    PHP_FE(ssed_topics, arginfo_ssed_array)
    PHP_FE(ssed_request_header, arginfo_ssed_request_lookup)
    PHP_FE(ssed_request_cookie, arginfo_ssed_request_lookup)
    PHP_FE(ssed_port, arginfo_ssed_long)
    PHP_FE(ssed_stats, arginfo_ssed_array)
    PHP_FE(ssed_stop, arginfo_ssed_long)
    PHP_FE(ssed_reload_tls, arginfo_ssed_long)
    PHP_FE(ssed_last_error, arginfo_ssed_last_error)
    PHP_FE_END
};

zend_module_entry ssed_module_entry = {
    STANDARD_MODULE_HEADER,
    "ssed",
    ssed_functions,
    PHP_MINIT(ssed),
    PHP_MSHUTDOWN(ssed),
    NULL,                   /* RINIT */
    PHP_RSHUTDOWN(ssed),    /* the server outlives requests; the callables do not */
    PHP_MINFO(ssed),
    PHP_SSED_VERSION,
    STANDARD_MODULE_PROPERTIES
};

#ifdef COMPILE_DL_SSED
ZEND_GET_MODULE(ssed)
#endif
