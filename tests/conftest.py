import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from oracle import have_tshark, shared_captures  # noqa: E402

NEED_SHARED = pytest.mark.skipif(
    not shared_captures(),
    reason="../shared/pcaps not present (public captures are not shipped with the repo)")
NEED_TSHARK = pytest.mark.skipif(not have_tshark(), reason="tshark not installed")


def tree_labels(node) -> list:
    """Every label of a Textual Tree, depth first (the dissection pane)."""
    out = [node.label]
    for child in node.children:
        out += tree_labels(child)
    return out


def wait_until(pred, timeout: float = 20.0, step: float = 0.1):
    """pred()'s first true value, polled every `step` s; AssertionError after `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out")


async def pilot_until(pilot, pred, timeout: float = 20.0, step: float = 0.05):
    """wait_until for Textual's pilot: pred()'s first true value, the app running meanwhile;
    AssertionError after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError("timed out")
        await pilot.pause(step)


def _packet_sockets() -> set[str]:
    """Inodes of the packet sockets hooked to an interface (/proc/net/packet: R is 1)."""
    with open("/proc/net/packet") as f:
        rows = [line.split() for line in f][1:]
    return {r[8] for r in rows if len(r) >= 9 and r[5] == "1"}


def capturing(marker: str) -> list[int]:
    """Pids of the capture processes (tcpdump, dumpcap) whose command line holds `marker`
    (their capture filter, say) once each has its packet socket hooked to the interface: from
    then on they see every packet, so traffic can start (instead of sleeping and hoping they
    are ready)."""
    hooked = _packet_sockets()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if not argv or not argv[0].endswith((b"dumpcap", b"tcpdump")) \
                    or marker.encode() not in argv or b"-d" in argv:  # (-d: only a check)
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in hooked for fd in fds):
                out.append(int(pid))
        except OSError:  # gone meanwhile
            continue
    return out
