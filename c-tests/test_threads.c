/* Four threads publish 1000 events each at the same time: a subscriber receives every event,
 * each thread's events in the order it published them, and ids in increasing order; with one
 * event loop, and with two (`loops`), a subscriber on each. */
#include <pthread.h>
#include <sched.h>

#include "harness.h"

#define THREADS 4
#define EVENTS 1000

struct publisher {
    const sse_server *server;
    int thread;
    int64_t ids[EVENTS];
    long retries;
};

static void *publish_all(void *arg)
{
    struct publisher *p = arg;
    char data[64];
    for (int n = 0; n < EVENTS; n++) {
        int len = snprintf(data, sizeof data, "thread %d event %d", p->thread, n);
        int64_t id;
        /* A full queue is an error, never a block: the caller decides to retry. */
        while ((id = sse_publish(p->server, "load", "count", data, (size_t)len, NULL)) ==
               SSE_RESULT_QUEUE_FULL) {
            p->retries++;
            sched_yield();
        }
        CHECK(id > 0, "thread %d event %d: %lld %s", p->thread, n, (long long)id,
              sse_last_error());
        CHECK(n == 0 || id > p->ids[n - 1], "ids grow within a thread");
        p->ids[n] = id;
    }
    return NULL;
}

/* Reads every frame from `c`, checked against what each thread sent; the ids go to `ids`. */
static void read_all(client *c, long long ids[THREADS][EVENTS])
{
    int next[THREADS] = {0};
    long long last_id = 0;
    char frame[256];
    for (int received = 0; received < THREADS * EVENTS; received++) {
        client_read_until(c, "\n\n", frame, sizeof frame);
        long long id;
        int thread, n;
        CHECK(sscanf(frame, "id: %lld\nevent: count\ndata: thread %d event %d\n", &id, &thread,
                     &n) == 3,
              "frame %d: %s", received, frame);
        CHECK(thread >= 0 && thread < THREADS, "thread %d", thread);
        CHECK(n == next[thread], "thread %d: event %d arrived when %d was due", thread, n,
              next[thread]);
        CHECK(id > last_id, "ids in increasing order: %lld after %lld", id, last_id);
        last_id = id;
        ids[thread][n] = id;
        next[thread]++;
    }
}

static void run(int64_t loops)
{
    sse_config config = test_config();
    config.loops = loops;
    sse_server *server = new_server(&config);
    CHECK_OK(sse_server_start(server));
    client c = subscribe(sse_server_port(server), "/events?topic=load", NULL);
    client other = subscribe(sse_server_port(server), "/events?topic=load", NULL);

    static struct publisher publishers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        publishers[t].server = server;
        publishers[t].thread = t;
        CHECK(pthread_create(&threads[t], NULL, publish_all, &publishers[t]) == 0, "pthread");
    }

    /* Read while they publish: every frame, on both streams. */
    static long long received_ids[THREADS][EVENTS];
    static long long other_ids[THREADS][EVENTS];
    read_all(&c, received_ids);
    read_all(&other, other_ids);
    long retries = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        /* The id sse_publish returned is the id the event carried, on either stream. */
        for (int n = 0; n < EVENTS; n++) {
            CHECK(publishers[t].ids[n] == received_ids[t][n] &&
                      publishers[t].ids[n] == other_ids[t][n],
                  "thread %d event %d: id %lld returned, %lld and %lld received", t, n,
                  (long long)publishers[t].ids[n], received_ids[t][n], other_ids[t][n]);
        }
        retries += publishers[t].retries;
    }

    sse_stats stats = server_stats(server);
    CHECK(stats.events_published == THREADS * EVENTS, "events_published %llu",
          (unsigned long long)stats.events_published);
    CHECK(stats.subscribers_dropped_slow == 0, "nobody dropped");
    CHECK(stats.subscribers == 2, "two streams: %llu", (unsigned long long)stats.subscribers);
    printf("%d events from %d threads delivered in order to two streams on %lld loop(s) "
           "(%ld queue-full retries)\n",
           THREADS * EVENTS, THREADS, (long long)loops, retries);

    sse_server_free(&server);
    client_close(&c);
    client_close(&other);
}

int main(void)
{
    run(1);
    run(2);
    return 0;
}
