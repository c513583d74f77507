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
# the capture program's stdout pipe: what it can write on while tcpwatch is off the CPU (at
# 200,000 packets/s of 512 bytes, 16 MiB is 0.15 s); root may go past fs.pipe-max-size,
# others get that (1 MiB by default). Pages are taken only while the pipe is that full.
PIPE_SIZES = (16 << 20, 1 << 20)
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
        for size in PIPE_SIZES:
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
                break
            except OSError:
                continue
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


# the kernel's capture buffer (-B; dumpcap's default is 2 MiB, tcpdump's 2 MiB too): at
# 200,000 packets/s of 512 bytes, 64 MiB is 0.3 s on most interfaces and half that on
# loopback, where each packet is held twice (leaving and arriving); a busy machine can keep
# the capture program off the CPU longer than the smaller buffers last
LIVE_BUFFER_MB = 64


def dumpcap_command(iface: str, bpf: str | None, snaplen: int | None = None) -> list[str]:
    cmd = [tools.find_tool("dumpcap"), "-i", iface, "-q", "-B", str(LIVE_BUFFER_MB), "-w", "-"]
    if snaplen:
        cmd += ["-s", str(snaplen)]
    if bpf:
        cmd += ["-f", bpf]
    return cmd


def tcpdump_command(iface: str, bpf: str | None, snaplen: int | None = None) -> list[str]:
    # -U: each packet goes down the pipe as it is handed on (not when 4 KB have gathered);
    # libpcap hands packets on a block at a time: when one fills, or BLOCK_S after its first
    cmd = [tools.find_tool("tcpdump"), "-i", iface, "-n", "-U", "-B",
           str(LIVE_BUFFER_MB << 10), "-w", "-"]
    if os.geteuid() == 0:
        # as root, tcpdump would become user `tcpdump` once the interface is open, and a
        # change of user clears the parent-death signal (prctl(2)): killed with its parent,
        # tcpwatch's capture would have lived on
        cmd += ["-Z", "root"]
    if snaplen:
        cmd += ["-s", str(snaplen)]
    if bpf:  # (not `and inbound` on loopback, halving what the buffer holds: libpcap
        # filters the blocks it held before the filter was set itself, and rejects every
        # packet of them there: 605 of 684,961 lost, the connections' first packets)
        cmd.append(bpf)
    return cmd


# the capture programs, cheapest first. dumpcap reads one packet per poll and call
# (dumpcap.c: pcap_dispatch(..., 1, ...)) and writes each with its own write: at 200,000
# packets/s it alone took 56% of a core here and still let the kernel drop 24-34%, with `cat`
# reading its pipe (tests/bench/bench_live.py); tcpdump -U took 23%, dropping none. dumpcap
# stays for -w (a pcapng file, its drop counter inside) and where tcpdump cannot capture (a
# user allowed only dumpcap: README, least privilege)
TOOLS = ("tcpdump", "dumpcap")
# libpcap's block timeout as tcpdump sets it (pcap_set_timeout 1000 ms): a block is handed on
# when full or this long after its first packet; a capture asked to stop reads this much
# longer, so that nothing captured before the stop is left in a block
BLOCK_S = 1.0
LINGER_MARGIN_S = 0.5  # ... and then for tcpdump to be scheduled and write it


