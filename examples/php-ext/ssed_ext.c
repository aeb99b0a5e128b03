/* The ssed PHP extension: a Server-Sent Events server inside the PHP process, fed by
 * ssed_publish(). Built with phpize against include/ssed.h and linked to libssed.so.
 *
 *   ssed_start(string $listen = "127.0.0.1:8080", array $options = []): int
 *                                                          port, or a negative sse_result
 *   ssed_reload_tls(): int                                 0, or a negative sse_result
 *   ssed_publish(string $data, array|string|null $topic = null, ?string $event = null,
 *                ?string $id = null, ?int $retry = null): int
 *                                                          id (0 if $id given), or < 0
 *   ssed_port(): int                                       0 before ssed_start()
 *   ssed_stats(): array                                    the counters of sse_stats by name
 *   ssed_stop(): int                                       0, or a negative sse_result
 *   ssed_last_error(): string                              why the last call failed
 *
 * ssed_start's $options set Mercure 1.0: "hub_url" and "resource_identifier" (strings),
 * "issuers" (a list of ["issuer" => ..., "key" => ...], or "publisher_key" and
 * "subscriber_key" apart; see sse_issuer), "subscriptions" and "anonymous" (booleans), and
 * HTTPS: "tls_cert" and "tls_key" (the PEM files of a certificate chain and its key).
 * ssed_publish's $topic is one topic or an array of them (the event reaches the subscribers
 * of any, once each); $retry sends `retry:` with the event, the milliseconds a browser waits
 * before reconnecting.
 * Results mirror the C API: negative values are sse_result codes (-4 = a CR, LF or NUL in the
 * event type or id, -5 = queue full, -6 = stopped, ...). One server per process, running on a
 * library thread that never calls into PHP; the module's shutdown stops and frees it. Start it
 * in the process that publishes: threads do not survive fork(), so not before pcntl_fork() or
 * in a PHP-FPM master. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "php.h"
#include "ext/standard/info.h"

#include "php_ssed.h"
#include "ssed.h"

/* The process's server, or NULL before ssed_start(). */
static sse_server *server;
/* A failure the extension found itself (the library never saw the call), or NULL. */
static const char *own_error;

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

/* The string at `key` of `options`, borrowed for the call; NULL when absent. A value that is
 * not a string, or holds a NUL, fails the call. */
