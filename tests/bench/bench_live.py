"""Live keep-up: iperf3 on the loopback of a network namespace of its own, with segmentation
offloads off there (so packets are real 1,400-byte segments, not 64 KB GSO frames), paced at a
bit rate, while
`tcpwatch report -i lo -f 'tcp port P' --json` captures through the fast engine, once with
each capture program (tcpdump, as tcpwatch chooses when it can; dumpcap, forced with
TCPWATCH_CAPTURE). Truth is the loopback device's own packet counter for the same seconds.
Prints packets offered, packets tcpwatch analysed, the kernel's drop counter and how long
tcpwatch needed after the traffic ended. Not a test: numbers. Needs root, iperf3, tcpdump and
dumpcap.

    python tests/bench/bench_live.py [rate, e.g. 1.2G] [seconds] [tcpdump|dumpcap]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


NS = f"twlive-{os.getpid()}"


def inns(*cmd: str) -> list[str]:
    return ["ip", "netns", "exec", NS, *cmd]


def lo_packets() -> int:
    out = subprocess.run(inns("cat", "/sys/class/net/lo/statistics/rx_packets"),
                         capture_output=True, text=True, check=True).stdout
    return int(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        subprocess.run(inns("ip", "link", "set", "lo", "up"), check=True)
        subprocess.run(inns("ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"),
                       check=True, capture_output=True)
        tools = sys.argv[3:4] or ["tcpdump", "dumpcap"]
        for tool in tools:
            run(tool)
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def run(tool: str) -> None:
    rate = sys.argv[1] if len(sys.argv) > 1 else "1.2G"
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    port = free_port()
    srv = subprocess.Popen([*inns("iperf3"), "-s", "-p", str(port), "-1"],
                           stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    tw = subprocess.Popen([*inns(sys.executable), "-m", "tcpwatch", "report", "-i", "lo", "-f",
                           f"tcp port {port}", "--duration", str(secs + 4), "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                          env=dict(os.environ, TCPWATCH_CAPTURE=tool))
    time.sleep(2.0)
    before = lo_packets()
    t0 = time.monotonic()
    subprocess.run([*inns("iperf3"), "-c", "127.0.0.1", "-p", str(port), "-t", str(secs),
                    "-M", "1400", "-b", rate], stdout=subprocess.DEVNULL, check=True)
    t1 = time.monotonic()
    time.sleep(0.5)
    offered = lo_packets() - before
    out = tw.stdout.read()
    tw.wait()
    t2 = time.monotonic()
    srv.kill()
    rep = json.loads(out)
    tot = rep["totals"]
    print(f"{tool}: iperf3 {rate} for {secs} s, MSS 1400, on lo: {offered:,} packets offered "
          f"({offered / (t1 - t0):,.0f}/s)")
    print(f"tcpwatch analysed {tot['tcp_packets']:,} TCP packets "
          f"({tot['tcp_packets'] / offered:.2%} of offered); the kernel dropped "
          f"{tot['dropped']:,};"
          f" tcpwatch dropped {tot['dropped_by_tcpwatch']:,};"
          f" report done {t2 - t1:.1f} s after the traffic (capture ran {secs + 4} s)")


if __name__ == "__main__":
    main()
