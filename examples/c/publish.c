/* publish: serves Server-Sent Events and publishes every line read from stdin as one event.
 *
 *   make && ./publish [ADDR [TOPIC [TYPE]]]        (ADDR defaults to 127.0.0.1:8080)
 *   curl -N http://127.0.0.1:8080/events           (in another terminal)
 *
 * A trailing CR is stripped; a line that is not UTF-8 is skipped with a warning. At the end of
 * input the server flushes what subscribers have not yet received, and the program exits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ssed.h"

/* A full queue means the loop is behind: wait a little rather than drop the line. */
static int64_t publish_line(const sse_server *server, const char *topic, const char *type,
                            const char *line, size_t len)
{
    struct timespec pause = {0, 1000000}; /* 1 ms */
    int64_t result;
    for (int tries = 0; tries < 1000; tries++) {
        result = sse_publish(server, topic, type, line, len, NULL);
        if (result != SSE_RESULT_QUEUE_FULL) {
            break;
        }
        nanosleep(&pause, NULL);
    }
    return result;
}

int main(int argc, char **argv)
{
    if (argc > 4) {
        fprintf(stderr, "usage: %s [ADDR [TOPIC [TYPE]]]\n", argv[0]);
        return 2;
    }
    if (sse_abi_version() != SSE_ABI_VERSION) {
        fprintf(stderr, "publish: libssed ABI %u, built for %u\n", sse_abi_version(),
                SSE_ABI_VERSION);
        return 1;
    }
    sse_config config;
    sse_config_init(&config, sizeof config);
    if (argc > 1) {
        config.listen = argv[1];
    }
    const char *topic = argc > 2 ? argv[2] : NULL;
    const char *type = argc > 3 ? argv[3] : NULL;

    sse_server *server = sse_server_new(&config);
    if (server == NULL) {
        fprintf(stderr, "publish: %s\n", sse_last_error());
        return 1;
    }
    if (sse_server_start(server) != SSE_RESULT_OK) {
        fprintf(stderr, "publish: %s\n", sse_last_error());
        sse_server_free(&server);
        return 1;
    }
    fprintf(stderr, "listening on http://127.0.0.1:%u/events\n", sse_server_port(server));

    char *line = NULL;
    size_t capacity = 0;
    ssize_t len;
    int status = 0;
    while ((len = getline(&line, &capacity, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') {
            len--;
        }
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        int64_t result = publish_line(server, topic, type, line, (size_t)len);
        if (result == SSE_RESULT_INVALID_UTF8) {
            fprintf(stderr, "publish: skipped a line that is not UTF-8\n");
        } else if (result < 0) {
            fprintf(stderr, "publish: %s\n", sse_last_error());
            status = 1;
            break;
        }
    }
    free(line);
    sse_server_free(&server); /* stops, flushing for up to a second */
    return status;
}
