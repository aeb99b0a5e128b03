<?php
/* ssed.php: libssed from PHP, through FFI.
 *
 * The declarations come from include/ssed_ffi.h, which build.rs generates next to ssed.h for
 * FFI::cdef (it takes no preprocessor lines); nothing here copies a prototype by hand. The
 * library comes from target/release, or from the environment:
 *   SSED_LIB=/path/to/libssed.so  SSED_INCLUDE=/path/to/include  php script.php
 *
 *   require 'ssed.php';
 *   $server = new Ssed('127.0.0.1:8080');       // binds, starts the loop on a library thread
 *   $id = $server->publish('hello', topic: 'news', event: 'update');
 *   $server->publish('{"n": 1}', topic: ['news', 'sports'], retry: 10000);
 *
 * The loop runs on a thread of the library's own and never calls back into PHP. One server
 * per process: under PHP-FPM every worker is a process of its own, so run this in a
 * long-lived CLI process (a worker, a daemon) rather than per request. */

declare(strict_types=1);

/** A call into libssed failed; the code is the negative sse_result. */
final class SsedException extends RuntimeException
{
}

final class Ssed
{
    private static ?FFI $ffi = null;
    /** @var FFI\CData sse_server*, NULL once freed */
    private FFI\CData $server;

    /** The FFI binding to libssed, loaded once per process. */
    public static function ffi(): FFI
    {
        if (self::$ffi === null) {
            $root = dirname(__DIR__, 2);
            $include = getenv('SSED_INCLUDE') ?: "$root/include";
            $library = getenv('SSED_LIB') ?: "$root/target/release/libssed.so";
            $ffi = FFI::cdef(file_get_contents("$include/ssed_ffi.h"), $library);
            // PHP cannot see the header's macros: read the ABI version the declarations match.
            preg_match('/#define SSE_ABI_VERSION (\d+)/', file_get_contents("$include/ssed.h"), $m);
            if ($ffi->sse_abi_version() !== (int)$m[1]) {
                throw new SsedException("$library has ABI {$ffi->sse_abi_version()}, the header {$m[1]}");
            }
            self::$ffi = $ffi;
        }
        return self::$ffi;
    }

    /**
     * Binds `$listen` ("HOST:PORT"; port 0 picks a free one) and starts serving.
     * `$settings` sets other fields of sse_config by name: integers (history, heartbeat_ms,
     * publish_queue, metrics_topics, listen_fd, subscriptions, ...) or strings (cors_origin,
     * publish_token, subscribe_token, history_file, publish_socket, hub_url, resource_identifier,
     * ...; tls_cert and tls_key, the PEM files of a certificate and its key, for HTTPS);
     * `issuers` takes Mercure 1.0's trusted issuers, a list of ['issuer' => ..., 'key' => ...]
     * (or 'publisher_key' and 'subscriber_key' apart). The callbacks are the extension's
     * (examples/php-ext): PHP code cannot run on the library's threads.
     */
    public function __construct(string $listen = '127.0.0.1:8080', array $settings = [])
    {
        $ffi = self::ffi();
        $config = $ffi->new('sse_config');
        self::check($ffi->sse_config_init(FFI::addr($config), FFI::sizeof($config)));
        $strings = []; // C copies of the strings, alive until sse_server_new has copied them
        $issuers = null; // the C array, alive until sse_server_new has copied it
        foreach (['listen' => $listen] + $settings as $field => $value) {
            if ($field === 'issuers') {
                $issuers = self::issuers((array)$value, $strings);
                $config->issuers = $issuers === null ? null : $ffi->cast('const sse_issuer *', FFI::addr($issuers[0]));
                $config->issuer_count = count((array)$value);
            } elseif (is_string($value)) {
                $strings[] = $text = self::cString($value);
                $config->$field = FFI::cast('const char *', $text);
            } else {
                $config->$field = $value;
            }
        }
        $server = $ffi->sse_server_new(FFI::addr($config));
        if ($server === null) {
            throw new SsedException($ffi->sse_last_error(), $ffi->SSE_RESULT_IO);
        }
        $this->server = $server;
        self::check($ffi->sse_server_start($this->server));
    }

    /**
     * A C array of sse_issuer for `$list`; the C strings it points to are added to `$strings`,
     * which the caller keeps alive.
     */
    private static function issuers(array $list, array &$strings): ?FFI\CData
    {
        if ($list === []) {
            return null;
        }
        $array = self::ffi()->new('sse_issuer[' . count($list) . ']');
        foreach (array_values($list) as $i => $issuer) {
            $issuer += ['publisher_key' => $issuer['key'] ?? null, 'subscriber_key' => $issuer['key'] ?? null];
            foreach (['issuer', 'publisher_key', 'subscriber_key'] as $field) {
                if (isset($issuer[$field])) {
                    $strings[] = $text = self::cString((string)$issuer[$field]);
                    $array[$i]->$field = FFI::cast('const char *', $text);
                }
            }
        }
        return $array;
    }

    /** Stops (flushing for up to a second) and frees the server. */
    public function __destruct()
    {
        self::ffi()->sse_server_free(FFI::addr($this->server));
    }

    /** The port the server listens on. */
    public function port(): int
    {
        return self::ffi()->sse_server_port($this->server);
    }

