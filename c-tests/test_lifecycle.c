/* Lifecycle: versions, config defaults, new -> start -> stop -> free, the loop on the caller's
 * thread, stop before start, free while another thread runs the loop or stops it, double
 * free. */
#include <pthread.h>

#include "harness.h"

static void versions_agree(void)
{
    CHECK(sse_abi_version() == SSE_ABI_VERSION, "library ABI %u, header ABI %u",
          sse_abi_version(), SSE_ABI_VERSION);
    const char *version = sse_version();
    CHECK(version != NULL && strchr(version, '.') != NULL, "version %s", version);
    CHECK(strcmp(sse_last_error(), "") == 0, "no failure yet, got %s", sse_last_error());
}

static void config_defaults(void)
{
    sse_config config;
    memset(&config, 0xAB, sizeof config);
    CHECK_OK(sse_config_init(&config, sizeof config));
    CHECK(config.size == sizeof config, "size %zu", config.size);
    CHECK(strcmp(config.listen, "127.0.0.1:8080") == 0, "listen %s", config.listen);
    CHECK(config.history == 1024, "history %zu", config.history);
    CHECK(config.max_clients == 10000, "max_clients %zu", config.max_clients);
    CHECK(config.max_queue == 1 << 20, "max_queue %zu", config.max_queue);
    CHECK(config.max_body == 1 << 20, "max_body %zu", config.max_body);
    CHECK(config.publish_queue == 65536, "publish_queue %zu", config.publish_queue);
    CHECK(config.heartbeat_ms == 15000, "heartbeat_ms");
    CHECK(config.head_timeout_ms == 10000, "head_timeout_ms");
    CHECK(config.retry_ms == -1, "retry_ms");
    CHECK(config.cors_origin == NULL && config.publish_token == NULL &&
              config.subscribe_token == NULL,
          "strings default to NULL");
    CHECK(config.log_level == SSE_LOG_LEVEL_QUIET, "log_level %lld", (long long)config.log_level);
}

/* new -> publish (queued) -> start -> subscriber -> stop (twice) -> use after stop -> free. */
static void start_stop_free(void)
{
    sse_config config = test_config();
    sse_server *server = new_server(&config);
    uint16_t port = sse_server_port(server);
    sse_stats stats = server_stats(server);
    CHECK(stats.connections == 0 && stats.events_published == 0, "fresh stats");

    /* Published before the loop starts: queued, and kept in the history once it does. */
    int64_t early = sse_publish(server, NULL, NULL, "early", 5, NULL);
    CHECK(early > 0, "publish before start: %lld", (long long)early);

    CHECK_OK(sse_server_start(server));
    CHECK_RESULT(sse_server_start(server), SSE_RESULT_BUSY);
    CHECK_RESULT(sse_server_run(server), SSE_RESULT_BUSY);

    /* Replay from before the early event proves the loop took it. */
    client c = subscribe(port, "/events", "Last-Event-ID: 1\r\n");
    char expected[128];
    snprintf(expected, sizeof expected, ": gap\n\nid: %lld\ndata: early\n\n", (long long)early);
    client_expect(&c, expected);
    stats = server_stats(server);
    CHECK(stats.subscribers == 1 && stats.events_published == 1, "subscribers %llu published %llu",
          (unsigned long long)stats.subscribers, (unsigned long long)stats.events_published);

    double started = now_seconds();
    CHECK_OK(sse_server_stop(server));
    CHECK(now_seconds() - started < time_limit(3.0), "stop took %.1f s", now_seconds() - started);
    client_expect_eof(&c);
    client_close(&c);
    CHECK_OK(sse_server_stop(server));

    /* Use after stop: errors, never crashes; the port and the counters stay readable. */
    CHECK_RESULT(sse_publish(server, NULL, NULL, "late", 4, NULL), SSE_RESULT_STOPPED);
    CHECK_RESULT(sse_server_start(server), SSE_RESULT_STOPPED);
    CHECK_RESULT(sse_server_run(server), SSE_RESULT_STOPPED);
    CHECK(sse_server_port(server) == port, "port after stop");
    CHECK(server_stats(server).events_published == 1, "stats after stop");

    /* Stop released the port: a new server can take it. */
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    config.listen = listen;
    sse_server *again = new_server(&config);
    CHECK(sse_server_port(again) == port, "same port");
    sse_server_free(&again);

    sse_server_free(&server);
    CHECK(server == NULL, "free sets the pointer to NULL");
    sse_server_free(&server); /* the same variable again: a no-op */
    sse_server_free(NULL);
}