def choose_tool(iface: str, bpf: str | None, save: str | None) -> str:
    """dumpcap for -w (pcapng); else tcpdump when it can open the interface with this filter
    (`tcpdump -d`, ~50 ms), dumpcap otherwise. TCPWATCH_CAPTURE=dumpcap|tcpdump forces one
    (not for -w)."""
    import shutil
    if save is not None:
        return "dumpcap"
    forced = os.environ.get("TCPWATCH_CAPTURE", "")
    if forced in TOOLS:
        return forced
    path = shutil.which("tcpdump")
    if path is None:
        return "dumpcap"
    cmd = [path, "-i", iface, "-d"] + ([bpf] if bpf else [])
    try:
        ok = subprocess.run(cmd, capture_output=True, timeout=20,
                            stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return "tcpdump" if ok else "dumpcap"


def tcpdump_dropped(text: str) -> int:
    """The packets tcpdump says the kernel (its buffer full) and the interface dropped, from
    the counts it prints on stderr as it ends."""
    import re
    return sum(int(n) for n in re.findall(
        r"^(\d+) packets? dropped by (?:kernel|interface)$", text, re.MULTILINE))


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
    """A capture program (tcpdump or dumpcap: choose_tool) writing to a pipe, decoded by the
    fast engine. The process is always reaped."""

    def __init__(self, iface: str, bpf: str | None, save: str | None = None,
                 save_max: int | None = None, raw: RawRing | None = None,
                 snaplen: int | None = None, linger: bool = False) -> None:
        self.iface, self.bpf, self.save, self.save_max = iface, bpf, save, save_max
        self.snaplen = snaplen
        self.raw = raw
        # asked to stop, read BLOCK_S longer first (a report: every packet captured before
        # the stop is analysed); the dashboard quits at once
        self.linger = linger
        self.tool = ""
        self.proc: subprocess.Popen | None = None
        self.tee: Tee | None = None

    def batches(self, stats: CaptureStats, stop: threading.Event,
                limit: int = 0) -> Iterator[list[PacketRecord]]:
        # without -w nothing needs whole frames: less to copy through the pipe, fewer drops
        # (--snaplen 0: whole frames, for the message parsers: analysis/sqlwire.py, h2.py)
        snap = self.snaplen if self.snaplen is not None else LIVE_SNAPLEN
        self.tool = tool = choose_tool(self.iface, self.bpf, self.save)
        command = tcpdump_command if tool == "tcpdump" else dumpcap_command
        cmd = command(self.iface, self.bpf, None if self.save or snap == 0 else snap)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        # a blocked read on the pipe ends when the program does: stop it when asked to
        watcher = threading.Thread(target=self._stop_when, args=(stop,), daemon=True)
        watcher.start()
        stream: BinaryIO = PipeReader(self.proc.stdout.fileno())  # type: ignore[assignment]
        if self.save is not None:
            self.tee = Tee(stream, self.save, self.save_max)
            stream = self.tee  # type: ignore[assignment]
        try:
            try:
                # read to the end even when asked to stop: stopping ends the program
                # (_stop_when), whose last words are its drop counter (dumpcap: an interface
                # statistics block; tcpdump: on stderr), and the packets before are paid for
                yield from iter_batches(stream, stats, f"{tool} -i {self.iface}", None,
                                        self.raw, limit)
            except UserError:
                if stop.is_set():  # stopped (quit, a signal) before it wrote its header:
                    return  # nothing was captured, and nothing went wrong
                # the program died before it wrote a header: its stderr says why
                self.proc.wait(timeout=5)
                err = self.proc.stderr.read().decode(errors="replace")
                raise UserError(tools.explain_dumpcap_error(err, self.iface)) from None
            ended = not stop.is_set() and not (limit and stats.packets >= limit)
            if tool == "tcpdump" or ended:
                # tcpdump's counts come on stderr as it ends (SIGTERM: _stop_when)
                if ended:
                    rc = self.proc.wait(timeout=5)
                else:
                    tools.reap(self.proc)
                    rc = self.proc.returncode
                err = self.proc.stderr.read().decode(errors="replace")
                if tool == "tcpdump":
                    stats.dropped = max(stats.dropped, tcpdump_dropped(err))
                if ended:  # it ended on its own: never normal for a live capture
                    raise UserError(tools.capture_ended(tool, rc, err, self.iface,
                                                        stats.packets))
        finally:
            self.close()

    def _stop_when(self, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            if self.proc is None or self.proc.poll() is not None:
                return
        if self.linger and self.tool == "tcpdump" and self.proc is not None:
            # a block not yet full is handed on within BLOCK_S: read it (on the reader's
            # thread, meanwhile) before the end
            try:
                self.proc.wait(timeout=BLOCK_S + LINGER_MARGIN_S)
            except subprocess.TimeoutExpired:
                pass
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
