"""A userspace link between two TUN devices (netem does not exist on these kernels): packets read
from one device are written to the other after a fixed one-way delay, with deterministic loss
per direction and SYN drops. The drops are the lab's ground truth, written as JSON on exit.

    python link.py DEV_A DEV_B --delay-ms 20 [--loss-ab N] [--loss-ba N] [--syn-drop K]
                   --stats FILE
A is the client side, B the server side. --loss-xy N drops every Nth TCP data segment from x
to y; --syn-drop K drops the first K SYNs from A. The devices must exist (ip tuntap add) and
be attachable: this process opens them before they are moved into their namespaces.
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import json
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def tcp_info(pkt: bytes) -> tuple[int, int] | None:
    """(TCP flags, payload length) of an IPv4 TCP packet, else None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    ihl = (pkt[0] & 15) * 4
    total = struct.unpack_from("!H", pkt, 2)[0]
    doff = (pkt[ihl + 12] >> 4) * 4
    return pkt[ihl + 13], total - ihl - doff


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--loss-ab", type=int, default=0)
    ap.add_argument("--loss-ba", type=int, default=0)
    ap.add_argument("--syn-drop", type=int, default=0)
    ap.add_argument("--stats", required=True)
    args = ap.parse_args()
    fa, fb = open_tun(args.a), open_tun(args.b)
    print("ready", flush=True)
    delay = args.delay_ms / 1000
    queues = {fa: collections.deque(), fb: collections.deque()}  # keyed by destination
    stats = {"forwarded_ab": 0, "forwarded_ba": 0, "dropped_ab": 0, "dropped_ba": 0,
             "dropped_syn": 0, "data_ab": 0, "data_ba": 0, "dropped_frames_ab": [],
             "dropped_frames_ba": []}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        now = time.monotonic()
        due = [q[0][0] for q in queues.values() if q]
        timeout = max(0.0, min(due) - now) if due else 0.2
        try:
            ready, _, _ = select.select([fa, fb], [], [], timeout)
        except InterruptedError:
            continue
        for fd in ready:
            while True:
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                ab = fd == fa
                info = tcp_info(pkt)
                if info is not None:
                    flags, plen = info
                    if ab and flags & 0x02 and not flags & 0x10 and \
                            stats["dropped_syn"] < args.syn_drop:
                        stats["dropped_syn"] += 1
                        continue
                    if plen > 0:
                        key = "ab" if ab else "ba"
                        stats["data_" + key] += 1
                        every = args.loss_ab if ab else args.loss_ba
                        if every and stats["data_" + key] % every == 0:
                            stats["dropped_" + key] += 1
                            seq = struct.unpack_from("!I", pkt, (pkt[0] & 15) * 4 + 4)[0]
                            stats["dropped_frames_" + key].append(seq)
                            continue
                queues[fb if ab else fa].append((time.monotonic() + delay, pkt))
        now = time.monotonic()
        for dst, q in queues.items():
            while q and q[0][0] <= now:
                _, pkt = q.popleft()
                try:
                    os.write(dst, pkt)
                except OSError:
                    pass
                stats["forwarded_ab" if dst == fb else "forwarded_ba"] += 1
    with open(args.stats, "w") as f:
        json.dump(stats, f)
    sys.exit(0)


if __name__ == "__main__":
    main()
