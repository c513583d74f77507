"""Faults while capturing live: dumpcap or tshark killed mid-capture, the interface removed, the
disk filling up under -w. The dashboard stays up and says what happened in one line, every
connection seen so far is kept, no capture process is left behind; a full disk stops the
saved copy, never the capture."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import capturing, pilot_until
from conftest import wait_until as wait

from tcpwatch.capture.session import Capture
from tcpwatch.monitor import Monitor

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dumpcap"),
                                 reason="live capture needs root and dumpcap here"),
              pytest.mark.timeout(120)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Traffic:
    """A loopback echo server and a client making a short connection every 50 ms (or one
    bulk transfer), until stopped."""

    def __init__(self, port: int, bulk: bool = False) -> None:
        self.port, self.bulk = port, bulk
        self.stop = threading.Event()
        self.srv = socket.create_server(("127.0.0.1", port))
        self.srv.settimeout(0.2)
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._serve, self._client)]
        for t in self.threads:
            t.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        with c:
            c.settimeout(1)
            try:
                while data := c.recv(65536):
                    if not self.bulk:
                        c.sendall(data)
            except OSError:
                pass

    def _client(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if self.bulk:
                        while not self.stop.is_set():
                            s.sendall(b"x" * 65536)
                    else:
                        s.sendall(b"ping")
                        s.recv(10)
            except OSError:
                pass
            time.sleep(0.05)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=3)
        self.srv.close()


def capture_procs(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines()
            if any(tool in ln for tool in ("tcpdump", "dumpcap", "tshark"))]


@pytest.mark.parametrize("engine,victim", [("fast", "tcpdump"), ("pyshark", "tshark")])
def test_capture_killed_mid_capture_keeps_every_flow(engine, victim):
    port = free_port()
    marker = f"tcp port {port}"
    traffic = Traffic(port)
    m = Monitor(Capture(engine, iface="lo", bpf=marker), mode="live")
    m.start()
    try:
        wait(lambda: m.latest is not None and len(m.latest.rows) >= 5)
        # the fast engine's own: tcpdump (root, with tcpdump on PATH: fast.choose_tool);
        # pyshark's tshark reads from a dumpcap of its own
        tool = "tcpdump" if engine == "fast" else "dumpcap"
        dumpcap = [ln.split()[0] for ln in capture_procs(marker) if tool in ln]
        assert dumpcap, capture_procs(marker)
        if victim == "tshark":  # pyshark pipes its own dumpcap into a tshark of ours
            pids = subprocess.run(["pgrep", "-P", str(os.getpid()), "tshark"],
                                  capture_output=True, text=True).stdout.split()
            assert pids
        else:
            pids = dumpcap
        subprocess.run(["kill", "-KILL", *pids], check=True)
        s = wait(lambda: m.latest if m.latest is not None and m.latest.done else None)
        before = {r.id for r in s.rows}
        assert s.error is not None and f"{victim} was killed (signal 9)" in s.error
        assert "what was seen is kept" in s.error
        assert len(before) >= 5 and s.flows_total >= len(before)
        # still answering: a view change gets a fresh snapshot with the same flows
        seq = s.seq
        m.poke()
        s2 = wait(lambda: m.latest if m.latest.seq > seq else None)
        assert {r.id for r in s2.rows} >= before
        wait(lambda: not capture_procs(marker), 10)  # nothing left behind
    finally:
        traffic.close()
        m.stop()
    assert not capture_procs(marker)


def test_dashboard_stays_up_when_its_capture_program_dies():
    from tcpwatch.ui.app import TcpwatchApp
    port = free_port()
    marker = f"tcp port {port}"
    traffic = Traffic(port)

    async def go():
        m = Monitor(Capture("fast", iface="lo", bpf=marker), mode="live")
        app = TcpwatchApp(m)
        async with app.run_test(size=(180, 40)) as pilot:
            await pilot_until(pilot, lambda: m.latest is not None and len(m.latest.rows) >= 3)
            pids = [ln.split()[0] for ln in capture_procs(marker)]
            subprocess.run(["kill", "-KILL", *pids], check=True)
            await pilot_until(pilot, lambda: app.caught_up)  # the capture's end, on screen
            status = str(app.screen.query_one("#status").render())
            assert "tcpdump was killed (signal 9)" in status
            from textual.widgets import DataTable
            rows = app.screen.query_one("#flows", DataTable).row_count
            assert rows >= 3
            await pilot.press("s")  # still answering keys: the new sort, applied
            await pilot_until(pilot, lambda: m.latest.view == m.view and app.caught_up)
            assert app.screen.query_one("#flows", DataTable).row_count == rows
    try:
        asyncio.run(go())
    finally:
        traffic.close()
    assert not capture_procs(marker)


def test_interface_going_away_is_one_line_and_keeps_the_report():
    a, b = f"twa{uuid.uuid4().hex[:6]}", f"twb{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.254.77.1/24", "dev", a], check=True)
        for x in (a, b):
            subprocess.run(["ip", "link", "set", x, "up"], check=True)
        # a neighbour that never answers: the SYNs leave without waiting for ARP
        subprocess.run(["ip", "neigh", "add", "10.254.77.2", "lladdr", "02:00:00:00:77:02",
                        "dev", a], check=True)
        # (only TCP: the new veth's own IPv6 chatter must not count as the SYN written below)
        p = subprocess.Popen([sys.executable, "-m", "tcpwatch", "report", "-i", a, "-f",
                              "tcp port 80", "--duration", "30"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=dict(os.environ, TCPWATCH_CAPTURE="tcpdump"))
        wait(lambda: capturing(a) or p.poll() is not None, 30)  # its capture sees packets
        [pid] = capturing(a)
        # tcpdump's one line on stderr ("tcpdump: listening on ...", ~80 bytes) and the file
        # header come before any packet
        wait(lambda: wchar(pid) >= 40, 30)
        written = wchar(pid)
        s = socket.socket()
        s.settimeout(0.3)
        try:  # SYNs out of the veth, to an address nobody answers for
            s.connect(("10.254.77.2", 80))
        except OSError:
            pass
        s.close()
        # the SYNs handed on by libpcap (a block at a time: when full, or 1 s after its
        # first packet) and written down the pipe before the interface goes (what libpcap
        # has not handed on when it goes is lost with it)
        wait(lambda: wchar(pid) - written >= 16 + 54, 30)  # one SYN (the file header: 24)
        subprocess.run(["ip", "link", "del", a], check=True)
        out, err = p.communicate(timeout=20)
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)
    lines = [ln for ln in err.splitlines() if not ln.startswith("tcpwatch: note:")]
    assert p.returncode == 2 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"tcpwatch: interface '{a}' went away")
    assert "what was seen is kept" in lines[0]
    assert "10.254.77.2:80" in out  # the SYNs seen before it went are reported
    assert not capture_procs(a)


def test_disk_full_under_w_stops_the_file_not_the_capture(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    port = free_port()
    marker = f"tcp port {port}"
    traffic = None
    m = None
    try:
        saved = mnt / "saved.pcapng"
        m = Monitor(Capture("fast", iface="lo", bpf=marker, save=str(saved)), mode="live")
        m.start()
        traffic = Traffic(port, bulk=True)
        s = wait(lambda: m.latest if m.latest is not None and any(
            "No space left on device" in n for n in m.latest.notes) else None, 30)
        note = next(n for n in s.notes if "No space" in n)
        assert note == f"{saved}: writing stopped: No space left on device"
        assert not s.done and s.error is None  # the capture goes on
        n0 = s.packets
        s2 = wait(lambda: m.latest if m.latest.packets > n0 + 100 else None, 20)
        assert not s2.done and any("No space" in n for n in s2.notes)
        assert saved.stat().st_size <= 256 * 1024
    finally:
        if traffic is not None:
            traffic.close()
        if m is not None:
            m.stop()
        subprocess.run(["umount", str(mnt)], capture_output=True)
    assert not capture_procs(marker)


def wchar(pid: int) -> int:
    """Bytes the process has written (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as f:
        return int(next(ln for ln in f if ln.startswith("wchar:")).split()[1])
