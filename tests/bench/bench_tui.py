"""The dashboard in a real terminal (tmux) while it ingests at full speed: how long a key press
takes to show on screen, and (live) how long a new connection takes to appear in the table.
Not a test: numbers. Needs tmux; --live needs root, iperf3 and dumpcap.

    python tests/bench/bench_tui.py --file CAPTURE
        tcpwatch -r CAPTURE; while it reads, press `p` (problems only) every 200 ms and time
        each press until the status line changes on screen; once read, the same, then
        switch views (2, 3, 4, 1, three rounds) and time each until the table shows it.
    python tests/bench/bench_tui.py --live [RATE] [SECONDS]
        tcpwatch -i lo in a network namespace of its own while iperf3 sends RATE (default
        1.2G, MSS 1400: ~110,000 packets/s) for SECONDS (default 10); the same key presses,
        and every second a new connection to a marker port, timed until its port is on
        screen; at the end the header's packet and drop counters against the loopback's own.

Timing is from `tmux send-keys` (or connect()) returning to the first `capture-pane` that
shows the change, polled every 10 ms (each poll runs tmux: polled every 5 ms, the polling
took enough CPU from the capture for the kernel to drop 3% of the packets): the status line
acknowledging the key, then the table showing the new view."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SESSION = f"twbench-{uuid.uuid4().hex[:6]}"
NS = f"twtui-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def pane() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(pred, timeout: float, step: float = 0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = pane()
        if pred(text):
            return text
        time.sleep(step)
    return None


TABLE: list[float] = []  # key press -> the table shows the new view (no "updating…")


def press_and_time(key: str = "p") -> float | None:
    """Toggle problems-only; seconds until the status line says so (or stops saying so).
    The time until the table follows (the status line's "updating…" gone) goes to TABLE."""
    before = "problems only" in pane()
    t0 = time.monotonic()
    tmux("send-keys", "-t", SESSION, key)
    got = wait_for(lambda s: ("problems only" in s) != before, 10)
    if got is None:
        return None
    ack = time.monotonic() - t0
    if wait_for(lambda s: ("problems only" in s) != before and "updating" not in s, 10):
        TABLE.append(time.monotonic() - t0)
    return ack


def summary(name: str, xs: list[float]) -> str:
    if not xs:
        return f"{name}: no samples"
    xs = sorted(xs)
    return (f"{name}: {len(xs)} samples, median {statistics.median(xs) * 1e3:.0f} ms, "
            f"95th {xs[int(len(xs) * 0.95)] * 1e3:.0f} ms, max {xs[-1] * 1e3:.0f} ms")


def start(cmd: list[str]) -> None:
    env = f"cd {ROOT} && TERM=xterm-256color {' '.join(cmd)}"
    subprocess.run(["tmux", "new-session", "-d", "-s", SESSION, "-x", "200", "-y", "50", env],
                   check=True)


def file_mode(path: str) -> None:
    start([sys.executable, "-m", "tcpwatch", "-r", path])
    try:
        if wait_for(lambda s: "reading" in s, 20, 0.002) is None:
            print("the dashboard never showed 'reading…'")
            return
        t0 = time.monotonic()
        lat: list[float] = []
        while "reading" in pane():
            x = press_and_time()
            if x is None:
                print("a key press was not answered within 10 s")
                break
            if "reading" in pane():  # still ingesting when the answer showed
                lat.append(x)
            time.sleep(0.2)
        print(f"{path}: read in about {time.monotonic() - t0:.1f} s with the dashboard up")
        print(summary("key press -> status line, while reading", lat))
        print(summary("key press -> table in the new view, while reading", TABLE))
        TABLE.clear()
        idle = []
        for _ in range(10):  # the same, once the file is read: what the UI alone costs
            x = press_and_time()
            if x is not None:
                idle.append(x)
            time.sleep(0.2)
        print(summary("key press -> status line, file read (nothing ingesting)", idle))
        print(summary("key press -> table in the new view, file read", TABLE))
        views = []
        for key, title in [("2", "2 Requests"), ("3", "3 Services"), ("4", "4 Processes"),
                           ("1", "1 Connections")] * 3:
            t1 = time.monotonic()
            tmux("send-keys", "-t", SESSION, key)
            if wait_for(lambda s, title=title: title in s and "updating" not in s, 10):
                views.append(time.monotonic() - t1)
            time.sleep(0.2)
        print(summary("key 1-4 -> the table in that view on screen, file read", views))
        print("  each, ms:", " ".join(f"{x * 1e3:.0f}" for x in views))
    finally:
        tmux("kill-session", "-t", SESSION)


def inns(*cmd: str) -> list[str]:
    return ["ip", "netns", "exec", NS, *cmd]


def live_mode(rate: str, secs: int) -> None:
    subprocess.run(["ip", "netns", "add", NS], check=True)
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run(inns("ip", "link", "set", "lo", "up"), check=True)
        subprocess.run(inns("ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"),
                       check=True, capture_output=True)
        procs.append(subprocess.Popen([*inns("iperf3"), "-s", "-p", "5201", "-1"],
                                      stdout=subprocess.DEVNULL))
        # the marker: a listener whose connections we time onto the screen
        marker = subprocess.Popen(
            [*inns(sys.executable), "-c",
             "import socket\ns=socket.create_server(('127.0.0.1',7777))\n"
             "while True:\n c,_=s.accept(); c.close()"])
        procs.append(marker)
        start(inns(sys.executable, "-m", "tcpwatch", "-i", "lo"))
        if wait_for(lambda s: "live" in s and "pkts" in s, 20) is None:
            print("the dashboard did not start")
            return
        time.sleep(1.0)
        rx0 = int(subprocess.run(inns("cat", "/sys/class/net/lo/statistics/rx_packets"),
                                 capture_output=True, text=True).stdout)
        client = subprocess.Popen([*inns("iperf3"), "-c", "127.0.0.1", "-p", "5201", "-t",
                                   str(secs), "-M", "1400", "-b", rate],
                                  stdout=subprocess.DEVNULL)
        procs.append(client)
        time.sleep(1.0)
        keys: list[float] = []
        seen: list[float] = []
        end = time.monotonic() + secs - 2
        n = 0
        while time.monotonic() < end:
            x = press_and_time()
            if x is not None:
                keys.append(x)
            time.sleep(0.2)
            n += 1
            if n % 4 == 0:  # a new connection, from a port of its own
                sport = 40000 + n
                t0 = time.monotonic()
                subprocess.run(inns(sys.executable, "-c",
                                    "import socket\ns=socket.socket()\n"
                                    f"s.bind(('127.0.0.1',{sport}))\n"
                                    "s.connect(('127.0.0.1',7777))\ns.close()"), check=True)
                # connect() returned: the SYN is on the wire (minus the interpreter's start)
                got = wait_for(lambda s, p=sport: f":{p} " in s, 10)
                if got is not None:
                    seen.append(time.monotonic() - t0)
        client.wait(timeout=secs + 30)
        time.sleep(1.5)
        rx1 = int(subprocess.run(inns("cat", "/sys/class/net/lo/statistics/rx_packets"),
                                 capture_output=True, text=True).stdout)
        hdr = pane().splitlines()[0]
        print(f"iperf3 {rate} for {secs} s on lo: {rx1 - rx0:,} packets on the loopback "
              f"({(rx1 - rx0) / secs:,.0f}/s)")
        print("header at the end:", re.sub(r"\s+", " ", hdr.strip()))
        print(summary("key press -> status line, while ingesting", keys))
        print(summary("key press -> table in the new view, while ingesting", TABLE))
        print(summary("new connection -> on screen (includes starting a Python client)",
                      seen))
    finally:
        tmux("kill-session", "-t", SESSION)
        for p in procs:
            p.kill()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def main() -> None:
    if sys.argv[1:2] == ["--file"]:
        file_mode(sys.argv[2])
    elif sys.argv[1:2] == ["--live"]:
        live_mode(sys.argv[2] if len(sys.argv) > 2 else "1.2G",
                  int(sys.argv[3]) if len(sys.argv) > 3 else 10)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
