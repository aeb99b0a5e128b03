<?php
/* The classic PHP Server-Sent Events example, served by ssed inside PHP: eight messages (a
 * single line, multi-line JSON, id 250, a custom event without id, a custom event with id 521,
 * a single line, `retry: 10000` with two data lines, one more), published once a browser is
 * subscribed. Driven by tests/php_browser.rs, which has headless Chromium subscribe.
 *
 *   php classic_sse.php ffi|ext [ADDR]
 *
 * ffi publishes through examples/php/ssed.php, ext through the extension (load it with
 * -d extension=...). Prints `listening on http://ADDR`, waits (at most 20 s) until a browser
 * and its own raw subscriber are connected, publishes, prints `published ID1 ... ID8` (the id
 * each event carries), checks the bytes its raw subscriber received, prints `wire ok`, and
 * then serves until standard input closes (at most 60 s). Exits 1 on the first failure. */

declare(strict_types=1);

require __DIR__ . '/subscriber.php';

[$backend, $listen] = array_slice($argv, 1) + ['', '127.0.0.1:0'];

/* The eight messages, in order: each one's fields as ssed_publish takes them. */
const MESSAGES = [
    ['data' => 'This is the first message.'],
    ['data' => "{\n\"msg\": \"hello world\",\n\"id\": 12345\n}"],
    ['data' => 'This message has id 250.', 'id' => '250'],
    ['data' => '{"username": "John123"}', 'event' => 'userlogon'],
    ['data' => '{"username": "John123", "emotion": "happy"}', 'event' => 'update', 'id' => '521'],
    ['data' => 'This is the sixth message.'],
    ['data' => "Reconnect after 10 s\nif the connection drops.", 'retry' => 10000],
    ['data' => 'This is the last message.'],
];

/** The same calls over the FFI wrapper or the extension. */
final class Backend
{
    private ?Ssed $server = null;

    public function __construct(private string $kind, string $listen)
    {
        if ($kind === 'ffi') {
            require_once __DIR__ . '/../../examples/php/ssed.php';
            $this->server = new Ssed($listen, ['heartbeat_ms' => 0]);
            return;
        }
        check($kind === 'ext' && extension_loaded('ssed'), "backend ffi, or ext with the extension loaded");
        check(ssed_start($listen) > 0, 'ssed_start: ' . ssed_last_error());
    }

    public function port(): int
    {
        return $this->server?->port() ?? ssed_port();
    }

    public function subscribers(): int
    {
        return $this->server?->subscribers() ?? ssed_stats()['subscribers'];
    }

    /** Publishes one message; returns the id it carries. */
    public function publish(array $m): string
    {
        [$data, $event, $id, $retry] = [$m['data'], $m['event'] ?? null, $m['id'] ?? null, $m['retry'] ?? null];
        if ($this->server !== null) {
            $result = $this->server->publish($data, event: $event, id: $id, retry: $retry);
        } else {
            $result = ssed_publish($data, event: $event, id: $id, retry: $retry);
            check($result >= 0, "ssed_publish: $result " . ssed_last_error());
        }
        return $id ?? (string)$result;
    }
}

/** The frame ssed writes for a message that carries `$id`. */
function frame(array $m, string $id): string
{
    $frame = "id: $id\n";
    $frame .= isset($m['event']) ? "event: {$m['event']}\n" : '';
    $frame .= isset($m['retry']) ? "retry: {$m['retry']}\n" : '';
    foreach (explode("\n", $m['data']) as $line) {
        $frame .= "data: $line\n";
    }
    return "$frame\n";
}

/** The next event block of the stream; blocks of comments alone (heartbeats) are skipped. */
function next_block($socket): string
{
    while (true) {
        $block = '';
        while (($line = fgets($socket)) !== "\n") {
            check($line !== false, 'stream ended or timed out; got so far: ' . json_encode($block));
            $block .= $line;
        }
        if (preg_replace('/^:.*\n/m', '', $block) !== '') {
            return "$block\n";
        }
    }
}

$server = new Backend($backend, $listen);
$port = $server->port();
echo "listening on http://127.0.0.1:$port\n";

$raw = subscribe($port, '/events');
// The browser's EventSource is the second subscriber; nothing is published before it is there.
$deadline = microtime(true) + 20;
while ($server->subscribers() < 2) {
    check(microtime(true) < $deadline, 'no browser subscribed within 20 s');
    usleep(10_000);
}

$ids = array_map(fn(array $m) => $server->publish($m), MESSAGES);
echo 'published ' . implode(' ', $ids) . "\n";
foreach (MESSAGES as $i => $m) {
    $block = next_block($raw);
    check($block === frame($m, $ids[$i]), 'expected ' . json_encode(frame($m, $ids[$i])) . ', got ' . json_encode($block));
}
echo "wire ok\n";

// Serve until the test has seen the browser receive everything and closes our input.
$read = [STDIN];
$none = [];
check(stream_select($read, $none, $none, 60) === 1, 'standard input still open after 60 s');
