<?php
/* host.php: a PHP worker that embeds ssed through the extension (examples/php-ext) and keeps
 * its say: the server's log lines go through the worker's own logger, it shows who is
 * listening every second, and it decides who may subscribe and publish with its own session
 * check. The access callable runs in PHP, so the loop runs inside ssed_run(), on this thread,
 * between the worker's own work.
 *
 *   php -d extension=examples/php-ext/modules/ssed.so examples/php/host.php [ADDR]
 *   curl -N -b session=ID "http://127.0.0.1:8080/events?topic=ticks"   (ID: the printed one)
 *
 * Without the session cookie the answer is 401 "log in first"; publishing also needs the
 * header X-Role: editor. It publishes a tick a second to topic "ticks", and stops when its
 * standard input ends (Ctrl-D), stopping the server cleanly. */

declare(strict_types=1);

/** The worker's own logger: one line per message, with the time and a source. */
function logger(string $source, string $message): void
{
    echo date('H:i:s'), " [$source] $message\n";
}

// The worker's sessions: a real application has them from its login (here, one made up).
$sessions = [bin2hex(random_bytes(16)) => ['user' => 'ann', 'role' => 'editor']];
$session = array_key_first($sessions);

$port = ssed_start($argv[1] ?? '127.0.0.1:8080', [
    'log' => function (int $level, string $line): void {
        logger($level === 1 ? 'ssed error' : 'ssed', $line);
    },
    'access' => function (array $request) use ($sessions) {
        $user = $sessions[ssed_request_cookie('session') ?? ''] ?? null;
        if ($user === null) {
            return [401, 'log in first'];
        }
        if ($request['publish'] && ssed_request_header('X-Role') !== $user['role']) {
            return [403, 'only editors publish'];
        }
        return true;
    },
    'streams' => function (array $stream): void {
        $topics = $stream['topics'] === [] ? 'every topic' : implode(', ', $stream['topics']);
        logger('host', ($stream['opened'] ? 'opened' : 'closed') . " stream {$stream['id']} ($topics) for {$stream['peer']}");
    },
]);
if ($port < 0) {
    logger('host', 'cannot start: ' . ssed_last_error());
    exit(1);
}
logger('host', "listening on http://127.0.0.1:$port");
logger('host', "session: $session");
logger('host', "subscribe: curl -N -b session=$session \"http://127.0.0.1:$port/events?topic=ticks\"");

stream_set_blocking(STDIN, false);
for ($tick = 1; !feof(STDIN); $tick++) {
    fread(STDIN, 4096);
    ssed_publish("tick $tick", topic: 'ticks');
    // The loop runs here for a second, in short turns, serving clients and the callables.
    $until = microtime(true) + 1;
    while (microtime(true) < $until) {
        ssed_run(0.1);
    }
    $topics = [];
    foreach (ssed_topics() as $topic => $count) {
        $topics[] = "$topic=$count";
    }
    logger('host', 'listening: ' . ssed_subscribers() . ' streams (' . ($topics ? implode(' ', $topics) : 'no topic') . ')');
}
logger('host', 'stopping');
ssed_stop();
logger('host', 'stopped');
