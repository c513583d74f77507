"""End to end in a real terminal: tcpwatch live on loopback inside tmux, a real HTTP server and
a real client; read the screen with capture-pane, drive it with send-keys, quit, and check
that no capture process survives."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import warnings

import pytest
from conftest import wait_until

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


HAMMER = textwrap.dedent("""
    import http.client, sys, time
    # a new connection per request, as fast as it goes: the dashboard's table changes at
    # every snapshot, and the UI thread is busy applying them when a signal comes
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
        try:
            c.request("GET", "/item")
            c.getresponse().read()
        except OSError:
            pass
        c.close()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tmux(session: str) -> list[str]:
    """tmux, on a server of the session's own: sessions of one shared server raced its exit
    (the last session killed, the server going, while the next test's new-session reached it:
    "server exited unexpectedly")."""
    return ["tmux", "-L", session]


def pane(session: str) -> str:
    return subprocess.run([*tmux(session), "capture-pane", "-p", "-t", session],
                          capture_output=True, text=True).stdout


def wait_for(session: str, text: str, timeout: float) -> str:
    end = time.time() + timeout
    while time.time() < end:
        screen = pane(session)
        if text in screen:
            return screen
        time.sleep(0.25)
    raise AssertionError(f"{text!r} never appeared; screen:\n{pane(session)}")


def keys(session: str, *k: str) -> None:
    subprocess.run([*tmux(session), "send-keys", "-t", session, *k], check=True)


def capture_procs(port: int) -> list[str]:
    r = subprocess.run(["pgrep", "-af", "tcpdump|dumpcap|tshark"], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if f"port {port}" in line]


