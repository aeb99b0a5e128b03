#!/usr/bin/env python3
"""What the host's callbacks (Config::hooks: log, access, streams) cost, side by side in one run.

    python3 benches/host.py                        # 2 rounds
    python3 benches/host.py --rounds 3 --duration 10 --verbose-hook --skip-build
    python3 benches/host.py --run latency-10k@5/s --run connect-10k --rounds 3

Servers, alternating within each round (the first one rotates from round to round, so that
drifting noise and order hit them all alike):
- no-host: the daemon built without the cargo feature `host` (no hooks, no per-topic counts).
- host: the default daemon: the feature compiled in, no hook set (what is left is the per-topic
  counts at each stream open and close).
- hooked: examples/hooked.rs, every hook set: the log hook counts lines (level Info), the access
  hook reads the request's User-Agent and allows (once per stream open and per publish), the
  stream hook counts opens and closes.
- hooked -v (with --verbose-hook): the same at level Verbose, so that every connection accepted
  is a line for the log hook.
All take --max-clients 60000 --heartbeat 0 --history 1024, as in benches/run.py; the daemons
log errors only (-q, as in run.py).

Measurements, each with benches/loadgen: fan-out to 1k and 10k subscribers at --rate max
(deliveries/s, server CPU per delivery), 10k subscribers at 5 events/s (p50, p99 latency), and
10k subscribers connecting then leaving without an event (the time to connect them, and the
server's CPU for the 10k opens and closes, from /proc: the access and stream hooks run there).
Ratios are against no-host.

Builds into $CARGO_TARGET_DIR (default target/): the daemon without `host` first, copied aside
to bench/ssed-no-host, then the default daemon and the example. Standard library only; every
wait is bounded; servers are killed on exit.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (benches/run.py)

TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(run.ROOT, "target"))
NO_HOST = os.path.join(TARGET, "bench", "ssed-no-host")
SSED = os.path.join(TARGET, "release", "ssed")
HOOKED = os.path.join(TARGET, "release", "examples", "hooked")
NO_HOST_FEATURES = "jwt,history-file,tls,urlpattern,sockets"

BASE_FLAGS = ["--max-clients", "60000", "--heartbeat", "0", "--history", "1024"]
SERVERS = [
    ("no-host", lambda: [NO_HOST] + BASE_FLAGS + ["-q"]),
    ("host", lambda: [SSED] + BASE_FLAGS + ["-q"]),
    ("hooked", lambda: [HOOKED] + BASE_FLAGS),
]
VERBOSE_SERVER = ("hooked -v", lambda: [HOOKED] + BASE_FLAGS + ["-v"])


def runs(duration):
    fanout = ["--rate", "max", "--duration", str(duration), "--size", "200", "--depth", "8"]
    latency = ["--rate", "5", "--duration", str(duration), "--size", "200", "--depth", "8"]
    return [
        ("fanout-1k", ["--subscribers", "1000"] + fanout),
        ("fanout-10k", ["--subscribers", "10000"] + fanout),
        ("latency-10k@5/s", ["--subscribers", "10000"] + latency),
        ("connect-10k", ["--subscribers", "10000", "--idle", "--settle", "0.5"]),
    ]


# Figures shown per run: (JSON key, label).
FIGURES = {
    "fanout-1k": [("deliveries_per_s", "deliveries/s"),
                  ("server_cpu_s_per_m_deliveries", "server CPU s per 1M deliveries"),
                  ("latency_p99_ms", "latency p99 ms"), ("connect_s", "connect 1k s")],
    "fanout-10k": [("deliveries_per_s", "deliveries/s"),
                   ("server_cpu_s_per_m_deliveries", "server CPU s per 1M deliveries"),
                   ("latency_p99_ms", "latency p99 ms"), ("connect_s", "connect 10k s")],
    "latency-10k@5/s": [("latency_p50_ms", "latency p50 ms"), ("latency_p99_ms", "latency p99 ms"),
                        ("server_cpu_s_per_m_deliveries", "server CPU s per 1M deliveries"),
                        ("connect_s", "connect 10k s")],
    "connect-10k": [("connect_s", "connect 10k s"),
                    ("server_cpu_ms_per_1k_streams", "server CPU ms per 1k opens+closes")],
}


class Binary(run.Server):
    """A server from its command line (--listen added); keeps the last lines it printed."""

    def __init__(self, name, argv):
        super().__init__(name, None)
        self.argv = argv
        self.last_words = ""

    def command(self):
        return self.argv + ["--listen", f"127.0.0.1:{self.port}"]

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.last_words = self.log_tail()
        super().stop()


def cpu_s(pid):
    """The process's user + system CPU time (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled_cpu_s(pid, timeout=5.0):
    """CPU time once it has stopped growing for 0.3 s (the closes handled), or after timeout."""
    deadline = time.monotonic() + timeout
    last = cpu_s(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = cpu_s(pid)
        if now == last:
            return now
        last = now
    return last


def measure(name, argv, run_name, args, log_file):
    server = Binary(name, argv)
    try:
        server.start()
        before = cpu_s(server.process.pid)
        figures = run.run_loadgen(server, run_name, args, log_file)
        if run_name.startswith("connect"):
            used = settled_cpu_s(server.process.pid) - before
            figures["server_cpu_ms_per_1k_streams"] = used * 1000 / (figures["connected"] / 1000)
    finally:
        server.stop()
        time.sleep(1)  # let closed connections leave the port tables
    heard = re.search(r"hooked: .*", server.last_words)
    if heard:
        figures["hooks_heard"] = heard.group(0)
    return figures


def run_all(servers, chosen, rounds, duration, out, log_file):
    results = []
    for round_number in range(1, rounds + 1):
        shift = (round_number - 1) % len(servers)
        order = servers[shift:] + servers[:shift]
        for run_name, args in [r for r in runs(duration) if r[0] in chosen]:
            for name, argv in order:
                try:
                    figures = measure(name, argv(), run_name, args, log_file)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    run.log(f"  {run_name} {name} #{round_number}: FAILED: {e}")
                    continue
                figures.update(round=round_number, server=name, load_avg=os.getloadavg()[0])
                results.append(figures)
                out.write(json.dumps(figures) + "\n")
                out.flush()
                summary = ", ".join(f"{label} {run.format_value(figures.get(key), [])}"
                                    for key, label in FIGURES[run_name][:2])
                run.log(f"  {run_name} {name} #{round_number}: {summary}, lost {figures.get('lost', 0):.0f}; "
                        f"{figures.get('hooks_heard', '')}")
    return results


def print_table(results, servers, rounds):
    names = [name for name, _ in servers]
    others = names[1:]
    header = ["run", "figure"] + names + [f"{n}/{names[0]}" for n in others]
    rows = []
    for run_name, keys in FIGURES.items():
        if not any(r["scenario"] == run_name for r in results):
            continue
        for key, label in keys:
            values = {n: [r[key] for r in results if r["scenario"] == run_name and r["server"] == n
                          and r.get(key) is not None] for n in names}
            means = {n: statistics.mean(v) if v else None for n, v in values.items()}
            rows.append([run_name, label] + [run.format_value(means[n], values[n]) for n in names]
                        + [run.ratio(means[n], means[names[0]]) for n in others])
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i >= 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    loads = [r["load_avg"] for r in results]
    print(f"\nThe host's callbacks: {rounds} round(s), servers alternating; load average "
          f"{min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores during the runs.")
    print("A shared, noisy machine: absolute figures wander between runs; read the ratios, and take "
          "differences within the spread between rounds (±N%) as noise.")
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    print("(mean of the rounds; ±N% is half the spread between rounds)")
    bad = [r for r in results if r.get("lost") or r.get("reordered") or r.get("malformed")]
    for r in bad:
        print(f"  {r['scenario']} {r['server']} round {r['round']}: lost {r.get('lost')}, "
              f"reordered {r.get('reordered')}, malformed {r.get('malformed')}")
    if not bad:
        print("All runs: 0 lost, 0 reordered, 0 malformed.")
    print("\nWhat the hooks heard (one line per hooked run, printed by examples/hooked.rs at its stop):")
    for r in results:
        if r.get("hooks_heard"):
            print(f"  {r['scenario']} {r['server']} #{r['round']}: {r['hooks_heard']}")


def build(skip):
    if skip:
        return
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)

    def cargo(*args):
        command = ["cargo", "build", "--release", *args]
        run.log(f"$ CARGO_TARGET_DIR={TARGET} {' '.join(command)}")
        if subprocess.run(command, cwd=run.ROOT, env=env, timeout=1800).returncode != 0:
            raise SystemExit(f"host.py: {' '.join(command)} failed")
    cargo("--manifest-path", run.LOADGEN_MANIFEST, "--target-dir", os.path.join(TARGET, "loadgen"))
    # Both daemons are target/release/ssed: the one without `host` is copied aside first.
    cargo("--bin", "ssed", "--no-default-features", "--features", NO_HOST_FEATURES)
    os.makedirs(os.path.dirname(NO_HOST), exist_ok=True)
    shutil.copy2(SSED, NO_HOST)
    cargo("--bin", "ssed", "--example", "hooked")


