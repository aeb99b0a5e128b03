<?php
/* Every option of ssed_start() reaches the server (each checked by what it changes), the
 * callables (log, access with the host's own session check, streams) with the loop run by
 * ssed_run() on PHP's thread, and the counts (ssed_subscribers, ssed_topics). Exits 1 on the
 * first failure. */

declare(strict_types=1);

require __DIR__ . '/subscriber.php';

const KEY = '!ChangeThisMercureHubJWTSecretKey!';
const HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    . "X-Accel-Buffering: no\r\n\r\n:\n\n";

/** Sends a raw request on a fresh connection and returns the whole answer (the server closes). */
function ask(string $where, string $raw): string
{
    $socket = stream_socket_client($where, $errno, $error, 10);
    check($socket !== false, "connect to $where: $error");
    stream_set_timeout($socket, 20);
    fwrite($socket, $raw);
    $answer = stream_get_contents($socket);
    fclose($socket);
    return $answer;
}

function tcp(int $port): string
{
    return "tcp://127.0.0.1:$port";
}

function post(string $form, string $headers = ''): string
{
    return "POST /publish HTTP/1.1\r\n{$headers}Content-Type: application/x-www-form-urlencoded\r\n"
        . 'Content-Length: ' . strlen($form) . "\r\nConnection: close\r\n\r\n$form";
}

function get(string $target, string $headers = ''): string
{
    return "GET $target HTTP/1.1\r\n{$headers}Connection: close\r\n\r\n";
}

/** An HS256 JSON Web Token of $claims, signed with KEY. */
function jwt(array $claims): string
{
    $b64 = fn(string $s) => rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
    $signed = $b64('{"alg":"HS256","typ":"JWT"}') . '.' . $b64(json_encode($claims));
    return $signed . '.' . $b64(hash_hmac('sha256', $signed, KEY, true));
}

function started(string $what, int $port): int
{
    check($port > 0, "$what: ssed_start returned $port: " . ssed_last_error());
    return $port;
}

/** Waits (polling) until $condition holds. */
function eventually(callable $condition, string $what): void
{
    $until = microtime(true) + 10;
    while (!$condition()) {
        check(microtime(true) < $until, "timed out waiting for $what");
        usleep(5000);
    }
}

function temp_dir(): string
{
    $dir = sys_get_temp_dir() . '/ssed-php-' . getmypid() . '-' . bin2hex(random_bytes(4));
    check(mkdir($dir), "mkdir $dir");
    return $dir;
}

// ---- the history, its file and its sync policy -------------------------------------------
$dir = temp_dir();
$file = "$dir/history.log";
$options = ['history' => 2, 'history_file' => $file, 'fsync_ms' => -1, 'heartbeat_ms' => 0];
started('history file', ssed_start('127.0.0.1:0', $options));
$ids = [ssed_publish('a'), ssed_publish('b'), ssed_publish('c')];
eventually(fn() => ssed_stats()['events_delivered'] === 3, 'the events written');
check(ssed_stop() === 0, 'stop');
$port = started('history file again', ssed_start('127.0.0.1:0', $options));
// The file kept the last two (history 2): the first is gone, the rest replays.
$replay = subscribe($port, "/events?lastEventId={$ids[0]}");
expect($replay, ": gap\n\nid: {$ids[1]}\ndata: b\n\nid: {$ids[2]}\ndata: c\n\n");
ssed_stop();
fclose($replay);
check(ssed_start('127.0.0.1:0', ['history_file' => $file, 'fsync_ms' => -5]) < 0, 'fsync_ms -5');
check(str_contains(ssed_last_error(), 'fsync_ms'), ssed_last_error());
unlink($file);

