"""The published benchmark: tcpwatch against tshark and tcptrace on one real capture, in one
run (a script, not a test: it prints numbers, it asserts nothing).

    python tests/bench/bench.py [CAPTURE] [--rebuild]

CAPTURE (default tests/bench/bench-capture.pcapng, git-ignored) is made on first use, as root:
two network namespaces joined by a veth pair with offloads off, real kernel TCP, an nftables
rule dropping 1 in 200 of the server's data segments (0.5% loss); a 360 MB bulk transfer and
4,000 short HTTP/1.1 exchanges, one connection each; dumpcap in the client namespace with a
192-byte snap length. About 320,000 packets. It is reused when present.

Timed on that file, each as its own process (wall time, peak RSS from wait4), in 3 interleaved
rounds (--repeat), the median shown:
  tcpwatch report --json (fast engine), tcpwatch report --engine pyshark --json,
  tshark -l -T ek -e FIELDS, the command the pyshark engine has pyshark run (its input alone),
  tshark -q -z conv,tcp, tshark -T fields with the fields tcpwatch needs,
  pyshark JSON on a slice (the first 20,000 packets), tcptrace -n -l.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT = HERE / "bench-capture.pcapng"
BULK_MB = 360
SHORT = 4000
SLICE = 20_000

SERVER = r"""
import socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"x" * 300
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
def bulk():
    s = socket.create_server(("10.88.0.2", 5001))
    c, _ = s.accept()
    chunk = b"y" * 65536
    for _ in range(int(sys.argv[1]) * 16):
        c.sendall(chunk)
    c.close()
threading.Thread(target=bulk, daemon=True).start()
srv = ThreadingHTTPServer(("10.88.0.2", 8080), H)
print("ready", flush=True)
srv.serve_forever()
"""

CLIENT = r"""
import http.client, socket, sys, threading
def bulk():
    s = socket.create_connection(("10.88.0.2", 5001))
    while s.recv(1 << 20):
        pass
t = threading.Thread(target=bulk)
t.start()
for i in range(int(sys.argv[1])):
    c = http.client.HTTPConnection("10.88.0.2", 8080, timeout=10)
    c.request("GET", f"/item/{i}")
    c.getresponse().read()
    c.close()
