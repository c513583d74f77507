"""End to end in a real terminal: tcpwatch live on loopback inside tmux, a real HTTP server and
a real client; read the screen with capture-pane, drive it with send-keys, quit, and check
that no capture process survives."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root here"),
    pytest.mark.skipif(not shutil.which("tmux") or not shutil.which("dumpcap"),
                       reason="needs tmux and dumpcap"),
    pytest.mark.timeout(120),
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = textwrap.dedent("""
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        def do_GET(self):
            body = b"x" * 2000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")

CLIENT = textwrap.dedent("""
    import ctypes, http.client, sys, time
    # a name of our own, so the test can find this process in the dashboard
    ctypes.CDLL(None).prctl(15, b"twe2e-client", 0, 0, 0)
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        c.request("GET", "/item")
        c.getresponse().read()
        time.sleep(0.3)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True).stdout


def wait_for(session: str, text: str, timeout: float) -> str:
    end = time.time() + timeout
    while time.time() < end:
        screen = pane(session)
        if text in screen:
            return screen
        time.sleep(0.25)
    raise AssertionError(f"{text!r} never appeared; screen:\n{pane(session)}")


def keys(session: str, *k: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)


def capture_procs(port: int) -> list[str]:
    r = subprocess.run(["pgrep", "-af", "dumpcap|tshark"], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if f"port {port}" in line]


def test_live_dashboard_in_tmux_finds_the_client_process(tmp_path):
    port = free_port()
    session = f"tw-{uuid.uuid4().hex[:8]}"
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-c", SERVER, str(port)]))
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50"],
                       check=True)
        keys(session, f"{sys.executable} -m tcpwatch -i lo -f 'tcp port {port}' "
                      f"-w {tmp_path}/saved.pcapng; echo TCPWATCH_EXIT=$?", "Enter")
        wait_for(session, "flows", 20)  # the header is up: the capture is running
        procs.append(subprocess.Popen([sys.executable, "-c", CLIENT, str(port), "25"]))
        screen = wait_for(session, "twe2e-client", 20)
        row = next(line for line in screen.splitlines() if "twe2e-client" in line)
        assert f"127.0.0.1:{port}" in row  # the client's row, with the server endpoint
        # filter on the process, back to the table, drill down
        keys(session, "/")
        keys(session, "-l", "proc:twe2e")
        keys(session, "Enter")
        time.sleep(1.0)
        keys(session, "Enter")
        screen = wait_for(session, "Handshake", 10)
        assert "twe2e-client" in screen and "window scale" in screen
        keys(session, "k")  # the packets, with the HTTP request line in Info
        wait_for(session, "GET /item HTTP/1.1", 10)
        keys(session, "Escape")
        wait_for(session, "filter proc:twe2e", 10)
        keys(session, "q")
        wait_for(session, "TCPWATCH_EXIT=0", 15)
        assert not capture_procs(port), "a capture process survived"
        # the -w file is a real pcapng Wireshark reads, with the client's packets
        out = subprocess.run(["tshark", "-r", f"{tmp_path}/saved.pcapng", "-Y",
                              "http.request", "-T", "fields", "-e", "http.request.uri"],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "/item" in out.stdout
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        for line in capture_procs(port):  # never leave a capture behind, even on failure
            subprocess.run(["kill", line.split()[0]], capture_output=True)


@pytest.mark.parametrize("sig", ["q", "INT", "HUP", "TERM", "KILL"])
def test_signals_leave_no_capture_behind(sig, tmp_path):
    """Every way out restores the terminal, leaves no dumpcap, keeps the -w file readable by
    capinfos (but SIGKILL, which nothing can catch), and writes nothing anywhere else: the
    working directory, TMPDIR and HOME stay empty."""
    port = free_port()
    session = f"tw-{uuid.uuid4().hex[:8]}"
    marker = f"tcp port {port}"
    quiet = tmp_path / "quiet"  # cwd, TMPDIR and HOME of tcpwatch
    quiet.mkdir()
    saved = tmp_path / "saved.pcapng"
    procs = [subprocess.Popen([sys.executable, "-c", SERVER, str(port)])]
    try:
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40"],
                       check=True)
        keys(session, f"cd {quiet} && TMPDIR={quiet} HOME={quiet} PYTHONPATH={ROOT} "
                      f"PYTHONDONTWRITEBYTECODE=1 {sys.executable} -m tcpwatch -i lo "
                      f"-f '{marker}' -w {saved}; echo TCPWATCH_EXIT=$?", "Enter")
        wait_for(session, "flows", 20)
        assert capture_procs(port), "dumpcap should be running"
        procs.append(subprocess.Popen([sys.executable, "-c", CLIENT, str(port), "3"]))
        wait_for(session, f"127.0.0.1:{port}", 20)
        me = subprocess.run(["pgrep", "-f", f"tcpwatch -i lo -f {marker}"],
                            capture_output=True, text=True).stdout.split()
        assert me
        if sig == "q":
            keys(session, "q")
        else:
            subprocess.run(["kill", f"-{sig}", *me], check=True)
        end = time.time() + 15
        while time.time() < end and not re.search(r"TCPWATCH_EXIT=\d", pane(session)):
            time.sleep(0.2)
        code = re.search(r"TCPWATCH_EXIT=(\d+)", pane(session))
        assert code, pane(session)
        if sig != "KILL":
            # q quits; Textual turns SIGINT into a quit (0); HUP/TERM end like Ctrl+C (130)
            assert code.group(1) in {"q": ("0",), "INT": ("0", "130")}.get(sig, ("130",))
        for _ in range(40):  # SIGKILL: the kernel's parent-death signal stops dumpcap
            if not capture_procs(port):
                break
            time.sleep(0.1)
        assert not capture_procs(port), "a capture process survived"
        assert list(quiet.iterdir()) == [], "tcpwatch wrote outside the paths it was given"
        if sig != "KILL":
            info = subprocess.run(["capinfos", "-c", "-M", str(saved)], capture_output=True,
                                  text=True)
            assert info.returncode == 0, info.stderr
            n = int(re.search(r"Number of packets:\s+(\d+)", info.stdout).group(1))
            assert n > 0
        if sig == "q":  # the totals once the screen is gone, as tcpdump prints them: every
            # packet dumpcap wrote (the -w copy) was read, and dumpcap's own drop counter
            said = re.search(r"tcpwatch: ([\d,]+) packets captured on lo; dropped (\d+) by "
                             r"the capture \(kernel, dumpcap\) and (\d+) by tcpwatch",
                             pane(session))
            assert said, pane(session)
            assert int(said.group(1).replace(",", "")) == n
            assert said.group(2) == said.group(3) == "0"
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        for line in capture_procs(port):
            subprocess.run(["kill", line.split()[0]], capture_output=True)
