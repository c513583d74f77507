"""A capture running in its own thread: an engine turns packets into PacketRecords and hands
them over in batches through a bounded queue (never one call per packet).

Engines: "fast" (our pcap/pcapng decoder; live via `tcpdump -w -` or `dumpcap -w -`) and
"pyshark" (tshark through pyshark, created, iterated and closed inside the capture thread with
its own asyncio event loop). Both produce the same records; tests prove it on every shared capture.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from ..errors import UserError
from .rawring import RawRing
from .record import CaptureStats, PacketRecord

ENGINES = ("fast", "pyshark")
_END = object()


class Capture:
    def __init__(self, engine: str = "fast", file: str | None = None, iface: str | None = None,
                 bpf: str | None = None, count: int | None = None,
                 duration: float | None = None, save: str | None = None,
                 save_max: int | None = None, keep_raw: bool = True,
                 snaplen: int | None = None, linger: bool = False) -> None:
        if engine not in ENGINES:
            raise UserError(f"unknown engine '{engine}': use one of {', '.join(ENGINES)}")
        if (file is None) == (iface is None):
            raise UserError("give exactly one of -r FILE or -i IFACE")
        self.engine, self.file, self.iface, self.bpf = engine, file, iface, bpf
        self.count, self.duration = count, duration
        self.save = save  # live only: also write the packets to this pcapng file
        self.save_max = save_max  # bytes; None: no limit (the user's own -w file)
        self.snaplen = snaplen  # live: bytes kept per frame (None: fast.LIVE_SNAPLEN, 0: all)
        # live, asked to stop: first read what the kernel still holds (fast.BLOCK_S; a
        # report, whose every packet counts), or end at once (the dashboard's quit)
        self.linger = linger
        self._live = None
        # live, fast engine, no -w: the newest frames stay in memory for dissection (the
        # dashboard's; a report has none: keep_raw=False)
        self.raw: RawRing | None = RawRing() if (
            keep_raw and iface is not None and save is None and engine == "fast") else None
        self.stats = CaptureStats()
        self.error: BaseException | None = None
        # batches handed over and not analysed yet: 64 of up to 512 records (a live
        # capture has ~0.3 s at 100,000 packets/s before tcpwatch must let packets go)
        self._q: queue.Queue = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        self._on_close: list = []  # engine hooks that end a blocked read (kill tshark)
        self._thread: threading.Thread | None = None
        self.started = 0.0

    def preflight(self) -> None:
        """Live capture: ask dumpcap to open the interface and compile the capture filter
        (`dumpcap -d`) before anything starts, so that a missing interface, a filter syntax
        error or missing rights is one clear line for either engine."""
        if self.iface is None:
            return
        import subprocess

        from . import tools
        cmd = [tools.find_tool("dumpcap"), "-i", self.iface, "-d"]
        if self.bpf:
            cmd += ["-f", self.bpf]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                               timeout=20, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise UserError(f"dumpcap did not answer for interface '{self.iface}' in 20 s"
                            ) from None
        # dumpcap -d exits 0 even when it fails: success is the compiled program on stdout
        if "(000)" not in p.stdout:
            raise UserError(tools.explain_dumpcap_error(p.stderr, self.iface))

    @property
    def source(self) -> str:
        return self.file if self.file is not None else f"interface {self.iface}"

    def _batches(self) -> Iterator[list[PacketRecord]]:
        limit = self.count or 0
        if self.engine == "fast":
            from . import fast
            if self.file is not None:
                return fast.iter_file_batches(self.file, self.stats, self._stop, limit)
            self._live = fast.LiveDumpcap(self.iface, self.bpf, self.save, self.save_max,
                                          self.raw, snaplen=self.snaplen, linger=self.linger)
            return self._live.batches(self.stats, self._stop, limit)
        from . import pyshark_engine
        return pyshark_engine.batches(self.file, self.iface, self.bpf, self.stats, self._stop,
                                      duration=self.duration, on_close=self._on_close,
                                      save=self.save, limit=limit)

    def iter_batches(self) -> Iterator[list[PacketRecord]]:
        """The records, in batches, on the caller's own thread: no hand-over between threads.
        A file, or a live capture with the fast engine (`direct_live`): reading, decoding and
        analysing on one thread, there is nobody to wait for the interpreter's lock (two
        threads did: the reader, let go of it around every read, waited up to a switch
        interval to get it back while dumpcap's pipe filled). A live capture read this way
        ends at request_stop() (or --duration, --count), at dumpcap's end."""
        if self.iface is not None:
            self.started = time.monotonic()
            self._arm_timer()
        return self._batches()

    @property
    def direct_live(self) -> bool:
        """A live capture that iter_batches() can read on the caller's thread (the fast
        engine: its reads wait at most 200 ms before looking at the stop)."""
        return self.iface is not None and self.engine == "fast"

    def _arm_timer(self) -> None:
        if self.duration is not None:
            # a live capture with no traffic still ends on time
            timer = threading.Timer(self.duration, self._stop.set)
            timer.daemon = True
            timer.start()

    def flush_saved(self) -> str | None:
        """Make the saved copy (-w) readable up to the packets seen so far; returns the
        copy's write error, if writing stopped (disk full)."""
        live = self._live
        if live is not None:
            live.flush()
            if live.tee is not None:
                return live.tee.error
        return None

    def _run(self) -> None:
        # engines hand over what they have before a read that may wait (stream.py), so a
        # batch is never held back on a quiet link
        deadline = None if self.duration is None else time.monotonic() + self.duration
        live = self.iface is not None
        # the fast engine reads a live capture on to dumpcap's end once stopped (its drop
        # counter comes last); the others end at the stop
        to_the_end = live and self.engine == "fast"
        q = self._q
        try:
            for batch in self._batches():
                if live:
                    # never wait on the analysis: a full queue means it fell behind, and
                    # waiting would only move the loss into the kernel, out of sight until
                    # dumpcap stops; these are counted as tcpwatch's own (stats.lost)
                    try:
                        q.put_nowait(batch)
                    except queue.Full:
                        if not self._stop.is_set():  # (stopping: nobody reads any more)
                            self.stats.lost += len(batch)
                else:
                    self._put(batch)
                if deadline is not None and time.monotonic() >= deadline:
                    self._stop.set()
                if self._stop.is_set() and not to_the_end:
                    break
        except BaseException as e:  # handed to the consumer, raised there
            self.error = e
        finally:
            self._put(_END)

    def _put(self, item: object) -> None:
        while True:
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                if self._stop.is_set() and item is not _END:
                    return

    def start(self) -> Capture:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="tcpwatch-capture",
                                        daemon=True)
        self._thread.start()
        self._arm_timer()
        return self

    def batches(self, timeout: float | None = None) -> Iterator[list[PacketRecord]]:
        """Yield batches until the capture ends (an empty one after `timeout` seconds without
        any); re-raise its error at the end."""
        wait = 0.2 if timeout is None else timeout
        while True:
            try:
                item = self._q.get(timeout=wait)
            except queue.Empty:
                if timeout is not None:
                    yield []
                continue
            if item is _END:
                break
            yield item  # type: ignore[misc]
        if self.error is not None:
            raise self.error

    def request_stop(self) -> None:
        """Ask the capture to end; batches() then yields what is left and ends (the fast
        engine reads live captures to dumpcap's end: its drop counter comes last)."""
        self._stop.set()

    def stop(self) -> None:
        """Stop the capture and reap its processes; never leaves tshark/dumpcap behind."""
        self._stop.set()
        thread, self._thread = self._thread, None
        deadline = time.monotonic() + 10
        killed = False
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            try:  # drain so the producer can see the stop and exit
                self._q.get(timeout=0.1)
            except queue.Empty:
                pass
            if not killed and time.monotonic() > deadline - 9:
                for hook in self._on_close:  # a read still blocked: end its process
                    try:
                        hook()
                    except ProcessLookupError:
                        pass
                killed = True
