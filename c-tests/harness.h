/* Helpers shared by the C tests of libssed: checks that exit on failure, a test config, and a
 * raw-socket subscriber that reads the event stream byte by byte as a browser would get it.
 *
 * Every helper is `static inline`, so a test that does not use one gets no unused warning. */
#ifndef SSED_TEST_HARNESS_H
#define SSED_TEST_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ssed.h"

/* Fails the test with a message unless `cond` holds. */
#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* Fails unless `call` returns `expected`, printing the library's message. */
#define CHECK_RESULT(call, expected)                                             \
    do {                                                                         \
        long long got_ = (long long)(call);                                      \
        CHECK(got_ == (long long)(expected), "%s returned %lld, expected %lld (%s); last error: %s", \
              #call, got_, (long long)(expected), sse_result_str((int)(expected)), \
              sse_last_error());                                                 \
    } while (0)

#define CHECK_OK(call) CHECK_RESULT(call, SSE_RESULT_OK)

/* Seconds a subscriber waits for bytes before the test fails (valgrind is slow). */
#define READ_TIMEOUT_SECS 20

/* A config for tests: a free port on loopback, no heartbeats to interleave with frames. */
static inline sse_config test_config(void)
{
    sse_config config;
    CHECK_OK(sse_config_init(&config, sizeof config));
    config.listen = "127.0.0.1:0";
    config.heartbeat_ms = 0;
    return config;
}

/* A bound server (loop not started) on a free port. */
static inline sse_server *new_server(const sse_config *config)
{
    sse_server *server = sse_server_new(config);
    CHECK(server != NULL, "sse_server_new: %s", sse_last_error());
    CHECK(sse_server_port(server) != 0, "no port");
    return server;
}

/* A started server with the test config. */
static inline sse_server *start_server(void)
{
    sse_config config = test_config();
    sse_server *server = new_server(&config);
    CHECK_OK(sse_server_start(server));
    return server;
}

static inline double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A time limit in seconds, stretched when SSED_SLOW is set (the valgrind target sets it):
 * under valgrind every thread runs many times slower, and one at a time. */
static inline double time_limit(double seconds)
{
    return getenv("SSED_SLOW") != NULL ? seconds * 20 : seconds;
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A client connection with a growing input buffer; `pos` is how far the test has consumed. */
typedef struct client {
    int fd;
    char *buf;
    size_t len, cap, pos;
} client;

/* Connects to 127.0.0.1:port; reads time out so that a bug fails the test, never hangs it. */
static inline client client_connect(uint16_t port)
{
    client c = {socket(AF_INET, SOCK_STREAM, 0), NULL, 0, 0, 0};
    CHECK(c.fd >= 0, "socket: %s", strerror(errno));
    struct timeval timeout = {READ_TIMEOUT_SECS, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(c.fd, (struct sockaddr *)&addr, sizeof addr) == 0, "connect to port %u: %s",
          port, strerror(errno));
    return c;
}

static inline void client_send(client *c, const char *text)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t n = send(c->fd, text, len, MSG_NOSIGNAL);
        CHECK(n > 0, "send: %s", strerror(errno));
        text += n;
        len -= (size_t)n;
    }
}

/* Reads more bytes into the buffer. Returns 0 at end of stream; fails on timeout or error. */
static inline size_t client_fill(client *c)
{
    if (c->cap - c->len < 4096) {
        c->cap = c->cap ? c->cap * 2 : 65536;
        c->buf = realloc(c->buf, c->cap + 1);
        CHECK(c->buf != NULL, "out of memory");
    }
    ssize_t n;
    do {
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    } while (n < 0 && errno == EINTR);
    CHECK(n >= 0, "recv: %s (timed out after %d s?)", strerror(errno), READ_TIMEOUT_SECS);
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return (size_t)n;
}

/* Consumes input up to and including `delimiter` and copies it, NUL-terminated, into `out`
 * (`cap` bytes). Fails if the stream ends first or the chunk does not fit. */
static inline void client_read_until(client *c, const char *delimiter, char *out, size_t cap)
{
    for (;;) {
        const char *found = c->buf ? strstr(c->buf + c->pos, delimiter) : NULL;
        if (found != NULL) {
            size_t end = (size_t)(found - c->buf) + strlen(delimiter);
            size_t n = end - c->pos;
            CHECK(n < cap, "chunk of %zu bytes does not fit in %zu", n, cap);
            memcpy(out, c->buf + c->pos, n);
            out[n] = '\0';
            c->pos = end;
            return;
        }
        CHECK(client_fill(c) > 0, "stream ended before the delimiter; got so far: %s",
              c->buf ? c->buf + c->pos : "");
    }
}

/* Consumes exactly `expected`; fails with both texts if the stream differs. */
static inline void client_expect(client *c, const char *expected)
{
    size_t len = strlen(expected);
    while (c->len - c->pos < len) {
        CHECK(client_fill(c) > 0, "stream ended; expected %s", expected);
    }
    CHECK(memcmp(c->buf + c->pos, expected, len) == 0, "expected\n---\n%s---\ngot\n---\n%.*s---",
          expected, (int)len, c->buf + c->pos);
    c->pos += len;
}

/* Reads until the server closes the connection; fails on timeout. */
static inline void client_expect_eof(client *c)
{
    while (client_fill(c) > 0) {
    }
}

static inline void client_close(client *c)
{
    close(c->fd);
    free(c->buf);
    c->buf = NULL;
}

/* The exact head of an event stream (no CORS configured), with the comment line every stream
 * opens with. */
#define STREAM_HEAD                                                              \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" \
    "X-Accel-Buffering: no\r\n\r\n:\n\n"

/* Subscribes with GET `target` (plus `headers`, each ending in CRLF) and consumes the stream
 * head: from then on the server has registered the subscriber, and every event published
 * afterwards reaches it. */
static inline client subscribe(uint16_t port, const char *target, const char *headers)
{
    client c = client_connect(port);
    char request[1024];
    snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: test\r\n%s\r\n", target,
             headers ? headers : "");
    client_send(&c, request);
    client_expect(&c, STREAM_HEAD);
    return c;
}

static inline sse_stats server_stats(const sse_server *server)
{
    sse_stats stats;
    CHECK_OK(sse_server_stats(server, &stats, sizeof stats));
    return stats;
}

#endif
