"""End to end, as a new user would: `tcpwatch -i lo` in tmux beside a real HTTP server (a route
made slow by an injected delay, a fast route, a large download; keep-alive and new
connections) and a real Redis driven by redis-benchmark. Within 10 s the Services view shows
the slow route first by p99, within 10% of the delay; the Requests view lists its requests
with think time at the delay; the Processes view names the server and client processes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest
from conftest import wait_until
from test_tui_tmux import capture_procs, free_port, keys, pane, tmux, wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root here"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("tmux", "dumpcap", "redis-server",
                                                          "redis-benchmark")),
                       reason="needs tmux, dumpcap, redis-server and redis-benchmark"),
    pytest.mark.timeout(180),
]

DELAY = 0.3  # what the slow route is told to wait, seconds
SERVER = textwrap.dedent("""
    import ctypes, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    ctypes.CDLL(None).prctl(15, b"twe2e-srv", 0, 0, 0)
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True  # as nginx does (tcp_nodelay): no held-back body
        def do_GET(self):
            if self.path.startswith("/slow"):
                time.sleep(float(sys.argv[2]))
            body = b"x" * (2_000_000 if self.path == "/big" else 300)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")
CLIENT = textwrap.dedent("""
    import ctypes, http.client, sys, time
    ctypes.CDLL(None).prctl(15, b"twe2e-cli", 0, 0, 0)
    port, end = int(sys.argv[1]), time.time() + float(sys.argv[2])
    keep = http.client.HTTPConnection("127.0.0.1", port)
    n = 0
    while time.time() < end:
        for path in ("/fast", f"/users/{n}", "/fast", f"/slow?id={n}"):
            keep.request("GET", path)
            keep.getresponse().read()
        fresh = http.client.HTTPConnection("127.0.0.1", port)  # a new connection
        fresh.request("GET", "/big")
        fresh.getresponse().read()
        fresh.close()
        n += 1
""")

DUR = re.compile(r"(\d+(?:\.\d+)?)(µs|ms|s)\b")


def seconds(token: tuple[str, str]) -> float:
    v, unit = token
    return float(v) * {"µs": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def table_rows(screen: str, header: str) -> list[str]:
    """The lines of the table below its header line (starting with `header`)."""
    lines = screen.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.strip().startswith(header))
    return [ln for ln in lines[i + 1:] if ln.strip()]


def test_services_requests_processes_on_real_servers(tmp_path):
    hport, rport = free_port(), free_port()
    session = f"twv-{uuid.uuid4().hex[:8]}"
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-c", SERVER, str(hport), str(DELAY)]))
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL))
        subprocess.run([*tmux(session), "new-session", "-d", "-s", session,
                        "-x", "160", "-y", "40"], check=True)
        keys(session, f"{sys.executable} -m tcpwatch -i lo -f 'tcp port {hport} or tcp port "
                      f"{rport}'; echo TCPWATCH_EXIT=$?", "Enter")
        wait_for(session, "flows", 30)  # the capture runs
        procs.append(subprocess.Popen([sys.executable, "-c", CLIENT, str(hport), "60"]))
        # redis-benchmark in rounds (unthrottled it would take both cores from everyone)
        procs.append(subprocess.Popen(
            ["sh", "-c", f"while :; do redis-benchmark -p {rport} -n 2000 -c 1 -t get,set -q;"
                         " sleep 0.5; done"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))
        # Services, per endpoint: the slow route first by p99, within 10% of the delay
        keys(session, "3")
        keys(session, "e")

        def slow_first() -> str | None:
            sc = pane(session)
            if "per endpoint" not in sc or "updating" in sc or "service" not in sc:
                return None
            rows = table_rows(sc, "service")
            if not rows or "GET /slow" not in rows[0]:
                return None
            reqs = rows[0].split("@127.0.0.1:")[1].split()[1]
            return rows[0] if int(reqs) >= 5 else None  # a few, for a percentile
        row = wait_until(slow_first, 10, step=0.25)
        durs = [seconds(t) for t in DUR.findall(row)]  # p50, p90, p99, max, think, net
        assert abs(durs[2] - DELAY) <= 0.1 * DELAY, row
        screen = pane(session)
        assert "GET /users/{id}" in screen and "GET /fast" in screen and "GET /big" in screen
        assert "SET" in screen or "GET  @127.0.0.1:" + str(rport) in screen  # Redis commands
        # Requests: slowest first, the slow route's requests with think at the delay
        keys(session, "2")

        def slow_requests() -> list[str] | None:
            sc = pane(session)
            if "Requests" not in sc or "updating" in sc or "request" not in sc:
                return None
            rows = [r for r in table_rows(sc, "time") if "GET /slow" in r]
            return rows if len(rows) >= 2 else None
        for r in wait_until(slow_requests, 15, step=0.25)[:5]:
            total, _net, think = (seconds(t) for t in DUR.findall(r)[:3])
            assert abs(think - DELAY) <= 0.01, r  # the server's own time: the delay
            assert think <= total
        # Processes: the server and the client by name, and Redis
        keys(session, "4")
        wait_until(lambda: all(n in pane(session) for n in ("twe2e-srv", "twe2e-cli",
                                                             "redis-server")), 15, step=0.25)
        keys(session, "q")
        wait_for(session, "TCPWATCH_EXIT=0", 20)
        assert not capture_procs(hport), "a capture process survived"
    finally:
        for p in procs:
            if p.args[0] == "sh":  # the benchmark loop: its whole session
                os.killpg(p.pid, 9)
            p.kill()
            p.wait()
        subprocess.run([*tmux(session), "kill-session", "-t", session], capture_output=True)
        for line in capture_procs(hport):  # never leave a capture behind, even on failure
            subprocess.run(["kill", line.split()[0]], capture_output=True)
