"""The fast engine: our own pcap/pcapng decoder over a file, or over `dumpcap -w -` for live
capture. Produces PacketRecords and keeps CaptureStats; no pyshark, no per-packet objects
besides the record itself."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from typing import BinaryIO

from ..errors import UserError
from . import tools
from .rawring import RawRing
from .record import CaptureStats, PacketRecord
from .stream import iter_batches, iter_stream

__all__ = ["iter_batches", "iter_stream", "iter_file", "iter_file_batches", "open_capture_file",
           "LiveDumpcap"]


def open_capture_file(path: str) -> BinaryIO:
    """Open a capture for reading, with the one-line errors the CLI promises."""
    if path == "-":
        import sys
        return sys.stdin.buffer
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file: check the path (tcpwatch report -r FILE)")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a capture file")
    try:
        return open(path, "rb", buffering=1 << 20)
    except PermissionError:
        raise UserError(f"{path}: permission denied: run as a user who can read it") from None
    except OSError as e:
        raise UserError(f"{path}: cannot open: {e.strerror}") from None


def iter_file_batches(path: str, stats: CaptureStats, stop: threading.Event | None = None,
                      limit: int = 0) -> Iterator[list[PacketRecord]]:
    f = open_capture_file(path)
    if path != "-":
        try:
            stats.size = os.fstat(f.fileno()).st_size
        except (OSError, ValueError):
            pass
    try:
        yield from iter_batches(f, stats, path, stop, limit=limit)
    finally:
        if path != "-":  # never close our own standard input
            f.close()


def iter_file(path: str, stats: CaptureStats,
              stop: threading.Event | None = None) -> Iterator[PacketRecord]:
    for batch in iter_file_batches(path, stats, stop):
        yield from batch


# bytes kept per frame without -w: every header (link, IP, TCP with options: up to ~140)
# plus the payload's start (the hints read PAYLOAD_PREFIX = 256 bytes of it; the message
# parsers follow what is there and say what the snap length cut: --snaplen 0 keeps all)
LIVE_SNAPLEN = 512
PIPE_SIZE = 1 << 20  # dumpcap's stdout pipe (the default unprivileged maximum)
GATHER_S = 0.005  # a small read waits this long for more (live latency: 5 ms)
SMALL = 1 << 15  # ... small: under this many bytes


class PipeReader:
    """dumpcap's stdout, read in batches: dumpcap writes packet by packet, and a read per
    packet (with a hand-over per read) cost more than the packet. A read that brings little
    lets GATHER_S of output gather first; the pipe is enlarged so dumpcap never waits
    meanwhile. `read1` blocks until something is there, as a pipe's would."""

    def __init__(self, fd: int) -> None:
        import fcntl
        import select
        self.fd = fd
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        os.set_blocking(fd, False)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP)

    def read1(self, n: int = 1 << 20) -> bytes:
        import time
        while True:
            if not self._poll.poll(200):
                continue  # nothing yet; dumpcap's end (stop) shows as POLLHUP, then b""
            try:
                data = os.read(self.fd, n)
            except BlockingIOError:
                continue
            if data and len(data) < SMALL:
                time.sleep(GATHER_S)
                try:
                    data += os.read(self.fd, n - len(data))
                except BlockingIOError:
                    pass
            return data


# the kernel's capture buffer for dumpcap (-B, MiB; dumpcap's default is 2): at 100,000
# packets/s that is 30 ms, and a busy machine can keep dumpcap off the CPU longer than that
LIVE_BUFFER_MB = 32


