<?php
/* PHP publishes through FFI (examples/php/ssed.php); a raw-socket subscriber in the same
 * process receives the events byte for byte. Exits 1 on the first failure. */

declare(strict_types=1);

require __DIR__ . '/../../examples/php/ssed.php';
require __DIR__ . '/subscriber.php';

$ffi = Ssed::ffi();
check(strlen($ffi->sse_version()) > 0, 'sse_version');

// A subscriber key, so that a private event has someone who could read it; the subscribers
// here have no token (anonymous) and read public events only.
$server = new Ssed('127.0.0.1:0', [
    'heartbeat_ms' => 0,
    'history' => 8,
    'subscriber_jwt_key' => '!ChangeThisMercureHubJWTSecretKey!',
    'anonymous' => 1,
]);
$port = $server->port();
check($port > 0, 'port');
$all = subscribe($port, '/events');
$news = subscribe($port, '/events?topic=news');

$first = $server->publish('hello from PHP');
check($first > 0, "assigned id $first");
expect($all, "id: $first\ndata: hello from PHP\n\n");

// Binary-safe length, line breaks, a type, a topic, and UTF-8.
$id = $server->publish("two\r\nlines é", topic: 'news', event: 'update');
check($id === $first + 1, "ids count up: $first then $id");
$frame = "id: $id\nevent: update\ndata: two\ndata: lines é\n\n";
expect($all, $frame);
expect($news, $frame);
check($server->publish('mine', topic: 'news', id: 'php-1') === 0, 'own id gives 0');
expect($news, "id: php-1\ndata: mine\n\n");

expect($all, "id: php-1\ndata: mine\n\n");

// Several topics and a retry (sse_publish_event): each subscriber gets the event once.
$sports = subscribe($port, '/events?topic=sports');
check($server->subscribers() === 3, 'subscribers() ' . $server->subscribers());
check($server->subscribers('news') === 1 && $server->subscribers('sports') === 1, 'per topic');
check($server->topics() === ['news' => 1, 'sports' => 1], json_encode($server->topics()));
$id = $server->publish("{\n\"a\": 1\n}", topic: ['news', 'sports'], event: 'score', retry: 10000);
$frame = "id: $id\nevent: score\nretry: 10000\ndata: {\ndata: \"a\": 1\ndata: }\n\n";
expect($all, $frame);
expect($news, $frame);
expect($sports, $frame);
// One topic as an array, an own id, retry 0; the empty array is the empty topic.
check($server->publish('s', topic: ['sports'], id: 'php-2', retry: 0) === 0, 'own id gives 0');
expect($all, "id: php-2\nretry: 0\ndata: s\n\n");
expect($sports, "id: php-2\nretry: 0\ndata: s\n\n");
$plain = $server->publish('none', topic: []);
expect($all, "id: $plain\ndata: none\n\n");

// A private event reaches no subscriber without a token: the next one they get is public.
check($server->publish('secret', topic: 'news', id: 'p-1', private: true) === 0, 'private');
check($server->publish('open', topic: 'news', id: 'o-1') === 0, 'public after it');
expect($news, "id: o-1\ndata: open\n\n");
expect($all, "id: o-1\ndata: open\n\n");

// Errors come back as exceptions carrying the sse_result code; nothing is published.
$codes = [
    'CR in type' => [fn() => $server->publish('x', event: "a\rb"), $ffi->SSE_RESULT_INVALID_FIELD],
    'LF in id' => [fn() => $server->publish('x', id: "1\n2"), $ffi->SSE_RESULT_INVALID_FIELD],
    'NUL in type' => [fn() => $server->publish('x', event: "a\0b"), $ffi->SSE_RESULT_INVALID_FIELD],
    'NUL in id' => [fn() => $server->publish('x', id: "a\0"), $ffi->SSE_RESULT_INVALID_FIELD],
    'bad UTF-8' => [fn() => $server->publish("\xff"), $ffi->SSE_RESULT_INVALID_UTF8],
    'topic not UTF-8' => [fn() => $server->publish('x', topic: ['a', "\xff"]), $ffi->SSE_RESULT_INVALID_UTF8],
    'NUL in a topic' => [fn() => $server->publish('x', topic: ['a', "b\0"]), $ffi->SSE_RESULT_INVALID_ARGUMENT],
    'a topic not a string' => [fn() => $server->publish('x', topic: ['a', 7]), $ffi->SSE_RESULT_INVALID_ARGUMENT],
    'too many topics' => [fn() => $server->publish('x', topic: array_map('strval', range(1, 1025))), $ffi->SSE_RESULT_INVALID_ARGUMENT],
    'negative retry' => [fn() => $server->publish('x', retry: -1), $ffi->SSE_RESULT_INVALID_ARGUMENT],
    'retry over 32 bits' => [fn() => $server->publish('x', retry: 4294967296), $ffi->SSE_RESULT_INVALID_ARGUMENT],
];
foreach ($codes as $what => [$call, $code]) {
    try {
        $call();
        check(false, "$what was published");
    } catch (SsedException $e) {
        check($e->getCode() === $code, "$what: code {$e->getCode()}, expected $code ({$e->getMessage()})");
    }
}
$stats = $server->stats();
check($stats['events_published'] === 8, 'events_published ' . $stats['events_published']);
check($stats['subscribers'] === 3, 'subscribers ' . $stats['subscribers']);

// A port in use is an exception with a message naming it.
try {
    new Ssed("127.0.0.1:$port");
    check(false, 'a second server bound the same port');
} catch (SsedException $e) {
    check(str_contains($e->getMessage(), "127.0.0.1:$port"), $e->getMessage());
}

$server->stop();
expect_eof($all);
try {
    $server->publish('late');
    check(false, 'published after stop');
} catch (SsedException $e) {
    check($e->getCode() === $ffi->SSE_RESULT_STOPPED, 'stopped: ' . $e->getCode());
}
unset($server); // frees

// Mercure 1.0: the hub URL, a trusted issuer and active subscriptions reach the server.
$hub = new Ssed('127.0.0.1:0', [
    'heartbeat_ms' => 0,
    'hub_url' => 'https://hub.test/.well-known/mercure',
    'issuers' => [['issuer' => 'https://app.test', 'key' => '!ChangeThisMercureHubJWTSecretKey!']],
    'subscriptions' => 1,
    'anonymous' => 1,
]);
$metadata = file_get_contents("http://127.0.0.1:{$hub->port()}/.well-known/oauth-protected-resource/.well-known/mercure");
check(str_contains($metadata, '"resource":"https://hub.test/.well-known/mercure"'), "metadata: $metadata");
check(str_contains($metadata, '"mercure_subscriptions":true'), "metadata: $metadata");
$book = subscribe($hub->port(), '/.well-known/mercure?match=https://example.com/books/1');
$hub->publish('hello', topic: 'https://example.com/books/1', id: 'b1');
expect($book, "id: b1\ndata: hello\n\n");
try {
    new Ssed('127.0.0.1:0', ['issuers' => [['issuer' => 'https://app.test', 'key' => 'short']]]);
    check(false, 'a short issuer key was accepted');
} catch (SsedException $e) {
    check(str_contains($e->getMessage(), 'https://app.test'), $e->getMessage());
}
unset($hub);
echo "php ffi: ok\n";
