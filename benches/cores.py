#!/usr/bin/env python3
"""Every core: ssed with one event loop against ssed with two (`--loops`), beside the one-write floor.

    python3 benches/cores.py                                  # every scenario, 2 rounds
    python3 benches/cores.py --scenario latency --scenario curve --repeat 3
    python3 benches/cores.py --ssed /tmp/ssed-loops --skip-build
    python3 benches/cores.py --no-loops-flag --subscribers-scale 0.1 --duration-scale 0.3   # the script's own test

Servers, alternating within each round (the first one rotates from round to round, so that
drifting noise and order hit them all alike):
- loops-1: ssed --loops 1, and loops-2: ssed --loops 2, both with the flags of run.py's comparison
  runs (--max-clients 60000 --heartbeat 0 --history 1024 -q).
- floor: benches/floor.c, a C server that does nothing but one write() per subscriber per event
  (built with gcc -O2 into target/bench/floor). It answers the same requests and frames events as
  ssed does, so the load generator treats it alike.

Scenarios (benches/loadgen for every run, 200-byte events, publish depth 8):
- latency: 10k subscribers, 5 events/s for 10 s: latency p50, p99, max. All three servers.
- fanout: 1k and 10k subscribers, the publisher unthrottled for 10 s: deliveries/s and server
  CPU-seconds per million deliveries. All three servers; the floor drops a subscriber whose socket
  is full, and the table says so if it ever did (its figures then are no floor).
- idle-mem: 10k idle subscribers: server RSS per subscriber. ssed only.
- curve: 1k, 5k, 10k and 19k subscribers at 1 event/s for 20 s: p99 latency, server CPU per
  delivery, RSS per subscriber (measured after connecting, before the first event). All three
  servers (the floor's p99 is the reference).

The load generator shares the two cores with the server. Its CPU is shown for every run: over
the publishing window (as the load generator reports it) and over the whole run (connecting
included), from this script's rusage of its finished children.

Builds the load generator and ssed as run.py does (ssed only when --ssed is not given), and the
floor with gcc. Prints one table with loops-2 / loops-1 for every figure and ssed / floor for the
latencies, and writes every run's JSON line to target/bench/cores-*.jsonl. Standard library only;
every wait is bounded; servers are stopped by process group on any exit.
"""

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (benches/run.py: the server runner, the load generator, the formatting)

FLOOR_SOURCE = os.path.join(run.ROOT, "benches", "floor.c")
FLOOR = os.path.join(run.ROOT, "target", "bench", "floor")
BASE_FLAGS = ["--max-clients", "60000", "--heartbeat", "0", "--history", "1024", "-q"]
SERVERS = ["loops-1", "loops-2", "floor"]
SSED_SERVERS = ["loops-1", "loops-2"]
PUBLISH_DEPTH = "8"

# A run: (name, scenario, subscribers, publishing seconds or None when idle, other load
# generator arguments, servers). Subscribers and seconds are what --subscribers-scale and
# --duration-scale shrink.
#
# 19k subscribers: a process may hold 20,000 descriptors here. The server holds the 19,000
# streams, the publisher's connection and a few of its own, so 19k is the most that fits. On the
# client side one load generator run suffices: it spreads its subscribers over subscriber
# processes of at most --per-process (PER_PROCESS), so 19,000 become two processes of 9,500
# streams each (the coordinator holds only the publisher's connection). Their counts and latency
# histograms are merged by the load generator itself, and its CPU figures sum all its
# processes, so the figures are those of one run of 19,000 subscribers. --subscribers-scale
# shrinks PER_PROCESS too, so that a shrunk test splits its 19k run the same way.
PER_PROCESS = 18000
RUNS = [
    ("latency-10k@5/s", "latency", 10000, 10, ["--rate", "5"], SERVERS),
    ("fanout-1k", "fanout", 1000, 10, ["--rate", "max"], SERVERS),
    ("fanout-10k", "fanout", 10000, 10, ["--rate", "max"], SERVERS),
    ("idle-mem-10k", "idle-mem", 10000, None, ["--idle", "--settle", "2"], SSED_SERVERS),
    ("curve-1k@1/s", "curve", 1000, 20, ["--rate", "1", "--settle", "2"], SERVERS),
    ("curve-5k@1/s", "curve", 5000, 20, ["--rate", "1", "--settle", "2"], SERVERS),
    ("curve-10k@1/s", "curve", 10000, 20, ["--rate", "1", "--settle", "2"], SERVERS),
    ("curve-19k@1/s", "curve", 19000, 20, ["--rate", "1", "--settle", "2"], SERVERS),
]
SCENARIOS = ["latency", "fanout", "idle-mem", "curve"]

