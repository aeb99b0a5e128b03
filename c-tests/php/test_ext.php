<?php
/* PHP publishes through the ssed extension (examples/php-ext); a raw-socket subscriber in the
 * same process receives the events byte for byte. Exits 1 on the first failure. */

declare(strict_types=1);

require __DIR__ . '/subscriber.php';

check(extension_loaded('ssed'), 'the ssed extension is loaded');
check(ssed_port() === 0, 'no port before ssed_start');
check(ssed_publish('early') === -6, 'publish before start: SSE_RESULT_STOPPED');
check(str_contains(ssed_last_error(), 'ssed_start'), ssed_last_error());

$port = ssed_start('127.0.0.1:0');
check($port > 0, "ssed_start: $port " . ssed_last_error());
check(ssed_port() === $port, 'ssed_port');
check(ssed_start('127.0.0.1:0') === -7, 'a second start: SSE_RESULT_BUSY');
$all = subscribe($port, '/events');

$id = ssed_publish('hello from the extension');
check($id > 0, "assigned id $id: " . ssed_last_error());
expect($all, "id: $id\ndata: hello from the extension\n\n");

$next = ssed_publish("a\nb", topic: 'news', event: 'update');
check($next === $id + 1, "ids count up: $id then $next");
expect($all, "id: $next\nevent: update\ndata: a\ndata: b\n\n");
check(ssed_publish('mine', 'news', null, 'ext-1') === 0, 'own id gives 0');
expect($all, "id: ext-1\ndata: mine\n\n");

// Refused, with the C API's codes: nothing is published.
check(ssed_publish('x', null, "a\nb") === -4, 'LF in type: SSE_RESULT_INVALID_FIELD');
check(ssed_publish('x', null, "a\0b") === -4, 'NUL in type: SSE_RESULT_INVALID_FIELD');
check(str_contains(ssed_last_error(), 'NUL'), ssed_last_error());
check(ssed_publish('x', null, null, "1\r") === -4, 'CR in id: SSE_RESULT_INVALID_FIELD');
check(str_contains(ssed_last_error(), 'CR, LF or NUL'), ssed_last_error());
check(ssed_publish("\xff") === -3, 'bad UTF-8: SSE_RESULT_INVALID_UTF8');

check(ssed_stop() === 0, 'ssed_stop');
expect_eof($all);
check(ssed_publish('late') === -6, 'publish after stop: SSE_RESULT_STOPPED');
check(ssed_port() === $port, 'the port is still known after stop');
echo "php extension: ok\n";
