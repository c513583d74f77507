"""Live capture on loopback with real traffic made in the test, both engines; ground truth is
the bytes the test itself sent, and tshark on a copy dumpcap recorded at the same time."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import NEED_TSHARK, capturing, wait_until
from oracle import tshark_conv

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [NEED_TSHARK, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

REQ, RESP, ROUNDS = 1000, 50_000, 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_once(srv: socket.socket) -> None:
    conn, _ = srv.accept()
    with conn:
        for _ in range(ROUNDS):
            got = 0
            while got < REQ:
                got += len(conn.recv(REQ - got))
            conn.sendall(b"r" * RESP)


def talk(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as c:
        for _ in range(ROUNDS):
            c.sendall(b"q" * REQ)
            got = 0
            while got < RESP:
                got += len(c.recv(65536))


@pytest.mark.parametrize("engine,program", [("fast", "tcpdump"), ("fast", "dumpcap"),
                                            ("pyshark", "")])
def test_live_report_matches_what_was_sent(engine, program, tmp_path):
    """Each way tcpwatch captures live: the fast engine over tcpdump (its choice as root) or
    over dumpcap (a user allowed only dumpcap; -w), and pyshark over tshark."""
    port = free_port()
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    ref = tmp_path / "ref.pcapng"
    dump = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", f"tcp port {port}", "-w",
                             str(ref)], stderr=subprocess.DEVNULL)
    tw = subprocess.Popen([sys.executable, "-m", "tcpwatch", "report", "-i", "lo", "-f",
                           f"tcp port {port}", "--duration", "6", "--json", "--engine", engine],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                          env=dict(os.environ, TCPWATCH_CAPTURE=program))
    try:
        if program:  # the program asked for is the one capturing
            wait_until(lambda: any(program in open(f"/proc/{pid}/cmdline").read()
                                   for pid in writing(f"tcp port {port}"))
                       or tw.poll() is not None, 30)
        # both captures running: ours and tcpwatch's dumpcap (pyshark: tshark's) hooked to lo
        wait_until(lambda: len(capturing(f"tcp port {port}")) >= 2 or tw.poll() is not None,
                   30)
        t = threading.Thread(target=serve_once, args=(srv,))
        t.start()
        talk(port)
        t.join(10)
        out, err = tw.communicate(timeout=60)
    finally:
        for p in (tw, dump):
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        srv.close()
    assert tw.returncode == 0, err
    rep = json.loads(out)
    assert rep["engine"] == engine and len(rep["flows"]) == 1
    f = rep["flows"][0]
    assert f["server"]["port"] == port and f["roles_from"] == "syn"
    assert f["state"] == "SF" and f["history"].startswith("ShA")
    assert f["c2s"]["unique_payload_bytes"] == REQ * ROUNDS
    assert f["s2c"]["unique_payload_bytes"] == RESP * ROUNDS
    assert f["handshake"]["irtt"] is not None and f["handshake"]["irtt"] < 0.05
    assert f["s2c"]["rtt"]["samples"] > 0 and f["c2s"]["rtt"]["samples"] > 0
    assert f["handshake"]["client_options"]["sack_permitted"]
    assert f["c2s"]["window"]["scale"] == f["handshake"]["client_options"]["window_scale"]
    # the same connection seen by tshark on dumpcap's copy
    [(_a, _pa, _b, _pb, left, right, total)] = tshark_conv(ref)
    assert total == f["c2s"]["packets"] + f["s2c"]["packets"]
    assert sorted([left, right]) == sorted([f["c2s"]["packets"], f["s2c"]["packets"]])
    leftover = subprocess.run(["pgrep", "-f", f"tcp port {port}"], capture_output=True,
                              text=True).stdout.split()
    assert leftover == [], "a capture process outlived tcpwatch"


def test_live_without_w_dissects_from_memory():
    """No -w: nothing is written; the newest frames stay in memory (bounded by bytes) and one
    is dissected by tshark from a pipe, with its own frame number."""
    from tcpwatch.capture.dissect import dissect_raw
    from tcpwatch.capture.rawring import RawRing
    from tcpwatch.capture.session import Capture

    port = free_port()
    srv = socket.create_server(("127.0.0.1", port))
    cap = Capture("fast", iface="lo", bpf=f"tcp port {port}")
    assert cap.raw is not None and cap.save is None
    cap.start()
    try:
        wait_until(lambda: capturing(f"tcp port {port}"), 30)
        t = threading.Thread(target=serve_once, args=(srv,))
        t.start()
        talk(port)
        t.join()
        recs = []
        end = time.monotonic() + 30  # a deadline under load, not a wait
        for batch in cap.batches(timeout=0.2):
            recs += batch
            if any(r.dport == port and r.plen for r in recs) or time.monotonic() > end:
                break
    finally:
        cap.stop()
        srv.close()
    req = next(r for r in recs if r.dport == port and r.plen)
    held = cap.raw.get(req.num)
    assert held is not None and len(held[2]) <= 1024  # the live snap length without -w
    lines = [text for _depth, text in dissect_raw(*held, req.num)]
    assert f"Frame Number: {req.num}" in lines
    assert any(f"Destination Port: {port}" in x for x in lines), lines
    # bounded by bytes: the oldest frames go first
    ring = RawRing(max_bytes=3000)
    for i in range(1, 11):
        ring.add(i, 1, 0, b"x" * 1000, 1000)
    assert len(ring) == 3 and ring.get(7) is None and ring.get(8) is not None
    assert ring.evicted == 7 and ring.bytes == 3000


def wchar(pid: int) -> int:
    """Bytes the process has written (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as f:
        return int(next(ln for ln in f if ln.startswith("wchar:")).split()[1])


def writing(marker: str) -> list[int]:
    """The capture programs that write packets (-w), not tcpwatch's first check of the
    interface and filter (dumpcap -d, which also opens the interface)."""
    out = []
    for pid in capturing(marker):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"-w" in f.read().split(b"\0"):
                    out.append(pid)
        except OSError:
            continue
    return out


@pytest.mark.parametrize("sig,at_once", [(signal.SIGINT, False), (signal.SIGTERM, False),
                                          (signal.SIGINT, True)])
def test_live_report_stopped_by_a_signal_reports_every_connection(sig, at_once):
    """The fast engine reads a live capture on the report's own thread: the first signal stops
    the capture program, and the packets it still had are analysed (none let go), then the
    report. `at_once`: the signal comes the moment the last connection closes, before libpcap
    has handed its packets on (a block goes when full or fast.BLOCK_S after it began): the
    report reads on for that long, so every packet captured before the stop is in it."""
    from tcpwatch.capture.fast import choose_tool
    if at_once and choose_tool("lo", None, None) != "tcpdump":
        pytest.skip("tcpdump cannot capture here")
    port = free_port()
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    tw = subprocess.Popen([sys.executable, "-m", "tcpwatch", "report", "-i", "lo", "-f",
                           f"tcp port {port}", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    n = 4
    try:
        wait_until(lambda: writing(f"tcp port {port}") or tw.poll() is not None, 30)
        [capture] = writing(f"tcp port {port}")
        before = wchar(capture)
        for _ in range(n):
            t = threading.Thread(target=serve_once, args=(srv,))
            t.start()
            talk(port)
            t.join(10)
        if not at_once:
            # the signal's path alone: the packets seen handed on first (at least 17
            # packets of 60 bytes a connection)
            wait_until(lambda: wchar(capture) - before >= n * 17 * 60, 30)
        tw.send_signal(sig)
        out, err = tw.communicate(timeout=60)
    finally:
        if tw.poll() is None:
            tw.kill()
            tw.wait(10)
        srv.close()
    assert tw.returncode == 0, err
    rep = json.loads(out)
    assert len(rep["flows"]) == n, rep["totals"]
    assert rep["totals"]["dropped_by_tcpwatch"] == 0 and rep["totals"]["dropped"] == 0
    for f in rep["flows"]:
        assert f["state"] == "SF"  # the close as well: the last packets of all
        assert f["c2s"]["unique_payload_bytes"] == REQ * ROUNDS
        assert f["s2c"]["unique_payload_bytes"] == RESP * ROUNDS
    leftover = subprocess.run(["pgrep", "-f", f"tcp port {port}"], capture_output=True,
                              text=True).stdout.split()
    assert leftover == [], "a capture process outlived tcpwatch"
