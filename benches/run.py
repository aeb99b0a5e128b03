#!/usr/bin/env python3
"""ssed's benchmark: ssed side by side with nginx + nchan, same load generator, same run.

    python3 benches/run.py                       # every scenario, every server, twice
    python3 benches/run.py --scenario fanout-10k --repeat 3
    python3 benches/run.py --servers ssed,nchan-1w --scenario idle-mem
    python3 benches/run.py --servers ssed --baseline /tmp/ssed-old --scenario fanout-10k
    python3 benches/run.py --scenario chaos --scenario hostile --scenario soak --soak-minutes 10
    python3 benches/run.py --servers ssed --scenario selectors --repeat 3

Builds ssed and the load generator (release), then for each scenario and each server: starts
the server on a free 127.0.0.1 port, runs benches/loadgen against it, stops it. Prints one
table with the ratio ssed / nchan for every figure and writes every run's JSON line to
target/bench/. Standard library only; every wait is bounded; servers are killed on exit.

The robustness scenarios (chaos, hostile, soak) run ssed alone, once each: they check that no
event is lost, repeated or reordered under reconnects and attacks, and that memory stays flat.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADGEN_MANIFEST = os.path.join(ROOT, "benches", "loadgen", "Cargo.toml")
LOADGEN_TARGET = os.path.join(ROOT, "target", "loadgen")
LOADGEN = os.path.join(LOADGEN_TARGET, "release", "loadgen")
SSED = os.path.join(ROOT, "target", "release", "ssed")
# Another build of ssed to compare with (--baseline), run as the server "ssed-baseline".
BASELINE = None
NCHAN_MODULE_DIRS = ["/usr/lib/nginx/modules", "/usr/share/nginx/modules"]
INSTALL_HINT = "apt-get install nginx libnginx-mod-nchan"

TOPIC_ARGS = ["--subscribe-path", "/events?topic=bench", "--publish-path", "/publish?topic=bench"]

# The selectors scenario: fanout-10k with every subscriber on one exact topic, then on a URI
# template (Mercure's topic selectors) that matches the published topic: books/{id} and
# {section}/{id}, which one greedy pass decides, and books/{id}.jsonld, where the value could
# run on into ".jsonld", which takes the general matcher. ssed only (nchan has no templates).
# Each event is matched against 10,000 compiled templates.
SITE = "https%3A%2F%2Fexample.com%2F"
BOOK = f"{SITE}books%2F"
SELECTOR_TOPICS = {
    "fanout-10k-exact-topic": ["--subscribe-path", f"/events?topic={BOOK}1", "--publish-path", f"/publish?topic={BOOK}1"],
    "fanout-10k-uri-template": ["--subscribe-path", f"/events?topic={BOOK}%7Bid%7D", "--publish-path",
                                f"/publish?topic={BOOK}1"],
    "fanout-10k-uri-template-2-vars": ["--subscribe-path", f"/events?topic={SITE}%7Bsection%7D%2F%7Bid%7D",
                                       "--publish-path", f"/publish?topic={BOOK}1"],
    "fanout-10k-uri-template-general": ["--subscribe-path", f"/events?topic={BOOK}%7Bid%7D.jsonld",
                                        "--publish-path", f"/publish?topic={BOOK}1.jsonld"],
    # Mercure 1.0 on the hub: an exact matcher, a URL pattern (books/:id), and the exact matcher
    # again with active subscriptions on (--subscriptions: each subscriber's arrival is a
    # subscription event; none arrives or leaves while the events are timed).
    "fanout-10k-exact-match": ["--subscribe-path", f"/.well-known/mercure?match={BOOK}1",
                               "--publish-path", f"/publish?topic={BOOK}1"],
    "fanout-10k-url-pattern": ["--subscribe-path", f"/.well-known/mercure?match_urlpattern={BOOK}%3Aid",
                               "--publish-path", f"/publish?topic={BOOK}1"],
    "fanout-10k-exact-match-subscriptions": ["--subscribe-path", f"/.well-known/mercure?match={BOOK}1",
                                             "--publish-path", f"/publish?topic={BOOK}1"],
}
# ssed flags added for a run of the selectors scenario.
SELECTOR_FLAGS = {"fanout-10k-exact-match-subscriptions": ["--subscriptions"]}

# Each run: (name, scenario it belongs to, load generator arguments). Each takes under a
# minute per server: connecting 19k subscribers takes a few seconds, publishing 10 s.
RUNS = [
    ("fanout-1k", "fanout-1k", ["--subscribers", "1000", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("fanout-10k", "fanout-10k", ["--subscribers", "10000", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("latency-10k@5/s", "latency-10k", ["--subscribers", "10000", "--rate", "5", "--duration", "10", "--size", "200"]),
    ("latency-10k@50/s", "latency-10k", ["--subscribers", "10000", "--rate", "50", "--duration", "10", "--size", "200"]),
    ("idle-mem-10k", "idle-mem", ["--subscribers", "10000", "--idle", "--settle", "2"]),
    ("idle-mem-19k", "idle-mem", ["--subscribers", "19000", "--idle", "--settle", "2"]),
    ("fanout-10k-exact-topic", "selectors", ["--subscribers", "10000", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("fanout-10k-uri-template", "selectors", ["--subscribers", "10000", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("fanout-10k-uri-template-2-vars", "selectors",
     ["--subscribers", "10000", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("fanout-10k-uri-template-general", "selectors",
     ["--subscribers", "10000", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("fanout-10k-exact-match", "selectors", ["--subscribers", "10000", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("fanout-10k-url-pattern", "selectors", ["--subscribers", "10000", "--rate", "max", "--duration", "10", "--size", "200"]),
    ("fanout-10k-exact-match-subscriptions", "selectors",
     ["--subscribers", "10000", "--rate", "max", "--duration", "10", "--size", "200"]),
]
SERVERS = ["ssed", "nchan-1w", "nchan-auto"]

# Robustness runs, ssed only, once each: (name, scenario, load generator command, ssed flags).
# chaos keeps every event in the history (so a reconnect never finds a gap) and drops a stream
# 64 KiB behind; hostile and soak run ssed with its defaults. hostile-calm is the same run
# without attackers, to compare latencies with.
ROBUSTNESS_RUNS = [
    ("chaos", "chaos", ["chaos"], ["--history", "32768", "--max-queue", "65536"]),
    ("hostile-calm", "hostile", ["hostile", "--slowloris", "0", "--slow-readers", "0"], []),
    ("hostile", "hostile", ["hostile"], []),
    ("soak", "soak", ["soak"], []),
]
SCENARIOS = sorted({scenario for _, scenario, _ in RUNS} | {scenario for _, scenario, _, _ in ROBUSTNESS_RUNS})

# Figures shown for each robustness run.
CHAOS_FIGURES = ["subscribers", "events_published", "publish_s", "publish_refused_full", "cuts_close", "cuts_reset",
                 "stalls", "stalls_dropped", "ssed_dropped_slow", "server_closed_other", "reconnects",
                 "connect_failures", "events_expected", "events_received", "subs_exact", "missing", "duplicated",
                 "reordered", "unexpected", "gaps", "malformed", "drain_s", "latency_p50_ms", "latency_p99_ms",
                 "server_rss_max_mb", "server_rss_after_close_mb", "fds_baseline", "fds_peak", "fds_end",
                 "server_cpu_s", "server_cpu_wait_s", "loadgen_cpu_s", "loadgen_cpu_wait_s", "machine_load_avg"]
HOSTILE_FIGURES = ["subscribers", "slowloris_open_min", "slow_readers_open_min", "slowloris_bytes_per_s",
                   "slow_reader_bytes_per_s", "events_published", "publish_refused_full", "lost", "repeated",
                   "normal_streams_closed", "latency_p50_ms", "latency_p99_ms", "latency_max_ms", "slowloris_connects",
                   "slowloris_408", "slow_reader_connects", "ssed_refused_timeout", "ssed_dropped_slow",
                   "metrics_polls", "metrics_failures", "metrics_p99_ms", "metrics_max_ms", "peak_connections",
                   "rss_before_attack_mb", "rss_max_mb", "rss_end_mb", "fds_max", "kernel_tcp_mem_max_mb",
                   "server_cpu_s", "server_cpu_wait_s", "loadgen_cpu_s", "loadgen_cpu_wait_s", "machine_load_avg"]
SOAK_FIGURES = ["subscribers", "duration_s", "events_published", "reconnects", "reconnects_per_s", "events_received",
                "lost", "repeated", "gaps", "malformed", "ssed_dropped_slow", "latency_p50_ms", "latency_p99_ms",
                "rss_baseline_mb", "rss_start_mb", "rss_1min_mb", "rss_end_mb", "rss_max_mb", "rss_end_vs_1min",
                "rss_after_close_mb", "fds_baseline", "fds_peak", "fds_end", "kernel_tcp_mem_max_mb",
                "server_cpu_s", "server_cpu_wait_s", "loadgen_cpu_s", "loadgen_cpu_wait_s", "machine_load_avg"]

# Figures shown per kind of run: (JSON key, label, how repeats combine).
FANOUT_FIGURES = [
    ("deliveries_per_s", "deliveries/s", "mean"),
    ("server_cpu_s_per_m_deliveries", "server CPU s per 1M deliveries", "mean"),
    ("latency_p50_ms", "latency p50 ms", "mean"),
    ("latency_p99_ms", "latency p99 ms", "mean"),
    ("latency_max_ms", "latency max ms", "mean"),
    ("lost", "lost deliveries", "max"),
    ("reordered", "reordered deliveries", "max"),
    ("server_rss_mb", "server RSS MB (end)", "mean"),
    ("server_cpu_s", "server CPU s", "mean"),
    ("publish_per_s", "events published/s", "mean"),
    ("connect_s", "connect time s", "mean"),
    ("loadgen_cpu_pct", "load generator CPU %", "mean"),
]
LATENCY_FIGURES = [
    ("publish_per_s", "events published/s", "mean"),
    ("latency_p50_ms", "latency p50 ms", "mean"),
    ("latency_p99_ms", "latency p99 ms", "mean"),
    ("latency_max_ms", "latency max ms", "mean"),
    ("lost", "lost deliveries", "max"),
    ("reordered", "reordered deliveries", "max"),
    ("server_cpu_s", "server CPU s", "mean"),
    ("server_rss_mb", "server RSS MB (end)", "mean"),
    ("loadgen_cpu_pct", "load generator CPU %", "mean"),
]
IDLE_FIGURES = [
    ("rss_per_sub_bytes", "RSS bytes per idle subscriber", "mean"),
    ("pss_per_sub_bytes", "PSS bytes per idle subscriber", "mean"),
    ("server_rss_idle_mb", "server RSS MB", "mean"),
    ("connect_s", "connect time s", "mean"),
]

# Issue targets, checked against nchan with one worker: (run, key, limit of ssed/nchan-1w, "min"|"max").
TARGETS = [
    ("fanout-10k", "deliveries_per_s", 20.0, "min"),
    ("fanout-10k", "server_cpu_s_per_m_deliveries", 1 / 15, "max"),
    ("idle-mem-10k", "rss_per_sub_bytes", 1 / 20, "max"),
    ("latency-10k@5/s", "latency_p99_ms", 0.6, "max"),
]


def figures_for(run_name):
    if run_name.startswith("idle-mem"):
        return IDLE_FIGURES
    if run_name.startswith("latency"):
        return LATENCY_FIGURES
    return FANOUT_FIGURES


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_checked(command, what, timeout):
    log(f"$ {' '.join(command)}")
    result = subprocess.run(command, cwd=ROOT, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"run.py: {what} failed (exit {result.returncode})")


def build(servers, skip_build):
    if skip_build:
        return
    run_checked(["cargo", "build", "--release", "--manifest-path", LOADGEN_MANIFEST, "--target-dir", LOADGEN_TARGET],
                "building the load generator", 900)
    if "ssed" in servers:
        run_checked(["cargo", "build", "--release", "--bin", "ssed"], "building ssed", 900)


def find_nchan_module():
    for directory in NCHAN_MODULE_DIRS:
        path = os.path.join(directory, "ngx_nchan_module.so")
        if os.path.exists(path):
            return path
    return None


def check_nchan_installed():
    """Returns (nginx path, module path), or exits with what to install."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    module = find_nchan_module()
    if not nginx or not module:
        missing = "nginx" if not nginx else "the nchan module (ngx_nchan_module.so)"
        raise SystemExit(f"run.py: {missing} not found; the nchan comparison needs it.\n"
                         f"  Install it with:  {INSTALL_HINT}\n"
                         f"  or run ssed alone:  python3 benches/run.py --servers ssed")
    return nginx, module


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit():
    """Run in each child before exec: servers and the load generator need ~20k sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


NGINX_CONF = """\
# nginx + nchan for ssed's benchmark, generated by benches/run.py.
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
load_module {module};

