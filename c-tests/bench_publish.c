/* The cost of one sse_publish call, in nanoseconds, from 1 thread and from 4 at once.
 *
 *   make -C c-tests bench
 *
 * The loop runs on its library thread and takes events while they are published, as in
 * production; no subscriber is connected, so the figure is the publisher's side: validating,
 * copying, assigning an id, encoding the frame once, queueing it and waking the loop.
 * Publishing goes in bursts that fit in the queue, with a pause for the loop to catch up
 * between bursts: a sustained flood would measure how fast the loop drains instead (a full
 * queue is an error returned at once, not a wait). */
#include <pthread.h>

#include "harness.h"

#define ROUNDS 40
#define BURST 40000 /* events per round, all threads together; below publish_queue */

struct bench {
    const sse_server *server;
    pthread_barrier_t *barrier;
    long per_round;
    double busy; /* seconds spent inside sse_publish bursts */
};

static void *publish_bursts(void *arg)
{
    struct bench *b = arg;
    const char data[] = "{\"sensor\":\"t1\",\"value\":21.5,\"unit\":\"C\",\"seq\":123456}";
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_wait(b->barrier);
        double start = now_seconds();
        for (long i = 0; i < b->per_round; i++) {
            int64_t id = sse_publish(b->server, "sensors", "reading", data, sizeof data - 1, NULL);
            CHECK(id > 0, "publish: %lld %s", (long long)id, sse_last_error());
        }
        b->busy += now_seconds() - start;
        pthread_barrier_wait(b->barrier);
    }
    return NULL;
}

/* Waits until the loop has taken `events` events. */
static void wait_drained(const sse_server *server, uint64_t events)
{
    while (server_stats(server).events_delivered < events) {
        sleep_ms(1);
    }
}

/* Runs `threads` publishers; prints the cost of one call. */
static void run(int threads)
{
    sse_server *server = start_server();
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1);
    struct bench benches[4];
    pthread_t ids[4];
    for (int t = 0; t < threads; t++) {
        benches[t] = (struct bench){server, &barrier, BURST / threads, 0};
        CHECK(pthread_create(&ids[t], NULL, publish_bursts, &benches[t]) == 0, "pthread_create");
    }
    double wall = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_wait(&barrier);
        double start = now_seconds();
        pthread_barrier_wait(&barrier);
        wall += now_seconds() - start;
        wait_drained(server, (uint64_t)(round + 1) * (uint64_t)(BURST / threads * threads));
    }
    double busy = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        busy += benches[t].busy;
    }
    pthread_barrier_destroy(&barrier);
    double calls = (double)ROUNDS * (BURST / threads * threads);
    printf("%d thread%s: %5.0f ns per call (each thread), %5.0f ns per call overall, "
           "%.2f M calls/s\n",
           threads, threads == 1 ? " " : "s", busy / calls * 1e9, wall / calls * 1e9,
           calls / wall / 1e6);
    sse_server_free(&server);
}

/* The call alone: the loop is not started, so nothing drains the queue concurrently (no
 * wake-ups, no frees on another thread). Each round fills a fresh server's queue. */
static void run_without_loop(void)
{
    const char data[] = "{\"sensor\":\"t1\",\"value\":21.5,\"unit\":\"C\",\"seq\":123456}";
    sse_config config = test_config();
    config.publish_queue = BURST;
    double busy = 0;
    for (int round = 0; round < ROUNDS; round++) {
        sse_server *server = new_server(&config);
        double start = now_seconds();
        for (long i = 0; i < BURST; i++) {
            int64_t id = sse_publish(server, "sensors", "reading", data, sizeof data - 1, NULL);
            CHECK(id > 0, "publish: %lld %s", (long long)id, sse_last_error());
        }
        busy += now_seconds() - start;
        sse_server_free(&server);
    }
    printf("no loop  : %5.0f ns per call (the call alone, for comparison)\n",
           busy / ((double)ROUNDS * BURST) * 1e9);
}

int main(void)
{
    run(1); /* warm-up: page in the allocator and the code */
    run(1);
    run(4);
    run_without_loop();
    return 0;
}