/* Stopped before its loop ever ran; freed without a stop; freed while running. */
static void stop_or_free_in_any_state(void)
{
    sse_config config = test_config();
    sse_server *server = new_server(&config);
    CHECK_OK(sse_server_stop(server));
    CHECK_RESULT(sse_server_start(server), SSE_RESULT_STOPPED);
    sse_server_free(&server);

    server = new_server(&config);
    sse_server_free(&server); /* never started */

    server = start_server();
    client c = subscribe(sse_server_port(server), "/events", NULL);
    sse_server_free(&server); /* running, with a subscriber: stops first */
    client_expect_eof(&c);
    client_close(&c);
}

struct run_args {
    sse_server *server;
    int result;
};

static void *run_loop(void *arg)
{
    struct run_args *args = arg;
    args->result = sse_server_run(args->server);
    return NULL;
}

static void *stop_when_serving(void *arg)
{
    struct run_args *args = arg;
    client c = subscribe(sse_server_port(args->server), "/events", NULL);
    CHECK(sse_publish(args->server, NULL, NULL, "x", 1, NULL) > 0, "publish");
    client_read_until(&c, "\n\n", (char[64]){0}, 64);
    args->result = sse_server_stop(args->server);
    client_expect_eof(&c);
    client_close(&c);
    return NULL;
}

/* sse_server_run on this thread, stopped from another. */
static void run_on_caller_thread(void)
{
    sse_config config = test_config();
    struct run_args stopper = {new_server(&config), -100};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, stop_when_serving, &stopper) == 0, "pthread_create");
    CHECK_OK(sse_server_run(stopper.server));
    pthread_join(thread, NULL);
    CHECK_OK(stopper.result);
    CHECK_RESULT(sse_server_run(stopper.server), SSE_RESULT_STOPPED);
    sse_server_free(&stopper.server);
}

/* sse_server_free while sse_server_run is in progress on another thread: free stops the loop
 * and waits for it; the run call returns without touching the freed server. */
static void free_while_run_on_another_thread(void)
{
    sse_config config = test_config();
    sse_server *server = new_server(&config);
    struct run_args runner = {server, -100};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, run_loop, &runner) == 0, "pthread_create");
    client c = subscribe(sse_server_port(server), "/events", NULL); /* the loop is running */
    sse_server_free(&server);
    CHECK(server == NULL, "free sets the pointer to NULL");
    client_expect_eof(&c);
    client_close(&c);
    pthread_join(thread, NULL);
    CHECK_OK(runner.result);
}

static void *stop_it(void *arg)
{
    struct run_args *args = arg;
    args->result = sse_server_stop(args->server);
    return NULL;
}

/* sse_server_free while sse_server_stop is in progress on another thread: free waits, and
 * the stop returns without touching the freed server. */
static void free_while_stop_on_another_thread(void)
{
    sse_server *server = start_server();
    client c = subscribe(sse_server_port(server), "/events", NULL);
    struct run_args stopper = {server, -100};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, stop_it, &stopper) == 0, "pthread_create");
    /* STOPPED from publish: the other thread is inside sse_server_stop. */
    while (sse_publish(server, NULL, NULL, "x", 1, NULL) != SSE_RESULT_STOPPED) {
        sleep_ms(1);
    }
    sse_server_free(&server);
    pthread_join(thread, NULL);
    CHECK_OK(stopper.result);
    client_expect_eof(&c);
    client_close(&c);
}

int main(void)
{
    versions_agree();
    config_defaults();
    start_stop_free();
    stop_or_free_in_any_state();
    run_on_caller_thread();
    free_while_run_on_another_thread();
    free_while_stop_on_another_thread();
    return 0;
}
