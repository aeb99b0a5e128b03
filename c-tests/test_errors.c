/* Every error path of the C API: each returns its code (or NULL) and leaves a message, and
 * none crashes or publishes anything. */
#include <pthread.h>

#include "harness.h"

/* Checks that the latest failure's message on this thread contains `part`. */
#define CHECK_MESSAGE(part)                                                      \
    CHECK(strstr(sse_last_error(), (part)) != NULL, "message \"%s\" lacks \"%s\"", \
          sse_last_error(), (part))

static void result_strings(void)
{
    for (int code = SSE_RESULT_PANIC; code <= SSE_RESULT_OK; code++) {
        const char *text = sse_result_str(code);
        CHECK(text != NULL && *text != '\0' && strcmp(text, "unknown result code") != 0,
              "code %d: %s", code, text);
    }
    CHECK(strcmp(sse_result_str(SSE_RESULT_QUEUE_FULL), "the publish queue is full") == 0,
          "queue full text");
    CHECK(strcmp(sse_result_str(12345), "unknown result code") == 0, "unknown code");
    CHECK(strcmp(sse_result_str(-12345), "unknown result code") == 0, "unknown code");
}

static void null_arguments(void)
{
    sse_config config = test_config();
    CHECK_RESULT(sse_config_init(NULL, sizeof config), SSE_RESULT_NULL_ARGUMENT);
    CHECK_MESSAGE("config is NULL");
    CHECK(sse_server_new(NULL) == NULL, "new(NULL)");
    CHECK_MESSAGE("config is NULL");
    CHECK_RESULT(sse_server_start(NULL), SSE_RESULT_NULL_ARGUMENT);
    CHECK_MESSAGE("server is NULL");
    CHECK_RESULT(sse_server_run(NULL), SSE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sse_server_stop(NULL), SSE_RESULT_NULL_ARGUMENT);
    CHECK(sse_server_port(NULL) == 0, "port(NULL)");
    sse_stats stats;
    CHECK_RESULT(sse_server_stats(NULL, &stats, sizeof stats), SSE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sse_publish(NULL, "t", "e", "d", 1, NULL), SSE_RESULT_NULL_ARGUMENT);
    CHECK_MESSAGE("server is NULL");
    sse_server_free(NULL);
    sse_server *none = NULL;
    sse_server_free(&none);

    sse_server *server = new_server(&config);
    CHECK_RESULT(sse_server_stats(server, NULL, sizeof stats), SSE_RESULT_NULL_ARGUMENT);
    CHECK_MESSAGE("stats_out is NULL");
    CHECK_RESULT(sse_publish(server, NULL, NULL, NULL, 5, NULL), SSE_RESULT_NULL_ARGUMENT);
    CHECK_MESSAGE("data is NULL");
    CHECK(sse_publish(server, NULL, NULL, NULL, 0, NULL) > 0, "NULL data of length 0 is empty");
    sse_server_free(&server);
}

/* sse_server_new refuses `config` with a message containing `part`. */
static void refused(const sse_config *config, const char *part)
{
    CHECK(sse_server_new(config) == NULL, "config accepted; expected \"%s\"", part);
    CHECK_MESSAGE(part);
}

