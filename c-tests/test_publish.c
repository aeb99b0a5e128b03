/* Publishing: what raw-socket subscribers receive, byte for byte, for every kind of event;
 * topics; ids assigned or given; replay with Last-Event-ID. */
#include "harness.h"

/* Publishes and checks the result: an assigned id (> 0) or 0 for a given one. */
static int64_t publish(const sse_server *server, const char *topic, const char *type,
                       const char *data, size_t len, const char *id)
{
    int64_t result = sse_publish(server, topic, type, data, len, id);
    CHECK(id == NULL || *id == '\0' ? result > 0 : result == 0,
          "sse_publish returned %lld: %s", (long long)result, sse_last_error());
    return result;
}

int main(void)
{
    sse_server *server = start_server();
    uint16_t port = sse_server_port(server);
    client all = subscribe(port, "/events", NULL);
    client news = subscribe(port, "/events?topic=news", NULL);
    char expected[512];

    /* The simplest event: default type, empty topic, assigned id. */
    int64_t first = publish(server, NULL, NULL, "hello", 5, NULL);
    snprintf(expected, sizeof expected, "id: %lld\ndata: hello\n\n", (long long)first);
    client_expect(&all, expected);

    /* A type, a topic, and every kind of line break; ids count up by one. */
    const char *lines = "line1\nline2\r\nline3\rline4";
    int64_t second = publish(server, "news", "update", lines, strlen(lines), NULL);
    CHECK(second == first + 1, "ids count up: %lld then %lld", (long long)first,
          (long long)second);
    snprintf(expected, sizeof expected,
             "id: %lld\nevent: update\ndata: line1\ndata: line2\ndata: line3\ndata: line4\n\n",
             (long long)second);
    client_expect(&all, expected);
    client_expect(&news, expected);

    /* The caller's own id (sse_publish returns 0); "message" is the default type, omitted;
     * empty data (NULL with length 0) still has a data line. */
    publish(server, "news", "message", NULL, 0, "custom-7");
    client_expect(&all, "id: custom-7\ndata: \n\n");
    client_expect(&news, "id: custom-7\ndata: \n\n");

    /* Data is taken by length: no NUL needed, bytes past the length ignored; UTF-8 kept. */
    const char buffer[] = {'a', 'b', 'c', 'X', 'Y'};
    publish(server, "", "", buffer, 3, "");
    const char *utf8 = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c";
    int64_t fourth = publish(server, "other", NULL, utf8, strlen(utf8), NULL);
    snprintf(expected, sizeof expected, "id: %lld\ndata: abc\n\nid: %lld\ndata: %s\n\n",
             (long long)(second + 1), (long long)fourth, utf8);
    client_expect(&all, expected);

    /* The topic subscriber got only its topic: the next thing it reads is the next news. */
    int64_t fifth = publish(server, "news", "tick", "5", 1, NULL);
    snprintf(expected, sizeof expected, "id: %lld\nevent: tick\ndata: 5\n\n", (long long)fifth);
    client_expect(&news, expected);
    client_expect(&all, expected);

    /* Replay: everything after `second` that matches the topics, in order, then live. */
    char last_event_id[64];
    snprintf(last_event_id, sizeof last_event_id, "Last-Event-ID: %lld\r\n", (long long)second);
    client replay = subscribe(port, "/events?topic=news", last_event_id);
    snprintf(expected, sizeof expected, "id: custom-7\ndata: \n\nid: %lld\nevent: tick\ndata: 5\n\n",
             (long long)fifth);
    client_expect(&replay, expected);

    /* A large event (past what a publishing thread keeps buffered between calls), then a small
     * one from the same thread. */
    enum { LINES = 200, WIDTH = 999 };
    char *big = malloc(LINES * (WIDTH + 1));
    char *frame = malloc(64 + LINES * (WIDTH + 7));
    CHECK(big != NULL && frame != NULL, "out of memory");
    memset(big, 'a', LINES * (WIDTH + 1));
    for (int i = 1; i < LINES; i++) {
        big[i * (WIDTH + 1) - 1] = '\n';
    }
    int64_t sixth = publish(server, "big", NULL, big, LINES * (WIDTH + 1) - 1, NULL);
    size_t at = (size_t)sprintf(frame, "id: %lld\n", (long long)sixth);
    for (int i = 0; i < LINES; i++) {
        at += (size_t)sprintf(frame + at, "data: %.*s\n", WIDTH, big);
    }
    strcpy(frame + at, "\n");
    client_expect(&all, frame);
    int64_t seventh = publish(server, "big", NULL, "small", 5, NULL);
    snprintf(expected, sizeof expected, "id: %lld\ndata: small\n\n", (long long)seventh);
    client_expect(&all, expected);
    free(big);
    free(frame);

    sse_stats stats = server_stats(server);
    CHECK(stats.events_published == 8, "events_published %llu",
          (unsigned long long)stats.events_published);
    CHECK(stats.subscribers == 3, "subscribers %llu", (unsigned long long)stats.subscribers);
    CHECK(stats.history_events == 8, "history_events %llu",
          (unsigned long long)stats.history_events);

    sse_server_free(&server);
    client_close(&all);
    client_close(&news);
    client_close(&replay);
    return 0;
}
