"""The dashboard's capture and analysis in a process of their own.

In one process, the threads that read dumpcap's pipe, decode and analyse hold Python's
interpreter lock nearly all the time at 100,000 packets/s, and the UI thread waits for it at
every turn of its event loop: key presses took up to a second to show, and the capture fell
behind the kernel. So `tcpwatch` (the dashboard) runs the Monitor (monitor.py: capture thread,
flow table, snapshots) in a child process, and the UI process keeps only the UI and a thread
that receives snapshots.

RemoteMonitor is what the UI sees: the Monitor's own interface (view, focus, poke, latest,
start, stop, capture.raw / capture.flush_saved for the drill-down's dissection). Messages
go both ways over one socket pair, pickled: snapshots at the monitor's fixed rate
(SNAPSHOT_HZ, more when poked), view and focus changes the other way. The child is
`python -m tcpwatch.worker`, started afresh (the UI process has threads by then, so no fork),
in a session of its own (no terminal signals) with /dev/null for its standard streams; it
ends when the UI process does (its end of the socket closes; the kernel's parent-death
signal as well), reaping dumpcap or tshark on its way out.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

from .analysis import GC_THRESHOLDS
from .capture.rawring import RAW_MAX_BYTES
from .capture.tools import reap
from .monitor import Snapshot, ViewSpec

REPLY_TIMEOUT_S = 10.0  # a frame or a flush asked of the child


def _child(fd: int) -> None:
    """The child's life: `python -m tcpwatch.worker FD`, FD its end of the socket pair."""
    conn = Connection(fd)
    capture_kw, monitor_kw, view, notes = conn.recv()
    try:  # the UI process killed outright: end too (then the pipe's end says the same)
        import ctypes
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the UI was already gone
        return
    import gc
    gc.set_threshold(*GC_THRESHOLDS)

    # SIGTERM (the UI gone: the parent-death signal; or reap()) ends the loop below by its own
    # path, as the UI's "stop" does: its read side shut, recv() ends; never an exception
    # raised in whatever frame runs, which could cut the monitor's stop (reaping dumpcap) short
    stopper = socket.socket(fileno=os.dup(fd))

    def _term(_sig, _frame):
        try:
            stopper.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = threading.Lock()

    def send(msg) -> None:
        with lock:
            try:
                conn.send(msg)
            except (OSError, ValueError):
                pass  # the UI is gone: the loop below sees it and stops

    mon = None
    try:
        from .capture.session import Capture
        from .monitor import Monitor
        capture = Capture(**capture_kw)
        procmap = None
        if monitor_kw.pop("procmap"):
            from .procmap import ProcMap
            procmap = ProcMap()
        mon = Monitor(capture, procmap=procmap, **monitor_kw)
        mon.view = view
        mon.notes = notes
        mon.on_publish = lambda snap: send(("snap", snap))
        mon.start()
        while True:
            msg = conn.recv()
            kind = msg[0]
            if kind == "view":
                mon.view = msg[1]
            elif kind == "focus":
                mon.focus = msg[1]
            elif kind == "poke":
                mon.poke()
            elif kind == "frame":
                held = capture.raw.get(msg[1]) if capture.raw is not None else None
                send(("reply", held))
            elif kind == "flush":
                send(("reply", capture.flush_saved()))
            elif kind == "stop":
                break
    except (EOFError, OSError):
        pass
    except BaseException as e:  # noqa: BLE001 - told to the UI, which shows it
        send(("failed", getattr(e, "message", None) or str(e) or e.__class__.__name__))
    finally:
        if mon is not None:
            mon.stop()  # reaps dumpcap / tshark
            mon.final_snapshot()  # sent by on_publish
        send(("ended",))
        conn.close()
        stopper.close()


class _RemoteRaw:
    """capture.raw for the drill-down: frames held in the child's memory, asked for."""

    max_bytes = RAW_MAX_BYTES

    def __init__(self, owner: RemoteMonitor) -> None:
        self._owner = owner

    def get(self, num: int):
        return self._owner._ask(("frame", num))


