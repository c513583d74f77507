"""The pyshark engine: tshark dissects, pyshark hands over its fields, we build PacketRecords.

pyshark runs tshark under asyncio; its captures are created, iterated and closed inside the
capture thread, on an event loop of that thread's own. Its fastest configuration (measured,
see README: JSON output restricted to the frame/IP/TCP layers with `-J`, and tshark's own TCP
analysis and reassembly switched off since tcpwatch does that itself) is the default; the
other output modes stay selectable for the benchmark.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator

from ..errors import UserError
from . import tools
from .decode import parse_options
from .record import PAYLOAD_PREFIX, CaptureStats, PacketRecord, parse_addr

# tshark preferences: absolute sequence numbers, no analysis or reassembly (we do both)
PREFS = {
    "tcp.analyze_sequence_numbers": "FALSE",
    "tcp.relative_sequence_numbers": "FALSE",
    "tcp.desegment_tcp_streams": "FALSE",
    "tcp.calculate_timestamps": "FALSE",
    "tcp.check_checksum": "FALSE",
}
LAYERS = "frame eth sll ip ipv6 tcp"
MODES = ("json-layers", "json", "ek", "xml")
DEFAULT_MODE = "json-layers"


def _ns(epoch: str) -> int:
    """'1234.567890123' -> ns, exactly (no float rounding)."""
    sec, _, frac = epoch.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _hexbytes(v: str | None) -> bytes:
    if not v:
        return b""
    return bytes.fromhex(v.replace(":", ""))


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
        num, _ns(pkt.sniff_timestamp), ipv, parse_addr(_field(ip, "src")),
        parse_addr(_field(ip, "dst")), int(_field(tcp, "srcport")),
        int(_field(tcp, "dstport")), int(_field(tcp, "seq_raw") or _field(tcp, "seq")),
        int(_field(tcp, "ack_raw") or _field(tcp, "ack") or 0), flags,
        int(_field(tcp, "window_size_value")), int(_field(tcp, "len") or 0), int(pkt.length))
    opts = _hexbytes(_field(tcp, "options"))
    if opts:
        parse_options(rec, opts, 0, len(opts))
    if rec.plen:
        rec.payload = _hexbytes(_field(tcp, "payload"))[:PAYLOAD_PREFIX]
    return rec


def _make(file: str | None, iface: str | None, bpf: str | None, loop, mode: str,
          duration: float | None = None, save: str | None = None):
    import pyshark  # imported here: the fast engine must not pay for it

    kw = dict(override_prefs=PREFS, eventloop=loop, tshark_path=tools.find_tool("tshark"),
              use_json=mode.startswith("json"), use_ek=mode == "ek")
    params = ["-J", LAYERS] if mode == "json-layers" else []
    if iface is not None and duration is not None:
        # tshark ends the capture itself: a blocked read cannot watch a clock
        params += ["-a", f"duration:{max(1, math.ceil(duration))}"]
    if params:
        kw["custom_parameters"] = params
    if file is not None:
        return pyshark.FileCapture(file, keep_packets=False, **kw)
    return pyshark.LiveCapture(interface=iface, bpf_filter=bpf, output_file=save, **kw)


def records(file: str | None, iface: str | None, bpf: str | None, stats: CaptureStats,
            stop: threading.Event, mode: str = DEFAULT_MODE,
            duration: float | None = None,
            on_close: list | None = None, save: str | None = None) -> Iterator[PacketRecord]:
    """Run in the capture thread: own event loop, capture created, iterated, closed here."""
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
    num = 0
    it = None
    try:
        it = iter(cap) if file is not None else cap.sniff_continuously()
        while not stop.is_set():
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
            yield rec
    finally:
        if it is not None:
            it.close()  # its own cleanup of tshark runs now, while our loop is open
        try:  # close on this thread's loop: pyshark's close() would look for a running one
            loop.run_until_complete(cap.close_async())
        except Exception:  # noqa: BLE001 - closing a dead tshark must not mask the result
            pass
        loop.close()
        asyncio.set_event_loop(None)


def _exit_code(cap) -> int | None:
    """tshark's exit status, if pyshark still holds the process."""
    for p in list(getattr(cap, "_running_processes", ())):
        rc = getattr(p, "returncode", None)
        if rc is not None:
            return rc
    return None