def marked(mark: str) -> dict[int, str]:
    """Every live process of one tcpwatch run - the UI, its worker, dumpcap - found by the
    variable they all inherit (TCPWATCH_TEST_RUN=mark): pid -> command line."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"TCPWATCH_TEST_RUN={mark}".encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie is dead already (its parent reaps it)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                out[int(pid)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
    return out


def test_live_dashboard_in_tmux_finds_the_client_process(tmp_path):
    port = free_port()
    session = f"tw-{uuid.uuid4().hex[:8]}"
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-c", SERVER, str(port)]))
        subprocess.run([*tmux(session), "new-session", "-d", "-s", session,
                        "-x", "200", "-y", "50"], check=True)
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
        # the filtered view is on screen (the status line says "updating…" until then)
        wait_until(lambda: "filter proc:twe2e" in (sc := pane(session)) and "updating" not in sc
                   and "twe2e-client" in sc, 10)
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
        subprocess.run([*tmux(session), "kill-session", "-t", session], capture_output=True)
        for line in capture_procs(port):  # never leave a capture behind, even on failure
            subprocess.run(["kill", line.split()[0]], capture_output=True)


# when the signal comes: "start" as soon as the process exists (Python starting, or tcpwatch
# before its event loop runs), "worker" as soon as the dashboard has started its capture
# process (the UI thread inside on_mount), "running" once the client's row is on screen, "busy"
# likewise under a stream of new connections (the UI thread mostly inside its tasks, applying
# snapshots: where a KeyboardInterrupt raised by a signal handler used to land and hang it)
@pytest.mark.parametrize("sig,moment", [
    ("q", "running"), ("INT", "running"), ("KILL", "running"),
    ("HUP", "start"), ("HUP", "worker"), ("HUP", "busy"),
    ("TERM", "start"), ("TERM", "worker"), ("TERM", "busy")])
def test_signals_leave_no_capture_behind(sig, moment, tmp_path):
    """Every way out, at any moment, restores the terminal, leaves no process behind (the
    dashboard, its worker, dumpcap), keeps the -w file readable by capinfos (but SIGKILL,
    which nothing can catch), prints the totals once a capture ran, and writes nothing
    anywhere else: the working directory, TMPDIR and HOME stay empty."""
    port = free_port()
    session = f"tw-{uuid.uuid4().hex[:8]}"
    mark = session
    marker = f"tcp port {port}"
    quiet = tmp_path / "quiet"  # cwd, TMPDIR and HOME of tcpwatch
    quiet.mkdir()
    saved = tmp_path / "saved.pcapng"
    procs = [subprocess.Popen([sys.executable, "-c", SERVER, str(port)])]
    try:
        subprocess.run([*tmux(session), "new-session", "-d", "-s", session,
                        "-x", "160", "-y", "40"], check=True)
        keys(session, f"cd {quiet} && TCPWATCH_TEST_RUN={mark} TMPDIR={quiet} HOME={quiet} "
                      f"PYTHONPATH={ROOT} PYTHONDONTWRITEBYTECODE=1 {sys.executable} -m "
                      f"tcpwatch -i lo -f '{marker}' -w {saved}; echo TCPWATCH_EXIT=$?",
                      "Enter")

        def ui() -> int | None:
            return next((pid for pid, cmd in marked(mark).items()
                         if "-m tcpwatch -i lo" in cmd), None)
        if moment == "start":
            me = wait_until(ui, 20, step=0.005)
        elif moment == "worker":
            wait_until(lambda: any("tcpwatch.worker" in c for c in marked(mark).values()), 30,
                       step=0.005)
            me = ui()
        else:
            wait_for(session, "flows", 30)
            assert capture_procs(port), "dumpcap should be running"
            client = HAMMER if moment == "busy" else CLIENT
            procs.append(subprocess.Popen([sys.executable, "-c", client, str(port), "30"]))
            wait_for(session, f"127.0.0.1:{port}", 20)
            if moment == "busy":  # connections keep coming: the table changes all the time
                wait_until(lambda: (m := re.search(r"flows \d+ active / ([\d,]+)",
                                                   pane(session)))
                           and int(m.group(1).replace(",", "")) >= 100, 30)
            me = ui()
        assert me, marked(mark)
        if sig == "q":
            keys(session, "q")
        else:
            os.kill(me, getattr(signal, f"SIG{sig}"))
        code = wait_until(lambda: re.search(r"TCPWATCH_EXIT=(\d+)", pane(session)), 20,
                          step=0.2)
        screen = pane(session)
        # INT/HUP/TERM quit as q does, and say so: 130, as after Ctrl+C
        expect = {"q": {"0"}, "KILL": {str(128 + 9)}}.get(sig, {"130"})
        if moment == "start":  # or before Python ran tcpwatch's code: the default action
            expect = expect | {str(128 + getattr(signal, f"SIG{sig}"))}
        assert code.group(1) in expect, screen
        # nothing of this run is left: no dashboard, no worker, no dumpcap (after SIGKILL
        # the kernel's parent-death signal ends the worker, which reaps dumpcap)
        if sig == "KILL":
            wait_until(lambda: not marked(mark), 20)
        assert not marked(mark), marked(mark)
        assert not capture_procs(port), "a capture process survived"
        assert list(quiet.iterdir()) == [], "tcpwatch wrote outside the paths it was given"
        n = None
        if sig != "KILL" and (moment in ("running", "busy") or saved.exists()):
            info = subprocess.run(["capinfos", "-c", "-M", str(saved)], capture_output=True,
                                  text=True)
            assert info.returncode == 0, info.stderr
            n = int(re.search(r"Number of packets:\s+(\d+)", info.stdout).group(1))
            assert n > 0 or moment == "worker"
        # the totals once the screen is gone, as tcpdump prints them, whenever a capture ran
        said = re.search(r"tcpwatch: ([\d,]+) packets captured on lo; dropped (\d+) by "
                         r"the capture \(kernel\) and (\d+) by tcpwatch", screen)
        if sig != "KILL" and moment != "start":
            assert said, screen
        if sig == "q":  # every packet dumpcap wrote (the -w copy) was read, none dropped
            assert int(said.group(1).replace(",", "")) == n
            assert said.group(2) == said.group(3) == "0"
        assert "Traceback" not in screen, screen
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run([*tmux(session), "kill-session", "-t", session], capture_output=True)
        for pid in marked(mark):  # never leave a process behind, even on failure
            subprocess.run(["kill", "-KILL", str(pid)], capture_output=True)


@contextlib.contextmanager
def busy_dashboard(shell: str = ""):
    """The live dashboard in a tmux session of its own (after `shell`, a command prefix),
    its table kept busy by a new connection per request; yields (session, stacks file).
    Whatever the test leaves running is killed after it."""
    port = free_port()
    session = f"tw-{uuid.uuid4().hex[:8]}"
    stacks = f"/tmp/{session}.stacks"
    procs = [subprocess.Popen([sys.executable, "-c", SERVER, str(port)])]
    try:
        subprocess.run([*tmux(session), "new-session", "-d", "-s", session,
                        "-x", "160", "-y", "40"], check=True)
        keys(session, f"cd {ROOT} && {shell}TCPWATCH_TEST_RUN={session} "
                      f"TCPWATCH_STACKS={stacks} {sys.executable} -m tcpwatch "
                      f"-i lo -f 'tcp port {port}'", "Enter")
        wait_for(session, "flows", 30)
        procs.append(subprocess.Popen([sys.executable, "-c", HAMMER, str(port), "60"]))
        wait_for(session, f"127.0.0.1:{port}", 20)
        assert len(marked(session)) == 3, marked(session)  # the UI, its worker, its capture
        yield session, stacks
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run([*tmux(session), "kill-session", "-t", session], capture_output=True)
        for pid in marked(session):
            subprocess.run(["kill", "-KILL", str(pid)], capture_output=True)
        if os.path.exists(stacks):
            os.unlink(stacks)


def test_closing_the_terminal_leaves_nothing_behind():
    """The terminal goes away (its tmux session killed: SIGHUP to the dashboard) while the
    table is busy: the dashboard, its worker and its capture all end."""
    with busy_dashboard() as (session, stacks):
        subprocess.run([*tmux(session), "kill-session", "-t", session], check=True)
        # usually within a second; the stop path's own bounds (the UI waits up to 20 s for
        # its worker, which gives the capture and its threads 10 s each) are the limit, and
        # 25 s after the signal the process ends whatever hangs (ui/app.py) - nothing may
        # outlive them
        try:
            wait_until(lambda: not marked(session), 45)
        except AssertionError:
            pids = marked(session)
            left = subprocess.run(["ps", "-o", "pid,stat,etimes,pcpu,cmd", "-p",
                                   ",".join(map(str, pids)) or "1"],
                                  capture_output=True, text=True).stdout
            for pid in pids:  # where each is stuck (TCPWATCH_STACKS: faulthandler)
                subprocess.run(["kill", "-USR1", str(pid)], capture_output=True)
            try:
                wait_until(lambda: os.path.exists(stacks) and os.path.getsize(stacks), 5)
                where = open(stacks).read()[-6000:]
            except AssertionError:
                where = "(no stacks written)"
            print(f"stacks of what outlived SIGHUP:\n{where}")  # whole, in the report
            raise AssertionError(f"still running 45 s after SIGHUP:\n{left}\n{where}") \
                from None
        # ended in time; by its normal path, or by the deadline (ui/app.py _exit_now), which
        # is what it is for, but says a part of the normal path hung: shown, with where
        if os.path.exists(stacks) and os.path.getsize(stacks):
            where = open(stacks).read()
            print(f"the exit deadline was needed:\n{where}")
            warnings.warn(f"the dashboard's exit deadline was needed after SIGHUP: {where}",
                          stacklevel=1)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_dashboard_that_outlives_its_terminal_still_ends_on_sigterm():
    """Started with SIGHUP ignored (nohup; `trap '' HUP`), the dashboard outlives its
    terminal: the kernel's hangup comes with a SIGCONT, and every write fails. It keeps
    working (its table still redrawn, into nothing) and SIGTERM ends it by the normal path,
    never by the exit deadline. (Textual's output thread died on the first failed write, the
    next writes filled its queue and blocked the event loop: no signal was ever handled.)"""
    with busy_dashboard("trap '' HUP && ") as (session, stacks):
        [ui] = [pid for pid, cmd in marked(session).items()
                if "-m tcpwatch " in cmd and "tcpwatch.worker" not in cmd]
        subprocess.run([*tmux(session), "kill-session", "-t", session], check=True)
        # the SIGCONT that comes with a hangup (the kernel's, as the shell ends; the terminal
        # is hung up once kill-session returns), made sure of: it must not resume Textual's
        # application mode on the dead terminal
        os.kill(ui, signal.SIGCONT)
        # still working without a terminal: drawing the busy table costs it CPU time
        start = cpu_seconds(ui)
        wait_until(lambda: cpu_seconds(ui) - start >= 0.5, 30)
        assert len(marked(session)) == 3, marked(session)  # the UI, its worker, its capture
        os.kill(ui, signal.SIGTERM)
        wait_until(lambda: not marked(session), 20)  # the deadline is 25 s: not needed
        assert not (os.path.exists(stacks) and os.path.getsize(stacks)), open(stacks).read()
