"""Least privilege: live capture as a user who is not root, allowed to run dumpcap the way
Wireshark's Debian package sets it up (group `wireshark`, mode 0750, file capabilities
cap_net_raw,cap_net_admin). The Python process never has any privilege; root gets a one-line
note. A user outside the group is told how to get the rights, in one line.

The test creates the user (and the group, if missing) and removes them; the capability-bearing
dumpcap is a copy in a private directory, so the system's dumpcap is left as it was."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

import tcpwatch

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("dumpcap", "setcap", "useradd",
                                                           "runuser")),
    reason="needs root (to create a user) with dumpcap, setcap, useradd and runuser")

SYSTEM_PYTHON = "/usr/bin/python3"


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def unprivileged():
    """(user in the wireshark group, user outside it, a world-readable lib dir, bin dir)."""
    import ddsketch
    import hpack
    import humanize
    import hyperframe
    import orjson
    import psutil
    import six
    base = Path(tempfile.mkdtemp(prefix="twpriv-"))
    base.chmod(0o755)
    tag = uuid.uuid4().hex[:6]
    member, outsider = f"twcap{tag}", f"twno{tag}"
    made_group = subprocess.run(["getent", "group", "wireshark"],
                                capture_output=True).returncode != 0
    try:
        if made_group:
            _sh("groupadd", "--system", "wireshark")
        _sh("useradd", "--no-create-home", "--shell", "/bin/sh", "-G", "wireshark", member)
        _sh("useradd", "--no-create-home", "--shell", "/bin/sh", outsider)
        # the code, readable by anyone, run by the system's Python (the venv may sit in
        # root's home, out of the users' reach): its pure-Python form, as the modules compiled
        # for the venv's Python need not load in another
        lib = base / "lib"
        shutil.copytree(Path(tcpwatch.__file__).parent, lib / "tcpwatch",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        for mod in (humanize, orjson, ddsketch, psutil, hpack, hyperframe):  # the report's
            # (orjson and psutil built for this same CPython version)
            shutil.copytree(Path(mod.__file__).parent, lib / mod.__name__,
                            ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(six.__file__, lib / "six.py")  # ddsketch's one dependency
        # Wireshark's own set-up (dpkg-reconfigure wireshark-common), on a private copy
        bindir = base / "bin"
        bindir.mkdir()
        dumpcap = bindir / "dumpcap"
        shutil.copy2(shutil.which("dumpcap"), dumpcap)
        shutil.chown(dumpcap, "root", "wireshark")
        dumpcap.chmod(0o750)
        _sh("setcap", "cap_net_raw,cap_net_admin+eip", str(dumpcap))
        subprocess.run(["chmod", "-R", "a+rX", str(lib)], check=True)
        yield member, outsider, lib, bindir
    finally:
        for u in (member, outsider):
            subprocess.run(["userdel", u], capture_output=True)
        if made_group:
            subprocess.run(["groupdel", "wireshark"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def run_as(user: str, lib: Path, bindir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "PYTHONPATH": str(lib), "HOME": "/nonexistent",
           "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    return subprocess.run(["runuser", "-u", user, "--", "env", "-i",
                           *(f"{k}={v}" for k, v in env.items()), SYSTEM_PYTHON, "-m",
                           "tcpwatch", *args], capture_output=True, text=True, timeout=60,
                          cwd="/")


def traffic(port: int, seconds: float) -> threading.Thread:
    """A loopback server and a client making short connections, for `seconds`."""
    srv = socket.create_server(("127.0.0.1", port))

    def serve():
        srv.settimeout(0.5)
        end = time.time() + seconds
        while time.time() < end:
            try:
                c, _ = srv.accept()
            except TimeoutError:
                continue
            with c:
                c.recv(100)
                c.sendall(b"pong")
        srv.close()

    def client():
        end = time.time() + seconds - 0.5
        while time.time() < end:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"ping")
                s.recv(100)
            time.sleep(0.2)
    threading.Thread(target=serve, daemon=True).start()
    t = threading.Thread(target=client, daemon=True)
    t.start()
    return t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="needs /usr/bin/python3")
def test_member_of_wireshark_group_captures_without_root(unprivileged):
    member, _outsider, lib, bindir = unprivileged
    port = free_port()
    who = subprocess.run(["runuser", "-u", member, "--", "id", "-u"], capture_output=True,
                         text=True).stdout.strip()
    assert who != "0"
    t = traffic(port, 6)
    time.sleep(0.5)
    p = run_as(member, lib, bindir, "report", "-i", "lo", "-f", f"tcp port {port}",
               "--duration", "4", "--json")
    t.join()
    assert p.returncode == 0, p.stderr
    assert "running as root" not in p.stderr and p.stderr == ""
    rep = json.loads(p.stdout)
    done = [f for f in rep["flows"] if f["server"]["port"] == port and f["state"] == "SF"]
    assert len(done) >= 5  # whole connections, seen by the unprivileged user's capture
    assert all(f["exchanges"][0]["response"] is not None for f in done)


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="needs /usr/bin/python3")
def test_outsider_is_told_how_to_get_the_rights(unprivileged):
    _member, outsider, lib, bindir = unprivileged
    p = run_as(outsider, lib, bindir, "report", "-i", "lo", "--duration", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == (
        "tcpwatch: no permission to capture on 'lo': let your user run dumpcap (Debian: sudo "
        "dpkg-reconfigure wireshark-common, then sudo usermod -aG wireshark $USER and log in "
        "again; see README), or run as root")


def test_root_gets_a_one_line_note():
    port = free_port()
    p = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "-i", "lo", "-f",
                        f"tcp port {port}", "--duration", "1"], capture_output=True,
                       text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert p.returncode == 0
    assert p.stderr.splitlines() == [
        "tcpwatch: note: running as root: live capture needs only dumpcap's capture rights "
        "(README: capture without root)"]
