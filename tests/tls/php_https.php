<?php
// libssed over HTTPS from PHP, through the FFI wrapper or the extension. Run by tests/tls.rs:
//
//   php php_https.php ffi|ext CERT KEY
//
// Prints "port N", then reads commands on stdin: "publish" publishes "from PHP"; "reload"
// rereads the certificate and key and prints "reload CODE MESSAGE" (0 and no message when it
// loaded). Stops the server at the end of input.

declare(strict_types=1);

[, $binding, $cert, $key] = $argv;

if ($binding === 'ffi') {
    require __DIR__ . '/../../examples/php/ssed.php';
    $server = new Ssed('127.0.0.1:0', ['tls_cert' => $cert, 'tls_key' => $key, 'heartbeat_ms' => 0]);
    $port = $server->port();
    $publish = fn() => $server->publish('from PHP');
    $reload = function () use ($server): array {
        try {
            $server->reloadTls();
            return [0, ''];
        } catch (SsedException $e) {
            return [$e->getCode(), $e->getMessage()];
        }
    };
} else {
    $port = ssed_start('127.0.0.1:0', ['tls_cert' => $cert, 'tls_key' => $key]);
    if ($port <= 0) {
        fwrite(STDERR, "ssed_start: $port " . ssed_last_error() . "\n");
        exit(1);
    }
    $publish = fn() => ssed_publish('from PHP');
    $reload = function (): array {
        $code = ssed_reload_tls();
        return [$code, $code === 0 ? '' : ssed_last_error()];
    };
}

echo "port $port\n";
while (($line = fgets(STDIN)) !== false) {
    switch (trim($line)) {
        case 'publish':
            if ($publish() < 0) {
                fwrite(STDERR, "publish failed\n");
                exit(1);
            }
            break;
        case 'reload':
            [$code, $message] = $reload();
            echo "reload $code $message\n";
            break;
    }
}
if ($binding === 'ext') {
    ssed_stop();
}
