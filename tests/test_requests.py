"""Requests grouped by service and endpoint (analysis/requests.py): the quantile sketch against
exact percentiles, route templates, and `report --by endpoint --json` on a capture made here
of a real HTTP server, against what the test's own client asked for and the server was told
to do (a 300 ms route, errors, keep-alive and new connections)."""

import http.client
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import wait_until

from tcpwatch.analysis.requests import ACCURACY, Group, Sample, route_template

ROOT = Path(__file__).resolve().parent.parent
SLOW_S = 0.3


def exact(sorted_values: list[float], q: float) -> float:
    """The sample of rank floor(q (n - 1)): the definition DDSketch follows."""
    return sorted_values[int(q * (len(sorted_values) - 1))]


def test_sketch_percentiles_within_its_relative_accuracy():
    rnd = random.Random(7)
    g = Group("service", "x")
    values = []
    for i in range(100_000):
        v = rnd.lognormvariate(-6, 1.5)  # ~2.5 ms median, a long tail
        values.append(v)
        s = Sample()
        s.total, s.start = v, i / 1000
        g.add(s, i * 1_000_000)
    values.sort()
    row = g.row(100_000 * 1_000_000)
    assert row["requests"] == 100_000 and row["max"] == values[-1]
    for q, key in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
        want = exact(values, q)
        assert abs(row[key] - want) <= ACCURACY * want, (key, row[key], want)


def test_sliding_window_counts_only_recent_requests():
    g = Group("service", "x")
    for i in range(120):  # one request a second for two minutes, 10 ms then 1 s
        s = Sample()
        s.total = 0.01 if i < 100 else 1.0
        g.add(s, i * 1_000_000_000)
    now = 119 * 1_000_000_000
    ten = g.row(now, 10)
    assert 10 <= ten["requests"] <= 15 and ten["p50"] == pytest.approx(1.0, rel=ACCURACY)
    assert g.row(now)["requests"] == 120 and g.row(now)["p50"] == pytest.approx(0.01, rel=0.01)


@pytest.mark.parametrize("path,want", [
    ("/users/42", "/users/{id}"),
    ("/users/42/orders/9f1c2e3d4b5a?x=1", "/users/{id}/orders/{id}"),
    ("/o/3fa85f64-5717-4562-b3fc-2c963f66afa6#frag", "/o/{id}"),
    ("/static/app.js", "/static/app.js"),
    ("/deadbeef", "/deadbeef"),  # hex letters only: a word, not an id
    ("/", "/"),
    ("*", "*"),
])
def test_route_template(path, want):
    assert route_template(path) == want


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        if self.path == "/slow":
            threading.Event().wait(SLOW_S)  # the injected delay
        status = 500 if self.path == "/err" else 200
        body = b"x" * (1_000_000 if self.path == "/big" else 100)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def client_plan(port: int) -> dict[str, int]:
    """What the client asks; returns requests per endpoint template."""
    asked: dict[str, int] = {}

    def get(conn, path, template):
        conn.request("GET", path)
        conn.getresponse().read()
        asked[template] = asked.get(template, 0) + 1

    keep = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(5):
        get(keep, "/fast", "GET /fast")
    for n in (17, 42, 7):
        get(keep, f"/items/{n}?v=1", "GET /items/{id}")
    get(keep, "/err", "GET /err")
    get(keep, "/err", "GET /err")
    keep.close()
    for _ in range(3):  # a new connection each
        c = http.client.HTTPConnection("127.0.0.1", port)
        get(c, "/slow", "GET /slow")
        c.close()
    c = http.client.HTTPConnection("127.0.0.1", port)
    get(c, "/big", "GET /big")
    c.close()
    return asked


def hooked(pid: int) -> bool:
    """The process has its packet socket hooked to the interface (conftest.capturing)."""
    from conftest import _packet_sockets
    socks = _packet_sockets()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        return any(os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in socks for fd in fds)
    except OSError:
        return False


def fins(path: Path) -> int:
    from tcpwatch.capture.decode import decode
    from tcpwatch.capture.pcapio import CaptureTruncated, Reader
    n = 0
    with open(path, "rb") as f:
        try:
            r = Reader(f)
            for fr in r:
                rec = decode(fr.link, fr.data, fr.wire_len, fr.ts, 0)
                if not isinstance(rec, int) and rec.flags & 1:
                    n += 1
        except (CaptureTruncated, OSError, ValueError):
            pass
    return n


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("tcpdump"),
                    reason="needs root and tcpdump to capture on loopback")
def test_report_by_endpoint_counts_what_the_client_asked(tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cap = tmp_path / "http.pcap"
    # tcpdump, packet-buffered (-U) in immediate mode: every packet is in the file as soon
    # as it is seen (dumpcap hands on a block at a time and loses the last one when stopped)
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-B", "32768",
                             "-s", "512", "-w", str(cap),
                             f"tcp port {port}"], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: hooked(dump.pid), 30)
        asked = client_plan(port)
        conns = 5
        # every connection's two FINs in the file
        wait_until(lambda: fins(cap) >= 2 * conns, 30)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(20)
        srv.shutdown()
        srv.server_close()
    out = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "-r", str(cap), "--json"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    rep = json.loads(out)
    service = f"127.0.0.1:{port} http"
    eps = {e["name"]: e for e in rep["endpoints"] if e["service"] == service}
    assert {k: e["requests"] for k, e in eps.items()} == asked
    assert {k: e["errors"] for k, e in eps.items()} == {k: 2 if k == "GET /err" else 0
                                                        for k in asked}
    # a new connection for each /slow and /big request, one for the 10 keep-alive requests
    assert eps["GET /slow"]["new_connections"] == 3 and eps["GET /big"]["new_connections"] == 1
    assert eps["GET /fast"]["new_connections"] + eps["GET /items/{id}"]["new_connections"] \
        + eps["GET /err"]["new_connections"] == 1
    [svc] = [s for s in rep["services"] if s["name"] == service]
    assert svc["requests"] == sum(asked.values()) and svc["errors"] == 2
    assert rep["requests_counted"] == sum(asked.values())
    slow = eps["GET /slow"]
    assert abs(slow["think_p50"] - SLOW_S) < 0.005, slow
    assert abs(slow["p99"] - SLOW_S) < 0.1 * SLOW_S, slow
    assert slow["cause"] == "server_think" and slow["badge"] == "THINK"
    # the slowest endpoint by p99 comes first
    first = next(e for e in rep["endpoints"] if e["service"] == service)
    assert first["name"] == "GET /slow"
    # the text table: the same rows
    text = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "-r", str(cap), "--by",
                           "endpoint"], capture_output=True, text=True, cwd=ROOT,
                          check=True).stdout
    line = next(ln for ln in text.splitlines() if "GET /slow" in ln)
    assert line.split()[4] == "3"  # service address, protocol, endpoint (2 words), requests