// ---- tokens, and JSON Web Tokens ----------------------------------------------------------
$port = started('tokens', ssed_start('127.0.0.1:0', ['publish_token' => 'wr1te', 'subscribe_token' => 'r3ad']));
check(str_starts_with(ask(tcp($port), post('data=x')), 'HTTP/1.1 401'), 'publish without the token');
check(str_starts_with(ask(tcp($port), post('data=x', "Authorization: Bearer wr1te\r\n")), 'HTTP/1.1 200'), 'with it');
$missing = ask(tcp($port), get('/events'));
check(str_starts_with($missing, 'HTTP/1.1 401') && str_contains($missing, 'needs a token'), $missing);
$wrong = ask(tcp($port), get('/events?token=nope'));
check(str_contains($wrong, 'the token is wrong'), $wrong);
fclose(subscribe($port, '/events?token=r3ad'));
ssed_stop();

$port = started('jwt keys', ssed_start('127.0.0.1:0', [
    'publisher_jwt_key' => KEY, 'subscriber_jwt_key' => KEY, 'cors_origin' => 'https://app.test',
]));
$preflight = ask(tcp($port), "OPTIONS /events HTTP/1.1\r\nOrigin: https://app.test\r\n"
    . "Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n");
check(str_contains($preflight, "Access-Control-Allow-Origin: https://app.test\r\n"), $preflight);
check(str_starts_with(ask(tcp($port), post('data=x')), 'HTTP/1.1 401'), 'publish without a JWT');
$bearer = 'Authorization: Bearer ' . jwt(['mercure' => ['publish' => ['*']]]) . "\r\n";
check(str_starts_with(ask(tcp($port), post('data=x', $bearer)), 'HTTP/1.1 200'), 'publish with a JWT');
check(str_starts_with(ask(tcp($port), get('/events')), 'HTTP/1.1 401'), 'subscribe without a JWT');
ssed_stop();
$port = started('anonymous', ssed_start('127.0.0.1:0', ['subscriber_jwt_key' => KEY, 'anonymous' => true]));
fclose(subscribe($port, '/events'));
ssed_stop();
check(ssed_start('127.0.0.1:0', ['anonymous' => 1]) < 0, 'anonymous without a key');
check(str_contains(ssed_last_error(), 'subscriber_jwt_key'), ssed_last_error());

// ---- what streams get: retry, heartbeats ----------------------------------------------------
$port = started('retry and heartbeat', ssed_start('127.0.0.1:0', ['retry_ms' => 2500, 'heartbeat_ms' => 100]));
$stream = subscribe($port, '/events');
expect($stream, "retry: 2500\n\n");
expect($stream, ":\n\n"); // a heartbeat, 100 ms later
fclose($stream);
ssed_stop();

// ---- limits ------------------------------------------------------------------------------
$port = started('limits', ssed_start('127.0.0.1:0', [
    'max_clients' => 1, 'max_body' => 10, 'head_timeout_ms' => 200, 'max_queue' => 4096, 'heartbeat_ms' => 0,
]));
$one = subscribe($port, '/events');
check(str_starts_with(ask(tcp($port), get('/events')), 'HTTP/1.1 503'), 'a second stream beyond max_clients');
$large = ask(tcp($port), post('data=0123456789'));
check(str_starts_with($large, 'HTTP/1.1 413') && str_contains($large, '--max-body'), $large);
$silent = stream_socket_client(tcp($port));
stream_set_timeout($silent, 5);
$started = microtime(true);
$timeout = stream_get_contents($silent); // nothing sent: answered 408 after the head timeout
check(str_starts_with($timeout, 'HTTP/1.1 408'), "head timeout: $timeout");
check(microtime(true) - $started < 3, 'the 200 ms head timeout');
// A subscriber that never reads falls more than max_queue behind and is dropped.
$chunk = str_repeat('x', 1000);
for ($i = 0; $i < 6000 && ssed_stats()['subscribers_dropped_slow'] === 0; $i++) {
    while (ssed_publish($chunk) === -5) {
        usleep(1000);
    }
}
eventually(fn() => ssed_stats()['subscribers_dropped_slow'] === 1, 'the slow subscriber dropped');
fclose($one);
ssed_stop();

