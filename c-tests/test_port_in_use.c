/* A port already in use: sse_server_new returns NULL with a message naming the address and
 * the reason, and the server holding the port is unaffected. */
#include "harness.h"

int main(void)
{
    sse_server *holder = start_server();
    uint16_t port = sse_server_port(holder);

    char listen[32], address[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    sse_config config = test_config();
    config.listen = listen;
    CHECK(sse_server_new(&config) == NULL, "a second server bound the same port");
    const char *message = sse_last_error();
    snprintf(address, sizeof address, "cannot listen on 127.0.0.1:%u", port);
    CHECK(strstr(message, address) != NULL, "message names the address: %s", message);
    CHECK(strstr(message, "in use") != NULL, "message says why: %s", message);

    /* The holder still serves. */
    client c = subscribe(port, "/events", NULL);
    int64_t id = sse_publish(holder, NULL, NULL, "still here", 10, NULL);
    char expected[64];
    snprintf(expected, sizeof expected, "id: %lld\ndata: still here\n\n", (long long)id);
    client_expect(&c, expected);

    sse_server_free(&holder);
    client_close(&c);
    return 0;
}
