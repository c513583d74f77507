"""Memory is bounded by the flow cap, not by the capture: peak RSS of `tcpwatch report` over
synthetic captures of short connections (SYN, SYN-ACK, ACK, request, response, FIN, FIN, ACK:
8 packets each), streamed to its standard input so no file is needed. Prints packets,
connections, wall time and peak RSS (wait4) for each size. Not a test: numbers.

    python tests/bench/bench_memory.py [connections ...]   (default: 125000 1000000 1250000)

125,000 connections are 1M packets; 1,250,000 are 10M.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQ = b"GET /x HTTP/1.1\r\nHost: s\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def frame(src: bytes, dst: bytes, sp: int, dp: int, seq: int, ack: int, flags: int,
          data: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src,
                     dst) + tcp
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip


def write_capture(out, conns: int) -> None:
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    t = 1_700_000_000_000_000  # microseconds
    srv = bytes([10, 9, 0, 1])
    rec = struct.Struct("<IIII")
    buf = []
    for i in range(conns):
        cli = bytes([10, 1 + (i >> 16) % 200, (i >> 8) & 255, i & 255])
        sp = 10000 + i % 50000
        c, s = 1000, 5000
        pk = [(cli, srv, sp, 80, c, 0, 0x02, b""), (srv, cli, 80, sp, s, c + 1, 0x12, b""),
              (cli, srv, sp, 80, c + 1, s + 1, 0x10, b""),
              (cli, srv, sp, 80, c + 1, s + 1, 0x18, REQ),
              (srv, cli, 80, sp, s + 1, c + 1 + len(REQ), 0x18, RESP),
              (cli, srv, sp, 80, c + 1 + len(REQ), s + 1 + len(RESP), 0x11, b""),
              (srv, cli, 80, sp, s + 1 + len(RESP), c + 2 + len(REQ), 0x11, b""),
              (cli, srv, sp, 80, c + 2 + len(REQ), s + 2 + len(RESP), 0x10, b"")]
        for a, b, x, y, q, k, f, d in pk:
            fr = frame(a, b, x, y, q, k, f, d)
            buf.append(rec.pack(t // 1_000_000, t % 1_000_000, len(fr), len(fr)) + fr)
            t += 25  # 40,000 packets per second of capture time
        if len(buf) > 4096:
            out.write(b"".join(buf))
            buf = []
    out.write(b"".join(buf))
    out.close()


def measure(conns: int) -> tuple[int, float, float, int, int]:
    p = subprocess.Popen([sys.executable, "-m", "tcpwatch", "report", "-r", "-", "--json"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, cwd=ROOT)
    t0 = time.perf_counter()
    w = threading.Thread(target=write_capture, args=(p.stdin, conns))
    w.start()
    out = p.stdout.read()
    w.join()
    _, _, ru = os.wait4(p.pid, 0)
    rep = json.loads(out)
    return (rep["totals"]["packets"], time.perf_counter() - t0, ru.ru_maxrss / 1024,
            len(rep["flows"]), rep["evicted"]["flows"])


def main() -> None:
    if sys.argv[1:2] == ["--one"]:  # one measurement, in a process of its own (see below)
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    sizes = [int(x) for x in sys.argv[1:]] or [125_000, 1_000_000, 1_250_000]
    print(f"| {'connections':>11} | {'packets':>10} | {'seconds':>7} | {'packets/s':>9} | "
          f"{'listed':>6} | {'evicted':>9} | {'peak RSS':>9} |")
    print("|------------:|-----------:|--------:|----------:|-------:|----------:|----------:|")
    for n in sizes:
        # each size from a fresh, small process: Linux keeps a forked child's peak RSS from
        # the parent's pages, so a parent holding the last report would inflate the next
        one = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True,
                             text=True, check=True)
        pk, secs, rss, listed, ev = json.loads(one.stdout)
        print(f"| {n:11,} | {pk:10,} | {secs:7.1f} | {pk / secs:9,.0f} | {listed:6,} | "
              f"{ev:9,} | {rss:5.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
