"""One packet's full Wireshark dissection, through pyshark (tshark's PDML): the protocol tree
of frame N of a capture file, as (depth, text) lines. Called from a UI worker thread, with its
own event loop. Text is Wireshark's field display, i.e. bytes from the wire: show it escaped."""

from __future__ import annotations

import asyncio
import os
import re
import struct
import threading

from ..errors import UserError
from . import tools

LAYER_TITLES = {
    "frame": "Frame", "eth": "Ethernet II", "sll": "Linux cooked capture", "ip": "Internet "
    "Protocol Version 4", "ipv6": "Internet Protocol Version 6", "tcp": "Transmission "
    "Control Protocol", "http": "Hypertext Transfer Protocol", "tls": "Transport Layer "
    "Security", "dns": "Domain Name System", "data": "Data", "vlan": "802.1Q Virtual LAN",
}


def layer_lines(layer) -> list[tuple[int, str]]:
    """A pyshark XML layer as indented lines: a field nests under the field whose name is a
    dotted prefix of its own (tcp.flags.syn under tcp.flags), as Wireshark's tree does."""
    name = layer.layer_name
    out = [(0, LAYER_TITLES.get(name, name.upper()))]
    stack: list[str] = []
    for fname, cont in layer._all_fields.items():
        for f in cont.all_fields:
            if f.hide in (True, "yes", "True"):
                continue
            text = f.showname or (f"{fname}: {f.show}" if fname and f.show else f.show or "")
            if not text:
                continue
            while stack and not (fname and fname.startswith(stack[-1] + ".")):
                stack.pop()
            out.append((1 + len(stack), text))
            if fname:
                stack.append(fname)
    return out


def dissect(path: str, frame: int) -> list[tuple[int, str]]:
    """Frame `frame` (1-based, as Wireshark numbers) of the capture at `path`."""
    import pyshark

    def make(loop):
        return pyshark.FileCapture(path, display_filter=f"frame.number == {int(frame)}",
                                   eventloop=loop, keep_packets=False,
                                   tshark_path=tools.find_tool("tshark"))
    lines = _first_packet(make, frame)
    if not lines:
        raise UserError(f"frame {frame} is not in {path} (yet)")
    return lines


def dissect_raw(link: int, ts: int, data: bytes, wire_len: int,
                frame: int) -> list[tuple[int, str]]:
    """A frame held in memory (live capture without -w): handed to tshark on a pipe as a
    one-packet pcap, so nothing is written to disk. Its frame number is restored in the
    tree."""
    from pyshark.capture.pipe_capture import PipeCapture

    head = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, link)  # ns timestamps
    rec = struct.pack("<IIII", ts // 1_000_000_000, ts % 1_000_000_000, len(data),
                      max(wire_len, len(data)))
    rfd, wfd = os.pipe()
    writer = threading.Thread(target=_write_all, args=(wfd, head + rec + data), daemon=True)
    writer.start()

    def make(loop):
        return PipeCapture(rfd, eventloop=loop, tshark_path=tools.find_tool("tshark"))
    try:
        lines = _first_packet(make, frame)
    finally:
        writer.join(timeout=5)
        os.close(rfd)
    if not lines:
        raise UserError(f"tshark could not dissect frame {frame}")
    number = re.compile(r"^(Frame Number: |Frame )1\b")
    return [(d, number.sub(lambda m: m.group(1) + str(frame), t, count=1)) for d, t in lines]


def _write_all(fd: int, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as w:
            w.write(data)
    except OSError:  # tshark went away first
        pass


def _first_packet(make, frame: int) -> list[tuple[int, str]]:
    """The protocol tree of the first packet a pyshark capture yields, on our own loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cap = make(loop)
    lines: list[tuple[int, str]] = []
    try:
        for pkt in cap:
            for layer in [getattr(pkt, "frame_info", None), *pkt.layers]:
                if layer is None:
                    continue
                lines.extend(layer_lines(layer))
            break
    except Exception as e:  # tshark's own complaint, e.g. a capture cut short while written
        msg = str(e).strip().splitlines()
        raise UserError(f"tshark could not dissect frame {frame}: "
                        f"{msg[-1] if msg else type(e).__name__}") from None
    finally:
        try:
            loop.run_until_complete(cap.close_async())
        except Exception:  # noqa: BLE001 - closing a finished tshark
            pass
        loop.close()
        asyncio.set_event_loop(None)
    return lines
