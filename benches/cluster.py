#!/usr/bin/env python3
"""ssed's cluster benchmark: three nodes on one Redis against one node, same load, same run.

    python3 benches/cluster.py                  # both runs, every setup, twice
    python3 benches/cluster.py --repeat 1 --run latency@50/s

Setups, each with 9,000 subscribers and one publisher (to the first node):
  one-node      one ssed, no Redis: the reference
  one-on-redis  one ssed with --redis: what the Redis hop costs alone
  three-nodes   three ssed nodes with --redis, 3,000 subscribers each
Runs: deliveries per second at the highest publish rate, and publish-to-receive latency at 50
events/s. A fresh redis-server (AOF on) serves each run. Server CPU counts every ssed and
redis-server. Builds ssed with the feature redis and the load generator; standard library only;
every wait is bounded; servers are killed on exit. Needs redis-server (apt-get install
redis-server).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (benches/run.py: the load generator and its helpers)

SUBSCRIBERS = 9000
RUNS = [
    ("fanout", ["--rate", "max", "--duration", "10", "--size", "200"]),
    ("latency@50/s", ["--rate", "50", "--duration", "10", "--size", "200"]),
]
SETUPS = ["one-node", "one-on-redis", "three-nodes"]
FIGURES = [
    ("deliveries_per_s", "deliveries/s"),
    ("publish_per_s", "events published/s"),
    ("latency_p50_ms", "latency p50 ms"),
    ("latency_p99_ms", "latency p99 ms"),
    ("server_cpu_s_per_m_deliveries", "server CPU s per 1M deliveries"),
    ("server_cpu_s", "server CPU s (ssed + redis)"),
    ("lost", "lost deliveries"),
    ("reordered", "reordered deliveries"),
]


def start_process(command, directory, name):
    log = open(os.path.join(directory, f"{name}.log"), "w")
    return subprocess.Popen(command, cwd=directory, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            preexec_fn=bench.raise_fd_limit, start_new_session=True)


def wait_for(what, ready, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {seconds} s")


def answers_http(port, path="/health"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class Setup:
    """The processes of one setup: redis-server (when used) and the ssed nodes."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"ssed-cluster-bench-{name}-")
        self.processes = []
        self.ports = []

    def start(self):
        redis_url = None
        if self.name != "one-node":
            port = bench.free_port()
            redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
            self.processes.append(start_process(
                [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
                 "--appendonly", "yes", "--save", ""], self.dir, "redis"))
            wait_for("redis-server", lambda: socket_open(port))
            redis_url = f"redis://127.0.0.1:{port}"
        for n in range(3 if self.name == "three-nodes" else 1):
            port = bench.free_port()
            command = [bench.SSED, "--listen", f"127.0.0.1:{port}", "--max-clients", "60000",
                       "--heartbeat", "0", "--history", "1024", "-q"]
            if redis_url:
                command += ["--redis", redis_url]
            self.processes.append(start_process(command, self.dir, f"ssed-{n}"))
            wait_for(f"ssed node {n}", lambda: answers_http(port))
            self.ports.append(port)

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def socket_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def run_loadgen(setup, run_name, loadgen_args, log_file):
    targets = ",".join(f"127.0.0.1:{p}" for p in setup.ports)
    pids = ",".join(str(p.pid) for p in setup.processes)
    command = [bench.LOADGEN, "bench", "--target", f"127.0.0.1:{setup.ports[0]}", "--server-pid", pids,
               "--subscriber-targets", targets, "--subscribers", str(SUBSCRIBERS),
               "--scenario", run_name, "--label", setup.name] + bench.TOPIC_ARGS + loadgen_args
    result = subprocess.run(command, capture_output=True, text=True, timeout=180,
                            preexec_fn=bench.raise_fd_limit)
    log_file.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    log_file.flush()
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed against {setup.name}: {result.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


def mean(values):
    return sum(values) / len(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description="ssed cluster benchmark (loopback only)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--run", action="append", choices=[name for name, _ in RUNS])
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    runs = [r for r in RUNS if not args.run or r[0] in args.run]
    if not args.skip_build:
        bench.run_checked(["cargo", "build", "--release", "--manifest-path", bench.LOADGEN_MANIFEST,
                           "--target-dir", bench.LOADGEN_TARGET], "building the load generator", 900)
        bench.run_checked(["cargo", "build", "--release", "--bin", "ssed", "--features", "redis"],
                          "building ssed", 900)
    out_dir = os.path.join(bench.ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {}
    with open(os.path.join(out_dir, f"cluster-{stamp}.jsonl"), "w") as out, \
            open(os.path.join(out_dir, f"cluster-{stamp}.log"), "w") as log_file:
        for run_name, loadgen_args in runs:
            for round_number in range(1, args.repeat + 1):
                for name in SETUPS:
                    setup = Setup(name)
                    try:
                        setup.start()
                        figures = run_loadgen(setup, run_name, loadgen_args, log_file)
                    finally:
                        setup.stop()
                    figures["round"] = round_number
                    out.write(json.dumps(figures) + "\n")
                    out.flush()
                    results.setdefault((run_name, name), []).append(figures)
                    bench.log(f"{run_name} round {round_number} {name}: {bench.one_line_summary(figures)}")
    for run_name, _ in runs:
        print(f"\n{run_name} ({SUBSCRIBERS} subscribers; means of {args.repeat} rounds)")
        print(f"{'figure':34}" + "".join(f"{s:>16}" for s in SETUPS) + f"{'3 nodes / 1':>14}")
        for key, label in FIGURES:
            values = [mean([f.get(key, float('nan')) for f in results[(run_name, s)]]) for s in SETUPS]
            ratio = values[2] / values[0] if values[0] else float("nan")
            print(f"{label:34}" + "".join(f"{v:>16,.2f}" for v in values) + f"{ratio:>14.2f}")


if __name__ == "__main__":
    main()