# Figures shown per scenario: (JSON key, label, how rounds combine).
LOADGEN_FIGURES = [
    ("loadgen_cpu_pct", "load generator CPU % (publishing)", "mean"),
    ("loadgen_run_cpu_s", "load generator CPU s (whole run)", "mean"),
]
CHECKS = [
    ("lost", "lost deliveries", "max"),
    ("reordered", "reordered deliveries", "max"),
    ("closed", "streams closed by the server", "max"),
]
FIGURES = {
    "latency": [
        ("latency_p50_ms", "latency p50 ms", "mean"),
        ("latency_p99_ms", "latency p99 ms", "mean"),
        ("latency_max_ms", "latency max ms", "mean"),
        ("publish_per_s", "events published/s", "mean"),
        ("server_cpu_s", "server CPU s", "mean"),
    ] + CHECKS + LOADGEN_FIGURES,
    "fanout": [
        ("deliveries_per_s", "deliveries/s", "mean"),
        ("server_cpu_s_per_m_deliveries", "server CPU s per 1M deliveries", "mean"),
        ("latency_p99_ms", "latency p99 ms", "mean"),
        ("publish_per_s", "events published/s", "mean"),
        ("server_rss_mb", "server RSS MB (end)", "mean"),
    ] + CHECKS + LOADGEN_FIGURES,
    "idle-mem": [
        ("rss_per_sub_bytes", "RSS bytes per idle subscriber", "mean"),
        ("pss_per_sub_bytes", "PSS bytes per idle subscriber", "mean"),
        ("server_rss_idle_mb", "server RSS MB", "mean"),
        ("connect_s", "connect time s", "mean"),
        ("loadgen_run_cpu_s", "load generator CPU s (whole run)", "mean"),
    ],
    "curve": [
        ("latency_p99_ms", "latency p99 ms", "mean"),
        # CPU seconds per million deliveries is CPU microseconds per delivery.
        ("server_cpu_s_per_m_deliveries", "server CPU us per delivery", "mean"),
        ("rss_per_sub_bytes", "RSS bytes per subscriber", "mean"),
        ("latency_p50_ms", "latency p50 ms", "mean"),
        ("server_cpu_s", "server CPU s", "mean"),
    ] + CHECKS + LOADGEN_FIGURES,
}


class Binary(run.Server):
    """A server from its command line, --listen added on a free port."""

    def __init__(self, name, argv):
        super().__init__(name, None)
        self.argv = argv

    def command(self):
        return self.argv[:1] + ["--listen", f"127.0.0.1:{self.port}"] + self.argv[1:]


def server_argv(name, ssed, loops_flag):
    if name == "floor":
        return [FLOOR]
    loops = ["--loops", name.split("-")[1]] if loops_flag else []
    return [ssed] + BASE_FLAGS + loops


def connections_on(port):
    """Sockets with `port` at either end that are not in TIME_WAIT (state 06), from /proc/net/tcp."""
    suffix = f":{port:04X}"
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if (fields[1].endswith(suffix) or fields[2].endswith(suffix)) and fields[3] != "06":
                count += 1
    return count


