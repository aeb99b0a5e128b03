/* How a server listens besides `listen`: a listening socket handed over (listen_fd, as systemd
 * passes one), the publish socket (a Unix-domain socket where local programs publish without a
 * token), and the loop run on the caller's thread a while at a time (sse_server_run_for), where
 * the callbacks then run. */
#include <pthread.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "harness.h"

/* Connects to the Unix-domain socket at `path`. */
static client unix_connect(const char *path)
{
    client c = {socket(AF_UNIX, SOCK_STREAM, 0), NULL, 0, 0, 0};
    CHECK(c.fd >= 0, "socket: %s", strerror(errno));
    struct timeval timeout = {READ_TIMEOUT_SECS, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    CHECK(connect(c.fd, (struct sockaddr *)&addr, sizeof addr) == 0, "connect to %s: %s", path,
          strerror(errno));
    return c;
}

static void ask(client *c, const char *text)
{
    client_send(c, text);
    client_expect_eof(c);
}

static void publish_socket(void)
{
    char dir[] = "/tmp/ssed-c-socket-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    char path[128];
    snprintf(path, sizeof path, "%s/publish.sock", dir);
    sse_config config = test_config();
    config.publish_token = "wr1te";
    config.publish_socket = path;
    sse_server *server = new_server(&config);
    uint16_t port = sse_server_port(server);
    CHECK_OK(sse_server_start(server));
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode), "a socket at %s", path);
    CHECK((st.st_mode & 0777) == 0660, "mode %o", st.st_mode & 0777);

    client sub = subscribe(port, "/events", NULL);
    /* No token on the publish socket: its permissions are its access control. */
    client local = unix_connect(path);
    ask(&local, "POST /publish?data=local HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(local.buf, "HTTP/1.1 200", 12) == 0, "%s", local.buf);
    client_close(&local);
    char line[128];
    client_read_until(&sub, "data: local\n\n", line, sizeof line);
    /* Over TCP the token is still needed. */
    client tcp = client_connect(port);
    ask(&tcp, "POST /publish?data=x HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(tcp.buf, "HTTP/1.1 401", 12) == 0, "%s", tcp.buf);
    client_close(&tcp);
    /* The publish socket only publishes (and answers /health and /metrics). */
    local = unix_connect(path);
    ask(&local, "GET /events HTTP/1.1\r\n\r\n");
    CHECK(strncmp(local.buf, "HTTP/1.1 404", 12) == 0 && strstr(local.buf, "publish socket"),
          "%s", local.buf);
    client_close(&local);
    local = unix_connect(path);
    ask(&local, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(local.buf, "HTTP/1.1 200", 12) == 0, "%s", local.buf);
    client_close(&local);

    client_close(&sub);
    sse_server_free(&server);
    CHECK(stat(path, &st) != 0, "the socket file is removed at stop");
    CHECK(rmdir(dir) == 0, "rmdir: %s", strerror(errno));
}

static void handed_over_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0, "bind: %s", strerror(errno));
    CHECK(listen(fd, 16) == 0, "listen");
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);

    sse_config config = test_config();
    config.listen_fd = fd;
    sse_server *server = new_server(&config);
    CHECK(sse_server_port(server) == ntohs(addr.sin_port), "the port of the socket handed over");
    CHECK_OK(sse_server_start(server));
    client c = client_connect(ntohs(addr.sin_port));
    ask(&c, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(c.buf, "HTTP/1.1 200", 12) == 0, "%s", c.buf);
    client_close(&c);
    sse_server_free(&server);

    /* Not a listening socket: refused, naming it. */
    int plain = socket(AF_INET, SOCK_STREAM, 0);
    config.listen_fd = plain;
    CHECK(sse_server_new(&config) == NULL, "a socket that does not listen");
    CHECK(strstr(sse_last_error(), "listen_fd") != NULL, "%s", sse_last_error());
    close(plain);
    config.listen_fd = -3;
    CHECK(sse_server_new(&config) == NULL, "a negative descriptor");
}

/* ---- the loop on the caller's thread ---------------------------------------------------- */

static pthread_t caller;
static int access_on_caller, access_asked;

static int on_access(sse_request *request, void *data)
{
    (void)request;
    (void)data;
    access_asked++;
    access_on_caller = pthread_equal(pthread_self(), caller);
    return 0;
}

static void *stop_later(void *server)
{
    sleep_ms(300);
    CHECK_OK(sse_server_stop(server));
    return NULL;
}

static void run_for_on_this_thread(void)
{
    caller = pthread_self();
    sse_config config = test_config();
    config.access_callback = on_access;
    sse_server *server = new_server(&config);
    uint16_t port = sse_server_port(server);
    /* The head is answered while the loop runs on this thread. */
    client c = client_connect(port);
    client_send(&c, "GET /events HTTP/1.1\r\n\r\n");
    double limit = now_seconds() + time_limit(READ_TIMEOUT_SECS);
    while (access_asked == 0) {
        CHECK(now_seconds() < limit, "never asked");
        CHECK_OK(sse_server_run_for(server, 50));
    }
    CHECK(access_on_caller, "the access callback ran on the thread of sse_server_run_for");
    /* Between calls nothing is served, but publishing works and waits for the next call. */
    int64_t id = sse_publish(server, NULL, NULL, "later", 5, NULL);
    CHECK(id > 0, "publish between calls");
    CHECK_OK(sse_server_run_for(server, 50));
    char expected[64];
    snprintf(expected, sizeof expected, "id: %lld\ndata: later\n\n", (long long)id);
    client_expect(&c, STREAM_HEAD);
    client_expect(&c, expected);

    /* A stop from another thread ends the call that runs the loop, after its flush. */
    pthread_t stopper;
    CHECK(pthread_create(&stopper, NULL, stop_later, server) == 0, "thread");
    int result;
    do {
        result = sse_server_run_for(server, 100);
    } while (result == SSE_RESULT_OK);
    CHECK_RESULT(result, SSE_RESULT_STOPPED);
    pthread_join(stopper, NULL);
    client_expect_eof(&c);
    client_close(&c);
    CHECK_RESULT(sse_server_run_for(server, 10), SSE_RESULT_STOPPED);

    /* Freed between two calls, the server is run to its end: what it holds is flushed. */
    sse_server_free(&server);
    server = new_server(&config);
    c = client_connect(sse_server_port(server));
    client_send(&c, "GET /events HTTP/1.1\r\n\r\n");
    int asked = access_asked;
    limit = now_seconds() + time_limit(READ_TIMEOUT_SECS);
    while (access_asked == asked) {
        CHECK(now_seconds() < limit, "never asked");
        CHECK_OK(sse_server_run_for(server, 50));
    }
    id = sse_publish(server, NULL, NULL, "flushed", 7, NULL);
    sse_server_free(&server);
    snprintf(expected, sizeof expected, "id: %lld\ndata: flushed\n\n", (long long)id);
    client_expect(&c, STREAM_HEAD);
    client_expect(&c, expected);
    client_close(&c);
}

int main(void)
{
    publish_socket();
    handed_over_socket();
    run_for_on_this_thread();
    puts("test_sockets: ok");
    return 0;
}
