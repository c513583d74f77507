"""A SYN flood: 100,000 half-open attempts from random ports. Memory stays bounded by the flow
cap (asserted by counts: flows kept, evictions), the table gets one summary row per
destination instead of 100,000 rows, and every frame is accounted for:
packets = TCP + non-TCP + undecodable."""

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from builders import ether, ipv4, tcp_header
from conftest import NEED_TSHARK, pilot_until, wait_until

from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.fast import iter_file
from tcpwatch.capture.record import ACK, FIN, PSH, SYN, CaptureStats
from tcpwatch.capture.session import Capture
from tcpwatch.monitor import Monitor

ROOT = Path(__file__).resolve().parent.parent
N_SYN = 100_000
CAP = 5_000
TARGETS = (("10.9.0.1", 80), ("10.9.0.2", 443))  # 75% and 25% of the attempts


def _frames():
    """(frame, kind): the flood, one complete connection, UDP/ARP, and broken frames."""
    rnd = random.Random(7)
    out = []
    for i in range(N_SYN):
        dst, port = TARGETS[0] if i % 4 else TARGETS[1]
        src = f"198.51.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
        out.append(ether(ipv4(tcp_header(sport=rnd.randrange(1024, 65536), dport=port,
                                          seq=rnd.getrandbits(32), flags=SYN),
                              src=src, dst=dst)))
    c, s = "10.1.0.1", "10.9.0.3"
    conv = [(c, s, 50000, 8080, 100, 0, SYN), (s, c, 8080, 50000, 900, 101, SYN | ACK),
            (c, s, 50000, 8080, 101, 901, ACK), (c, s, 50000, 8080, 101, 901, PSH | ACK),
            (s, c, 8080, 50000, 901, 106, FIN | ACK), (c, s, 50000, 8080, 106, 902, FIN | ACK),
            (s, c, 8080, 50000, 902, 107, ACK)]
    for i, (a, b, sp, dp, seq, ack, fl) in enumerate(conv):
        body = b"hello" if i == 3 else b""
        out.insert(1000 + 5 * i, ether(ipv4(tcp_header(sport=sp, dport=dp, seq=seq, ack=ack,
                                                       flags=fl) + body, src=a, dst=b)))
    udp = ether(ipv4(struct.pack("!HHHH", 5353, 5353, 8, 0), proto=17))
    arp = ether(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, ethertype=0x0806)
    short = ether(b"\x45\x00")  # an IPv4 header cut after two bytes
    out[2000:2000] = [udp] * 30 + [arp] * 20 + [short] * 10
    return out


