"""Engine rates on one capture, against tshark and tcptrace in the same run (no timed
assertions anywhere: this prints numbers).

    python tests/bench/bench_engines.py ../shared/pcaps/echo-connections.pcap
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture import fast, pyshark_engine
from tcpwatch.capture.record import CaptureStats


def timed(fn) -> tuple[float, int]:
    t = time.perf_counter()
    n = fn()
    return time.perf_counter() - t, n


def fast_decode(path):
    st = CaptureStats()
    for _ in fast.iter_file(path, st):
        pass
    return st.packets


def fast_analyse(path):
    st = CaptureStats()
    t = FlowTable()
    for r in fast.iter_file(path, st):
        t.feed(r)
    return st.packets


def pyshark_mode(path, mode):
    st = CaptureStats()
    for _ in pyshark_engine.records(path, None, None, st, threading.Event(), mode=mode):
        pass
    return st.packets


def pyshark_raw_ek(path):
    """EK output iterated without building records (pyshark's EK field names differ)."""
    import pyshark
    loop = asyncio.new_event_loop()
    cap = pyshark.FileCapture(path, keep_packets=False, use_ek=True, eventloop=loop,
                              override_prefs=pyshark_engine.PREFS)
    n = sum(1 for _ in cap)
    loop.run_until_complete(cap.close_async())
    loop.close()
    return n


def external(cmd):
    def run():
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return 0
    return run


def main(path: str) -> None:
    rows = []
    d, n = timed(lambda: fast_decode(path))
    rows.append(("fast engine: decode to records", d, n))
    d, n = timed(lambda: fast_analyse(path))
    rows.append(("fast engine + all trackers", d, n))
    for mode in pyshark_engine.MODES:
        if mode == "ek":
            d, n2 = timed(lambda: pyshark_raw_ek(path))
            rows.append(("pyshark ek (iterate only)", d, n2))
            continue
        d, n2 = timed(lambda m=mode: pyshark_mode(path, m))
        rows.append((f"pyshark {mode} -> records", d, n2))
    d, _ = timed(external(["tshark", "-n", "-r", path, "-q", "-z", "conv,tcp"]))
    rows.append(("tshark -z conv,tcp (C, its own analysis)", d, n))
    d, _ = timed(external(["tcptrace", "-n", "-l", path]))
    rows.append(("tcptrace -n -l (C)", d, n))
    tshark_s = rows[-2][1]
    print(f"{path}: {n} packets")
    print(f"{'engine':44} {'seconds':>8} {'packets/s':>10} {'vs tshark':>9}")
    for name, secs, count in rows:
        print(f"{name:44} {secs:8.2f} {count / secs:10.0f} {tshark_s / secs:8.2f}x")


def pyshark_slice(path: str, n: int) -> None:
    """pyshark in JSON mode over the first n packets (bench.py times this process)."""
    st = CaptureStats()
    for _ in pyshark_engine.records(path, None, None, st, threading.Event(), mode="json"):
        if st.packets >= n:
            break


if __name__ == "__main__":
    if sys.argv[1] == "--pyshark-slice":
        pyshark_slice(sys.argv[2], int(sys.argv[3]))
    else:
        main(sys.argv[1])
