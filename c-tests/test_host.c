/* The host's say and view: the log callback (its thread, and a blocked one that never stalls the
 * loop), the stream callback, subscriber counts per topic (consistent with /metrics), the
 * access callback composing with tokens, a blocking access callback, events_published right
 * after sse_publish, and a private event no one could read. */
#include <pthread.h>

#include "harness.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

/* ---- the log callback ------------------------------------------------------------------- */

typedef struct log_book {
    int lines, accepted, dropped_notes, errors;
    int bad_thread;          /* a line arrived on the loop's or the main thread */
    int blocked;             /* while set, the callback waits */
    int holding;             /* the callback is waiting now */
    int slow_access_noted;
    pthread_t main_thread, loop_thread;
    int loop_known;
} log_book;

static log_book book;

static void on_log(int level, const char *line, size_t len, void *data)
{
    CHECK(data == &book, "callback_data is passed back");
    CHECK(strlen(line) == len, "len %zu for %s", len, line);
    CHECK(level >= SSE_LOG_LEVEL_QUIET && level <= SSE_LOG_LEVEL_VERBOSE, "level %d", level);
    pthread_mutex_lock(&lock);
    book.lines++;
    if (pthread_equal(pthread_self(), book.main_thread) ||
        (book.loop_known && pthread_equal(pthread_self(), book.loop_thread))) {
        book.bad_thread = 1;
    }
    if (strncmp(line, "accepted ", 9) == 0) {
        CHECK(level == SSE_LOG_LEVEL_VERBOSE, "accepted at level %d", level);
        book.accepted++;
    }
    if (strstr(line, "log lines were dropped") != NULL) {
        CHECK(level == SSE_LOG_LEVEL_QUIET, "dropped note at level %d", level);
        book.dropped_notes++;
    }
    if (strstr(line, "the access callback took") != NULL) {
        book.slow_access_noted++;
    }
    while (book.blocked) {
        book.holding = 1;
        pthread_cond_broadcast(&changed);
        pthread_cond_wait(&changed, &lock);
    }
    book.holding = 0;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* ---- the stream callback ---------------------------------------------------------------- */

#define MAX_SEEN 16
typedef struct stream_seen {
    int opened;
    uint64_t id;
    char topics[128];
    char peer[64];
} stream_seen;

static stream_seen seen[MAX_SEEN];
static int seen_count;

static void on_stream(const sse_stream_event *event, void *data)
{
    CHECK(data == &book, "callback_data is passed back");
    pthread_mutex_lock(&lock);
    book.loop_thread = pthread_self();
    book.loop_known = 1;
    CHECK(seen_count < MAX_SEEN, "too many stream events");
    stream_seen *s = &seen[seen_count++];
    s->opened = event->opened;
    s->id = event->stream_id;
    s->topics[0] = '\0';
    for (size_t i = 0; i < event->topic_count; i++) {
        strcat(s->topics, event->topics[i]);
        strcat(s->topics, ";");
    }
    snprintf(s->peer, sizeof s->peer, "%s", event->peer ? event->peer : "(null)");
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void wait_stream_events(int n)
{
    double limit = now_seconds() + time_limit(READ_TIMEOUT_SECS);
    pthread_mutex_lock(&lock);
    while (seen_count < n) {
        pthread_mutex_unlock(&lock);
        CHECK(now_seconds() < limit, "only %d stream events, waited for %d", seen_count, n);
        sleep_ms(2);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
}

/* ---- the access callback ---------------------------------------------------------------- */

typedef struct access_log {
    int asked;
    int block_ms;            /* sleeps this long before answering */
    char last[512];          /* what the last request said */
} access_log;

static access_log access_book;

/* The host's own session check: the cookie "session" must be "good"; a publish needs the header
 * X-Role: editor too. */
static int on_access(sse_request *request, void *data)
{
    CHECK(data == &book, "callback_data is passed back");
    access_book.asked++;
    const char *session = sse_request_cookie(request, "session");
    const char *role = sse_request_header(request, "x-role");
    const char *peer = sse_request_peer(request);
    snprintf(access_book.last, sizeof access_book.last, "%s %s ?%s publish=%d topics=%zu:%s,%s peer=%s role=%s",
             sse_request_method(request), sse_request_path(request), sse_request_query(request),
             sse_request_is_publish(request), sse_request_topic_count(request),
             sse_request_topic(request, 0) ? sse_request_topic(request, 0) : "-",
             sse_request_topic(request, 1) ? sse_request_topic(request, 1) : "-",
             peer ? "loopback" : "(null)", role ? role : "-");
    CHECK(peer == NULL || strncmp(peer, "127.0.0.1:", 10) == 0, "peer %s", peer);
    CHECK(sse_request_topic(request, 99) == NULL, "no such topic");
    CHECK(sse_request_header(request, NULL) == NULL, "NULL name");
    if (access_book.block_ms > 0) {
        sleep_ms(access_book.block_ms);
    }
    if (session == NULL || strcmp(session, "good") != 0) {
        CHECK_OK(sse_request_set_reason(request, "log in first"));
        return 401;
    }
    if (sse_request_is_publish(request) && (role == NULL || strcmp(role, "editor") != 0)) {
        return 403;
    }
    return 0;
}

/* Sends one request on a fresh connection and reads the whole answer. */
static void request(uint16_t port, const char *text, char *answer, size_t cap)
{
    client c = client_connect(port);
    client_send(&c, text);
    client_expect_eof(&c);
    snprintf(answer, cap, "%s", c.buf ? c.buf : "");
    client_close(&c);
}

static void wait_stats(sse_server *server, uint64_t delivered)
{
    double limit = now_seconds() + time_limit(READ_TIMEOUT_SECS);
    while (server_stats(server).events_delivered < delivered) {
        CHECK(now_seconds() < limit, "the loop did not deliver");
        sleep_ms(2);
    }
}

typedef struct topic_list {
    char text[256];
    int64_t total;
} topic_list;

static void on_topic(const char *topic, uint64_t subscribers, void *data)
{
    topic_list *list = data;
    char item[64];
    snprintf(item, sizeof item, "%s=%llu;", topic, (unsigned long long)subscribers);
    strcat(list->text, item);
    list->total += (int64_t)subscribers;
}

static void counts_and_streams(void)
{
    sse_config config = test_config();
    config.stream_callback = on_stream;
    config.callback_data = &book;
    config.metrics_topics = 1;
    sse_server *server = new_server(&config);
    uint16_t port = sse_server_port(server);
    CHECK_OK(sse_server_start(server));

    client all = subscribe(port, "/events", NULL);
    client a = subscribe(port, "/events?topic=a", NULL);
    client ab = subscribe(port, "/events?topic=a&topic=b", NULL);
    wait_stream_events(3);
    CHECK_RESULT(sse_server_topic_subscribers(server, "a"), 2);
    CHECK_RESULT(sse_server_topic_subscribers(server, "b"), 1);
    CHECK_RESULT(sse_server_topic_subscribers(server, "c"), 0);
    CHECK_RESULT(sse_server_topic_subscribers(server, NULL), 1);
    CHECK_RESULT(sse_server_topic_subscribers(NULL, "a"), SSE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sse_server_topic_subscribers(server, "\xff"), SSE_RESULT_INVALID_UTF8);
    CHECK(server_stats(server).subscribers == 3, "total");
    topic_list list = {"", 0};
    CHECK_RESULT(sse_server_each_topic(server, on_topic, &list), 2);
    CHECK(strcmp(list.text, "a=2;b=1;") == 0, "topics %s", list.text);
    CHECK_RESULT(sse_server_each_topic(server, NULL, NULL), SSE_RESULT_NULL_ARGUMENT);

    /* /metrics shows the same counts. */
    char answer[8192];
    request(port, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n", answer, sizeof answer);
    CHECK(strstr(answer, "ssed_topic_subscribers{topic=\"a\"} 2\n") != NULL, "%s", answer);
    CHECK(strstr(answer, "ssed_topic_subscribers{topic=\"b\"} 1\n") != NULL, "%s", answer);
    CHECK(strstr(answer, "ssed_subscribers_every_topic 1\n") != NULL, "%s", answer);

    /* The stream callback: on the loop's thread, with topics, the peer, an id. */
    pthread_mutex_lock(&lock);
    CHECK(seen[0].opened == 1 && strcmp(seen[0].topics, "") == 0, "every topic: %s", seen[0].topics);
    CHECK(strcmp(seen[2].topics, "a;b;") == 0, "topics %s", seen[2].topics);
    CHECK(strncmp(seen[1].peer, "127.0.0.1:", 10) == 0, "peer %s", seen[1].peer);
    CHECK(!pthread_equal(book.loop_thread, pthread_self()), "the loop's thread, not main");
    uint64_t ab_id = seen[2].id;
    pthread_mutex_unlock(&lock);

    client_close(&ab);
    wait_stream_events(4);
    pthread_mutex_lock(&lock);
    CHECK(seen[3].opened == 0 && seen[3].id == ab_id, "close of the same stream");
    CHECK(strcmp(seen[3].topics, "a;b;") == 0 && strcmp(seen[3].peer, seen[2].peer) == 0,
          "close tells topics %s and peer %s", seen[3].topics, seen[3].peer);
    pthread_mutex_unlock(&lock);
    CHECK_RESULT(sse_server_topic_subscribers(server, "a"), 1);
    CHECK_RESULT(sse_server_topic_subscribers(server, "b"), 0);

    sse_server_free(&server);
    /* Every stream closed at stop was told. */
    CHECK(seen_count == 6, "stream events %d", seen_count);
    client_close(&all);
    client_close(&a);
    seen_count = 0;
}

static void published_counts_at_once(void)
{
    sse_config config = test_config();
    sse_server *server = new_server(&config);
    /* Before the loop even runs, and right after the call: counted. */
    CHECK(sse_publish(server, "t", NULL, "x", 1, NULL) > 0, "publish");
    sse_stats stats = server_stats(server);
    CHECK(stats.events_published == 1 && stats.events_delivered == 0,
          "published %llu delivered %llu", (unsigned long long)stats.events_published,
          (unsigned long long)stats.events_delivered);
    CHECK_OK(sse_server_start(server));
    wait_stats(server, 1);
    CHECK(server_stats(server).events_published == 1, "counted once");

    /* A private event on a server without a subscriber key could reach no one: refused. */
    sse_event event;
    CHECK_OK(sse_event_init(&event, sizeof event));
    event.data = "secret";
    event.data_len = 6;
    event.is_private = 1;
    CHECK_RESULT(sse_publish_event(server, &event), SSE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(sse_last_error(), "subscriber key") != NULL, "%s", sse_last_error());
    sse_server_free(&server);
}

/* A log callback that blocks does not stop the loop: streams and publishes go on, lines beyond
 * the queue are dropped and counted, and the callback hears how many once it goes on. */
static void blocked_log_callback(void)
{
    memset(&book, 0, sizeof book);
    book.main_thread = pthread_self();
    book.blocked = 1;
    sse_config config = test_config();
    config.log_level = SSE_LOG_LEVEL_VERBOSE;
    config.log_callback = on_log;
    config.stream_callback = on_stream;
    config.callback_data = &book;
    sse_server *server = new_server(&config);
    uint16_t port = sse_server_port(server);
    CHECK_OK(sse_server_start(server));

    client first = subscribe(port, "/events", NULL);
    double limit = now_seconds() + time_limit(READ_TIMEOUT_SECS);
    pthread_mutex_lock(&lock);
    while (!book.holding) {
        pthread_mutex_unlock(&lock);
        CHECK(now_seconds() < limit, "the log callback was never called");
        sleep_ms(2);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);

    /* 1100 connections log 1100 lines, more than the queue holds, while the callback is held. */
    for (int i = 0; i < 1100; i++) {
        char answer[512];
        request(port, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", answer, sizeof answer);
        CHECK(strncmp(answer, "HTTP/1.1 200", 12) == 0, "health %d: %s", i, answer);
    }
    int64_t id = sse_publish(server, NULL, NULL, "through", 7, NULL);
    char expected[64];
    snprintf(expected, sizeof expected, "id: %lld\ndata: through\n\n", (long long)id);
    client_expect(&first, expected);

    pthread_mutex_lock(&lock);
    book.blocked = 0;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    client_close(&first);
    sse_server_free(&server);
    /* sse_server_free returns after the last line was delivered. */
    CHECK(book.dropped_notes >= 1, "the callback heard that lines were dropped");
    CHECK(book.accepted >= 1 && book.accepted < 1100, "accepted lines %d", book.accepted);
    CHECK(book.lines <= 1024 + 8, "at most the queue, then the note: %d lines", book.lines);
    CHECK(!book.bad_thread, "lines came on the log thread only");
    seen_count = 0;
}

static void access_composes_with_tokens(void)
{
    memset(&book, 0, sizeof book);
    book.main_thread = pthread_self();
    sse_config config = test_config();
    config.subscribe_token = "r3ad";
    config.publish_token = "wr1te";
    config.access_callback = on_access;
    config.log_callback = on_log;
    config.callback_data = &book;
    sse_server *server = new_server(&config);
    uint16_t port = sse_server_port(server);
    CHECK_OK(sse_server_start(server));
    char answer[2048];

    /* The server's token first: a wrong one is refused without asking the host. */
    request(port, "GET /events?token=nope HTTP/1.1\r\nCookie: session=good\r\n\r\n", answer,
            sizeof answer);
    CHECK(strncmp(answer, "HTTP/1.1 401", 12) == 0 && strstr(answer, "the token is wrong"),
          "%s", answer);
    CHECK(access_book.asked == 0, "not asked before the token passed");

    /* The token passes; the host refuses without its session, with its reason. */
    request(port, "GET /events?token=r3ad&topic=a HTTP/1.1\r\nConnection: close\r\n\r\n",
            answer, sizeof answer);
    CHECK(strncmp(answer, "HTTP/1.1 401", 12) == 0 && strstr(answer, "\r\n\r\nlog in first\n"),
          "%s", answer);
    CHECK(access_book.asked == 1, "asked once");
    CHECK(strcmp(access_book.last, "GET /events ?token=r3ad&topic=a publish=0 topics=1:a,- "
                                   "peer=loopback role=-") == 0,
          "%s", access_book.last);

    /* Both pass: the stream opens. */
    client ok = subscribe(port, "/events?token=r3ad&topic=a&topic=b",
                          "Cookie: theme=dark; session=\"good\"\r\n");

    /* A publish: the token, then the host, who sees the event's topics. */
    const char *form = "topic=a&topic=b&data=hi";
    char publish[512];
    snprintf(publish, sizeof publish,
             "POST /publish HTTP/1.1\r\nAuthorization: Bearer wr1te\r\nCookie: session=good\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             strlen(form), form);
    request(port, publish, answer, sizeof answer);
    CHECK(strncmp(answer, "HTTP/1.1 403", 12) == 0, "no role: %s", answer);
    CHECK(strstr(access_book.last, "POST /publish ? publish=1 topics=2:a,b") != NULL, "%s",
          access_book.last);
    CHECK(server_stats(server).events_published == 0, "nothing published");
    snprintf(publish, sizeof publish,
             "POST /publish HTTP/1.1\r\nAuthorization: Bearer wr1te\r\nCookie: session=good\r\n"
             "X-Role: editor\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(form), form);
    request(port, publish, answer, sizeof answer);
    CHECK(strncmp(answer, "HTTP/1.1 200", 12) == 0, "allowed: %s", answer);
    char line[256];
    client_read_until(&ok, "data: hi\n\n", line, sizeof line);

    /* An access callback that blocks holds every client up, and loses nothing: events
     * published meanwhile wait and are delivered once it returns; the delay is logged. */
    access_book.block_ms = 600;
    client held = client_connect(port);
    client_send(&held, "GET /events?token=r3ad HTTP/1.1\r\nCookie: session=good\r\n\r\n");
    double limit = now_seconds() + time_limit(READ_TIMEOUT_SECS);
    while (access_book.asked < 5) {
        CHECK(now_seconds() < limit, "the held request was not asked about");
        sleep_ms(1);
    }
    int64_t ids[20];
    for (int i = 0; i < 20; i++) {
        ids[i] = sse_publish(server, "a", NULL, "during", 6, NULL);
        CHECK(ids[i] > 0, "publish while the callback blocks: %lld", (long long)ids[i]);
    }
    client_expect(&held, STREAM_HEAD);
    for (int i = 0; i < 20; i++) {
        char expected[64];
        snprintf(expected, sizeof expected, "id: %lld\ndata: during\n\n", (long long)ids[i]);
        client_read_until(&ok, expected, line, sizeof line);
    }
    access_book.block_ms = 0;
    client_close(&held);
    client_close(&ok);
    sse_server_free(&server);
    CHECK(book.slow_access_noted == 1, "the slow callback was logged: %d", book.slow_access_noted);
}

int main(void)
{
    counts_and_streams();
    published_counts_at_once();
    blocked_log_callback();
    access_composes_with_tokens();
    puts("test_host: ok");
    return 0;
}