@pytest.fixture(scope="module")
def flood(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flood") / "synflood.pcap"
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for i, f in enumerate(_frames()):
        t = 1_700_000_000_000_000 + i * 20  # microseconds: 50k attempts per second
        parts.append(struct.pack("<IIII", t // 10**6, t % 10**6, len(f), len(f)) + f)
    path.write_bytes(b"".join(parts))
    return path


def test_flow_cap_bounds_memory_by_counts(flood):
    evicted = []
    t = FlowTable(max_flows=CAP, on_evict=evicted.append)
    st = CaptureStats()
    peak = 0
    for r in iter_file(str(flood), st):
        t.feed(r)
        peak = max(peak, len(t.flows))
    assert peak == CAP and len(t.flows) <= CAP
    assert len(t.active) <= CAP  # the lookup never outgrows the kept flows
    assert t.next_id == N_SYN + 1
    assert t.evicted.flows == len(evicted) == N_SYN + 1 - len(t.flows)
    # what left is added up, not lost: every TCP packet is in a kept flow or the evicted sum
    kept = sum(f.dirs[0].packets + f.dirs[1].packets for f in t.flows.values())
    assert kept + t.evicted.packets == st.tcp == N_SYN + 7
    # the finished connection went first (it is closed); it is not among the kept flows
    assert not any(f.server[1] == 8080 for f in t.flows.values())
    assert t.evicted.states["SF"] == 1
    assert t.half_open() == {"10.9.0.1:80": 75_000, "10.9.0.2:443": 25_000}
    # accounting: every frame is TCP, other, or undecodable
    assert (st.packets, st.tcp, st.non_tcp, st.undecodable) == (N_SYN + 67, N_SYN + 7, 50, 10)


@NEED_TSHARK
def test_report_summarises_the_flood(flood):
    p = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "-r", str(flood),
                        "--json", "--max-flows", str(CAP)], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    tot = rep["totals"]
    assert tot["packets"] == tot["tcp_packets"] + tot["non_tcp"] + tot["undecodable"]
    # tshark agrees on the frames, and on the conversations (one per attempt, plus one)
    frames = subprocess.run(["tshark", "-r", str(flood), "-T", "fields", "-e", "frame.number",
                             "-Y", "tcp"], capture_output=True, text=True, check=True)
    assert tot["tcp_packets"] == len(frames.stdout.split())
    assert tot["flows_seen"] == N_SYN + 1
    assert tot["flows"] == len(rep["flows"]) <= CAP
    assert rep["evicted"]["flows"] == N_SYN + 1 - tot["flows"]
    assert rep["half_open"] == {"10.9.0.1:80": 75_000, "10.9.0.2:443": 25_000}
    text = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "-r", str(flood),
                           "--max-flows", str(CAP)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300).stdout
    assert "half-open attempts (SYN, no answer) by destination" in text
    assert "10.9.0.1:80  75,000" in text and "10.9.0.2:443  25,000" in text
    assert f"{rep['evicted']['flows']:,} connections past the flow cap were evicted" in text
    assert text.count(" S0 ") == 0  # no attempt listed one by one
    assert "100,067 packets = TCP 100,007 + non-TCP 50 + undecodable 10" in text


def test_dashboard_folds_the_flood_per_destination(flood):
    m = Monitor(Capture("fast", file=str(flood)), mode="file", max_flows=CAP)
    m.start()
    try:
        # the first snapshot published after the end of the file has every row rebuilt
        s = wait_until(lambda: m.latest if m.latest is not None and m.latest.done else None,
                       120)
        assert (s.packets, s.tcp, s.non_tcp, s.undecodable) == (N_SYN + 67, N_SYN + 7, 50, 10)
        assert s.flows_total <= CAP and s.evicted == N_SYN + 1 - s.flows_total
        # bounded per-flow state beside the table
        assert len(m._rows) <= CAP and len(m._rates) <= CAP
        # the packet list is the newest of the capture, within its budget in bytes
        assert m.live.kept_bytes <= m.live.keep_bytes and len(m.live.packets) <= s.packets
        folded = {r.server: r for r in s.rows if r.id < 0}
        assert set(folded) == {"10.9.0.1:80", "10.9.0.2:443"}
        assert folded["10.9.0.1:80"].client.startswith("75,000 half-open")
        assert folded["10.9.0.1:80"].badges == ("FLOOD",)
        assert s.matched == len(s.rows) == 2  # the evicted SF connection is gone; no S0 rows
        # a filter lists the attempts one by one again (cut to the view's limit)
        from dataclasses import replace
        m.view = replace(m.view, filter="state:S0 port:443")
        m.poke()
        s = wait_until(lambda: m.latest if m.latest.view == m.view else None)
        assert all(r.id >= 0 and r.state == "S0" and r.sport == 443 for r in s.rows)
        assert len(s.rows) == 200 and s.hidden == s.matched - 200 > 0
    finally:
        m.stop()


def test_pilot_enter_on_a_folded_row_filters(flood):
    import asyncio

    from tcpwatch.ui.app import TcpwatchApp

    async def go():
        m = Monitor(Capture("fast", file=str(flood)), mode="file", max_flows=CAP)
        app = TcpwatchApp(m)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot_until(pilot, lambda: app.caught_up, 120)
            from textual.widgets import DataTable
            table = app.screen.query_one("#flows", DataTable)
            keys = [k.value for k in table.rows]
            assert len(keys) == 2 and all(int(k) < 0 for k in keys)
            table.focus()
            table.move_cursor(row=0)
            await pilot.press("enter")
            await pilot_until(pilot, lambda: m.view.filter.startswith("state:S0 addr:10.9.0."))
            # and the table follows: the attempts listed one by one, no folded row left
            await pilot_until(pilot, lambda: m.latest.view == m.view and app.caught_up)
            keys = [int(k.value) for k in table.rows]
            assert keys and all(k >= 0 for k in keys)
            hdr = str(app.screen.query_one("#hdr").render())
            assert "100,067 pkts = 100,007 tcp + 50 other + 10 bad" in hdr
            assert "evicted" in hdr
    asyncio.run(go())
