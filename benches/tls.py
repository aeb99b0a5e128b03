#!/usr/bin/env python3
"""HTTPS, side by side in one run: what encryption costs ssed, ssed against nginx terminating
TLS in front of it, and TLS handshakes.

    python3 benches/tls.py                          # every part, once
    python3 benches/tls.py --part plain --part nginx --skip-build

Parts (each compares within itself, in one run, servers alternating):
- plain: ssed over HTTPS against ssed in plain HTTP: fan-out to 1k and 10k subscribers
  (deliveries/s, server CPU per delivery), p99 latency at 5 events/s to 10k, memory per idle
  subscriber.
- nginx: ssed over HTTPS against ssed behind examples/nginx/ssed.conf (nginx ending TLS, one
  worker, plain HTTP/1.1 to ssed): deliveries per second and per server CPU-second (nginx's and
  ssed's together), at 1k and 9k subscribers (9k: nginx holds two descriptors per stream, and a
  process may have 20,000). Events are published to ssed directly in both.
- handshakes: full and resumed TLS handshakes against one ssed loop: handshakes per second, and
  per server CPU-second (what the loop sustains when it does nothing else).
- storm: p99 delivery latency to 10k subscribers at 5 events/s, calm, and while 1,000 clients
  handshake at once every 2 s.

The test CA and the server's certificate (ECDSA P-256, as most sites now have) are made with
openssl in a temporary directory. Standard library only; servers are stopped on exit.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (benches/run.py)

BASE_FLAGS = ["--max-clients", "60000", "--heartbeat", "0", "--history", "1024"]
FANOUT = ["--rate", "max", "--duration", "10", "--size", "200", "--depth", "8"]
LATENCY = ["--rate", "5", "--duration", "10", "--size", "200", "--depth", "8"]
PARTS = ["plain", "nginx", "handshakes", "storm"]


def make_pki(directory):
    """A CA and a server certificate for localhost and 127.0.0.1 signed by it."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=ssed bench CA", "-keyout", "ca.key", "-out", "ca.pem")
    openssl("genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "server.key")
    openssl("req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr")
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem")
    return {name: os.path.join(directory, name) for name in ("ca.pem", "server.pem", "server.key")}


def tls_flags(pki):
    return ["--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"]]