t.join()
"""


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def build(path: Path) -> None:
    if os.geteuid() != 0:
        sys.exit("building the capture needs root (network namespaces)")
    tag = uuid.uuid4().hex[:5]
    nc, ns, dc, ds = f"twb-c-{tag}", f"twb-s-{tag}", f"twbc{tag}", f"twbs{tag}"
    procs: list[subprocess.Popen] = []
    try:
        for n in (nc, ns):
            sh("ip", "netns", "add", n)
            sh("ip", "-n", n, "link", "set", "lo", "up")
        sh("ip", "link", "add", dc, "netns", nc, "type", "veth", "peer", "name", ds, "netns", ns)
        for n, d, ip in ((nc, dc, "10.88.0.1/24"), (ns, ds, "10.88.0.2/24")):
            sh("ip", "-n", n, "addr", "add", ip, "dev", d)
            sh("ip", "-n", n, "link", "set", d, "up")
            sh("ip", "netns", "exec", n, "ethtool", "-K", d, "tso", "off", "gso", "off",
               "gro", "off")
        sh("ip", "netns", "exec", ns, "nft", "add table inet twb; add chain inet twb out "
           "{ type filter hook output priority 0; }; add rule inet twb out tcp sport 5001 "
           "meta length > 100 numgen random mod 200 == 0 drop")
        tmp = path.with_suffix(".part")
        cap = subprocess.Popen(["ip", "netns", "exec", nc, "dumpcap", "-q", "-i", dc, "-s",
                                "192", "-w", str(tmp)], stderr=subprocess.PIPE)
        procs.append(cap)
        time.sleep(1.5)
        srv = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER,
                                str(BULK_MB)], stdout=subprocess.PIPE, text=True)
        procs.append(srv)
        assert srv.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", nc, sys.executable, "-c", CLIENT, str(SHORT)],
                       check=True, timeout=600)
        time.sleep(1.0)
        cap.terminate()
        cap.wait(timeout=10)
        tmp.rename(path)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for n in (nc, ns):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one command run as its own process. Its output goes
    to /dev/null: held here, it would inflate this process and, through fork, the peak RSS
    the kernel reports for every later child."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, _, ru = os.wait4(p.pid, 0)
    p.returncode = 0
    return time.perf_counter() - t, ru.ru_maxrss / 1024


def count_packets(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True,
                         text=True).stdout
    return int(re.search(r"Number of packets:\s+(\d+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each row is the median")
    a = ap.parse_args()
    path = a.capture
    if a.rebuild or not path.exists():
        print(f"building {path} ...", file=sys.stderr)
        build(path)
    n = count_packets(path)
    py = sys.executable
    sys.path.insert(0, str(HERE.parent.parent))
    from tcpwatch.capture.pyshark_engine import FIELDS, PREFS
    fields = [x for f in FIELDS for x in ("-e", f)]
    prefs = [x for k, v in PREFS.items() for x in ("-o", f"{k}:{v}")]
    runs = [
        ("tcpwatch report, fast engine (all analysis)",
         [py, "-m", "tcpwatch", "report", "-r", str(path), "--json"], n),
        ("tcpwatch report, pyshark engine",
         [py, "-m", "tcpwatch", "report", "-r", str(path), "--json", "--engine", "pyshark"],
         n),
        ("tshark -l -T ek -e FIELDS (pyshark engine's input)",
         ["tshark", "-l", "-n", "-T", "ek", "-r", str(path), *fields, *prefs], n),
        ("tshark -q -z conv,tcp", ["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp"], n),
        ("tshark -T fields (tcpwatch's fields)",
         ["tshark", "-n", "-r", str(path), "-T", "fields", *fields, *prefs], n),
        (f"pyshark JSON, first {SLICE:,} packets",
         [py, str(HERE / "bench_engines.py"), "--pyshark-slice", str(path), str(SLICE)],
         SLICE),
        ("tcptrace -n -l", ["tcptrace", "-n", "-l", str(path)], n),
    ]
    # each command REPEAT times, the rounds interleaved (a slow spell of this shared machine
    # hits every tool alike); each row shows the median
    took: dict[str, list[tuple[float, float]]] = {name: [] for name, _c, _n in runs}
    for rnd in range(a.repeat):
        for name, cmd, _count in runs:
            took[name].append(timed(cmd))
            print(f"  round {rnd + 1}: {name}: {took[name][-1][0]:.2f} s", file=sys.stderr)
    results = []
    for name, _cmd, count in runs:
        secs = statistics.median(s for s, _r in took[name])
        results.append((name, secs, count, max(r for _s, r in took[name])))
    conv = next(r for r in results if r[0].startswith("tshark -q"))
    trace = next(r for r in results if r[0].startswith("tcptrace"))
    conv_pps, trace_pps = conv[2] / conv[1], trace[2] / trace[1]
    size = path.stat().st_size / (1 << 20)
    print(f"capture: {path.name}, {n:,} packets, {size:.0f} MiB; {os.cpu_count()} cores; "
          f"median of {a.repeat} rounds")
    print(f"| {'run':44} | {'seconds':>7} | {'packets/s':>10} | {'vs tshark conv':>14} | "
          f"{'vs tcptrace':>11} | {'peak RSS':>9} |")
    print(f"|{'-' * 46}|{'-' * 9}:|{'-' * 12}:|{'-' * 16}:|{'-' * 13}:|{'-' * 11}:|")
    for name, secs, count, rss in results:
        pps = count / secs
        print(f"| {name:44} | {secs:7.2f} | {pps:10,.0f} | {pps / conv_pps:13.2f}x | "
              f"{pps / trace_pps:10.3f}x | {rss:6.0f} MiB |")
    py_eng = next(r for r in results if r[0].startswith("tcpwatch report, pyshark"))
    alone = next(r for r in results if r[0].startswith("tshark -l -T ek"))
    print(f"pyshark engine over the same tshark command alone: {py_eng[1] / alone[1] - 1:+.0%}")


if __name__ == "__main__":
    main()