def wait_for_port_closed(port, timeout=15.0):
    """After a run: waits until the kernel has finished closing that run's connections, so that
    the next run starts on an empty table (bounded; goes on with a note if it is not so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = connections_on(port)
        if left == 0:
            return
        time.sleep(0.1)
    run.log(f"  note: {left} connections to port {port} still closing after {timeout:.0f} s")


def scaled_args(subscribers, seconds, extra, subscribers_scale, duration_scale):
    n = max(10, round(subscribers * subscribers_scale))
    per_process = max(10, round(PER_PROCESS * subscribers_scale))
    args = ["--subscribers", str(n), "--per-process", str(per_process), "--size", "200", "--depth", PUBLISH_DEPTH]
    args += extra
    if seconds is not None:
        args += ["--duration", f"{max(2.0, seconds * duration_scale):g}"]
    return args


def measure(name, argv, run_name, args, log_file):
    """One run against a fresh server; adds the load generator's CPU over the whole run."""
    server = Binary(name, argv)
    try:
        server.start()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        figures = run.run_loadgen(server, run_name, args, log_file)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        server.stop()
        wait_for_port_closed(server.port)
    # The load generator's processes are its children (it waits for them before it exits), so
    # their CPU is in ours once it has been waited for; the server is reaped after this window.
    figures["loadgen_run_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures["command"] = " ".join(argv)
    return figures


def one_line_summary(figures):
    if figures.get("rss_per_sub_bytes") is not None and figures.get("deliveries") is None:
        return (f"{figures['rss_per_sub_bytes']:.0f} B/subscriber, connected {figures['connected']:.0f}, "
                f"loadgen CPU {figures['loadgen_run_cpu_s']:.1f} s")
    return (f"{figures['deliveries_per_s']:,.0f} deliveries/s, p99 {figures['latency_p99_ms']:.2f} ms, "
            f"server CPU {figures['server_cpu_s']:.2f} s, lost {figures['lost']:.0f}, "
            f"closed {figures['closed']:.0f}, loadgen CPU {figures['loadgen_cpu_pct']:.0f}%")


def run_all(runs, servers, options, out, log_file):
    results = []
    for round_number in range(1, options.repeat + 1):
        # The first server rotates from round to round.
        shift = (round_number - 1) % len(servers)
        order = servers[shift:] + servers[:shift]
        for run_name, scenario, subscribers, seconds, extra, run_servers in runs:
            args = scaled_args(subscribers, seconds, extra, options.subscribers_scale, options.duration_scale)
            for name in [s for s in order if s in run_servers]:
                argv = server_argv(name, options.ssed, not options.no_loops_flag)
                try:
                    figures = measure(name, argv, run_name, args, log_file)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    run.log(f"  {run_name} {name} #{round_number}: FAILED: {e}")
                    continue
                figures.update(round=round_number, load_avg=os.getloadavg()[0], scenario_group=scenario,
                               subscribers_scale=options.subscribers_scale, duration_scale=options.duration_scale,
                               no_loops_flag=options.no_loops_flag)
                results.append(figures)
                out.write(json.dumps(figures) + "\n")
                out.flush()
                run.log(f"  {run_name} {name} #{round_number}: {one_line_summary(figures)}")
    return results


def print_table(results, runs, servers, options):
    ssed = [s for s in SSED_SERVERS if s in servers]
    with_floor = "floor" in servers
    header = ["run", "figure"] + servers
    if len(ssed) == 2:
        header.append("loops-2/loops-1")
    if with_floor:
        header += [f"{s}/floor" for s in ssed]
    rows = []
    for run_name, scenario, _, _, _, _ in runs:
        for key, label, how in FIGURES[scenario]:
            values = {s: [r[key] for r in results if r["scenario"] == run_name and r["server"] == s
                          and r.get(key) is not None] for s in servers}
            combined = {s: run.combine(values[s], how) for s in servers}
            if all(v is None for v in combined.values()):
                continue
            row = [run_name, label] + [run.format_value(combined[s], values[s]) for s in servers]
            if len(ssed) == 2:
                row.append(run.ratio(combined["loops-2"], combined["loops-1"]))
            if with_floor:
                # Against the floor: its latencies are the reference; its other figures are shown
                # for what they are, without a ratio.
                row += [run.ratio(combined[s], combined["floor"]) if key.startswith("latency_") else ""
                        for s in ssed]
            rows.append(row)
    if not rows:
        print("\nno run completed")
        return
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i >= 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    loads = [r["load_avg"] for r in results]
    print(f"\nEvery core: {options.repeat} round(s), servers alternating; load average "
          f"{min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores during the runs.")
    if options.no_loops_flag:
        print("--no-loops-flag: loops-1 and loops-2 ran the same command, without --loops; their ratio is noise.")
    if options.subscribers_scale != 1 or options.duration_scale != 1:
        print(f"Shrunk runs (subscribers x{options.subscribers_scale:g}, publishing time x{options.duration_scale:g}): "
              "a test of the script, not a measurement; run names keep their full sizes.")
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    print("(mean of the rounds; ±N% is half the spread between rounds; lost, reordered and closed show the worst round;\n"
          f" CPU figures come from /proc in clock ticks of {1000 / os.sysconf('SC_CLK_TCK'):g} ms: at 1 event/s to 1k "
          "subscribers that is a few ticks)")
    bad = [r for r in results if r.get("lost") or r.get("reordered") or r.get("malformed") or r.get("closed")]
    for r in bad:
        note = " (the floor drops a subscriber whose socket is full: no floor in this run)" if r["server"] == "floor" else ""
        print(f"  {r['scenario']} {r['server']} round {r['round']}: lost {r.get('lost'):.0f}, reordered "
              f"{r.get('reordered'):.0f}, malformed {r.get('malformed'):.0f}, closed {r.get('closed'):.0f}{note}")
    if not bad:
        print("All runs: 0 lost, 0 reordered, 0 malformed, 0 streams closed.")


def build(options):
    if options.skip_build:
        return
    # run.build builds the load generator, and ssed when "ssed" is asked for.
    run.build(["ssed"] if options.ssed == run.SSED else [], False)
    os.makedirs(os.path.dirname(FLOOR), exist_ok=True)
    run.run_checked(["gcc", "-O2", "-Wall", "-o", FLOOR, FLOOR_SOURCE], "building the floor", 120)


def check_loops_flag(ssed):
    """Fails early, with what to do, if this ssed has no --loops."""
    result = subprocess.run([ssed, "--help"], capture_output=True, text=True, timeout=10)
    if "--loops" not in result.stdout + result.stderr:
        raise SystemExit(f"cores.py: {ssed} has no --loops option. Build a tree that has it (or give its "
                         "binary with --ssed); --no-loops-flag runs both settings without the flag, to test "
                         "this script only.")


def parse_args():
    parser = argparse.ArgumentParser(description="ssed --loops 1 against --loops 2 and the one-write floor "
                                                 "(loopback only)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS + [r[0] for r in RUNS],
                        help="scenario or single run (repeatable; default: all)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from {','.join(SERVERS)}")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per figure (default 2)")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--ssed", default=run.SSED, help="the ssed binary (default target/release/ssed, built)")
    parser.add_argument("--no-loops-flag", action="store_true",
                        help="run ssed without --loops in both settings (to test this script on a build "
                             "without the flag)")
    parser.add_argument("--subscribers-scale", type=float, default=1.0,
                        help="multiply every run's subscribers (at least 10), to test this script")
    parser.add_argument("--duration-scale", type=float, default=1.0,
                        help="multiply every run's publishing time (at least 2 s), to test this script")
    parser.add_argument("--out", help="JSON lines file (default target/bench/cores-DATE.jsonl)")
    options = parser.parse_args()
    options.ssed = os.path.abspath(options.ssed)
    servers = [s for s in options.servers.split(",") if s]
    if not servers or any(s not in SERVERS for s in servers):
        parser.error(f"--servers: choose from {','.join(SERVERS)}")
    if not 1 <= options.repeat <= 10:
        parser.error("--repeat must be 1..10")
    if not 0 < options.subscribers_scale <= 1 or not 0 < options.duration_scale <= 1:
        parser.error("--subscribers-scale and --duration-scale must be in (0, 1]")
    return options, [s for s in SERVERS if s in servers]


