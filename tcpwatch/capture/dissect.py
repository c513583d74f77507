"""One packet's full Wireshark dissection, through pyshark (tshark's PDML): the protocol tree
of frame N of a capture file, as (depth, text) lines. Called from a UI worker thread, with its
own event loop. Text is Wireshark's field display, i.e. bytes from the wire: show it escaped."""

from __future__ import annotations

import asyncio

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

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cap = pyshark.FileCapture(path, display_filter=f"frame.number == {int(frame)}",
                              eventloop=loop, keep_packets=False,
                              tshark_path=tools.find_tool("tshark"))
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
    if not lines:
        raise UserError(f"frame {frame} is not in {path} (yet)")
    return lines
