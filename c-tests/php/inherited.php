<?php
/* Serves the listening sockets its parent handed over as descriptors 3 (TCP) and 4 (a
 * Unix-domain publish socket), as systemd's socket activation does, until its stdin closes. */

declare(strict_types=1);

$port = ssed_start('127.0.0.1:0', ['listen_fd' => 3, 'publish_socket_fd' => 4, 'heartbeat_ms' => 0]);
if ($port <= 0) {
    fwrite(STDERR, "ssed_start: $port " . ssed_last_error() . "\n");
    exit(1);
}
echo "serving $port\n";
fflush(STDOUT);
fgets(STDIN);
exit(ssed_stop() === 0 ? 0 : 1);