def loadgen(command, log_file, timeout=300):
    run.log(f"$ {' '.join(command)}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, preexec_fn=run.raise_fd_limit)
    log_file.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    log_file.flush()
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed: {result.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


def bench(target, pids, label, scenario, args, log_file, subscriber_target=None, tls_ca=None, publish_tls=False):
    command = [run.LOADGEN, "bench", "--target", f"127.0.0.1:{target}", "--server-pid", ",".join(map(str, pids)),
               "--scenario", scenario, "--label", label] + run.TOPIC_ARGS + args
    if subscriber_target:
        command += ["--subscriber-targets", f"127.0.0.1:{subscriber_target}"]
    if tls_ca:
        command += ["--tls-ca", tls_ca]
        # Decrypting takes the load generator about as much CPU as encrypting takes ssed:
        # more subscriber processes, so that the client is not what limits a run.
        command += ["--per-process", "2500"]
    if publish_tls:
        command += ["--publish-tls"]
    figures = loadgen(command, log_file)
    if figures.get("server_cpu_s"):
        figures["deliveries_per_server_cpu_s"] = figures.get("deliveries", 0) / figures["server_cpu_s"]
    return figures


class Nginx:
    """examples/nginx/ssed.conf, its placeholders replaced, in front of a plain ssed."""

    def __init__(self, pki, upstream_port):
        self.dir = tempfile.mkdtemp(prefix="ssed-bench-nginx-")
        self.port = run.free_port()
        example = open(os.path.join(run.ROOT, "examples", "nginx", "ssed.conf")).read()
        for placeholder, value in [
            ("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};"),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2 backlog=4096;"),
            ("listen 80;", f"listen 127.0.0.1:{run.free_port()};"),
            ("/etc/ssl/certs/sse.example.com.pem", pki["server.pem"]),
            ("/etc/ssl/private/sse.example.com.key", pki["server.key"]),
        ]:
            assert example.count(placeholder) == 1, placeholder
            example = example.replace(placeholder, value)
        with open(os.path.join(self.dir, "ssed.conf"), "w") as f:
            f.write(example)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        d = self.dir
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"worker_processes 1;\nworker_rlimit_nofile {nofile};\ndaemon off;\npid {d}/nginx.pid;\n"
                    f"error_log {d}/error.log warn;\nevents {{ worker_connections {nofile}; multi_accept on; }}\n"
                    f"http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n"
                    f" fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n"
                    f" include {d}/ssed.conf;\n}}\n")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen([nginx, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e",
                                         os.path.join(d, "error.log")], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=run.raise_fd_limit, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                import socket
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    time.sleep(0.3)
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def with_server(flags, body):
    server = run.Server("ssed", None, BASE_FLAGS + flags)
    try:
        server.start()
        return body(server)
    finally:
        server.stop()
        time.sleep(1)


def part_plain(pki, log_file):
    rows = []
    for name, args in [("fanout-1k", ["--subscribers", "1000"] + FANOUT),
                       ("fanout-10k", ["--subscribers", "10000"] + FANOUT),
                       ("latency-10k@5/s", ["--subscribers", "10000"] + LATENCY),
                       ("idle-mem-10k", ["--subscribers", "10000", "--idle", "--settle", "2"])]:
        plain = with_server([], lambda s: bench(s.port, [s.process.pid], "plain", name, args, log_file))
        tls = with_server(tls_flags(pki), lambda s: bench(s.port, [s.process.pid], "tls", name, args, log_file,
                                                          tls_ca=pki["ca.pem"], publish_tls=True))
        rows.append((name, plain, tls))
    keys = [("deliveries_per_s", "deliveries/s"), ("server_cpu_s_per_m_deliveries", "server CPU s per 1M deliveries"),
            ("latency_p50_ms", "latency p50 ms"), ("latency_p99_ms", "latency p99 ms"), ("lost", "lost"),
            ("reordered", "reordered"), ("server_rss_mb", "server RSS MB"), ("loadgen_cpu_pct", "load generator CPU %"),
            ("rss_per_sub_bytes", "RSS bytes per idle subscriber")]
    table("ssed over HTTPS against ssed in plain HTTP", ["plain", "https", "https/plain"], rows, keys)
    return rows


def part_nginx(pki, log_file):
    rows = []
    for name, args in [("fanout-1k", ["--subscribers", "1000"] + FANOUT),
                       ("fanout-9k", ["--subscribers", "9000"] + FANOUT)]:
        def behind_nginx(upstream):
            nginx = Nginx(pki, upstream.port)
            try:
                return bench(upstream.port, [upstream.process.pid, nginx.process.pid], "nginx+ssed", name, args,
                             log_file, subscriber_target=nginx.port, tls_ca=pki["ca.pem"])
            finally:
                nginx.stop()
        proxied = with_server([], behind_nginx)
        alone = with_server(tls_flags(pki), lambda s: bench(s.port, [s.process.pid], "ssed", name, args, log_file,
                                                            tls_ca=pki["ca.pem"], publish_tls=True))
        rows.append((name, proxied, alone))
    keys = [("deliveries_per_s", "deliveries/s"), ("deliveries_per_server_cpu_s", "deliveries per server CPU-second"),
            ("server_cpu_s_per_m_deliveries", "server CPU s per 1M deliveries"), ("latency_p99_ms", "latency p99 ms"),
            ("lost", "lost"), ("server_rss_mb", "server RSS MB")]
    table("ssed over HTTPS against nginx (TLS) in front of ssed", ["nginx+ssed", "ssed https", "ssed/nginx+ssed"],
          rows, keys)
    return rows


def part_handshakes(pki, log_file):
    rows = []

    def measure(server):
        out = []
        for kind, extra in [("full", []), ("resumed", ["--resume"])]:
            figures = loadgen([run.LOADGEN, "handshakes", "--target", f"127.0.0.1:{server.port}", "--tls-ca",
                               pki["ca.pem"], "--server-pid", str(server.process.pid), "--duration", "10",
                               "--concurrency", "8", "--scenario", f"handshakes-{kind}", "--label", "ssed"] + extra,
                              log_file)
            out.append((kind, figures))
        return out
    for kind, figures in with_server(tls_flags(pki), measure):
        rows.append((kind, figures))
        print(f"handshakes {kind}: {figures['handshakes_per_s']:.0f}/s achieved, "
              f"{figures['handshakes_per_server_cpu_s']:.0f} per server CPU-second "
              f"({figures['server_cpu_ms_per_handshake']:.3f} ms each), resumed {figures['resumed']:.0f} of "
              f"{figures['handshakes']:.0f}, failed {figures['failed']:.0f}")
    return rows


def part_storm(pki, log_file):
    rows = []
    args = ["--subscribers", "10000"] + LATENCY
    calm = with_server(tls_flags(pki), lambda s: bench(s.port, [s.process.pid], "calm", "latency-10k@5/s", args,
                                                       log_file, tls_ca=pki["ca.pem"], publish_tls=True))
    storm = with_server(tls_flags(pki), lambda s: bench(s.port, [s.process.pid], "storm", "latency-10k@5/s+storm",
                                                        args + ["--storm", "1000", "--storm-every", "2"], log_file,
                                                        tls_ca=pki["ca.pem"], publish_tls=True))
    rows.append(("latency-10k@5/s", calm, storm))
    keys = [("latency_p50_ms", "latency p50 ms"), ("latency_p99_ms", "latency p99 ms"),
            ("latency_max_ms", "latency max ms"), ("lost", "lost"), ("storms", "storms of 1,000 handshakes"),
            ("storm_handshakes", "storm handshakes completed"), ("server_cpu_s", "server CPU s")]
    table("p99 delivery latency while 1,000 clients handshake at once", ["calm", "storm", "storm/calm"], rows, keys)
    return rows


def table(title, header, rows, keys):
    print(f"\n{title} (load average {os.getloadavg()[0]:.2f}):")
    lines = [["run", "figure"] + header]
    for name, a, b in rows:
        for key, label in keys:
            if a.get(key) is None and b.get(key) is None:
                continue
            va, vb = a.get(key), b.get(key)
            lines.append([name, label, run.format_value(va, [va]), run.format_value(vb, [vb]), run.ratio(vb, va)])
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(lines[0]))]
    for i, row in enumerate(lines):
        print("  ".join(str(c).rjust(w) if j >= 2 else str(c).ljust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description="ssed over HTTPS: costs and comparisons (loopback only)")
    parser.add_argument("--part", action="append", choices=PARTS, help="part to run (repeatable; default: all)")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--ssed", help="the ssed binary to run (default target/release/ssed)")
    args = parser.parse_args()
    if args.ssed:
        run.SSED = os.path.abspath(args.ssed)
    parts = args.part or PARTS
    run.build(["ssed"], args.skip_build)
    directory = tempfile.mkdtemp(prefix="ssed-bench-pki-")
    out_dir = os.path.join(run.ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(out_dir, f"tls-{time.strftime('%Y%m%d-%H%M%S')}.log")
    try:
        pki = make_pki(directory)
        with open(log_path, "w") as log_file:
            for part in parts:
                {"plain": part_plain, "nginx": part_nginx, "handshakes": part_handshakes,
                 "storm": part_storm}[part](pki, log_file)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"\nload generator output: {log_path}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
