"""Two network namespaces joined by tests/lab/link.py (a userspace link between two TUN
devices), a capture in one of them, and helpers to run programs inside. Always torn down:
namespaces, devices, the link, the capture and every process started, even on failure.

Client namespace: 10.77.0.1 (device twcNNNN); server namespace: 10.77.0.2 (twsNNNN).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENT_IP, SERVER_IP = "10.77.0.1", "10.77.0.2"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


class Lab:
    def __init__(self, tmp: Path, delay_ms: float = 20.0, loss_ab: int = 0, loss_ba: int = 0,
                 syn_drop: int = 0, capture_in: str = "client") -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns_c, self.ns_s = f"twlab-c-{tag}", f"twlab-s-{tag}"
        self.dev_c, self.dev_s = f"twc{tag}", f"tws{tag}"
        self.tmp = tmp
        self.delay_ms, self.loss_ab, self.loss_ba, self.syn_drop = (delay_ms, loss_ab,
                                                                     loss_ba, syn_drop)
        self.capture_in = capture_in
        self.pcap = tmp / "lab.pcapng"
        self.stats_file = tmp / "link.json"
        self.procs: list[subprocess.Popen] = []
        self.link: subprocess.Popen | None = None
        self.dumpcap: subprocess.Popen | None = None
        self.stats: dict = {}

    # ---- set-up / teardown --------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self._up()
        except BaseException:
            self._down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._down()

    def _up(self) -> None:
        for ns in (self.ns_c, self.ns_s):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for dev in (self.dev_c, self.dev_s):
            sh("ip", "tuntap", "add", "dev", dev, "mode", "tun")
        self.link = subprocess.Popen(
            [sys.executable, str(HERE / "link.py"), self.dev_c, self.dev_s, "--delay-ms",
             str(self.delay_ms), "--loss-ab", str(self.loss_ab), "--loss-ba",
             str(self.loss_ba), "--syn-drop", str(self.syn_drop), "--stats",
             str(self.stats_file)], stdout=subprocess.PIPE, text=True)
        assert self.link.stdout.readline().strip() == "ready"
        for dev, ns, me, peer in ((self.dev_c, self.ns_c, CLIENT_IP, SERVER_IP),
                                  (self.dev_s, self.ns_s, SERVER_IP, CLIENT_IP)):
            sh("ip", "link", "set", "dev", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{me}/32", "peer", f"{peer}/32", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            # no offloads to undo on a TUN; keep segments at the MTU the kernel picks
        ns, dev = (self.ns_c, self.dev_c) if self.capture_in == "client" else (
            self.ns_s, self.dev_s)
        self.dumpcap = subprocess.Popen(
            ["ip", "netns", "exec", ns, "dumpcap", "-q", "-i", dev, "-w", str(self.pcap)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.pcap.exists() and self.pcap.stat().st_size > 0:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("dumpcap did not start: " + (self.dumpcap.stderr.read()
                                                            if self.dumpcap.poll() else ""))
        time.sleep(0.3)

    def _down(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
        if self.dumpcap is not None and self.dumpcap.poll() is None:
            time.sleep(0.3)  # let the last packets reach the file
            self.dumpcap.terminate()
            try:
                self.dumpcap.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.dumpcap.kill()
                self.dumpcap.wait()
        if self.link is not None and self.link.poll() is None:
            self.link.terminate()
            try:
                self.link.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.link.kill()
                self.link.wait()
        if self.stats_file.exists():
            self.stats = json.loads(self.stats_file.read_text())
        for ns in (self.ns_c, self.ns_s):
            sh("ip", "netns", "del", ns, check=False)
        for dev in (self.dev_c, self.dev_s):
            sh("ip", "link", "del", dev, check=False)

    # ---- running things -------------------------------------------------------------------
    def start(self, where: str, code: str, *args: str) -> subprocess.Popen:
        ns = self.ns_c if where == "client" else self.ns_s
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def run(self, where: str, code: str, *args: str, timeout: float = 60) -> str:
        p = self.start(where, code, *args)
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err
        return out

    def finish(self) -> None:
        """Stop everything now (the capture file and the link's counts are then final)."""
        self._down()
        self.procs.clear()
        self.dumpcap = self.link = None


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