// ---- the cluster's settings reach the library (built with or without Redis) --------------
$port = ssed_start('127.0.0.1:0', ['redis_url' => 'redis://127.0.0.1:1', 'redis_stream' => 'php', 'redis_history' => 2000]);
if ($port < 0) {
    check(str_contains(ssed_last_error(), 'Redis'), 'without the redis feature: ' . ssed_last_error());
} else {
    check(ssed_publish('x') === -11, 'Redis cannot be reached: SSE_RESULT_UNAVAILABLE');
    ssed_stop();
}

// ---- the log callable, log_level, the counts, per-topic metrics ---------------------------
$lines = [];
$port = started('log', ssed_start('127.0.0.1:0', [
    'log' => function (int $level, string $line) use (&$lines) { $lines[] = [$level, $line]; },
    'log_level' => 3,
    'metrics_topics' => true,
]));
$news = subscribe($port, '/events?topic=news');
$both = subscribe($port, '/events?topic=news&topic=sports');
$all = subscribe($port, '/events');
check(ssed_subscribers() === 3, 'ssed_subscribers() ' . ssed_subscribers());
check(ssed_subscribers('news') === 2 && ssed_subscribers('sports') === 1, 'per topic');
check(ssed_topics() === ['news' => 2, 'sports' => 1], json_encode(ssed_topics()));
$metrics = ask(tcp($port), get('/metrics'));
check(str_contains($metrics, "ssed_topic_subscribers{topic=\"news\"} 2\n"), $metrics);
eventually(function () use (&$lines) {
    ssed_stats(); // every ssed_* call hands the waiting lines to the callable
    return count(array_filter($lines, fn($l) => $l[0] === 3 && str_starts_with($l[1], 'accepted '))) >= 4;
}, 'verbose log lines through the callable');
array_map('fclose', [$news, $both, $all]);
ssed_stop();
check(ssed_start('127.0.0.1:0', ['log' => 'no such function']) === -2, 'a log that is not callable');
check(ssed_start('127.0.0.1:0', ['histroy' => 1]) === -2, 'a misspelt option');
check(str_contains(ssed_last_error(), "'histroy'"), ssed_last_error());

// ---- the publish socket, and sockets handed over -----------------------------------------
$path = "$dir/publish.sock";
$port = started('publish socket', ssed_start('127.0.0.1:0', ['publish_socket' => $path, 'publish_token' => 'wr1te']));
$stream = subscribe($port, '/events');
check(str_starts_with(ask("unix://$path", post('data=local')), 'HTTP/1.1 200'), 'no token on the publish socket');
$frame = fread($stream, 4096);
check(str_contains($frame, "data: local\n"), $frame);
fclose($stream);
ssed_stop();
check(!file_exists($path), 'the socket file is removed at stop');