def dumpcap_command(iface: str, bpf: str | None, snaplen: int | None = None) -> list[str]:
    cmd = [tools.find_tool("dumpcap"), "-i", iface, "-q", "-B", str(LIVE_BUFFER_MB), "-w", "-"]
    if snaplen:
        cmd += ["-s", str(snaplen)]
    if bpf:
        cmd += ["-f", bpf]
    return cmd


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends dumpcap SIGTERM if the thread that started
    it dies (even by SIGKILL), so no capture outlives tcpwatch (prctl PR_SET_PDEATHSIG)."""
    import ctypes
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Tee:
    """A pipe whose bytes are also written to a file: dumpcap's pcapng stream saved as is
    (`-w FILE`, or the copy the drill-down dissects). Buffered; `flush()` may be called from
    another thread (BufferedWriter locks)."""

    def __init__(self, src: BinaryIO, path: str, max_bytes: int | None = None) -> None:
        self.src = src
        self.max_bytes = max_bytes  # a private copy stops growing here (the user's -w never)
        self.written = 0
        try:
            self.out: BinaryIO | None = open(path, "wb", buffering=1 << 20)
        except OSError as e:
            raise UserError(f"{path}: cannot write: {e.strerror}") from None
        self.path = path
        self.error: str | None = None

    def read1(self, n: int = -1) -> bytes:
        """What the pipe has, up to n bytes (never waits for n)."""
        data = self.src.read1(n)  # type: ignore[attr-defined]
        out = self.out
        if data and out is not None:
            self.written += len(data)
            if self.max_bytes is not None and self.written > self.max_bytes:
                self.error = f"saved copy stopped at {self.max_bytes >> 20} MiB"
                self.close()
                return data
            try:
                out.write(data)
            except OSError as e:  # disk full: the capture goes on, the copy stops
                self.error = f"{self.path}: writing stopped: {e.strerror}"
                self.out = None
        return data

    def flush(self) -> None:
        out = self.out
        if out is not None:
            try:
                out.flush()
            except OSError as e:  # disk full: the same line as a failed write
                self.error = f"{self.path}: writing stopped: {e.strerror or e}"
                self.out = None
            except ValueError as e:  # closed meanwhile
                self.error = f"{self.path}: writing stopped: {e}"
                self.out = None

    def close(self) -> None:
        self.flush()
        out, self.out = self.out, None
        if out is not None:
            try:
                out.close()
            except OSError:
                pass


class LiveDumpcap:
    """`dumpcap -w -` on a pipe, decoded by the fast engine. The process is always reaped."""

    def __init__(self, iface: str, bpf: str | None, save: str | None = None,
                 save_max: int | None = None, raw: RawRing | None = None,
                 snaplen: int | None = None) -> None:
        self.iface, self.bpf, self.save, self.save_max = iface, bpf, save, save_max
        self.snaplen = snaplen
        self.raw = raw
        self.proc: subprocess.Popen | None = None
        self.tee: Tee | None = None

    def batches(self, stats: CaptureStats, stop: threading.Event,
                limit: int = 0) -> Iterator[list[PacketRecord]]:
        # without -w nothing needs whole frames: less to copy through the pipe, fewer drops
        # (--snaplen 0: whole frames, for the message parsers: analysis/sqlwire.py, h2.py)
        snap = self.snaplen if self.snaplen is not None else LIVE_SNAPLEN
        cmd = dumpcap_command(self.iface, self.bpf, None if self.save or snap == 0 else snap)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        # a blocked read on the pipe ends when dumpcap does: stop it when asked to
        watcher = threading.Thread(target=self._stop_when, args=(stop,), daemon=True)
        watcher.start()
        stream: BinaryIO = PipeReader(self.proc.stdout.fileno())  # type: ignore[assignment]
        if self.save is not None:
            self.tee = Tee(stream, self.save, self.save_max)
            stream = self.tee  # type: ignore[assignment]
        try:
            try:
                # read to the end even when asked to stop: stopping ends dumpcap
                # (_stop_when), whose last words are its drop counter (an interface
                # statistics block), and the packets before it are already paid for
                yield from iter_batches(stream, stats, f"dumpcap -i {self.iface}", None,
                                        self.raw, limit)
            except UserError:
                if stop.is_set():  # stopped (quit, a signal) before dumpcap wrote its header:
                    return  # nothing was captured, and nothing went wrong
                # dumpcap died before it wrote a header: its stderr says why
                self.proc.wait(timeout=5)
                err = self.proc.stderr.read().decode(errors="replace")
                raise UserError(tools.explain_dumpcap_error(err, self.iface)) from None
            if not stop.is_set() and not (limit and stats.packets >= limit):
                # dumpcap ended on its own: never normal for a live capture
                rc = self.proc.wait(timeout=5)
                err = self.proc.stderr.read().decode(errors="replace")
                raise UserError(tools.capture_ended("dumpcap", rc, err, self.iface,
                                                    stats.packets))
        finally:
            self.close()

    def _stop_when(self, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            if self.proc is None or self.proc.poll() is not None:
                return
        if self.proc is not None:
            tools.reap(self.proc)

    def flush(self) -> None:
        if self.tee is not None:
            self.tee.flush()

    def close(self) -> None:
        if self.tee is not None:
            self.tee.close()
        p = self.proc
        if p is None:
            return
        tools.reap(p)
        for s in (p.stdout, p.stderr):
            if s:
                s.close()
