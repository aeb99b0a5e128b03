/*
 * The one-write floor: the least an SSE server can do per delivery, to measure ssed against.
 *
 *     gcc -O2 -o target/bench/floor benches/floor.c
 *     target/bench/floor --listen 127.0.0.1:PORT
 *
 * One thread, one epoll set, nonblocking sockets, no dependencies. It speaks just enough
 * HTTP/1.1 for benches/loadgen:
 * - GET (any path) opens an event stream: the head below, then a close-delimited body (no
 *   chunked coding, as ssed). Nothing is replayed and nothing is kept per subscriber beyond its
 *   descriptor.
 * - POST (any path) with a Content-Length body publishes: the body becomes one frame,
 *   "id: N\ndata: LINE\n\n" (one data line per line of the body), written with ONE write() per
 *   subscriber, then the publisher gets "200" with the id as its body. Requests may be
 *   pipelined on a keep-alive connection; the answers to all the requests one read brought go
 *   out in one write.
 * A subscriber whose socket does not take the whole frame at once (full send buffer, or a part
 * only) is dropped: closed at once. The floor keeps no queue, so it cannot resume a cut frame,
 * and a closed stream shows in the load generator's figures (closed, lost) instead of passing
 * for a slow delivery.
 *
 * It raises no limit itself: whoever starts it sets RLIMIT_NOFILE (benches/cores.py does). It
 * listens on loopback only. It is a measuring stick, not a server: no timeouts, no limits per
 * client beyond the buffer sizes below, no history.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEAD 8192
#define MAX_BODY (1 << 20)
#define MAX_INPUT (MAX_HEAD + MAX_BODY)
#define MAX_ANSWERS (1 << 20)

static const char STREAM_HEAD[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Connection: close\r\n\r\n";

enum kind { FREE, REQUESTS, SUBSCRIBER };

/* One per descriptor, indexed by it. REQUESTS: a connection that has not asked for a stream
 * (a publisher, or a subscriber before its GET is complete). */
struct conn {
    enum kind kind;
    int sub_index;       /* place in subs[] while a subscriber */
    char *in;            /* request bytes not yet handled */
    size_t in_len, in_cap;
    char *out;           /* answers not yet written */
    size_t out_len;
    int watching_out;    /* EPOLLOUT asked for: answers are waiting */
};

static struct conn *conns;
static size_t conn_slots;
static int *subs;
static size_t sub_count;
static int epfd;
static unsigned long long last_id;
static char *frame;
static size_t frame_cap;
/* Kept open so that a connection arriving at the descriptor limit can be accepted and closed
 * (otherwise it stays in the backlog and the listening socket reports it forever). */
static int spare_fd = -1;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *grow(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (!q)
        die("realloc");
    return q;
}

static void watch(int fd, unsigned events, int op)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL)
        die("epoll_ctl");
}

static void close_conn(int fd)
{
    struct conn *c = &conns[fd];
    if (c->kind == SUBSCRIBER) {
        /* Swap-remove: the last subscriber takes the closed one's place. */
        int last = subs[--sub_count];
        subs[c->sub_index] = last;
        conns[last].sub_index = c->sub_index;
    }
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof *c);
    close(fd); /* also leaves the epoll set */
}

/* The event "id: N\ndata: ...\n\n" for a body, each of its lines (LF, CR or CRLF) a data line. */
static size_t build_frame(const char *body, size_t len)
{
    size_t need = 64 + len * 7 + 2;
    if (need > frame_cap) {
        frame = grow(frame, need);
        frame_cap = need;
    }
    size_t n = (size_t)sprintf(frame, "id: %llu\ndata: ", ++last_id);
    for (size_t i = 0; i < len; i++) {
        char b = body[i];
        if (b == '\r' || b == '\n') {
            if (b == '\r' && i + 1 < len && body[i + 1] == '\n')
                i++;
            memcpy(frame + n, "\ndata: ", 7);
            n += 7;
        } else {
            frame[n++] = b;
        }
    }
    frame[n++] = '\n';
    frame[n++] = '\n';
    return n;
}

/* The floor's whole hot path: one write per subscriber. Walks backwards so that a drop (the
 * last subscriber moving into the dropped one's place) never skips anyone. */
static void fan_out(const char *body, size_t len)
{
    size_t n = build_frame(body, len);
    for (size_t i = sub_count; i-- > 0;) {
        int fd = subs[i];
        ssize_t written = write(fd, frame, n);
        if (written != (ssize_t)n)
            close_conn(fd);
    }
}

static void queue_answer(struct conn *c, const char *text, size_t len)
{
    if (c->out_len + len > MAX_ANSWERS)
        return; /* a publisher that never reads its answers; it is closed when flushing */
    c->out = grow(c->out, c->out_len + len);
    memcpy(c->out + c->out_len, text, len);
    c->out_len += len;
}