// A child process gets a listening TCP socket as descriptor 3 and a Unix-domain one as 4, as
// systemd's socket activation hands them over, and serves both.
$tcp = stream_socket_server('tcp://127.0.0.1:0');
$unix = stream_socket_server("unix://$path");
$port = (int)substr(strrchr(stream_socket_get_name($tcp, false), ':'), 1);
$child = proc_open(
    [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SSED_EXT'), __DIR__ . '/inherited.php'],
    [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 3 => $tcp, 4 => $unix],
    $pipes,
);
check(is_resource($child), 'start the child');
fclose($tcp);
fclose($unix);
check(trim(fgets($pipes[1])) === "serving $port", 'the child serves the socket handed over');
$stream = subscribe($port, '/events');
check(str_starts_with(ask("unix://$path", post('data=handed')), 'HTTP/1.1 200'), 'publish through descriptor 4');
check(str_contains(fread($stream, 4096), "data: handed\n"), 'delivered');
fclose($stream);
fclose($pipes[0]); // the child stops when its stdin closes
check(proc_close($child) === 0, 'the child exits cleanly');

// ---- callables that run in PHP: the loop runs inside ssed_run() ---------------------------
$asked = [];
$told = [];
$sessions = ['s3cret' => 'ann']; // the host's own sessions
$port = started('run here', ssed_start('127.0.0.1:0', [
    'heartbeat_ms' => 0,
    'publish_queue' => 2,
    'access' => function (array $request) use (&$asked, $sessions) {
        $asked[] = $request;
        $user = $sessions[ssed_request_cookie('session') ?? ''] ?? null;
        if ($user === null) {
            return [401, 'log in first'];
        }
        return !$request['publish'] || ssed_request_header('X-Role') === 'editor';
    },
    'streams' => function (array $event) use (&$told) { $told[] = $event; },
]));
check(ssed_request_cookie('session') === null, 'no request outside the access callable');

/** Connects and sends; the loop answers only while ssed_run() runs. */
function send_request(int $port, string $raw)
{
    $socket = stream_socket_client(tcp($port), $errno, $error, 10);
    check($socket !== false, "connect: $error");
    fwrite($socket, $raw);
    stream_set_blocking($socket, false);
    return $socket;
}

/** Runs the loop in short turns until $socket has sent $length bytes (or closed). */
function pump($socket, int $length = PHP_INT_MAX): string
{
    $got = '';
    $until = microtime(true) + 10;
    while (strlen($got) < $length && !feof($socket)) {
        check(ssed_run(0.02) === 0, 'ssed_run: ' . ssed_last_error());
        $got .= fread($socket, 65536);
        check(microtime(true) < $until, 'no answer; got ' . json_encode($got));
    }
    return $got;
}

$refused = pump(send_request($port, get('/events?topic=news')));
check(str_starts_with($refused, 'HTTP/1.1 401') && str_ends_with($refused, "log in first\n"), $refused);
$stream = send_request($port, "GET /events?topic=news&topic=sports HTTP/1.1\r\nCookie: session=s3cret\r\n\r\n");
check(pump($stream, strlen(HEAD)) === HEAD, 'the host let the stream open');
check($asked[1]['method'] === 'GET' && $asked[1]['path'] === '/events' && !$asked[1]['publish'], json_encode($asked[1]));
check($asked[1]['topics'] === ['news', 'sports'] && str_starts_with($asked[1]['peer'], '127.0.0.1:'), json_encode($asked[1]));
check(count($told) === 1 && $told[0]['opened'] && $told[0]['topics'] === ['news', 'sports'], json_encode($told));
check(ssed_subscribers('sports') === 1, 'counted');
// A publish needs the role too; the host sees the event's topics.
$denied = pump(send_request($port, post('topic=news&data=x', "Cookie: session=s3cret\r\n")));
check(str_starts_with($denied, 'HTTP/1.1 403'), $denied);
check(end($asked)['publish'] && end($asked)['topics'] === ['news'], json_encode(end($asked)));
$allowed = pump(send_request($port, post('topic=news&data=ok', "Cookie: session=s3cret\r\nX-Role: editor\r\n")));
check(str_starts_with($allowed, 'HTTP/1.1 200'), $allowed);
check(str_contains(pump($stream, 10), "data: ok\n"), 'delivered while ssed_run runs');
// Between ssed_run() calls publishes queue, up to publish_queue.
check(ssed_publish('1') > 0 && ssed_publish('2') > 0, 'two queued');
check(ssed_publish('3') === -5, 'the third: SSE_RESULT_QUEUE_FULL');
fclose($stream);
pump(send_request($port, get('/health')));
check(count($told) === 2 && !$told[1]['opened'] && $told[1]['id'] === $told[0]['id'], json_encode($told));
check(ssed_stop() === 0, 'stop');
check(ssed_run(0.01) === -6, 'ssed_run after stop: SSE_RESULT_STOPPED');

unlink($path); // the parent made this one: ssed removes only the files it made
check(rmdir($dir), "rmdir: the test left files in $dir");
echo "php extension options: ok\n";
