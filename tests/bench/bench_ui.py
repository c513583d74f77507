"""How the dashboard copes with many connections: builds a capture of N short HTTP-like
connections (handshake, request, response, FIN both ways), loads it in the real app (pilot,
real monitor thread) and measures snapshot build time, the UI's apply time and the latency
from a key press (toggle problems-only, change sort) to the updated table, and from a key
that switches views (1-4, e) to the first paint of the new view's table.
Usage: python tests/bench/bench_ui.py [N ...]   (default: 1000 10000 50000)

       python tests/bench/bench_ui.py --during FILE
measures while FILE is being read at full speed (the capture thread never waits), with the
monitor in the UI's own process: key press -> updated table, every 150 ms until the file is
read. The dashboard as users run it (its capture in a process of its own) is measured in a
real terminal by bench_tui.py."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from builders import ether, ipv4, tcp_header  # noqa: E402

from tcpwatch.capture.record import ACK, FIN, PSH, SYN  # noqa: E402
from tcpwatch.capture.session import Capture  # noqa: E402
from tcpwatch.monitor import Monitor  # noqa: E402
from tcpwatch.ui.app import TcpwatchApp  # noqa: E402
from tcpwatch.ui.fasttable import FastTable  # noqa: E402

PAINTS: list[tuple[int, float]] = []  # (snapshot applied, time) at the end of each table paint
_paint = FastTable.render_lines


def _timed_paint(self, crop):
    lines = _paint(self, crop)
    PAINTS.append((self.app._applied, time.perf_counter()))
    return lines


FastTable.render_lines = _timed_paint


def build(n: int, path: str) -> int:
    import struct
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    t = 1_700_000_000.0
    count = 0
    for i in range(n):
        cport = 10000 + i % 50000
        cip = f"10.{1 + i // 50000 % 200}.{i // 250 % 250}.{1 + i % 250}"
        segs = [(True, 1000, 0, SYN, b""), (False, 5000, 1001, SYN | ACK, b""),
                (True, 1001, 5001, ACK, b""), (True, 1001, 5001, ACK | PSH, b"GET / HTTP/1.1"
                                                 b"\r\n\r\n"),
                (False, 5001, 1019, ACK | PSH, b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 200),
                (True, 1019, 5220, ACK | FIN, b""), (False, 5220, 1020, ACK | FIN, b""),
                (True, 1020, 5221, ACK, b"")]
        if i % 10 == 0:  # every tenth response is lost once: a retransmission
            segs.insert(5, segs[4])
        for c2s, seq, ack, flags, data in segs:
            src, dst = (cip, "10.0.0.1") if c2s else ("10.0.0.1", cip)
            sp, dp = (cport, 80) if c2s else (80, cport)
            f = ether(ipv4(tcp_header(sp, dp, seq, ack, flags) + data, src, dst))
            t += 0.0001
            sec = int(t)
            out += struct.pack("<IIII", sec, int((t - sec) * 1e6), len(f), len(f)) + f
            count += 1
    Path(path).write_bytes(out)
    return count


async def measure(path: str, n: int) -> dict:
    mon = Monitor(Capture("fast", file=path))
    app = TcpwatchApp(mon)
    res = {}
    async with app.run_test(size=(180, 45)) as pilot:
        t0 = time.perf_counter()
        while not app.caught_up:
            await pilot.pause(0.02)
        res["load_s"] = time.perf_counter() - t0
        lat = []
        for key in ("p", "p", "s", "s", "r", "p", "p"):
            t1 = time.perf_counter()
            await pilot.press(key)
            while not (mon.latest.view == mon.view and app._applied == mon.latest.seq):
                await pilot.pause(0.005)
            lat.append(time.perf_counter() - t1)
        res["key_to_table_ms_median"] = statistics.median(lat) * 1e3
        res["key_to_table_ms_max"] = max(lat) * 1e3
        # switching views: 1-4 and back, Services per endpoint (e), twice; timed from the
        # key press to the first paint of the table that shows the new view (PAINTS), and to
        # the app being idle again (the rows below the screen added, the pilot's own wait)
        lat, idle = [], []
        for key in ("2", "3", "e", "4", "1", "2", "3", "1") * 2:
            PAINTS.clear()
            t1 = time.perf_counter()
            await pilot.press(key)
            while not (mon.latest.view == mon.view and app._applied == mon.latest.seq):
                await pilot.pause(0.005)
            seq = mon.latest.seq
            while not any(s >= seq for s, _t in PAINTS):
                await pilot.pause(0.005)
            idle.append(time.perf_counter() - t1)
            lat.append(min(t for s, t in PAINTS if s >= seq) - t1)
        res["view_ms_median"] = statistics.median(lat) * 1e3
        res["view_ms_max"] = max(lat) * 1e3
        res["view_idle_ms_median"] = statistics.median(idle) * 1e3
        res["snapshot_build_ms_avg"] = mon.build_seconds / mon.snapshots * 1e3
        res["apply_ms_avg"] = app.apply_seconds / app.applied_snapshots * 1e3
        res["rows_shown"] = len(mon.latest.rows)
        res["hidden"] = mon.latest.hidden
        await pilot.press("q")
    return res


async def during(path: str) -> None:
    mon = Monitor(Capture("fast", file=path))
    app = TcpwatchApp(mon)
    async with app.run_test(size=(180, 45)) as pilot:
        t0 = time.perf_counter()  # the monitor started with the app: the read is under way
        while not (mon.latest is not None and mon.latest.rows and app._applied):
            await pilot.pause(0.005)
        lat, read_at = [], []
        keys = "psrps"
        while not app.caught_up:
            key = keys[len(lat) % len(keys)]
            t1 = time.perf_counter()
            await pilot.press(key)
            while not (mon.latest.view == mon.view and app._applied == mon.latest.seq):
                await pilot.pause(0.005)
            lat.append(time.perf_counter() - t1)
            read_at.append(mon.latest.packets)
            await pilot.pause(0.15)
        load = time.perf_counter() - t0
        total = mon.latest.packets
        await pilot.press("q")
    lat.sort()
    print(f"{path}: {total:,} packets read in {load:.2f} s ({total / load:,.0f} pkt/s) with the "
          f"dashboard up (in-process monitor); {len(lat)} key presses while reading (at "
          f"{read_at[0]:,} .. {read_at[-1]:,} "
          f"packets): key -> updated table median {statistics.median(lat) * 1e3:.0f} ms, "
          f"95th {lat[int(len(lat) * 0.95)] * 1e3:.0f} ms, max {lat[-1] * 1e3:.0f} ms")


def main() -> None:
    if sys.argv[1:2] == ["--during"]:
        asyncio.run(during(sys.argv[2]))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000, 50000]
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            path = f"{d}/flows{n}.pcap"
            pk = build(n, path)
            r = asyncio.run(measure(path, n))
            print(f"{n:>7} connections ({pk} packets): loaded in {r['load_s']:.2f} s; "
                  f"snapshot build {r['snapshot_build_ms_avg']:.1f} ms avg, UI apply "
                  f"{r['apply_ms_avg']:.1f} ms avg; key -> updated "
                  f"table median {r['key_to_table_ms_median']:.0f} ms, max "
                  f"{r['key_to_table_ms_max']:.0f} ms; key -> another view painted median "
                  f"{r['view_ms_median']:.0f} ms, max {r['view_ms_max']:.0f} ms (idle again "
                  f"median {r['view_idle_ms_median']:.0f} ms); "
                  f"{r['rows_shown']} rows shown, "
                  f"{r['hidden']} hidden")


if __name__ == "__main__":
    main()
