/* ssed_ffi.h: the declarations of ssed.h without preprocessor lines, for PHP's FFI::cdef.
 * Generated from src/ffi/ by build.rs (cbindgen). Do not edit. C programs include ssed.h,
 * which documents every function. */

typedef enum sse_result {
  SSE_RESULT_OK = 0,
  SSE_RESULT_NULL_ARGUMENT = -1,
  SSE_RESULT_INVALID_ARGUMENT = -2,
  SSE_RESULT_INVALID_UTF8 = -3,
  SSE_RESULT_INVALID_FIELD = -4,
  SSE_RESULT_QUEUE_FULL = -5,
  SSE_RESULT_STOPPED = -6,
  SSE_RESULT_BUSY = -7,
  SSE_RESULT_IO = -8,
  SSE_RESULT_PANIC = -9,
  SSE_RESULT_STORAGE = -10,
  SSE_RESULT_UNAVAILABLE = -11,
} sse_result;

typedef enum sse_log_level {
  SSE_LOG_LEVEL_OFF = 0,
  SSE_LOG_LEVEL_QUIET = 1,
  SSE_LOG_LEVEL_INFO = 2,
  SSE_LOG_LEVEL_VERBOSE = 3,
} sse_log_level;

typedef struct sse_request sse_request;

typedef struct sse_server sse_server;

typedef struct sse_issuer {
  const char *issuer;
  const char *publisher_key;
  const char *subscriber_key;
} sse_issuer;

typedef void (*sse_log_callback)(int level, const char *line, size_t len, void *data);

typedef int (*sse_access_callback)(struct sse_request *request, void *data);

typedef struct sse_stream_event {
  int32_t opened;
  uint64_t stream_id;
  const char *const *topics;
  size_t topic_count;
  const char *peer;
} sse_stream_event;

typedef void (*sse_stream_callback)(const struct sse_stream_event *event, void *data);

typedef struct sse_config {
  size_t size;
  const char *listen;
  size_t history;
  size_t max_clients;
  size_t max_queue;
  size_t max_body;
  size_t publish_queue;
  uint64_t heartbeat_ms;
  uint64_t head_timeout_ms;
  int64_t retry_ms;
  const char *cors_origin;
  const char *publish_token;
  const char *subscribe_token;
  int64_t log_level;
  const char *history_file;
  int64_t fsync_ms;
  const char *publisher_jwt_key;
  const char *subscriber_jwt_key;
  int64_t anonymous;
  const char *redis_url;
  const char *redis_stream;
  size_t redis_history;
  const char *tls_cert;
  const char *tls_key;
  const char *hub_url;
  const char *resource_identifier;
  const struct sse_issuer *issuers;
  size_t issuer_count;
  int64_t subscriptions;
  sse_log_callback log_callback;
  sse_access_callback access_callback;
  sse_stream_callback stream_callback;
  void *callback_data;
  int64_t metrics_topics;
  int64_t listen_fd;
  const char *publish_socket;
  int64_t publish_socket_fd;
  int64_t loops;
} sse_config;

typedef struct sse_stats {
  uint64_t connections;
  uint64_t subscribers;
  uint64_t events_published;
  uint64_t bytes_sent;
  uint64_t subscribers_dropped_slow;
  uint64_t history_events;
  uint64_t requests_refused;
  uint64_t events_delivered;
} sse_stats;

typedef struct sse_event {
  size_t size;
  const char *const *topics;
  size_t topic_count;
  const char *event_type;
  const char *data;
  size_t data_len;
  const char *id;
  int64_t retry_ms;
  int64_t is_private;
} sse_event;

typedef void (*sse_topic_callback)(const char *topic, uint64_t subscribers, void *data);

const char *sse_version(void);

uint32_t sse_abi_version(void);

const char *sse_result_str(int code);

const char *sse_last_error(void);

const char *sse_request_method(const struct sse_request *request);

const char *sse_request_path(const struct sse_request *request);

const char *sse_request_query(const struct sse_request *request);

int32_t sse_request_is_publish(const struct sse_request *request);

size_t sse_request_topic_count(const struct sse_request *request);

const char *sse_request_topic(const struct sse_request *request, size_t index);

const char *sse_request_peer(const struct sse_request *request);

const char *sse_request_header(const struct sse_request *request, const char *name);

const char *sse_request_cookie(const struct sse_request *request, const char *name);

enum sse_result sse_request_set_reason(struct sse_request *request, const char *reason);

enum sse_result sse_config_init(struct sse_config *config, size_t size);

struct sse_server *sse_server_new(const struct sse_config *config);

enum sse_result sse_server_start(struct sse_server *server);

enum sse_result sse_server_run(struct sse_server *server);

enum sse_result sse_server_run_for(struct sse_server *server, uint32_t timeout_ms);

enum sse_result sse_server_stop(struct sse_server *server);

void sse_server_free(struct sse_server **server);

uint16_t sse_server_port(const struct sse_server *server);

enum sse_result sse_server_stats(const struct sse_server *server,
                                 struct sse_stats *stats_out,
                                 size_t stats_size);

int64_t sse_publish(const struct sse_server *server,
                    const char *topic,
                    const char *event_type,
                    const char *data,
                    size_t data_len,
                    const char *id);

enum sse_result sse_event_init(struct sse_event *event, size_t size);

int64_t sse_publish_event(const struct sse_server *server, const struct sse_event *event);

enum sse_result sse_server_reload_tls(const struct sse_server *server);

int64_t sse_server_topic_subscribers(const struct sse_server *server, const char *topic);

int64_t sse_server_each_topic(const struct sse_server *server,
                              sse_topic_callback callback,
                              void *data);
