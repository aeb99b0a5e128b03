/* sse_publish_event: several topics, a retry, a type and an id in one event, byte for byte;
 * a private event, which subscribers without a token never get; every refusal of a malformed
 * sse_event. */
#include "harness.h"

int main(void)
{
    /* With a subscriber key, so that a private event has someone who could read it; the
     * subscribers here have no token (anonymous) and read public events only. */
    sse_config config = test_config();
    config.subscriber_jwt_key = "!ChangeThisMercureHubJWTSecretKey!";
    config.anonymous = 1;
    sse_server *server = new_server(&config);
    CHECK_OK(sse_server_start(server));
    uint16_t port = sse_server_port(server);
    client a = subscribe(port, "/events?topic=a", NULL);
    client b = subscribe(port, "/events?topic=b", NULL);
    client both = subscribe(port, "/events?topic=a&topic=b", NULL);
    char expected[256];

    sse_event event;
    CHECK(sse_event_init(&event, sizeof event) == SSE_RESULT_OK, "init: %s", sse_last_error());
    CHECK(event.retry_ms == -1 && event.topic_count == 0, "defaults");

    /* One event to two topics, with a retry: each subscriber gets it once. */
    const char *topics[] = {"a", "b"};
    event.topics = topics;
    event.topic_count = 2;
    event.event_type = "update";
    event.data = "line1\nline2";
    event.data_len = strlen(event.data);
    event.retry_ms = 10000;
    int64_t id = sse_publish_event(server, &event);
    CHECK(id > 0, "sse_publish_event: %lld %s", (long long)id, sse_last_error());
    snprintf(expected, sizeof expected,
             "id: %lld\nevent: update\nretry: 10000\ndata: line1\ndata: line2\n\n",
             (long long)id);
    client_expect(&a, expected);
    client_expect(&b, expected);
    client_expect(&both, expected);

    /* The caller's id, the default type and topic; the struct may be reused at once. */
    sse_event plain;
    sse_event_init(&plain, sizeof plain);
    plain.data = "x";
    plain.data_len = 1;
    plain.id = "521";
    CHECK(sse_publish_event(server, &plain) == 0, "own id: %s", sse_last_error());
    client all = subscribe(port, "/events", "Last-Event-ID: 0\r\n");
    client_expect(&all, ": gap\n\n");
    client_expect(&all, expected);
    client_expect(&all, "id: 521\ndata: x\n\n");

    /* A private event reaches no subscriber without a token; a plain sse_publish after it on
     * the same thread is public again. */
    sse_event secret;
    sse_event_init(&secret, sizeof secret);
    CHECK(secret.is_private == 0, "public by default");
    secret.topics = topics;
    secret.topic_count = 1;
    secret.data = "secret";
    secret.data_len = 6;
    secret.id = "p1";
    secret.is_private = 1;
    CHECK(sse_publish_event(server, &secret) == 0, "private: %s", sse_last_error());
    CHECK(sse_publish(server, "a", NULL, "open", 4, "o1") == 0, "public: %s", sse_last_error());
    /* The next event each of them gets is the public one. */
    client_expect(&a, "id: o1\ndata: open\n\n");
    client_expect(&all, "id: o1\ndata: open\n\n");

    /* Refusals: nothing is published by any of them. */
    CHECK(sse_publish_event(server, NULL) == SSE_RESULT_NULL_ARGUMENT, "NULL event");
    CHECK(sse_publish_event(NULL, &event) == SSE_RESULT_NULL_ARGUMENT, "NULL server");
    sse_event bad = event;
    bad.topics = NULL;
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_NULL_ARGUMENT, "NULL topics");
    const char *with_null[] = {"a", NULL};
    bad = event;
    bad.topics = with_null;
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_NULL_ARGUMENT, "NULL topic");
    bad = event;
    bad.topic_count = 5000;
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_INVALID_ARGUMENT, "too many topics");
    bad = event;
    bad.retry_ms = 4294967296LL;
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_INVALID_ARGUMENT, "retry too large");
    bad = event;
    bad.event_type = "a\nb";
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_INVALID_FIELD, "LF in type");
    bad = event;
    bad.id = "1\r";
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_INVALID_FIELD, "CR in id");
    const char *latin1[] = {"caf\xe9"};
    bad = event;
    bad.topics = latin1;
    bad.topic_count = 1;
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_INVALID_UTF8, "topic not UTF-8");
    bad = event;
    bad.data = "\xff";
    bad.data_len = 1;
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_INVALID_UTF8, "data not UTF-8");
    bad = event;
    bad.size = 3;
    CHECK(sse_publish_event(server, &bad) == SSE_RESULT_INVALID_ARGUMENT, "bad size");
    CHECK(sse_event_init(NULL, sizeof event) == SSE_RESULT_NULL_ARGUMENT, "init NULL");
    CHECK(sse_event_init(&bad, 3) == SSE_RESULT_INVALID_ARGUMENT, "init small");

    sse_stats stats = server_stats(server);
    CHECK(stats.events_published == 4, "events_published %llu",
          (unsigned long long)stats.events_published);

    sse_server_free(&server);
    client_close(&a);
    client_close(&b);
    client_close(&both);
    client_close(&all);
    return 0;
}
