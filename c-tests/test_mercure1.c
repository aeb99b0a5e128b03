/* Mercure 1.0 settings from C: the hub URL, the resource identifier, trusted issuers and
 * active subscriptions reach the server (its metadata document says so, a 1.0 subscription
 * receives what sse_publish sends, the subscription API asks for a token), and bad ones are
 * refused with a message. */
#include "harness.h"

#define KEY "a key of at least thirty-two bytes!!"

static void refused_configs(void)
{
    sse_config config = test_config();
    sse_issuer short_key = {"https://app.test", "short", NULL};
    config.issuers = &short_key;
    config.issuer_count = 1;
    CHECK(sse_server_new(&config) == NULL, "a short key was accepted");
    CHECK(strstr(sse_last_error(), "https://app.test") != NULL, "message: %s", sse_last_error());
    CHECK(strstr(sse_last_error(), "short") == NULL, "the key is quoted: %s", sse_last_error());

    config.issuers = NULL;
    CHECK(sse_server_new(&config) == NULL, "NULL issuers with a count were accepted");
    CHECK(strstr(sse_last_error(), "issuers is NULL") != NULL, "message: %s", sse_last_error());

    config = test_config();
    config.hub_url = "ftp://hub.test/";
    CHECK(sse_server_new(&config) == NULL, "an ftp hub URL was accepted");
    CHECK(strstr(sse_last_error(), "hub URL") != NULL, "message: %s", sse_last_error());
}

int main(void)
{
    refused_configs();

    sse_config config = test_config();
    sse_issuer issuer = {"https://app.test", KEY, KEY};
    config.hub_url = "https://hub.test/.well-known/mercure";
    config.resource_identifier = "https://hub.test/";
    config.issuers = &issuer;
    config.issuer_count = 1;
    config.anonymous = 1;
    config.subscriptions = 1;
    sse_server *server = new_server(&config);
    CHECK_OK(sse_server_start(server));
    uint16_t port = sse_server_port(server);

    client metadata = client_connect(port);
    client_send(&metadata, "GET /.well-known/oauth-protected-resource/.well-known/mercure HTTP/1.1\r\n"
                           "Host: t\r\nConnection: close\r\n\r\n");
    char body[2048];
    client_read_until(&metadata, "}", body, sizeof body);
    CHECK(strstr(body, "\"resource\":\"https://hub.test/\"") != NULL, "metadata: %s", body);
    CHECK(strstr(body, "\"mercure_subscriptions\":true") != NULL, "metadata: %s", body);
    client_close(&metadata);

    client books = subscribe(port, "/.well-known/mercure?match=https://example.com/books/1", NULL);
    const char *topics[] = {"https://example.com/books/1"};
    sse_event event;
    CHECK_OK(sse_event_init(&event, sizeof event));
    event.topics = topics;
    event.topic_count = 1;
    event.data = "hello";
    event.data_len = 5;
    event.id = "book-1";
    CHECK(sse_publish_event(server, &event) == 0, "publish: %s", sse_last_error());
    client_expect(&books, "id: book-1\ndata: hello\n\n");
    client_close(&books);

    client api = client_connect(port);
    client_send(&api, "GET /.well-known/mercure/subscriptions HTTP/1.1\r\nHost: t\r\n\r\n");
    char head[1024];
    client_read_until(&api, "\r\n\r\n", head, sizeof head);
    CHECK(strstr(head, "401") != NULL, "API without a token: %s", head);
    CHECK(strstr(head, "resource_metadata=\"https://hub.test/.well-known/oauth-protected-resource\"") != NULL,
          "challenge: %s", head);
    client_close(&api);

    sse_server_free(&server);
    return 0;
}
