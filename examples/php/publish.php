<?php
/* publish.php: serves Server-Sent Events and publishes every line read from stdin, through
 * libssed's C API and PHP's FFI.
 *
 *   cargo build --release
 *   some-command | php examples/php/publish.php [ADDR [TOPIC [TYPE]]]
 *   curl -N http://127.0.0.1:8080/events
 */

declare(strict_types=1);

require __DIR__ . '/ssed.php';

[$listen, $topic, $event] = array_slice($argv, 1) + ['127.0.0.1:8080', null, null];

try {
    $server = new Ssed($listen);
} catch (SsedException $e) {
    fwrite(STDERR, "publish.php: {$e->getMessage()}\n");
    exit(1);
}
fwrite(STDERR, "listening on http://127.0.0.1:{$server->port()}/events\n");

$ffi = Ssed::ffi();
while (($line = fgets(STDIN)) !== false) {
    $line = rtrim($line, "\r\n");
    for ($tries = 0; ; $tries++) {
        try {
            $server->publish($line, $topic, $event);
            break;
        } catch (SsedException $e) {
            // A full queue means the loop is behind: wait a little rather than drop the line.
            if ($e->getCode() === $ffi->SSE_RESULT_QUEUE_FULL && $tries < 1000) {
                usleep(1000);
                continue;
            }
            fwrite(STDERR, "publish.php: {$e->getMessage()}\n");
            // A line that is not UTF-8 is skipped; anything else ends the program.
            if ($e->getCode() !== $ffi->SSE_RESULT_INVALID_UTF8) {
                exit(1);
            }
            break;
        }
    }
}
// Destroying $server stops it, flushing what subscribers have not yet received.
