/* Stopping from other threads while subscribers are connected: every stream gets what was
 * published, then a retry hint, then the end; stops race with each other and with publishers
 * and all of them return cleanly. */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

#define SUBSCRIBERS 3
#define STOPPERS 2
#define PUBLISHERS 2
#define RACING_EVENTS 5000 /* per publisher, about 150 KiB for each subscriber */

struct racer {
    sse_server *server;
    atomic_int *go;
    int result;
    long published;
};

static void *stop_it(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(r->go)) {
    }
    r->result = sse_server_stop(r->server);
    return NULL;
}

/* Publishes until the server says it is stopped; lets the stoppers go once it is busy.
 * Past RACING_EVENTS it slows down, so that the subscribers (which read only at the end) stay
 * below max_queue even when the stoppers are scheduled late, as under valgrind. */
static void *publish_until_stopped(void *arg)
{
    struct racer *r = arg;
    for (;;) {
        if (r->published == 100) {
            atomic_store(r->go, 1);
        }
        if (r->published >= RACING_EVENTS) {
            sleep_ms(1);
        }
        int64_t id = sse_publish(r->server, NULL, NULL, "racing", 6, NULL);
        if (id == SSE_RESULT_STOPPED) {
            r->result = (int)id;
            return NULL;
        }
        CHECK(id > 0 || id == SSE_RESULT_QUEUE_FULL, "publish: %lld", (long long)id);
        r->published += id > 0;
    }
}

int main(void)
{
    sse_server *server = start_server();
    uint16_t port = sse_server_port(server);
    client subscribers[SUBSCRIBERS];
    for (int i = 0; i < SUBSCRIBERS; i++) {
        subscribers[i] = subscribe(port, "/events", NULL);
    }
    int64_t id = sse_publish(server, NULL, "before", "stop", 4, NULL);
    CHECK(id > 0, "publish");
    char expected[128];
    snprintf(expected, sizeof expected, "id: %lld\nevent: before\ndata: stop\n\n", (long long)id);
    for (int i = 0; i < SUBSCRIBERS; i++) {
        client_expect(&subscribers[i], expected);
    }

    /* Publishers and stoppers on their own threads, all at once. */
    atomic_int go = 0;
    struct racer racers[STOPPERS + PUBLISHERS];
    pthread_t threads[STOPPERS + PUBLISHERS];
    double started = now_seconds();
    for (int i = 0; i < STOPPERS + PUBLISHERS; i++) {
        racers[i] = (struct racer){server, &go, -100, 0};
        void *(*body)(void *) = i < STOPPERS ? stop_it : publish_until_stopped;
        CHECK(pthread_create(&threads[i], NULL, body, &racers[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < STOPPERS + PUBLISHERS; i++) {
        pthread_join(threads[i], NULL);
    }
    double took = now_seconds() - started;
    CHECK(took < time_limit(3.0), "stop took %.1f s", took);
    for (int i = 0; i < STOPPERS; i++) {
        CHECK_OK(racers[i].result);
    }
    for (int i = STOPPERS; i < STOPPERS + PUBLISHERS; i++) {
        CHECK_RESULT(racers[i].result, SSE_RESULT_STOPPED);
    }

    sse_stats stats = server_stats(server);
    CHECK(stats.subscribers_dropped_slow == 0, "%llu dropped as slow",
          (unsigned long long)stats.subscribers_dropped_slow);
    CHECK(stats.subscribers == 0, "no subscriber left");

    /* Each stream: the racing events that made it, a retry hint last, then the end. */
    for (int i = 0; i < SUBSCRIBERS; i++) {
        client_expect_eof(&subscribers[i]);
        const char *rest = subscribers[i].buf + subscribers[i].pos;
        const char *hint = NULL;
        for (const char *at = rest; (at = strstr(at, "retry: ")) != NULL; at++) {
            hint = at;
        }
        unsigned ms;
        int end = 0;
        CHECK(hint != NULL && sscanf(hint, "retry: %u\n\n%n", &ms, &end) == 1 && end > 0 &&
                  hint[end] == '\0',
              "the stream ends with a retry hint: %s", rest);
        client_close(&subscribers[i]);
    }
    CHECK_OK(sse_server_stop(server));
    sse_server_free(&server);
    printf("stopped in %.2f s while %ld events were being published\n", took,
           racers[STOPPERS].published + racers[STOPPERS + 1].published);
    return 0;
}
