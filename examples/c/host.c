/* host: a C program that embeds ssed and keeps its say: the server's log lines go through the
 * program's own logger, the program shows who is listening every second, and it decides who
 * may subscribe and publish with its own session check.
 *
 *   make host && ./host [ADDR]                      (ADDR defaults to 127.0.0.1:8080)
 *
 * It prints a session id (a real program would hand one out at login). Subscribe with it, as a
 * browser would send its cookie:
 *
 *   curl -N -b session=ID http://127.0.0.1:8080/events?topic=ticks
 *
 * Without it, or with another, the answer is 401 "log in first". Publishing needs the session
 * and the header X-Role: editor. The program publishes a tick a second to topic "ticks" and
 * stops on SIGINT or SIGTERM. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ssed.h"

/* ---- the program's own logger: one line per message, with the time and a source --------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void host_log(const char *source, const char *format, ...)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
    pthread_mutex_lock(&log_lock);
    fprintf(stdout, "%s [%s] ", when, source);
    va_list args;
    va_start(args, format);
    vfprintf(stdout, format, args);
    va_end(args);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&log_lock);
}

/* ssed's lines, on its log thread: into the same logger. */
static void on_ssed_log(int level, const char *line, size_t len, void *data)
{
    (void)len;
    (void)data;
    const char *what = level == SSE_LOG_LEVEL_QUIET ? "ssed error" : "ssed";
    host_log(what, "%s", line);
}

/* ---- the program's sessions, and its access check ---------------------------------------- */

static char session_id[33];

static void new_session(void)
{
    FILE *random = fopen("/dev/urandom", "rb");
    unsigned char bytes[16] = {0};
    if (random == NULL || fread(bytes, 1, sizeof bytes, random) != sizeof bytes) {
        fprintf(stderr, "host: cannot read /dev/urandom\n");
        exit(1);
    }
    fclose(random);
    for (size_t i = 0; i < sizeof bytes; i++) {
        snprintf(session_id + 2 * i, 3, "%02x", bytes[i]);
    }
}

/* On the loop's thread: a lookup in memory, nothing slow. */
static int on_access(sse_request *request, void *data)
{
    (void)data;
    const char *session = sse_request_cookie(request, "session");
    if (session == NULL || strcmp(session, session_id) != 0) {
        sse_request_set_reason(request, "log in first");
        return 401;
    }
    if (sse_request_is_publish(request)) {
        const char *role = sse_request_header(request, "X-Role");
        if (role == NULL || strcmp(role, "editor") != 0) {
            sse_request_set_reason(request, "only editors publish");
            return 403;
        }
    }
    return 0;
}

/* ---- who is listening -------------------------------------------------------------------- */

typedef struct listing {
    char text[512];
    size_t used;
} listing;

static void add_topic(const char *topic, uint64_t subscribers, void *data)
{
    listing *list = data;
    int n = snprintf(list->text + list->used, sizeof list->text - list->used, " %s=%llu", topic,
                     (unsigned long long)subscribers);
    if (n > 0 && list->used + (size_t)n < sizeof list->text) {
        list->used += (size_t)n;
    }
}

static void show_listeners(const sse_server *server)
{
    sse_stats stats;
    sse_server_stats(server, &stats, sizeof stats);
    listing list = {"", 0};
    sse_server_each_topic(server, add_topic, &list);
    host_log("host", "listening: %llu streams (every topic: %lld;%s)",
             (unsigned long long)stats.subscribers,
             (long long)sse_server_topic_subscribers(server, NULL),
             list.used > 0 ? list.text : " no topic");
}

static volatile sig_atomic_t stopping;

static void on_signal(int signal)
{
    (void)signal;
    stopping = 1;
}

int main(int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: %s [ADDR]\n", argv[0]);
        return 2;
    }
    new_session();
    /* The library's threads (the loop's, the log's) start with SIGINT and SIGTERM blocked, so
     * that only this thread takes them. */
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    sse_config config;
    sse_config_init(&config, sizeof config);
    config.listen = argc > 1 ? argv[1] : "127.0.0.1:8080";
    config.log_level = SSE_LOG_LEVEL_INFO;
    config.log_callback = on_ssed_log;
    config.access_callback = on_access;
    sse_server *server = sse_server_new(&config);
    if (server == NULL) {
        host_log("host", "cannot start: %s", sse_last_error());
        return 1;
    }
    sse_server_start(server);
    pthread_sigmask(SIG_UNBLOCK, &blocked, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    host_log("host", "listening on http://127.0.0.1:%u", sse_server_port(server));
    host_log("host", "session: %s", session_id);
    host_log("host", "subscribe: curl -N -b session=%s http://127.0.0.1:%u/events?topic=ticks",
             session_id, sse_server_port(server));
    for (unsigned tick = 1; !stopping; tick++) {
        char data[32];
        int len = snprintf(data, sizeof data, "tick %u", tick);
        int64_t id = sse_publish(server, "ticks", NULL, data, (size_t)len, NULL);
        if (id < 0) {
            host_log("host", "publish: %s", sse_result_str((int)id));
        }
        show_listeners(server);
        struct timespec second = {1, 0};
        nanosleep(&second, NULL);
    }
    host_log("host", "stopping");
    sse_server_free(&server);
    host_log("host", "stopped");
    return 0;
}