    /**
     * Publishes one event; returns the id the server assigned, or 0 when `$id` was given.
     * `$topic` is one topic or an array of them: the event reaches the subscribers of any of
     * them, once each (null or [] is the empty topic). `$retry` sends `retry:` with the event,
     * the milliseconds a browser waits before reconnecting (null sends none).
     * `$private`: only subscribers whose token's mercure.subscribe matches one of the topics
     * get it (see README.md, "Authorization (JWT)").
     * Throws SsedException with the sse_result code: SSE_RESULT_INVALID_ARGUMENT (a topic that
     * is not a string or holds a NUL, more than 1024 topics, a negative or too large retry),
     * SSE_RESULT_INVALID_FIELD (CR, LF or NUL in the event type or id),
     * SSE_RESULT_INVALID_UTF8, SSE_RESULT_QUEUE_FULL, SSE_RESULT_STOPPED.
     */
    public function publish(
        string $data,
        string|array|null $topic = null,
        ?string $event = null,
        ?string $id = null,
        ?int $retry = null,
        bool $private = false,
    ): int {
        $ffi = self::ffi();
        // A C string ends at its first NUL: refuse one rather than publish a truncated field.
        foreach (['event' => $event, 'id' => $id] as $name => $value) {
            if ($value !== null && str_contains($value, "\0")) {
                throw new SsedException("the $name must not contain NUL", $ffi->SSE_RESULT_INVALID_FIELD);
            }
        }
        if ($retry !== null && $retry < 0) {
            throw new SsedException("retry must not be negative", $ffi->SSE_RESULT_INVALID_ARGUMENT);
        }
        $topics = $topic === null ? [] : (array)$topic;
        // Every C string the event points to stays referenced here until the call returns.
        $strings = [];
        $c = $ffi->new('sse_event');
        self::check($ffi->sse_event_init(FFI::addr($c), FFI::sizeof($c)));
        if ($topics !== []) {
            $array = $ffi->new('const char *[' . count($topics) . ']');
            foreach (array_values($topics) as $i => $name) {
                if (!is_string($name) || str_contains($name, "\0")) {
                    throw new SsedException('a topic must be a string without NUL', $ffi->SSE_RESULT_INVALID_ARGUMENT);
                }
                $strings[] = $text = self::cString($name);
                $array[$i] = FFI::cast('const char *', $text);
            }
            $c->topics = FFI::cast('const char *const *', FFI::addr($array[0]));
            $c->topic_count = count($topics);
        }
        foreach (['event_type' => $event, 'id' => $id] as $field => $value) {
            if ($value !== null) {
                $strings[] = $text = self::cString($value);
                $c->$field = FFI::cast('const char *', $text);
            }
        }
        // The data goes by length: it may hold any UTF-8, NUL included.
        $strings[] = $bytes = self::cString($data);
        $c->data = FFI::cast('const char *', $bytes);
        $c->data_len = strlen($data);
        $c->retry_ms = $retry ?? -1;
        $c->is_private = $private ? 1 : 0;
        return self::check($ffi->sse_publish_event($this->server, FFI::addr($c)));
    }

    /**
     * Rereads the certificate and key files (tls_cert, tls_key): new connections get the new
     * pair, open streams go on. Throws SsedException when the files do not load (the pair in
     * use stays), with the file and the reason.
     */
    public function reloadTls(): void
    {
        self::check(self::ffi()->sse_server_reload_tls($this->server));
    }

    /**
     * How many event streams are open now; with `$topic`, how many asked for that topic (as
     * written: a topic or a selector). Consistent with /metrics.
     */
    public function subscribers(?string $topic = null): int
    {
        if ($topic === null) {
            return $this->stats()['subscribers'];
        }
        if (str_contains($topic, "\0")) {
            throw new SsedException('the topic must not contain NUL', self::ffi()->SSE_RESULT_INVALID_ARGUMENT);
        }
        $text = self::cString($topic);
        return self::check(self::ffi()->sse_server_topic_subscribers($this->server, FFI::cast('const char *', $text)));
    }

    /** Every topic open streams asked for now, with how many did: ['news' => 2, ...]. */
    public function topics(): array
    {
        $topics = [];
        // Called on this thread, during the call: PHP may run it.
        $collect = function ($topic, $count, $data) use (&$topics): void {
            $topics[$topic] = $count; // FFI hands the C string over as a PHP string
        };
        self::check(self::ffi()->sse_server_each_topic($this->server, $collect, null));
        return $topics;
    }

    /** Stops the server; it can still report its port and stats. */
    public function stop(): void
    {
        self::check(self::ffi()->sse_server_stop($this->server));
    }

    /** The server's counters, by name. */
    public function stats(): array
    {
        $ffi = self::ffi();
        $stats = $ffi->new('sse_stats');
        self::check($ffi->sse_server_stats($this->server, FFI::addr($stats), FFI::sizeof($stats)));
        $out = [];
        foreach (FFI::typeof($stats)->getStructFieldNames() as $name) {
            $out[$name] = $stats->$name;
        }
        return $out;
    }

    /** Returns a non-negative result; throws a negative one with the library's message. */
    private static function check(int $result): int
    {
        if ($result < 0) {
            throw new SsedException(self::ffi()->sse_last_error(), $result);
        }
        return $result;
    }

    /** A NUL-terminated C copy of `$text`, freed by PHP with the returned object. */
    private static function cString(string $text): FFI\CData
    {
        $copy = self::ffi()->new('char[' . (strlen($text) + 1) . ']');
        FFI::memcpy($copy, $text, strlen($text));
        return $copy;
    }
}
