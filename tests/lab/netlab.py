"""Network namespaces for the lab, a capture in one of them, and helpers to run programs inside.

Lab: two namespaces joined by tests/lab/link.py (a userspace link between two TUN devices).
    Client namespace: 10.77.0.1 (device twcNNNN); server namespace: 10.77.0.2 (twsNNNN).
Loopback: one private namespace; client and server talk over its own lo (RTT in microseconds).

Always torn down, even on failure: every process started in a namespace (and anything it left
there), the capture, the link, the devices and the namespaces.

The capture is known to be running, and known to be complete, by marker datagrams: UDP to port
9 with a unique payload, sent until dumpcap has written one to the file (dumpcap writes in
batches about every half second). At the end the marker comes from the far side of the link,
so everything sent before it has reached the capture point.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENT_IP, SERVER_IP = "10.77.0.1", "10.77.0.2"
LOOPBACK_IP = "127.0.0.1"
DISCARD_PORT = 9  # the markers go here; nothing listens (RFC 863)

MARKER_SENDER = f"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    s.sendto(sys.argv[1].encode(), (sys.argv[2], {DISCARD_PORT}))
    time.sleep(0.05)
"""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def end_process(p: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(sig)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for f in (p.stdout, p.stderr, p.stdin):
        if f is not None:
            f.close()


class Namespaces:
    """What the lab and the loopback namespace share: processes inside, a capture, markers."""

    capture_ns: str
    capture_dev: str
    marker_ns: str  # where markers are sent from
    marker_to: str  # and to which address (it must cross the capture point)

    def __init__(self, tmp: Path) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.tmp = tmp
        self.pcap = tmp / "lab.pcapng"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.dumpcap: subprocess.Popen | None = None

    def __enter__(self):
        try:
            self._up()
        except BaseException:
            self._down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._down()

    def add_namespace(self, ns: str) -> None:
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    # ---- the capture ----------------------------------------------------------------------
    def _wait_marker(self, text: str, timeout: float = 15.0) -> bool:
        """Send the marker until dumpcap wrote it to the file; False if it never did."""
        sender = subprocess.Popen(["ip", "netns", "exec", self.marker_ns, sys.executable, "-c",
                                   MARKER_SENDER, text, self.marker_to],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        needle, pos = text.encode(), 0
        try:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if self.dumpcap is None or self.dumpcap.poll() is not None:
                    return False
                if self.pcap.exists():
                    with open(self.pcap, "rb") as f:
                        f.seek(pos)
                        chunk = f.read()
                    if needle in chunk:
                        return True
                    pos = max(pos, pos + len(chunk) - len(needle))
                time.sleep(0.02)
            return False
        finally:
            end_process(sender)

    def _start_capture(self) -> None:
        self.dumpcap = subprocess.Popen(
            ["ip", "netns", "exec", self.capture_ns, "dumpcap", "-q", "-i", self.capture_dev,
             "-w", str(self.pcap)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        if not self._wait_marker(f"twlab-start-{self.tag}"):
            err = self.dumpcap.stderr.read() if self.dumpcap.poll() is not None else ""
            raise RuntimeError("dumpcap did not start capturing: " + err)

    def _stop_capture(self) -> None:
        if self.dumpcap is None:
            return
        if self.dumpcap.poll() is None:
            self._wait_marker(f"twlab-end-{self.tag}")
        end_process(self.dumpcap, signal.SIGTERM)
        self.dumpcap = None

    # ---- processes --------------------------------------------------------------------------
    def spawn(self, ns: str, argv: list[str], **popen) -> subprocess.Popen:
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        popen.setdefault("text", True)
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **popen)
        self.procs.append(p)
        return p

    def _end_processes(self) -> None:
        for p in self.procs:
            end_process(p)
        self.procs.clear()

    def _sweep(self) -> None:
        """End whatever the programs started that outlived them (workers, forks): every
        process left in our own namespaces is one this lab started. After the capture."""
        for ns in self.namespaces:
            for _ in range(50):
                pids = [int(x) for x in sh("ip", "netns", "pids", ns, check=False)
                        .stdout.split()]
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)

    def _up(self) -> None:
        raise NotImplementedError

    def _down(self) -> None:
        """Programs, then the capture (its file is then complete), then whatever the
        programs left behind; subclasses add their links and devices."""
        self._end_processes()
        with contextlib.suppress(Exception):
            self._stop_capture()
        self._sweep()

    def _del_namespaces(self) -> None:
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()

    def finish(self) -> None:
        """Stop everything now (the capture file and the link's log are then final)."""
        self._down()


class Lab(Namespaces):
    """Client and server namespaces joined by the userspace link.

    controls: the link's per-direction options as lists of strings, keyed drop_ab, drop_ba,
    hold_ab, hold_ba, freeze_ab, freeze_ba (tests/lab/link.py says what they mean)."""

    CONTROLS = ("drop_ab", "drop_ba", "hold_ab", "hold_ba", "freeze_ab", "freeze_ba")

    def __init__(self, tmp: Path, delay_ms: float = 20.0, loss_ab: int = 0, loss_ba: int = 0,
                 syn_drop: int = 0, capture_in: str = "client", **controls: list[str]) -> None:
        super().__init__(tmp)
        unknown = set(controls) - set(self.CONTROLS)
        if unknown:
            raise TypeError(f"unknown link controls {sorted(unknown)}")
        self.ns_c, self.ns_s = f"twlab-c-{self.tag}", f"twlab-s-{self.tag}"
        self.dev_c, self.dev_s = f"twc{self.tag}", f"tws{self.tag}"
        self.devices: list[str] = []
        self.delay_ms, self.loss_ab, self.loss_ba, self.syn_drop = (delay_ms, loss_ab,
                                                                     loss_ba, syn_drop)
        self.controls = controls
        self.capture_in = capture_in
        self.capture_ns, self.capture_dev = ((self.ns_c, self.dev_c) if capture_in == "client"
                                             else (self.ns_s, self.dev_s))
        self.marker_ns, self.marker_to = ((self.ns_s, CLIENT_IP) if capture_in == "client"
                                          else (self.ns_c, SERVER_IP))
        self.stats_file = tmp / "link.json"
        self.link: subprocess.Popen | None = None
        self.stats: dict = {}

    def link_argv(self) -> list[str]:
        argv = [sys.executable, str(HERE / "link.py"), self.dev_c, self.dev_s, "--delay-ms",
                str(self.delay_ms), "--loss-ab", str(self.loss_ab), "--loss-ba",
                str(self.loss_ba), "--syn-drop", str(self.syn_drop), "--stats",
                str(self.stats_file)]
        for name in self.CONTROLS:
            for value in self.controls.get(name, ()):
                argv += ["--" + name.replace("_", "-"), value]
        return argv

    def _up(self) -> None:
        for ns in (self.ns_c, self.ns_s):
            self.add_namespace(ns)
        for dev in (self.dev_c, self.dev_s):
            sh("ip", "tuntap", "add", "dev", dev, "mode", "tun")
            self.devices.append(dev)
        self.link = subprocess.Popen(self.link_argv(), stdout=subprocess.PIPE, text=True)
        assert self.link.stdout.readline().strip() == "ready"
        for dev, ns, me, peer in ((self.dev_c, self.ns_c, CLIENT_IP, SERVER_IP),
                                  (self.dev_s, self.ns_s, SERVER_IP, CLIENT_IP)):
            sh("ip", "link", "set", "dev", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{me}/32", "peer", f"{peer}/32", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            # no offloads to undo on a TUN; keep segments at the MTU the kernel picks
        self._start_capture()

    def _down(self) -> None:
        super()._down()
        if self.link is not None:
            end_process(self.link, signal.SIGTERM)
            self.link = None
        if self.stats_file.exists():
            self.stats = json.loads(self.stats_file.read_text())
        self._del_namespaces()
        for dev in self.devices:
            sh("ip", "link", "del", dev, check=False)
        self.devices.clear()

    # ---- running things -------------------------------------------------------------------
    def ns(self, where: str) -> str:
        return self.ns_c if where == "client" else self.ns_s

    def start(self, where: str, code: str, *args: str) -> subprocess.Popen:
        return self.spawn(self.ns(where), [sys.executable, "-c", code, *args])

    def run(self, where: str, code: str, *args: str, timeout: float = 60) -> str:
        p = self.start(where, code, *args)
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err
        return out

    def app(self, where: str, *args: str) -> subprocess.Popen:
        """tests/lab/apps.py in a namespace (a server: wait for its "listening")."""
        return self.spawn(self.ns(where), [sys.executable, str(HERE / "apps.py"), *args])


class Loopback(Namespaces):
    """One private namespace; programs talk over its lo, dumpcap captures lo."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.netns = f"twlab-l-{self.tag}"
        self.capture_ns = self.marker_ns = self.netns
        self.capture_dev, self.marker_to = "lo", LOOPBACK_IP

    def _up(self) -> None:
        self.add_namespace(self.netns)
        self._start_capture()

    def _down(self) -> None:
        super()._down()
        self._del_namespaces()

    def spawn_here(self, argv: list[str], **popen) -> subprocess.Popen:
        return self.spawn(self.netns, argv, **popen)

    def app(self, *args: str) -> subprocess.Popen:
        return self.spawn(self.netns, [sys.executable, str(HERE / "apps.py"), *args])

    def run(self, argv: list[str], timeout: float = 60) -> str:
        p = self.spawn(self.netns, argv)
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, (argv, out[-2000:], err[-2000:])
        return out


def leftovers() -> list[str]:
    """Namespaces or devices a lab left behind (there must be none)."""
    ns = sh("ip", "netns", "list", check=False).stdout
    links = sh("ip", "-o", "link", check=False).stdout
    return [line for line in (ns + links).splitlines() if "twlab-" in line
            or " twc" in line or " tws" in line]


def can_run() -> str | None:
    if os.geteuid() != 0:
        return "the network lab needs root (namespaces, TUN devices)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    for tool in ("ip", "dumpcap"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            return f"{tool} not installed"
    return None
