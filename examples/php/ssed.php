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
     * publish_queue, ...) or strings (cors_origin, publish_token, subscribe_token).
     */
    public function __construct(string $listen = '127.0.0.1:8080', array $settings = [])
    {
        $ffi = self::ffi();
        $config = $ffi->new('sse_config');
        self::check($ffi->sse_config_init(FFI::addr($config), FFI::sizeof($config)));
        $strings = []; // C copies of the strings, alive until sse_server_new has copied them
        foreach (['listen' => $listen] + $settings as $field => $value) {
            if (is_string($value)) {
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
     * `$private`: only subscribers whose token's mercure.subscribe matches the topic get it
     * (see README.md, "Authorization (JWT)").
     * Throws SsedException with the sse_result code: SSE_RESULT_INVALID_FIELD (CR, LF or NUL
     * in the event type or id), SSE_RESULT_INVALID_UTF8, SSE_RESULT_QUEUE_FULL,
     * SSE_RESULT_STOPPED.
     */
    public function publish(
        string $data,
        ?string $topic = null,
        ?string $event = null,
        ?string $id = null,
        bool $private = false,
    ): int {
        $ffi = self::ffi();
        // A C string ends at its first NUL: refuse one rather than publish a truncated field.
        foreach (['event' => $event, 'id' => $id, 'topic' => $topic] as $name => $value) {
            if ($value !== null && str_contains($value, "\0")) {
                $code = $name === 'topic' ? $ffi->SSE_RESULT_INVALID_ARGUMENT : $ffi->SSE_RESULT_INVALID_FIELD;
                throw new SsedException("the $name must not contain NUL", $code);
            }
        }
        if ($private) {
            return self::check($this->publishEvent($data, $topic, $event, $id, true));
        }
        $result = $ffi->sse_publish($this->server, $topic, $event, $data, strlen($data), $id);
        return self::check($result);
    }

    /** sse_publish_event, for what sse_publish cannot say (a private event). */
    private function publishEvent(string $data, ?string $topic, ?string $event, ?string $id, bool $private): int
    {
        $ffi = self::ffi();
        $ev = $ffi->new('sse_event');
        self::check($ffi->sse_event_init(FFI::addr($ev), FFI::sizeof($ev)));
        // C copies, alive until sse_publish_event has copied what it keeps.
        $texts = [];
        $text = function (string $value) use (&$texts): FFI\CData {
            $texts[] = $copy = self::cString($value);
            return FFI::cast('const char *', $copy);
        };
        if ($topic !== null) {
            $topics = $ffi->new('const char *[1]');
            $topics[0] = $text($topic);
            $ev->topics = FFI::cast('const char **', FFI::addr($topics[0]));
            $ev->topic_count = 1;
        }
        if ($event !== null) {
            $ev->event_type = $text($event);
        }
        if ($id !== null) {
            $ev->id = $text($id);
        }
        $ev->data = $text($data);
        $ev->data_len = strlen($data);
        $ev->is_private = $private ? 1 : 0;
        return $ffi->sse_publish_event($this->server, FFI::addr($ev));
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