events {{
    # More than the descriptor limit on purpose: nchan also takes connection slots for its own
    # use, and with exactly {nofile} one worker starts reusing subscribers' slots near 19k.
    worker_connections {connections};
    multi_accept on;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # The publisher keeps one connection for a whole run.
    keepalive_requests 10000000;
    keepalive_timeout 300s;

    server {{
        listen 127.0.0.1:{port} backlog=4096;

        location = /events {{
            nchan_subscriber eventsource;
            nchan_channel_id $arg_topic;
            # Live events only, like ssed without Last-Event-ID.
            nchan_subscriber_first_message newest;
        }}

        location = /publish {{
            nchan_publisher http;
            nchan_channel_id $arg_topic;
            # The same history as ssed's default (--history 1024).
            nchan_message_buffer_length 1024;
            nchan_message_timeout 1h;
        }}
    }}
}}
"""


class Server:
    """One server process on a free loopback port; stop() kills its whole process group."""

    def __init__(self, name, nchan, ssed_flags=None, extra_flags=()):
        self.extra_flags = list(extra_flags)
        self.name = name
        self.nchan = nchan
        # None: the comparison runs' flags; a list: ssed's defaults plus these.
        self.ssed_flags = ssed_flags
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"ssed-bench-{name}-")
        self.process = None

    def command(self):
        if self.name == "ssed" and self.ssed_flags is not None:
            return [SSED, "--listen", f"127.0.0.1:{self.port}", "-q"] + self.ssed_flags
        if self.name in ("ssed", "ssed-baseline"):
            binary = SSED if self.name == "ssed" else BASELINE
            return [binary, "--listen", f"127.0.0.1:{self.port}", "--max-clients", "60000",
                    "--heartbeat", "0", "--history", "1024", "-q"] + self.extra_flags
        nginx, module = self.nchan
        workers = "1" if self.name == "nchan-1w" else "auto"
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(workers=workers, nofile=nofile, connections=nofile + 10000, dir=self.dir,
                                     module=module, port=self.port))
        return [nginx, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"), "-c", conf, "-g", "daemon off;"]

    def start(self):
        stderr = open(os.path.join(self.dir, "stderr.log"), "w")
        self.process = subprocess.Popen(self.command(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                        stdout=stderr, stderr=stderr, preexec_fn=raise_fd_limit,
                                        start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    time.sleep(0.3)  # nginx workers start after the master listens
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on 127.0.0.1:{self.port} within 15 s")

    def log_tail(self):
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    text += f.read()[-800:]
            except OSError:
                pass
        return text.strip()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.process:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_loadgen(server, run_name, loadgen_args, log_file):
    topics = SELECTOR_TOPICS.get(run_name, TOPIC_ARGS)
    command = [LOADGEN, "bench", "--target", f"127.0.0.1:{server.port}", "--server-pid", str(server.process.pid),
               "--scenario", run_name, "--label", server.name] + topics + loadgen_args
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, preexec_fn=raise_fd_limit)
    log_file.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    log_file.flush()
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed against {server.name}: {result.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


def run_robustness_loadgen(server, run_name, command, log_file, timeout):
    """Runs one robustness scenario. Its JSON line is kept even when the load generator exits 1
    (it does when the verdict is FAIL)."""
    full = [LOADGEN] + command[:1] + ["--target", f"127.0.0.1:{server.port}", "--server-pid",
                                      str(server.process.pid), "--scenario", run_name, "--label", "ssed"] + command[1:]
    result = subprocess.run(full, capture_output=True, text=True, timeout=timeout, preexec_fn=raise_fd_limit)
    log_file.write(f"$ {' '.join(full)}\n{result.stdout}{result.stderr}\n")
    log_file.flush()
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen failed: {result.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


def run_robustness(runs, soak_minutes, out_path, log_path):
    results = []
    with open(out_path, "a") as out, open(log_path, "a") as log_file:
        for run_name, scenario, command, flags in runs:
            command = list(command)
            timeout = 900
            if scenario == "soak":
                command += ["--duration", str(int(soak_minutes * 60))]
                timeout = int(soak_minutes * 60) + 600
            server = Server("ssed", None, flags)
            try:
                server.start()
                log(f"  {run_name}: running (ssed {' '.join(flags) or 'defaults'})")
                figures = run_robustness_loadgen(server, run_name, command, log_file, timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"  {run_name}: FAILED: {e}")
                continue
            finally:
                server.stop()
            results.append(figures)
            out.write(json.dumps(figures) + "\n")
            out.flush()
            log(f"  {run_name}: {figures.get('verdict')} {figures.get('problems', '')}")
            time.sleep(1)
    return results


def print_robustness(results):
    by_name = {r["scenario"]: r for r in results}
    sections = [("chaos", ["chaos"], CHAOS_FIGURES), ("hostile", ["hostile-calm", "hostile"], HOSTILE_FIGURES),
                ("soak", ["soak"], SOAK_FIGURES)]
    for title, names, keys in sections:
        present = [n for n in names if n in by_name]
        if not present:
            continue
        rows = [[key] + [format_value(by_name[n].get(key), [by_name[n].get(key)]) if isinstance(by_name[n].get(key), (int, float))
                         else "-" for n in present] for key in keys]
        header = ["figure"] + present
        if present == ["hostile-calm", "hostile"]:
            header.append("hostile/calm")
            for row, key in zip(rows, keys):
                row.append(ratio(by_name["hostile"].get(key), by_name["hostile-calm"].get(key)))
        rows.append(["verdict"] + [by_name[n].get("verdict", "-") for n in present] + ([""] if len(header) > len(present) + 1 else []))
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        print(f"\n{title}:")
        print(line(header))
        print(line(["-" * w for w in widths]))
        for row in rows:
            print(line(row))
        for n in present:
            for key in ("memory_curve", "worst_seconds", "problems", "first_error"):
                if by_name[n].get(key):
                    print(f"  {n} {key}: {by_name[n][key]}")
    if "hostile" in by_name and "hostile-calm" in by_name:
        calm, hostile = by_name["hostile-calm"].get("latency_p99_ms"), by_name["hostile"].get("latency_p99_ms")
        if calm and hostile:
            verdict = "met" if hostile <= 2 * calm else "NOT met"
            print(f"\nhostile: normal subscribers' p99 {hostile:.3g} ms with attackers, {calm:.3g} ms without: "
                  f"{hostile / calm:.3g}x (target <= 2x) {verdict}")


def one_line_summary(figures):
    if figures["scenario"].startswith("idle-mem"):
        return f"{figures['rss_per_sub_bytes']:.0f} B/subscriber, connected {figures['connected']:.0f}"
    return (f"{figures['deliveries_per_s']:,.0f} deliveries/s, p99 {figures['latency_p99_ms']:.2f} ms, "
            f"lost {figures['lost']:.0f}, reordered {figures['reordered']:.0f}, "
            f"server CPU {figures['server_cpu_s']:.2f} s, loadgen CPU {figures['loadgen_cpu_pct']:.0f}%")


def run_all(runs, servers, repeat, nchan, out_path, log_path):
    results = []  # every JSON line, with the repeat number
    with open(out_path, "w") as out, open(log_path, "w") as log_file:
        # Rounds come first, so that the runs compared within a scenario (the selectors)
        # alternate too, and drifting noise hits them all alike.
        for round_number in range(1, repeat + 1):
            for run_name, _, loadgen_args in runs:
                # Servers alternate within each round so that drifting noise hits all of them.
                for name in servers:
                    if run_name in SELECTOR_TOPICS and name.startswith("nchan"):
                        continue
                    server = Server(name, nchan, extra_flags=SELECTOR_FLAGS.get(run_name, ()))
                    try:
                        server.start()
                        figures = run_loadgen(server, run_name, loadgen_args, log_file)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        log(f"  {run_name} {name} #{round_number}: FAILED: {e}")
                        continue
                    finally:
                        server.stop()
                    figures["round"] = round_number
                    results.append(figures)
                    out.write(json.dumps(figures) + "\n")
                    out.flush()
                    log(f"  {run_name} {name} #{round_number}: {one_line_summary(figures)}")
                    time.sleep(1)  # let closed connections leave the port tables
    return results


def combine(values, how):
    if not values:
        return None
    return max(values) if how == "max" else statistics.mean(values)


def format_value(value, values):
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if len(values) > 1 and max(values) != min(values) and value:
        spread = (max(values) - min(values)) / abs(value) * 100
        text += f" ±{spread / 2:.0f}%"
    return text


def ratio(a, b):
    if a is None or b is None:
        return "-"
    if b == 0:
        return "-" if a == 0 else "inf"
    return f"{a / b:.3g}"


def print_table(results, runs, servers):
    comparisons = [s for s in servers if s != "ssed"] if "ssed" in servers else []
    header = ["run", "figure"] + servers + [f"ssed/{s}" for s in comparisons]
    rows = []
    for run_name, _, _ in runs:
        for key, label, how in figures_for(run_name):
            values = {s: [r[key] for r in results if r["scenario"] == run_name and r["server"] == s
                          and r.get(key) is not None] for s in servers}
            combined = {s: combine(values[s], how) for s in servers}
            if all(v is None for v in combined.values()):
                continue
            row = [run_name, label] + [format_value(combined[s], values[s]) for s in servers]
            row += [ratio(combined["ssed"], combined[s]) for s in comparisons]
            rows.append(row)
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i >= 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    print()
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    print("(mean of the rounds; ±N% is half the spread between rounds; loss and reordering show the worst round)")
    print_targets(results)


def print_targets(results):
    def mean_of(run, server, key):
        values = [r[key] for r in results if r["scenario"] == run and r["server"] == server and r.get(key) is not None]
        return statistics.mean(values) if values else None

    lines = []
    for run, key, limit, kind in TARGETS:
        ssed, nchan = mean_of(run, "ssed", key), mean_of(run, "nchan-1w", key)
        if ssed is None or not nchan:
            continue
        value = ssed / nchan
        ok = value >= limit if kind == "min" else value <= limit
        sign = ">=" if kind == "min" else "<="
        lines.append(f"  {run} {key}: ssed/nchan-1w = {value:.3g} (target {sign} {limit:.3g}) {'met' if ok else 'NOT met'}")
    exact_run, *template_runs = SELECTOR_TOPICS
    exact, cpu_exact = mean_of(exact_run, "ssed", "deliveries_per_s"), mean_of(exact_run, "ssed", "server_cpu_s_per_m_deliveries")
    for run in template_runs:
        template, cpu_template = mean_of(run, "ssed", "deliveries_per_s"), mean_of(run, "ssed", "server_cpu_s_per_m_deliveries")
        if exact and template and cpu_exact and cpu_template:
            lines.append(f"  selectors: {run} / {exact_run}: deliveries/s {template / exact:.3g}, "
                         f"server CPU per delivery {cpu_template / cpu_exact:.3g}")
    bad = [r for r in results if r.get("lost") or r.get("reordered") or r.get("malformed")]
    for r in bad:
        lines.append(f"  {r['scenario']} {r['server']} round {r['round']}: lost {r.get('lost')}, "
                     f"reordered {r.get('reordered')}, malformed {r.get('malformed')} (target 0)")
    if lines:
        print("\ntargets:")
        print("\n".join(lines))


def parse_args():
    parser = argparse.ArgumentParser(description="ssed vs nginx+nchan benchmark (loopback only)")
    parser.add_argument("--scenario", action="append",
                        choices=SCENARIOS + [r[0] for r in RUNS] + [r[0] for r in ROBUSTNESS_RUNS],
                        help="scenario or single run to do (repeatable; default: all)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from {','.join(SERVERS)}")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per figure (default 2)")
    parser.add_argument("--depth", type=int, default=8,
                        help="publish requests in flight (pipelined on one connection), default 8")
    parser.add_argument("--soak-minutes", type=float, default=10,
                        help="publishing time of the soak scenario, default 10 (the full size)")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--baseline", help="another ssed binary, run beside this one as 'ssed-baseline'")
    parser.add_argument("--out", help="JSON lines file (default target/bench/results-DATE.jsonl)")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    unknown = [s for s in servers if s not in SERVERS]
    if unknown or not servers:
        parser.error(f"unknown server(s) {unknown}; choose from {SERVERS}")
    if args.baseline:
        global BASELINE
        BASELINE = os.path.abspath(args.baseline)
        if not os.access(BASELINE, os.X_OK):
            parser.error(f"--baseline {args.baseline}: not an executable")
        servers.append("ssed-baseline")
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be 1..10")
    if not 1 <= args.depth <= 1024:
        parser.error("--depth must be 1..1024")
    if not 0.1 <= args.soak_minutes <= 24 * 60:
        parser.error("--soak-minutes must be 0.1..1440")
    return args, servers


def main():
    args, servers = parse_args()
    chosen = args.scenario or SCENARIOS
    runs = [(name, scenario, loadgen_args + ["--depth", str(args.depth)])
            for name, scenario, loadgen_args in RUNS if name in chosen or scenario in chosen]
    robustness = [r for r in ROBUSTNESS_RUNS if r[0] in chosen or r[1] in chosen]
    if robustness and "ssed" not in servers:
        log("run.py: chaos, hostile and soak run ssed only; add ssed to --servers to run them")
        robustness = []
    nchan = check_nchan_installed() if runs and any(s.startswith("nchan") for s in servers) else None
    build(servers if runs else ["ssed"] if robustness else servers, args.skip_build)
    for binary in [LOADGEN] + ([SSED] if "ssed" in servers else []):
        if not os.path.exists(binary):
            raise SystemExit(f"run.py: {binary} is missing (build failed, or --skip-build without a build)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    out_path = args.out or os.path.join(out_dir, f"results-{stamp}.jsonl")
    log_path = os.path.join(out_dir, f"loadgen-{stamp}.log")
    if runs:
        log(f"runs: {', '.join(r[0] for r in runs)}; servers: {', '.join(servers)}; {args.repeat} round(s); "
            f"publish depth {args.depth}")
        results = run_all(runs, servers, args.repeat, nchan, out_path, log_path)
        print_table(results, runs, servers)
    if robustness:
        log(f"robustness runs (ssed only, once each): {', '.join(r[0] for r in robustness)}"
            + (f"; soak {args.soak_minutes:g} min" if any(r[1] == "soak" for r in robustness) else ""))
        print_robustness(run_robustness(robustness, args.soak_minutes, out_path, log_path))
    print(f"\nJSON lines: {out_path}\nload generator output: {log_path}")


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so every started server is stopped by its `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
