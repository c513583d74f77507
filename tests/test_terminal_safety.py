"""Hostile bytes from the wire never reach the terminal: ANSI/OSC escape sequences, Rich markup,
NUL bytes, invalid UTF-8 and a 100 kB request line, in an HTTP path and header, an HTTP status
line, a TLS SNI and a DNS name. The report's text, its JSON and the dashboard (every tab of
the drill-down) show them inert and bounded."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from builders import client_hello, ether, ipv4, pcap_file, tcp_header
from conftest import NEED_TSHARK, pilot_until, tree_labels

from tcpwatch.capture.record import ACK, FIN, PSH, SYN

ROOT = Path(__file__).resolve().parent.parent
EVIL = b"\x1b[31m[bold]x[/bold]\x1b]0;owned\x07\x1b]8;;http://e\x07[link=http://e]l[/link]\x00\xff\xfe\xc3("
LONG_PATH = b"/" + EVIL + b"A" * 100_000  # one 100 kB request line, over many segments
# every C0 control but newline, DEL, and the C1 controls (CSI is U+009B)
CONTROLS = {chr(c) for c in (*range(0x00, 0x0A), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))}


def dns_query(labels: list[bytes], response: bool) -> bytes:
    q = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00" + struct.pack("!HH", 1, 1)
    msg = struct.pack("!HHHHHH", 0x1234, 0x8180 if response else 0x0100, 1, 0, 0, 0) + q
    return struct.pack("!H", len(msg)) + msg


def conversation(cport: int, sport: int, request: bytes, response: bytes) -> list[bytes]:
    c, s = "10.0.0.1", "10.0.0.2"

    def seg(c2s, seq, ack, flags, data=b""):
        src, dst = (c, s) if c2s else (s, c)
        sp, dp = (cport, sport) if c2s else (sport, cport)
        return ether(ipv4(tcp_header(sp, dp, seq, ack, flags) + data, src, dst))
    out = [seg(True, 100, 0, SYN), seg(False, 500, 101, SYN | ACK), seg(True, 101, 501, ACK)]
    seq = 101
    for i in range(0, len(request), 1400):
        chunk = request[i:i + 1400]
        out.append(seg(True, seq, 501, ACK | PSH, chunk))
        seq += len(chunk)
    out.append(seg(False, 501, seq, ACK))
    out.append(seg(False, 501, seq, ACK | PSH, response))
    rseq = 501 + len(response)
    out += [seg(True, seq, rseq, ACK | FIN), seg(False, rseq, seq + 1, ACK | FIN),
            seg(True, seq + 1, rseq + 1, ACK)]
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    frames = conversation(
        40000, 80,
        b"GET " + LONG_PATH + b" HTTP/1.1\r\nHost: " + EVIL + b"\r\nX-Evil: " + EVIL
        + b"\r\n\r\n",
        b"HTTP/1.1 200 " + EVIL + b"\r\nX-Evil: " + EVIL + b"\r\nContent-Length: 0\r\n\r\n")
    frames += conversation(40001, 443, client_hello("\x00" + EVIL.decode("latin-1")
                                                     + ".example"), b"")
    labels = [b"\x1b]0;dns\x07", b"[bold]b[/bold]", b"\x00\xff", b"example"]
    frames += conversation(40002, 53, dns_query(labels, False), dns_query(labels, True))
    path = tmp_path_factory.mktemp("hostile") / "hostile.pcap"
    path.write_bytes(pcap_file(frames))
    return path


def report(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpwatch", "report", *args],
                          capture_output=True, text=True, errors="surrogateescape", cwd=ROOT,
                          timeout=120)


def assert_inert(text: str, longest: int) -> None:
    bad = CONTROLS & set(text)
    assert not bad, sorted(map(hex, map(ord, bad)))
    assert max(map(len, text.splitlines())) <= longest


@pytest.mark.parametrize("engine", ["fast", pytest.param("pyshark", marks=NEED_TSHARK)])
def test_report_text_is_inert_and_bounded(hostile, engine):
    p = report("-r", str(hostile), "--engine", engine)
    assert p.returncode == 0, p.stderr
    assert_inert(p.stdout, 1000)
    # what the bytes were is still readable, escaped; the markup stays literal brackets
    assert "GET /\\x1b[31m[bold]x[/bold]\\x1b]0;owned\\x07" in p.stdout
    assert "dns \\x1b]0;dns\\x07.[bold]b[/bold].\\x00" in p.stdout


@pytest.mark.parametrize("engine", ["fast", pytest.param("pyshark", marks=NEED_TSHARK)])
def test_report_json_is_inert_and_bounded(hostile, engine):
    p = report("-r", str(hostile), "--json", "--engine", engine)
    assert p.returncode == 0, p.stderr
    # JSON escapes controls (\u001b): nothing raw on stdout; one connection per line, and
    # none near the 100 kB the request line had
    assert_inert(p.stdout, 20_000)
    rep = json.loads(p.stdout)
    strings = []

    def walk(v):
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(rep)
    assert max(map(len, strings)) <= 300  # a 100 kB path is kept as its first bytes
    ex = {f["server"]["port"]: f["exchanges"] for f in rep["flows"]}
    assert ex[80][0]["request"]["path"].startswith("/\x1b[31m[bold]x[/bold]")
    assert ex[53][0]["request"]["query"] == "\x1b]0;dns\x07.[bold]b[/bold].\x00\xff.example"
    tls = next(f["tls"] for f in rep["flows"] if f["server"]["port"] == 443)
    assert tls["sni"].startswith("\x00\x1b[31m")


@NEED_TSHARK
def test_dashboard_shows_it_inert(hostile):
    from textual.widgets import DataTable, Tree

    from tcpwatch.capture.session import Capture
    from tcpwatch.monitor import Monitor
    from tcpwatch.ui.app import TcpwatchApp

    async def go():
        app = TcpwatchApp(Monitor(Capture("fast", file=str(hostile))))
        async with app.run_test(size=(200, 50)) as pilot:
            await pilot_until(pilot, lambda: app.caught_up)
            screens = [app.export_screenshot()]
            for fid in (0, 1, 2):
                app.open_flow(fid)
                await pilot_until(pilot, lambda: getattr(app.screen, "version", -1) >= 0)
                tabs = app.screen.query_one("#tabs")
                for key, tab in (("o", "overview"), ("x", "requests"), ("e", "events"),
                                 ("k", "packets")):  # every tab, once it is the one shown
                    await pilot.press(key)
                    await pilot_until(pilot, lambda w=tabs, t=tab: w.active == t)
                    screens.append(app.export_screenshot())
                pk = app.screen.query_one("#pkts", DataTable)
                pk.focus()
                pk.move_cursor(row=3)  # the first data segment: its full dissection
                frame = int(pk.coordinate_to_cell_key((3, 0)).row_key.value)
                await pilot.press("enter")
                await app.workers.wait_for_complete()
                await pilot_until(pilot, lambda f=frame: app.screen.dissected == f)
                tree = app.screen.query_one("#dissection", Tree)
                labels = [lb.plain for lb in tree_labels(tree.root)]
                assert len(labels) > 5
                assert_inert("\n".join(labels), 300)
                screens.append(app.export_screenshot())
                await pilot.press("escape")
            for svg in screens:
                assert not CONTROLS & set(svg)
            joined = "".join(screens)
            assert "[bold]x[/bold]" in joined
    asyncio.run(go())