/* Writes what answers it can; returns -1 if the connection was closed. */
static int flush_answers(int fd)
{
    struct conn *c = &conns[fd];
    if (c->out_len == 0)
        return 0;
    ssize_t n = write(fd, c->out, c->out_len);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        close_conn(fd);
        return -1;
    }
    if (n > 0) {
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    if (c->out_len >= MAX_ANSWERS) {
        close_conn(fd);
        return -1;
    }
    if (c->watching_out != (c->out_len > 0)) {
        c->watching_out = c->out_len > 0;
        watch(fd, EPOLLIN | (c->watching_out ? EPOLLOUT : 0), EPOLL_CTL_MOD);
    }
    return 0;
}

static long content_length(const char *head, size_t head_len)
{
    const char *p = head, *end = head + head_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0)
            return strtol(p + 15, NULL, 10);
        p = eol + 1;
    }
    return 0;
}

static void become_subscriber(int fd)
{
    struct conn *c = &conns[fd];
    /* A fresh socket's send buffer takes the small head whole. */
    if (write(fd, STREAM_HEAD, sizeof STREAM_HEAD - 1) != (ssize_t)(sizeof STREAM_HEAD - 1)) {
        close_conn(fd);
        return;
    }
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->kind = SUBSCRIBER;
    c->sub_index = (int)sub_count;
    subs[sub_count++] = fd;
}

/* Handles every complete request at the front of the input. Returns -1 if fd was closed. */
static int handle_requests(int fd)
{
    struct conn *c = &conns[fd];
    size_t used = 0;
    while (used < c->in_len) {
        char *start = c->in + used;
        size_t avail = c->in_len - used;
        char *end = memmem(start, avail, "\r\n\r\n", 4);
        if (!end) {
            if (avail > MAX_HEAD) {
                close_conn(fd);
                return -1;
            }
            break;
        }
        size_t head_len = (size_t)(end - start) + 4;
        if (avail >= 4 && memcmp(start, "GET ", 4) == 0) {
            become_subscriber(fd);
            return conns[fd].kind == SUBSCRIBER ? 0 : -1;
        }
        long body_len = content_length(start, head_len);
        if (avail < 5 || memcmp(start, "POST ", 5) != 0 || body_len < 0 || body_len > MAX_BODY) {
            close_conn(fd);
            return -1;
        }
        if (avail < head_len + (size_t)body_len)
            break;
        fan_out(start + head_len, (size_t)body_len);
        char answer[128];
        char id[24];
        int id_len = snprintf(id, sizeof id, "%llu", last_id);
        int n = snprintf(answer, sizeof answer,
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
                         id_len, id);
        queue_answer(c, answer, (size_t)n);
        used += head_len + (size_t)body_len;
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    return flush_answers(fd);
}

static void on_readable(int fd)
{
    struct conn *c = &conns[fd];
    if (c->kind == SUBSCRIBER) {
        /* Subscribers send nothing after their GET: a read here sees them leave. */
        char sink[512];
        ssize_t n = read(fd, sink, sizeof sink);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            close_conn(fd);
        return;
    }
    if (c->in_len == c->in_cap) {
        /* Small for a GET; grown for publishes' bodies, up to one whole request. */
        if (c->in_cap >= MAX_INPUT) {
            close_conn(fd);
            return;
        }
        c->in_cap = c->in_cap ? 2 * c->in_cap : 16384;
        if (c->in_cap > MAX_INPUT)
            c->in_cap = MAX_INPUT;
        c->in = grow(c->in, c->in_cap);
    }
    ssize_t n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_conn(fd);
        return;
    }
    if (n > 0) {
        c->in_len += (size_t)n;
        handle_requests(fd);
    }
}

static void accept_all(int listener)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
                close(spare_fd);
                int refused = accept(listener, NULL, NULL);
                if (refused >= 0)
                    close(refused);
                spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                fprintf(stderr, "floor: out of descriptors, a connection refused\n");
            }
            return;
        }
        if ((size_t)fd >= conn_slots) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[fd].kind = REQUESTS;
        watch(fd, EPOLLIN, EPOLL_CTL_ADD);
    }
}

static int listen_on(const char *text)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) {
        fprintf(stderr, "floor: --listen wants 127.x.x.x:PORT, not %s\n", text);
        exit(2);
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "floor: --listen wants a loopback address (127.x.x.x:PORT), not %s\n", text);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        die("socket");
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4096) != 0)
        die(text);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--listen") != 0) {
        fprintf(stderr, "usage: %s --listen 127.0.0.1:PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a write to a gone subscriber fails with EPIPE instead */
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        die("getrlimit");
    conn_slots = limit.rlim_cur == RLIM_INFINITY ? 1 << 20 : (size_t)limit.rlim_cur;
    conns = calloc(conn_slots, sizeof *conns);
    subs = calloc(conn_slots, sizeof *subs);
    if (!conns || !subs)
        die("calloc");
    int listener = listen_on(argv[2]);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    watch(listener, EPOLLIN, EPOLL_CTL_ADD);
    struct epoll_event events[1024];
    for (;;) {
        int n = epoll_wait(epfd, events, 1024, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                accept_all(listener);
                continue;
            }
            /* An earlier event of this batch may have closed it (a drop during a fan-out). */
            if (conns[fd].kind == FREE)
                continue;
            if (events[i].events & EPOLLOUT && flush_answers(fd) < 0)
                continue;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(fd);
        }
    }
}
