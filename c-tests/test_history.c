/* The history file from C: events survive a server's restart on the same file, replay by
 * Last-Event-ID without a gap, assigned ids go on above the old ones; an unusable path fails
 * sse_server_new with a message naming it. */
#include "harness.h"

#include <sys/stat.h>

/* Publishes and waits until the loop has taken it (it is then written and delivered). */
static int64_t publish_and_wait(sse_server *server, const char *data)
{
    sse_stats before = server_stats(server);
    int64_t id = sse_publish(server, "t", NULL, data, strlen(data), NULL);
    CHECK(id > 0, "sse_publish: %lld %s", (long long)id, sse_last_error());
    double limit = now_seconds() + time_limit(READ_TIMEOUT_SECS);
    while (server_stats(server).events_delivered == before.events_delivered) {
        CHECK(now_seconds() < limit, "the event was not delivered");
        sleep_ms(2);
    }
    return id;
}

int main(void)
{
    char dir[] = "/tmp/ssed-c-history-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    char path[256];
    snprintf(path, sizeof path, "%s/history.log", dir);

    sse_config config = test_config();
    config.history_file = path;
    config.fsync_ms = 0;
    sse_server *first = new_server(&config);
    CHECK_OK(sse_server_start(first));
    int64_t a = publish_and_wait(first, "a");
    int64_t b = publish_and_wait(first, "b");
    int64_t c = publish_and_wait(first, "c");
    CHECK(b == a + 1 && c == b + 1, "ids count up");
    sse_server_free(&first);

    /* The same file again: the history is back. */
    sse_server *second = new_server(&config);
    CHECK_OK(sse_server_start(second));
    sse_stats stats = server_stats(second);
    CHECK(stats.history_events == 3, "history_events %llu after the restart",
          (unsigned long long)stats.history_events);
    char header[64];
    snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", (long long)a);
    client replay = subscribe(sse_server_port(second), "/events", header);
    char expected[128];
    snprintf(expected, sizeof expected, "id: %lld\ndata: b\n\nid: %lld\ndata: c\n\n",
             (long long)b, (long long)c);
    client_expect(&replay, expected);
    int64_t d = sse_publish(second, "t", NULL, "d", 1, NULL);
    CHECK(d > c, "ids go on above the file's: %lld after %lld", (long long)d, (long long)c);
    snprintf(expected, sizeof expected, "id: %lld\ndata: d\n\n", (long long)d);
    client_expect(&replay, expected);
    client_close(&replay);
    sse_server_free(&second);

    /* A directory is no history file: sse_server_new says which path. */
    sse_config bad = test_config();
    bad.history_file = dir;
    CHECK(sse_server_new(&bad) == NULL, "a directory was accepted as the history file");
    CHECK(strstr(sse_last_error(), dir) != NULL, "the message names the path: %s",
          sse_last_error());
    bad.history_file = path;
    bad.fsync_ms = -2;
    CHECK(sse_server_new(&bad) == NULL, "fsync_ms -2 was accepted");

    unlink(path);
    rmdir(dir);
    return 0;
}