class _RemoteCapture:
    def __init__(self, owner: RemoteMonitor, kw: dict) -> None:
        self._owner = owner
        self.file = kw.get("file")
        self.iface = kw.get("iface")
        self.engine = kw.get("engine", "fast")
        has_raw = (self.iface is not None and kw.get("save") is None
                   and self.engine == "fast")
        self.raw = _RemoteRaw(owner) if has_raw else None

    def flush_saved(self) -> str | None:
        return self._owner._ask(("flush",))


class RemoteMonitor:
    """A Monitor (monitor.py) running in a child process; the same interface for the UI."""

    def __init__(self, capture_kw: dict, **monitor_kw) -> None:
        self._capture_kw = capture_kw
        self._monitor_kw = dict(monitor_kw)
        self._monitor_kw["procmap"] = bool(self._monitor_kw.get("procmap"))
        self.capture = _RemoteCapture(self, capture_kw)
        self._view = ViewSpec()
        self._focus: int | None = None
        self.notes: tuple[str, ...] = ()
        self.latest: Snapshot | None = None
        self.failed: str | None = None  # the child's own error, if it could not run
        self._conn = None
        self._proc = None
        self._send_lock = threading.Lock()
        self._ask_lock = threading.Lock()
        self._replies: queue.Queue = queue.Queue()
        self._ended = threading.Event()
        self._rx: threading.Thread | None = None

    # the view and the flow in focus: kept here, and sent to the child
    @property
    def view(self) -> ViewSpec:
        return self._view

    @view.setter
    def view(self, v: ViewSpec) -> None:
        self._view = v
        self._send(("view", v))

    @property
    def focus(self) -> int | None:
        return self._focus

    @focus.setter
    def focus(self, fid: int | None) -> None:
        self._focus = fid
        self._send(("focus", fid))

    def poke(self) -> None:
        self._send(("poke",))

    def _send(self, msg) -> None:
        conn = self._conn
        if conn is None:
            return
        with self._send_lock:
            try:
                conn.send(msg)
            except (OSError, ValueError):
                pass

    def _ask(self, msg):
        """A request answered by the child (one at a time)."""
        with self._ask_lock:
            while not self._replies.empty():
                self._replies.get_nowait()
            self._send(msg)
            try:
                return self._replies.get(timeout=REPLY_TIMEOUT_S)
            except queue.Empty:
                return None

    def start(self) -> RemoteMonitor:
        # a process started afresh (not forked: the UI process has Textual's threads by
        # now), in a session of its own, its standard streams /dev/null; one socket pair
        here, there = socket.socketpair()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tcpwatch.worker", str(there.fileno())],
            pass_fds=(there.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        there.close()
        self._conn = Connection(here.detach())
        self._send((self._capture_kw, self._monitor_kw, self._view, self.notes))
        self._rx = threading.Thread(target=self._receive, name="tcpwatch-receive",
                                    daemon=True)
        self._rx.start()
        return self

    def _receive(self) -> None:
        conn = self._conn
        try:
            while True:
                msg = conn.recv()
                kind = msg[0]
                if kind == "snap":
                    if msg[1] is not None:
                        self.latest = msg[1]
                elif kind == "reply":
                    self._replies.put(msg[1])
                elif kind == "failed":
                    self.failed = msg[1]
                elif kind == "ended":
                    break
        except (EOFError, OSError, TypeError, ValueError):  # the child gone, or this end closed
            pass
        self._ended.set()
        s = self.latest
        if self.failed is not None and s is not None and not s.error:
            self.latest = dataclasses.replace(s, error=self.failed, done=True)

    def stop(self) -> None:
        """Stop the child (which reaps dumpcap/tshark) and wait for it; idempotent."""
        proc = self._proc
        if proc is None:
            return
        self._send(("stop",))
        self._ended.wait(10)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            reap(proc, 5)
        self._proc = None
        if self._rx is not None:
            self._rx.join(timeout=2)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


if __name__ == "__main__":
    _child(int(sys.argv[1]))