static int option_string(HashTable *options, const char *key, const char **out)
{
    zval *value = options ? zend_hash_str_find(options, key, strlen(key)) : NULL;
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

/* Fills `config` with the Mercure 1.0 options; the issuers go to *issuers (emalloc'd, the
 * caller efrees it). Returns 0 and sets own_error on a bad option. */
static int mercure_options(HashTable *options, sse_config *config, sse_issuer **issuers)
{
    *issuers = NULL;
    if (options == NULL) {
        return 1;
    }
    if (!option_string(options, "hub_url", &config->hub_url)
        || !option_string(options, "resource_identifier", &config->resource_identifier)) {
        own_error = "hub_url and resource_identifier must be strings without NUL";
        return 0;
    }
    zval *flag = zend_hash_str_find(options, "subscriptions", strlen("subscriptions"));
    config->subscriptions = flag != NULL && zend_is_true(flag);
    flag = zend_hash_str_find(options, "anonymous", strlen("anonymous"));
    config->anonymous = flag != NULL && zend_is_true(flag);
    zval *list = zend_hash_str_find(options, "issuers", strlen("issuers"));
    if (list == NULL) {
        return 1;
    }
    if (Z_TYPE_P(list) != IS_ARRAY) {
        own_error = "issuers must be an array of arrays";
        return 0;
    }
    uint32_t count = zend_hash_num_elements(Z_ARRVAL_P(list));
    *issuers = ecalloc(count ? count : 1, sizeof **issuers);
    uint32_t i = 0;
    zval *entry;
    ZEND_HASH_FOREACH_VAL(Z_ARRVAL_P(list), entry) {
        sse_issuer *issuer = &(*issuers)[i++];
        const char *both = NULL;
        HashTable *fields = Z_TYPE_P(entry) == IS_ARRAY ? Z_ARRVAL_P(entry) : NULL;
        if (fields == NULL || !option_string(fields, "issuer", &issuer->issuer)
            || !option_string(fields, "key", &both)
            || !option_string(fields, "publisher_key", &issuer->publisher_key)
            || !option_string(fields, "subscriber_key", &issuer->subscriber_key)) {
            own_error = "an issuer must be an array of strings without NUL";
            return 0;
        }
        if (both != NULL) {
            issuer->publisher_key = issuer->publisher_key ? issuer->publisher_key : both;
            issuer->subscriber_key = issuer->subscriber_key ? issuer->subscriber_key : both;
        }
    } ZEND_HASH_FOREACH_END();
    config->issuers = *issuers;
    config->issuer_count = count;
    return 1;
}

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
    if (has_nul(listen, listen_len)) {
        RETURN_LONG(fail(SSE_RESULT_INVALID_ARGUMENT, "the address must not contain NUL"));
    }
    if (server != NULL) {
        /* SSE_RESULT_BUSY while it runs; once stopped, a new server replaces it. */
        sse_result result = sse_server_start(server);
        if (result != SSE_RESULT_STOPPED) {
            RETURN_LONG(result);
        }
        sse_server_free(&server);
    }
    sse_config config;
    sse_config_init(&config, sizeof config);
    config.listen = listen;
    /* HTTPS with both files; the library refuses one without the other. */
    if (!option_string(options, "tls_cert", &config.tls_cert)
        || !option_string(options, "tls_key", &config.tls_key)) {
        own_error = "tls_cert and tls_key must be strings without NUL";
        RETURN_LONG(SSE_RESULT_INVALID_ARGUMENT);
    }
    sse_issuer *issuers;
    if (!mercure_options(options, &config, &issuers)) {
        if (issuers != NULL) {
            efree(issuers);
        }
        RETURN_LONG(SSE_RESULT_INVALID_ARGUMENT);
    }
    server = sse_server_new(&config);
    if (issuers != NULL) {
        efree(issuers); /* sse_server_new copied what it needs */
    }
    if (server == NULL) {
        RETURN_LONG(SSE_RESULT_IO);
    }
    sse_result result = sse_server_start(server);
    if (result != SSE_RESULT_OK) {
        sse_server_free(&server);
        RETURN_LONG(result);
    }
    RETURN_LONG(sse_server_port(server));
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
    ZEND_PARSE_PARAMETERS_START(1, 5)
        Z_PARAM_STRING(data, data_len)
        Z_PARAM_OPTIONAL
        Z_PARAM_ARRAY_HT_OR_STR_OR_NULL(topics, topic)
        Z_PARAM_STRING_OR_NULL(event_type, event_len)
        Z_PARAM_STRING_OR_NULL(id, id_len)
        Z_PARAM_LONG_OR_NULL(retry, no_retry)
    ZEND_PARSE_PARAMETERS_END();
    own_error = NULL;
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

PHP_FUNCTION(ssed_port)
{
    ZEND_PARSE_PARAMETERS_NONE();
    RETURN_LONG(sse_server_port(server));
}

PHP_FUNCTION(ssed_stats)
{
    ZEND_PARSE_PARAMETERS_NONE();
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
}

PHP_FUNCTION(ssed_stop)
{
    ZEND_PARSE_PARAMETERS_NONE();
    own_error = NULL;
    if (server == NULL) {
        RETURN_LONG(fail(SSE_RESULT_STOPPED, "no server: call ssed_start() first"));
    }
    RETURN_LONG(sse_server_stop(server));
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

PHP_MSHUTDOWN_FUNCTION(ssed)
{
    (void)type;
    (void)module_number;
    sse_server_free(&server);
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
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_stats, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_long, 0, 0, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_ssed_last_error, 0, 0, IS_STRING, 0)
ZEND_END_ARG_INFO()

static const zend_function_entry ssed_functions[] = {
    PHP_FE(ssed_start, arginfo_ssed_start)
    PHP_FE(ssed_publish, arginfo_ssed_publish)
    PHP_FE(ssed_port, arginfo_ssed_long)
    PHP_FE(ssed_stats, arginfo_ssed_stats)
    PHP_FE(ssed_stop, arginfo_ssed_long)
    PHP_FE(ssed_reload_tls, arginfo_ssed_long)
    PHP_FE(ssed_last_error, arginfo_ssed_last_error)
    PHP_FE_END
};

zend_module_entry ssed_module_entry = {
    STANDARD_MODULE_HEADER,
    "ssed",
    ssed_functions,
    NULL,                   /* MINIT: nothing until ssed_start() */
    PHP_MSHUTDOWN(ssed),
    NULL,                   /* RINIT */
    NULL,                   /* RSHUTDOWN: the server outlives requests */
    PHP_MINFO(ssed),
    PHP_SSED_VERSION,
    STANDARD_MODULE_PROPERTIES
};

#ifdef COMPILE_DL_SSED
ZEND_GET_MODULE(ssed)
#endif