static void invalid_configs(void)
{
    sse_config config;
    CHECK_RESULT(sse_config_init(&config, 8), SSE_RESULT_INVALID_ARGUMENT);
    CHECK_MESSAGE("sizeof(sse_config)");
    CHECK_RESULT(sse_config_init(&config, 1 << 20), SSE_RESULT_INVALID_ARGUMENT);

    config = test_config();
    config.size = 3; /* as if never initialised */
    refused(&config, "sse_config size 3");

    const struct {
        const char *field;
        const char *value;
        const char *message;
    } strings[] = {
        {"listen", "nowhere", "listen: expected HOST:PORT, such as 127.0.0.1:8080"},
        {"listen", "127.0.0.1:99999", "listen"},
        {"listen", "\xff:80", "listen is not valid UTF-8"},
        {"cors_origin", " , ", "cors_origin"},
        {"publish_token", "a b", "token"},
        {"subscribe_token", "", "token"},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        config = test_config();
        if (strcmp(strings[i].field, "listen") == 0) {
            config.listen = strings[i].value;
        } else if (strcmp(strings[i].field, "cors_origin") == 0) {
            config.cors_origin = strings[i].value;
        } else if (strcmp(strings[i].field, "publish_token") == 0) {
            config.publish_token = strings[i].value;
        } else {
            config.subscribe_token = strings[i].value;
        }
        refused(&config, strings[i].message);
    }

    config = test_config();
    config.max_clients = 0;
    refused(&config, "max_clients");
    config = test_config();
    config.max_queue = 0;
    refused(&config, "max_queue");
    config = test_config();
    config.publish_queue = 0;
    refused(&config, "publish_queue");
    config = test_config();
    config.head_timeout_ms = 0;
    refused(&config, "head_timeout");
    config = test_config();
    config.retry_ms = 1LL << 40;
    refused(&config, "retry_ms");
    config = test_config();
    config.log_level = 7;
    refused(&config, "log_level");
    config = test_config();
    config.loops = -1;
    refused(&config, "loops: -1 is negative");
    config = test_config();
    config.loops = 65;
    refused(&config, "loops must be from 1 to 64");
    /* A JWT key under 32 bytes (or any, in a library built without JWT support) is refused,
     * naming the field and never quoting the key. */
    config = test_config();
    config.publisher_jwt_key = "!ChangeMe: 31 bytes of secret!!";
    refused(&config, "publisher_jwt_key");
    CHECK(strstr(sse_last_error(), "ChangeMe") == NULL, "the key is quoted: %s", sse_last_error());
    config = test_config();
    config.subscriber_jwt_key = "short";
    refused(&config, "subscriber_jwt_key");
}

/* A program built against a newer header has a bigger struct: the fields this library knows
 * are used, unknown ones must be 0 (their default) or the library refuses the config. */
static void newer_header(void)
{
    struct {
        sse_config known;
        uint64_t added_later;
    } newer;
    CHECK_OK(sse_config_init(&newer.known, sizeof newer));
    CHECK(newer.known.size == sizeof newer && newer.added_later == 0, "init zeroes the tail");
    newer.known.listen = "127.0.0.1:0";
    sse_server *server = sse_server_new(&newer.known);
    CHECK(server != NULL, "unknown fields left at 0 are fine: %s", sse_last_error());

    struct {
        sse_stats known;
        uint64_t added_later;
    } stats;
    memset(&stats, 0xFF, sizeof stats);
    CHECK_OK(sse_server_stats(server, &stats.known, sizeof stats));
    CHECK(stats.added_later == 0 && stats.known.connections == 0, "unknown stats are 0");
    CHECK_RESULT(sse_server_stats(server, &stats.known, 8), SSE_RESULT_INVALID_ARGUMENT);
    CHECK_MESSAGE("sizeof(sse_stats)");
    sse_server_free(&server);

    newer.added_later = 1;
    refused(&newer.known, "does not know");
}

