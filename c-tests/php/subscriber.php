<?php
/* A raw-socket subscriber for the PHP tests, and a check that exits on failure. */

declare(strict_types=1);

function check(bool $ok, string $what): void
{
    if (!$ok) {
        fwrite(STDERR, "FAIL: $what\n");
        exit(1);
    }
}

/** Connects, sends GET `$target`, and consumes the exact stream head. */
function subscribe(int $port, string $target)
{
    $socket = stream_socket_client("tcp://127.0.0.1:$port", $errno, $error, 10);
    check($socket !== false, "connect: $error");
    stream_set_timeout($socket, 20);
    fwrite($socket, "GET $target HTTP/1.1\r\nHost: test\r\n\r\n");
    expect($socket, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        . "X-Accel-Buffering: no\r\n\r\n:\n\n");
    return $socket;
}

/** Reads exactly strlen($expected) bytes and compares them. */
function expect($socket, string $expected): void
{
    $got = '';
    while (strlen($got) < strlen($expected)) {
        $chunk = fread($socket, strlen($expected) - strlen($got));
        check($chunk !== false && $chunk !== '', "stream ended or timed out; got so far: " . json_encode($got));
        $got .= $chunk;
    }
    check($got === $expected, 'expected ' . json_encode($expected) . ', got ' . json_encode($got));
}

/** Reads until the server closes the stream. */
function expect_eof($socket): void
{
    while (!feof($socket)) {
        $chunk = fread($socket, 65536);
        check($chunk !== false && !stream_get_meta_data($socket)['timed_out'], 'no end of stream');
    }
    fclose($socket);
}
