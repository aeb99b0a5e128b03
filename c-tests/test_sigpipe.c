/* A subscriber that resets its connection mid-stream must not disturb the host: the server
 * drops it and goes on. C and PHP programs never ignore SIGPIPE, so this test keeps its default
 * action: a write of the library that raised it would kill the process and fail the test. */
#include <signal.h>

#include "harness.h"

#define EVENTS 2000

int main(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    CHECK(sigaction(SIGPIPE, &dfl, NULL) == 0, "sigaction: %s", strerror(errno));

    sse_server *server = start_server();
    uint16_t port = sse_server_port(server);
    client gone = subscribe(port, "/events", NULL);
    /* Close with unread data pending and linger 0: the kernel answers later writes with a
     * reset, and the write after that is the one that would raise SIGPIPE. */
    struct linger reset = {1, 0};
    CHECK(setsockopt(gone.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) == 0, "SO_LINGER");
    client_close(&gone);

    char data[1024];
    memset(data, 'x', sizeof data);
    for (int i = 0; i < EVENTS; i++) {
        int64_t id;
        do {
            id = sse_publish(server, NULL, NULL, data, sizeof data, NULL);
        } while (id == SSE_RESULT_QUEUE_FULL);
        CHECK(id > 0, "publish %d: %lld", i, (long long)id);
    }
    /* The server lives on: once it has taken every event, a new subscriber gets a new one. */
    double deadline = now_seconds() + time_limit(10);
    while (server_stats(server).events_delivered != EVENTS) {
        CHECK(now_seconds() < deadline, "the events were never all taken");
        sleep_ms(5);
    }
    client next = subscribe(port, "/events", NULL);
    while (server_stats(server).subscribers != 1) {
        CHECK(now_seconds() < deadline, "the dead subscriber was never dropped");
        sleep_ms(5);
    }
    CHECK(sse_publish(server, NULL, NULL, "after", 5, "after-1") == 0, "publish after");
    client_expect(&next, "id: after-1\ndata: after\n\n");
    client_close(&next);
    CHECK_OK(sse_server_stop(server));
    sse_server_free(&server);
    return 0;
}