def main():
    options, servers = parse_args()
    chosen = options.scenario or SCENARIOS
    runs = [r for r in RUNS if r[0] in chosen or r[1] in chosen]
    runs = [r for r in runs if any(s in servers for s in r[5])]
    build(options)
    needed = [run.LOADGEN] + ([options.ssed] if any(s in servers for s in SSED_SERVERS) else []) \
        + ([FLOOR] if "floor" in servers else [])
    for binary in needed:
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"cores.py: {binary} is missing (build failed, or --skip-build without a build)")
    if not options.no_loops_flag and any(s in servers for s in SSED_SERVERS):
        check_loops_flag(options.ssed)
    out_dir = os.path.join(run.ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = options.out or os.path.join(out_dir, f"cores-{stamp}.jsonl")
    log_path = os.path.join(out_dir, f"cores-loadgen-{stamp}.log")
    run.log(f"runs: {', '.join(r[0] for r in runs)}; servers: {', '.join(servers)}; {options.repeat} round(s); "
            f"ssed {options.ssed}; load average {os.getloadavg()[0]:.1f}")
    with open(out_path, "w") as out, open(log_path, "w") as log_file:
        results = run_all(runs, servers, options, out, log_file)
    print_table(results, runs, servers, options)
    print(f"\nJSON lines: {out_path}\nload generator output: {log_path}")


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so every started server is stopped by its `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