static void invalid_events(void)
{
    sse_config config = test_config();
    sse_server *server = new_server(&config);

    CHECK_RESULT(sse_publish(server, NULL, NULL, "\xff", 1, NULL), SSE_RESULT_INVALID_UTF8);
    CHECK_MESSAGE("data is not valid UTF-8");
    CHECK_RESULT(sse_publish(server, NULL, NULL, "\xc3\xa9", 1, NULL), SSE_RESULT_INVALID_UTF8);
    CHECK_RESULT(sse_publish(server, "\xc3", NULL, "x", 1, NULL), SSE_RESULT_INVALID_UTF8);
    CHECK_MESSAGE("topic is not valid UTF-8");
    CHECK_RESULT(sse_publish(server, NULL, "\xff", "x", 1, NULL), SSE_RESULT_INVALID_UTF8);
    CHECK_MESSAGE("event_type is not valid UTF-8");
    CHECK_RESULT(sse_publish(server, NULL, NULL, "x", 1, "\xfe"), SSE_RESULT_INVALID_UTF8);
    CHECK_MESSAGE("id is not valid UTF-8");

    const char *bad_fields[] = {"a\nb", "a\rb", "\n", "ab\r"};
    for (size_t i = 0; i < sizeof bad_fields / sizeof bad_fields[0]; i++) {
        CHECK_RESULT(sse_publish(server, NULL, bad_fields[i], "x", 1, NULL),
                     SSE_RESULT_INVALID_FIELD);
        CHECK_MESSAGE("event type must not contain CR, LF or NUL");
        CHECK_RESULT(sse_publish(server, NULL, NULL, "x", 1, bad_fields[i]),
                     SSE_RESULT_INVALID_FIELD);
        CHECK_MESSAGE("id must not contain CR, LF or NUL");
    }
    /* Nothing refused was published. */
    CHECK_OK(sse_server_start(server));
    client c = subscribe(sse_server_port(server), "/events", "Last-Event-ID: 0\r\n");
    client_expect(&c, ": gap\n\n");
    int64_t id = sse_publish(server, NULL, NULL, "ok", 2, NULL);
    CHECK(id > 0, "publish");
    char expected[64];
    snprintf(expected, sizeof expected, "id: %lld\ndata: ok\n\n", (long long)id);
    client_expect(&c, expected);
    CHECK(server_stats(server).events_published == 1, "only the valid event");
    sse_server_free(&server);
    client_close(&c);
}

/* A full queue is an error at once, not a block; it clears when the loop catches up. */
static void queue_full(void)
{
    sse_config config = test_config();
    config.publish_queue = 2;
    sse_server *server = new_server(&config); /* the loop is not running: nothing drains */
    CHECK(sse_publish(server, NULL, NULL, "1", 1, NULL) > 0, "first");
    CHECK(sse_publish(server, NULL, NULL, "2", 1, NULL) > 0, "second");
    double started = now_seconds();
    CHECK_RESULT(sse_publish(server, NULL, NULL, "3", 1, NULL), SSE_RESULT_QUEUE_FULL);
    CHECK(now_seconds() - started < time_limit(0.5), "a full queue does not block");
    CHECK_MESSAGE("the publish queue is full");
    CHECK_OK(sse_server_start(server));
    int64_t id;
    int tries = 0;
    while ((id = sse_publish(server, NULL, NULL, "3", 1, NULL)) == SSE_RESULT_QUEUE_FULL) {
        CHECK(++tries < 5000, "the queue never drained");
        sleep_ms(1);
    }
    CHECK(id > 0, "publish once drained: %lld", (long long)id);
    sse_server_free(&server);
}

static void stopped_and_busy(void)
{
    sse_server *server = start_server();
    CHECK_RESULT(sse_server_start(server), SSE_RESULT_BUSY);
    CHECK_MESSAGE("already running");
    CHECK_RESULT(sse_server_run(server), SSE_RESULT_BUSY);
    CHECK_OK(sse_server_stop(server));
    CHECK_RESULT(sse_publish(server, NULL, NULL, "x", 1, NULL), SSE_RESULT_STOPPED);
    CHECK_MESSAGE("stopped");
    CHECK_RESULT(sse_server_start(server), SSE_RESULT_STOPPED);
    CHECK_RESULT(sse_server_run(server), SSE_RESULT_STOPPED);
    sse_server_free(&server);
}

static void *fail_on_this_thread(void *arg)
{
    (void)arg;
    sse_publish(NULL, NULL, NULL, NULL, 0, NULL);
    CHECK_MESSAGE("server is NULL");
    return NULL;
}

/* Each thread has its own last error. */
static void last_error_is_per_thread(void)
{
    sse_config_init(NULL, 0);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, fail_on_this_thread, NULL) == 0, "pthread_create");
    pthread_join(thread, NULL);
    CHECK_MESSAGE("config is NULL");
}

int main(void)
{
    result_strings();
    null_arguments();
    invalid_configs();
    newer_header();
    invalid_events();
    queue_full();
    stopped_and_busy();
    last_error_is_per_thread();
    return 0;
}