def main():
    parser = argparse.ArgumentParser(description="the cost of the host's callbacks on the fan-out (loopback only)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, servers alternating in each (default 2)")
    parser.add_argument("--duration", type=float, default=10, help="publishing seconds per run (default 10)")
    parser.add_argument("--run", action="append", choices=list(FIGURES),
                        help="measurement to make (repeatable; default: all)")
    parser.add_argument("--verbose-hook", action="store_true",
                        help="also run hooked -v: every connection accepted is a line for the log hook")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10 or not 1 <= args.duration <= 120:
        parser.error("--rounds must be 1..10 and --duration 1..120")
    run.LOADGEN = os.path.join(TARGET, "loadgen", "release", "loadgen")
    build(args.skip_build)
    servers = SERVERS + ([VERBOSE_SERVER] if args.verbose_hook else [])
    for binary in [run.LOADGEN, NO_HOST, SSED, HOOKED]:
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"host.py: {binary} is missing (build failed, or --skip-build without a build)")
    out_dir = os.path.join(TARGET, "bench")
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = os.path.join(out_dir, f"host-{stamp}.jsonl")
    log_path = os.path.join(out_dir, f"host-loadgen-{stamp}.log")
    run.log(f"servers: {', '.join(n for n, _ in servers)}; {args.rounds} round(s), {args.duration:g} s per run; "
            f"load average {os.getloadavg()[0]:.1f}")
    with open(out_path, "w") as out, open(log_path, "w") as log_file:
        results = run_all(servers, args.run or list(FIGURES), args.rounds, args.duration, out, log_file)
    print_table(results, servers, args.rounds)
    print(f"\nJSON lines: {out_path}\nload generator output: {log_path}")


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so every started server is stopped by its `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
