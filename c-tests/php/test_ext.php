<?php
/* PHP publishes through the ssed extension (examples/php-ext); a raw-socket subscriber in the
 * same process receives the events byte for byte. Exits 1 on the first failure. */

declare(strict_types=1);

require __DIR__ . '/subscriber.php';

check(extension_loaded('ssed'), 'the ssed extension is loaded');
check(ssed_port() === 0, 'no port before ssed_start');
check(ssed_stats()['subscribers'] === 0, 'stats before ssed_start');
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

// Several topics and a retry: each subscriber gets the event once.
$news = subscribe($port, '/events?topic=news');
$sports = subscribe($port, '/events?topic=sports&topic=news');
check(ssed_stats()['subscribers'] === 3, 'ssed_stats: ' . json_encode(ssed_stats()));
$many = ssed_publish("two\nlines", topic: ['news', 'sports'], event: 'score', retry: 10000);
check($many > 0, "several topics: $many " . ssed_last_error());
$frame = "id: $many\nevent: score\nretry: 10000\ndata: two\ndata: lines\n\n";
expect($all, $frame);
expect($news, $frame);
expect($sports, $frame);
check(ssed_publish('s', ['sports'], null, 'ext-2', 0) === 0, 'positional array, own id, retry 0');
expect($all, "id: ext-2\nretry: 0\ndata: s\n\n");
expect($sports, "id: ext-2\nretry: 0\ndata: s\n\n");
$plain = ssed_publish('none', topic: []);
expect($all, "id: $plain\ndata: none\n\n");
check(ssed_stats()['events_published'] === 6, 'events_published: ' . json_encode(ssed_stats()));

// Refused, with the C API's codes: nothing is published.
check(ssed_publish('x', null, "a\nb") === -4, 'LF in type: SSE_RESULT_INVALID_FIELD');
check(ssed_publish('x', null, "a\0b") === -4, 'NUL in type: SSE_RESULT_INVALID_FIELD');
check(str_contains(ssed_last_error(), 'NUL'), ssed_last_error());
check(ssed_publish('x', null, null, "1\r") === -4, 'CR in id: SSE_RESULT_INVALID_FIELD');
check(str_contains(ssed_last_error(), 'CR, LF or NUL'), ssed_last_error());
check(ssed_publish("\xff") === -3, 'bad UTF-8: SSE_RESULT_INVALID_UTF8');
check(ssed_publish('x', ['a', "\xff"]) === -3, 'a topic not UTF-8: SSE_RESULT_INVALID_UTF8');
check(ssed_publish('x', ['a', 7]) === -2, 'a topic not a string: SSE_RESULT_INVALID_ARGUMENT');
check(str_contains(ssed_last_error(), 'not a string'), ssed_last_error());
check(ssed_publish('x', ['a', "b\0"]) === -2, 'NUL in a topic: SSE_RESULT_INVALID_ARGUMENT');
check(ssed_publish('x', array_map('strval', range(1, 1025))) === -2, 'too many topics');
check(ssed_publish('x', retry: -1) === -2, 'negative retry: SSE_RESULT_INVALID_ARGUMENT');
check(ssed_publish('x', retry: 4294967296) === -2, 'retry over 32 bits: SSE_RESULT_INVALID_ARGUMENT');
check(ssed_stats()['events_published'] === 6, 'nothing refused was published');

check(ssed_stop() === 0, 'ssed_stop');
expect_eof($all);
check(ssed_publish('late') === -6, 'publish after stop: SSE_RESULT_STOPPED');
check(ssed_port() === $port, 'the port is still known after stop');

// Mercure 1.0 options: a stopped server is replaced by one that speaks 1.0.
check(ssed_start('127.0.0.1:0', ['issuers' => [['issuer' => 'x', 'key' => "a\0b"]]]) === -2,
    'a NUL in a key: SSE_RESULT_INVALID_ARGUMENT');
$port = ssed_start('127.0.0.1:0', [
    'hub_url' => 'https://hub.test/.well-known/mercure',
    'issuers' => [['issuer' => 'https://app.test', 'key' => '!ChangeThisMercureHubJWTSecretKey!']],
    'subscriptions' => true,
    'anonymous' => true,
]);
check($port > 0, "ssed_start with Mercure 1.0 options: $port " . ssed_last_error());
$metadata = file_get_contents("http://127.0.0.1:$port/.well-known/oauth-protected-resource/.well-known/mercure");
check(str_contains($metadata, '"resource":"https://hub.test/.well-known/mercure"'), "metadata: $metadata");
check(str_contains($metadata, '"mercure_subscriptions":true'), "metadata: $metadata");
check(ssed_stop() === 0, 'ssed_stop');
echo "php extension: ok\n";
