#!/usr/bin/env python3
"""The history file's cost, side by side in one run: ssed with no file, and with a file under
each fsync policy (never, every 10 ms, always).

    python3 benches/history.py                 # both parts, 2 rounds
    python3 benches/history.py --rounds 3 --skip-build

Part 1, publishing: for each setting in turn (settings alternate within each round, so that
drifting noise hits all of them), the load generator publishes as fast as ssed takes events to
100 subscribers, then at 50 events/s to 1,000 subscribers; it reports events published per
second and the publish-to-receive latency. Ratios are against no file.

Part 2, start time: files holding 1,024 and 100,000 events (filled through --stdin), and the
time from starting ssed on them to its "listening" line, median of 5 starts, against an empty
start.

Uses benches/run.py's server runner and load generator. Standard library only; every wait is
bounded; servers are killed on exit.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (benches/run.py)

SETTINGS = [
    ("no file", []),
    ("fsync never", ["--fsync", "never"]),
    ("fsync 10 ms", ["--fsync", "10"]),
    ("fsync always", ["--fsync", "always"]),
]
LOADS = [
    ("throughput", ["--subscribers", "100", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("latency@50/s", ["--subscribers", "1000", "--rate", "50", "--duration", "10", "--size", "200"]),
]
BASE_FLAGS = ["--max-clients", "60000", "--heartbeat", "0", "--history", "1024"]


def publishing(rounds, log_file):
    results = {}  # (load, setting) -> [figures]
    for round_number in range(1, rounds + 1):
        for load, args in LOADS:
            for setting, flags in SETTINGS:
                directory = tempfile.mkdtemp(prefix="ssed-history-bench-")
                file_flags = ["--history-file", os.path.join(directory, "history.log")] if flags else []
                server = run.Server("ssed", None, BASE_FLAGS + file_flags + flags)
                try:
                    server.start()
                    figures = run.run_loadgen(server, load, args + ["--depth", "8"], log_file)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    run.log(f"  {load} {setting} #{round_number}: FAILED: {e}")
                    continue
                finally:
                    server.stop()
                    shutil.rmtree(directory, ignore_errors=True)
                results.setdefault((load, setting), []).append(figures)
                run.log(f"  {load} {setting} #{round_number}: {figures['publish_per_s']:,.0f} events/s, "
                        f"p50 {figures['latency_p50_ms']:.2f} ms, p99 {figures['latency_p99_ms']:.2f} ms, "
                        f"lost {figures['lost']:.0f}")
    return results


def fill(path, events):
    """Writes a history file holding `events` events, published through --stdin."""
    process = subprocess.Popen([run.SSED, "--listen", "127.0.0.1:0", "--history", str(events),
                                "--history-file", path, "--fsync", "never", "--stdin"],
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    address = None
    deadline = time.monotonic() + 30
    while address is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        found = re.search(r"listening on http://(\S+)", line)
        if found:
            address = found.group(1)
    if address is None:
        process.kill()
        raise RuntimeError("ssed did not start")
    payload = "x" * 150
    process.stdin.write("".join(f"{i} {payload}\n" for i in range(events)))
    process.stdin.flush()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        published = int(re.search(r"^ssed_events_delivered_total (\d+)", text, re.M).group(1))
        if published >= events:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def time_to_listen(args):
    start = time.monotonic()
    process = subprocess.Popen([run.SSED, "--listen", "127.0.0.1:0"] + args, stdin=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = start + 60
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if "listening on" in line:
                return time.monotonic() - start
            if not line:
                break
        raise RuntimeError("ssed did not start")
    finally:
        process.kill()
        process.wait(timeout=10)


def start_times(repeats):
    figures = {}
    directory = tempfile.mkdtemp(prefix="ssed-history-start-")
    try:
        figures["empty"] = statistics.median(time_to_listen([]) for _ in range(repeats))
        for events in (1024, 100_000):
            path = os.path.join(directory, f"history-{events}.log")
            fill(path, events)
            size = os.path.getsize(path)
            args = ["--history", str(events), "--history-file", path]
            seconds = statistics.median(time_to_listen(args) for _ in range(repeats))
            figures[f"{events} events ({size / 1e6:.1f} MB)"] = seconds
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return figures


def print_publishing(results):
    print("\npublishing, mean of rounds; ratio against no file:")
    header = f"{'load':<13} {'setting':<13} {'events/s':>11} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'p99 ratio':>9} {'lost':>5}"
    print(header)
    print("-" * len(header))
    for load, _ in LOADS:
        base = results.get((load, "no file"))
        for setting, _ in SETTINGS:
            runs = results.get((load, setting))
            if not runs:
                continue
            rate = statistics.mean(r["publish_per_s"] for r in runs)
            p50 = statistics.mean(r["latency_p50_ms"] for r in runs)
            p99 = statistics.mean(r["latency_p99_ms"] for r in runs)
            lost = max(r["lost"] for r in runs)
            base_rate = statistics.mean(r["publish_per_s"] for r in base) if base else None
            base_p99 = statistics.mean(r["latency_p99_ms"] for r in base) if base else None
            print(f"{load:<13} {setting:<13} {rate:>11,.0f} {rate / base_rate if base_rate else 0:>6.3f} "
                  f"{p50:>8.2f} {p99:>8.2f} {p99 / base_p99 if base_p99 else 0:>9.2f} {lost:>5.0f}")


def main():
    parser = argparse.ArgumentParser(description="the history file's cost, against no file")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--starts", type=int, default=5, help="starts per start-time figure")
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    run.build(["ssed"], args.skip_build)
    log_path = os.path.join(run.ROOT, "target", "bench", f"history-{time.strftime('%Y%m%d-%H%M%S')}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w") as log_file:
        results = publishing(args.rounds, log_file)
    print_publishing(results)
    print("\nstart time, median of starts (to the 'listening' line):")
    for name, seconds in start_times(args.starts).items():
        print(f"  {name:<28} {seconds * 1000:8.1f} ms")
    print(f"\nload generator output: {log_path}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
