"""The pyshark engine: tshark dissects, pyshark runs it, we build PacketRecords.

pyshark runs tshark under asyncio; its captures are created, iterated and closed inside the
capture thread, on an event loop of that thread's own. The default mode, "ek-fields", has
pyshark start tshark (and dumpcap, live) in its Elasticsearch mode restricted to the fields a
PacketRecord needs (`-T ek -e ...`), and reads tshark's output itself, up to 1 MiB at a time:
one JSON line per packet (orjson), made a record by compiled code (ekfields.py). No pyshark
Packet objects, and one event-loop turn per chunk instead of one per packet. tshark's own TCP
analysis and reassembly are off (tcpwatch does both). pyshark's own parsers stay selectable
as modes for the benchmark (bench_engines.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import os
import select
import threading
import time
from collections.abc import Iterator

import orjson

from ..errors import UserError
from . import tools
from .decode import parse_options
from .ekfields import ek_lines, hexbytes, ns_of
from .record import CaptureStats, PacketRecord, parse_addr

# tshark preferences: absolute sequence numbers, no analysis or reassembly (we do both)
PREFS = {
    "tcp.analyze_sequence_numbers": "FALSE",
    "tcp.relative_sequence_numbers": "FALSE",
    "tcp.desegment_tcp_streams": "FALSE",
    "tcp.calculate_timestamps": "FALSE",
    "tcp.check_checksum": "FALSE",
}
LAYERS = "frame eth sll ip ipv6 tcp"
# what a PacketRecord needs, in -T ek's names (dots become underscores)
FIELDS = ("frame.number", "frame.time_epoch", "frame.len", "ip.src", "ip.dst", "ip.id", "ipv6.src",
          "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
          "tcp.window_size_value", "tcp.len", "tcp.options", "tcp.payload")
MODES = ("ek-fields", "json-layers", "json", "ek", "xml")
DEFAULT_MODE = "ek-fields"
PIPE_SIZE = 1 << 20  # tshark's stdout pipe (the default unprivileged maximum)
SMALL = 1 << 14  # a read smaller than this waits 5 ms for more (a few packets' worth)


def _field(layer, name: str):
    v = getattr(layer, name, None)
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


def to_record(pkt, num: int) -> PacketRecord | None:
    """A pyshark packet (JSON or XML mode) -> PacketRecord; None if it carries no TCP."""
    tcp = getattr(pkt, "tcp", None) if "tcp" in pkt else None
    if tcp is None:
        return None
    if "ipv6" in pkt:
        ip, ipv = pkt.ipv6, 6
    elif "ip" in pkt:
        ip, ipv = pkt.ip, 4
    else:
        return None
    flags = int(_field(tcp, "flags"), 16)
    rec = PacketRecord(
        num, ns_of(pkt.sniff_timestamp), ipv, parse_addr(_field(ip, "src")),
        parse_addr(_field(ip, "dst")), int(_field(tcp, "srcport")),
        int(_field(tcp, "dstport")), int(_field(tcp, "seq_raw") or _field(tcp, "seq")),
        int(_field(tcp, "ack_raw") or _field(tcp, "ack") or 0), flags,
        int(_field(tcp, "window_size_value")), int(_field(tcp, "len") or 0), int(pkt.length))
    if ipv == 4 and _field(ip, "id") is not None:
        rec.ipid = int(_field(ip, "id"), 16)
    opts = hexbytes(_field(tcp, "options"))
    if opts:
        parse_options(rec, opts, 0, len(opts))
    if rec.plen:
        rec.payload = hexbytes(_field(tcp, "payload"))  # all of it, as decode.py
    return rec


def _make(file: str | None, iface: str | None, bpf: str | None, loop, mode: str,
          duration: float | None = None, save: str | None = None):
    import pyshark  # imported here: the fast engine must not pay for it

    kw = dict(override_prefs=PREFS, eventloop=loop, tshark_path=tools.find_tool("tshark"),
              use_json=mode.startswith("json"), use_ek=mode.startswith("ek"))
    params = ["-J", LAYERS] if mode == "json-layers" else []
    if mode == "ek-fields":
        params = [arg for f in FIELDS for arg in ("-e", f)]
    if iface is not None and duration is not None:
        # tshark ends the capture itself: a blocked read cannot watch a clock
        params += ["-a", f"duration:{max(1, math.ceil(duration))}"]
    if params:
        kw["custom_parameters"] = params
    if file is not None:
        cap = pyshark.FileCapture(file, keep_packets=False, **kw)
    else:
        cap = pyshark.LiveCapture(interface=iface, bpf_filter=bpf, output_file=save, **kw)
    known = _wireshark_version(kw["tshark_path"])
    if known is not None and hasattr(cap, "_Capture__tshark_version"):
        # pyshark asks `tshark -v` for the version first: a quarter of a second of tshark
        # loading every dissector. dumpcap, from the same Wireshark build, answers in 10 ms
        # (pyshark 0.6 keeps it here; it only picks options by version)
        cap._Capture__tshark_version = known
    return cap


def _wireshark_version(tshark: str):
    """The Wireshark version from the dumpcap beside tshark, as pyshark parses it; None when
    there is no such dumpcap or it does not say."""
    import re
    import subprocess

    from packaging import version

    dumpcap = os.path.join(os.path.dirname(tshark), "dumpcap")
    try:
        out = subprocess.run([dumpcap, "-v"], capture_output=True, timeout=5,
                             stdin=subprocess.DEVNULL).stdout.decode("ascii", "replace")
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"Dumpcap \(Wireshark\) (\d+\.\d+\.\d+)", out)
    return version.parse(m.group(1)) if m else None


def records(file: str | None, iface: str | None, bpf: str | None, stats: CaptureStats,
            stop: threading.Event, mode: str = DEFAULT_MODE,
            duration: float | None = None, on_close: list | None = None,
            save: str | None = None, limit: int = 0) -> Iterator[PacketRecord]:
    """batches(), one record at a time."""
    for batch in batches(file, iface, bpf, stats, stop, mode, duration, on_close, save, limit):
        yield from batch


def batches(file: str | None, iface: str | None, bpf: str | None, stats: CaptureStats,
            stop: threading.Event, mode: str = DEFAULT_MODE,
            duration: float | None = None, on_close: list | None = None,
            save: str | None = None, limit: int = 0) -> Iterator[list[PacketRecord]]:
    """Run in the capture thread: own event loop, capture created, iterated, closed here.
    Records come in lists: in the ek-fields mode one per read of tshark's output (handed over
    before the next read, which may wait); in pyshark's own modes one record each. At most
    `limit` packets (0: all)."""
    tools.find_tool("tshark")
    if file is not None:
        from .fast import open_capture_file
        open_capture_file(file).close()  # the same one-line errors as the fast engine
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cap = _make(file, iface, bpf, loop, mode, duration, save)
    if on_close is not None:
        # how another thread unblocks us: a read blocked on tshark ends when tshark does
        # (pyshark keeps its subprocesses in _running_processes)
        on_close.append(lambda: [p.terminate() for p in list(cap._running_processes)])
    if mode == "ek-fields":
        yield from _ek_batches(cap, loop, file, iface, stats, stop, limit)
        return
    num = 0
    it = None
    try:
        it = iter(cap) if file is not None else cap.sniff_continuously()
        while not stop.is_set() and not (limit and num >= limit):
            try:
                pkt = next(it)
            except StopIteration:
                if file is None and not stop.is_set():  # tshark ended on its own
                    raise UserError(tools.capture_ended("tshark", _exit_code(cap), "", iface,
                                                        stats.packets)) from None
                break
            except Exception as e:  # tshark said something: a damaged file, a bad iface
                msg = str(e).strip().splitlines()
                text = msg[-1] if msg else type(e).__name__
                if file is None:
                    if stop.is_set():
                        break
                    raise UserError(tools.capture_ended("tshark", _exit_code(cap), str(e),
                                                        iface, stats.packets)) from None
                stats.error = f"tshark stopped: {text}"
                stats.stopped_at = f"after frame {num}"
                break
            num += 1
            stats.packets += 1
            stats.bytes += int(pkt.length)
            try:
                rec = to_record(pkt, int(pkt.number) if file is not None else num)
            except (ValueError, TypeError, AttributeError):
                stats.undecodable += 1
                continue
            if rec is None:
                if "tcp" in pkt:
                    stats.undecodable += 1
                else:
                    stats.non_tcp += 1
                continue
            stats.tcp += 1
            yield [rec]
    finally:
        if it is not None:
            it.close()  # its own cleanup of tshark runs now, while our loop is open
        _close(cap, loop)


def _pipe_reader(proc):
    """tshark's stdout read directly, in batches. pyshark runs tshark with -l (a write per
    packet), and asyncio would take an event-loop turn, a poll and a read for each: more than
    the packet costs us. So the pipe's transport stops reading and this thread reads the pipe
    itself: wait until it is readable, let 5 ms of output gather when little came (live, that
    is 5 ms of latency), and take up to 1 MiB in one read."""
    transport = proc._transport.get_pipe_transport(1)  # asyncio's, for tshark's stdout
    transport.pause_reading()
    fd = transport.get_extra_info("pipe").fileno()
    try:  # room for tshark to run ahead while we work on a batch (Linux: 64 KiB by default)
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
    early = bytes(proc.stdout._buffer)  # anything asyncio read before the pause
    proc.stdout._buffer.clear()
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)

    def read() -> bytes:
        nonlocal early
        if early:
            data, early = early, b""
            return data
        while True:
            if not poller.poll(200):
                continue  # the caller checks stop between batches; a blocked poll cannot
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if data and len(data) < SMALL:
                time.sleep(0.005)
                try:
                    data += os.read(fd, 1 << 20)
                except BlockingIOError:
                    pass
            if not data:  # EOF: asyncio sees it too, and lets wait() for tshark end
                transport.resume_reading()
            return data
    read.resume = transport.resume_reading
    return read


def _ek_batches(cap, loop, file: str | None, iface: str | None, stats: CaptureStats,
                stop: threading.Event, limit: int) -> Iterator[list[PacketRecord]]:
    """The ek-fields mode: tshark's output read and decoded here, a chunk at a time."""
    num = 0
    read = None
    try:
        proc = loop.run_until_complete(cap._get_tshark_process())
        read = _pipe_reader(proc)
        rest = b""
        done = False
        while not stop.is_set() and not done:
            chunk = read()
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            batch: list[PacketRecord] = []
            num = ek_lines(lines, orjson.loads, stats, num, limit, file is not None, batch)
            done = bool(limit) and num >= limit
            if batch:
                yield batch
        if not stop.is_set() and not done:
            rc = loop.run_until_complete(proc.wait())
            # tshark writes its complaint on stderr; pyshark's reader of it keeps the last line
            # (briefly: live, pyshark's dumpcap may outlive a killed tshark)
            if cap._stderr_handling_tasks:
                loop.run_until_complete(asyncio.wait(cap._stderr_handling_tasks, timeout=1))
            said = cap._last_error_line or ""
            if file is None:  # a live tshark ended on its own
                raise UserError(tools.capture_ended("tshark", _exit_code(cap) or rc, said,
                                                    iface, stats.packets))
            if rc:
                stats.error = f"tshark stopped: {said or f'exit status {rc}'}"
                stats.stopped_at = f"after frame {num}"
    finally:
        if read is not None:
            read.resume()  # asyncio watches the pipe again, to see it close
        _close(cap, loop)


def _close(cap, loop) -> None:
    """End pyshark's processes on this thread's loop (pyshark's close() would look for a
    running one), then the loop."""
    try:
        loop.run_until_complete(cap.close_async())
    except Exception:  # noqa: BLE001 - closing a dead tshark must not mask the result
        pass
    cap._running_processes.clear()  # else pyshark's __del__ closes again, on a dead loop
    loop.close()
    asyncio.set_event_loop(None)


def _exit_code(cap) -> int | None:
    """tshark's exit status, if pyshark still holds the process."""
    for p in list(getattr(cap, "_running_processes", ())):
        rc = getattr(p, "returncode", None)
        if rc is not None:
            return rc
    return None
