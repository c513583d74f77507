"""Memory is bounded whatever the capture: peak RSS of `tcpwatch report` and of the
dashboard's capture process (worker.py, as `tcpwatch -r` runs it) over synthetic captures of
the shapes that matter (shapes.py): many short connections, many long-lived ones, a few huge
transfers, a SYN flood. Each measurement is a fresh process; the dashboard's is read from its
worker's VmHWM when the file is fully read. Also prints each one's packets/s: the dashboard's
load rate beside the report's on the same file. Not a test: numbers.

    python tests/bench/bench_memory.py [--quick] [--keep DIR]

The captures are written once to DIR (default /tmp/tcpwatch-bench-memory) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import shapes  # noqa: E402

# (shape, connections, packets per connection, the dashboard too): the report on each
FULL = [
    ("short", 1_250_000, 8, False),  # 10M packets: the report's own bound
    ("short", 250_000, 8, True),
    ("long", 10_000, 1_000, True),
    ("long", 1_500, 2_000, True),
    ("huge", 4, 1_000_000, True),
    ("synflood", 1_000_000, 1, True),
]
QUICK = [("short", 50_000, 8, True), ("long", 1_000, 500, True), ("huge", 2, 100_000, True),
         ("synflood", 100_000, 1, True)]


def capture(folder: Path, shape: str, conns: int, per: int) -> Path:
    p = folder / f"{shape}-{conns}x{per}.pcap"
    if not p.exists():
        tmp = p.with_suffix(".part")
        shapes.write(open(tmp, "wb"), shape, conns, per)
        tmp.rename(p)
    return p


def run_report(path: Path) -> dict:
    """From a fresh, small process: Linux starts a forked child's peak RSS from its parent's
    pages, so a parent holding the last report would inflate the next."""
    one = subprocess.run([sys.executable, __file__, "--one", str(path)], capture_output=True,
                         text=True, check=True)
    return json.loads(one.stdout)


def _report(path: Path) -> dict:
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "tcpwatch", "report", "-r", str(path),
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         cwd=ROOT)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    rep = json.loads(out)
    return {"packets": rep["totals"]["packets"], "secs": secs, "rss": ru.ru_maxrss / 1024,
            "listed": len(rep["flows"]), "evicted": rep["evicted"]["flows"]}


def run_dashboard(path: Path) -> dict:
    """The dashboard's worker as `tcpwatch -r FILE` starts it (worker.RemoteMonitor), with
    no terminal: the UI's part is receiving the snapshots."""
    code = r"""
import json, sys, time
from tcpwatch.worker import RemoteMonitor
from tcpwatch.monitor import ViewSpec
m = RemoteMonitor({"engine": "fast", "file": sys.argv[1]}, mode="file", procmap=False,
                  saved=sys.argv[1])
m.view = ViewSpec()
t0 = time.perf_counter()
m.start()
while True:
    s = m.latest
    if s is not None and s.done:
        break
    if m.failed:
        raise SystemExit(m.failed)
    time.sleep(0.05)
secs = time.perf_counter() - t0
hwm = 0.0
for line in open(f"/proc/{m._proc.pid}/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) / 1024
print(json.dumps({"packets": s.packets, "secs": secs, "rss": hwm, "listed": s.flows_total,
                  "evicted": s.evicted, "read_pps": s.read_pps}))
m.stop()
"""
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, cwd=ROOT, check=True, timeout=3600)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (a minute)")
    ap.add_argument("--keep", default="/tmp/tcpwatch-bench-memory", metavar="DIR")
    ap.add_argument("--one", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_report(Path(args.one))))
        return
    folder = Path(args.keep)
    folder.mkdir(parents=True, exist_ok=True)
    print("| shape | connections x packets | packets | run | seconds | packets/s | "
          "vs report | listed | evicted | peak RSS |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for shape, conns, per, dash in (QUICK if args.quick else FULL):
        path = capture(folder, shape, conns, per)
        rep = run_report(path)
        runs = [("report", rep)]
        if dash:
            runs.append(("dashboard", run_dashboard(path)))
        for who, r in runs:
            rate = r["packets"] / r["secs"]
            vs = rate / (rep["packets"] / rep["secs"])
            print(f"| {shape} | {conns:,} x {per:,} | {r['packets']:,} | {who} | "
                  f"{r['secs']:.1f} | {rate:,.0f} | {vs:.2f}x | {r['listed']:,} | "
                  f"{r['evicted']:,} | {r['rss']:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
