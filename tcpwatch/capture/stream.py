"""A pcap/pcapng stream -> PacketRecords, with the capture's totals kept in CaptureStats: the
fast engine's loop over every frame (a file, standard input, or dumpcap's pipe). Compiled
with the rest of the per-packet core (setup.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import BinaryIO

from ..errors import UserError
from .decode import NOT_TCP, SUPPORTED_LINKS, decode
from .pcapio import CaptureFormatError, CaptureTruncated, Reader
from .rawring import RawRing
from .record import CaptureStats, PacketRecord


def iter_stream(f: BinaryIO, stats: CaptureStats, name: str,
                stop: threading.Event | None = None,
                keep: RawRing | None = None) -> Iterator[PacketRecord]:
    """Decode every frame of a pcap/pcapng stream. A damaged tail stops the iteration (after
    yielding everything before it) and is recorded in stats.stopped_at / stats.error.
    `keep` holds on to the newest raw frames (live capture, for dissection)."""
    # (one name per exception variable: compiled, a name has one type)
    try:
        reader = Reader(f)
    except CaptureFormatError as bad:
        raise UserError(f"{name}: {bad}: give a pcap or pcapng file (tcpdump -w / dumpcap -w)") \
            from None
    except OSError as oserr:
        raise UserError(f"{name}: cannot read: {oserr}") from None
    num = 0
    frames = iter(reader)
    while True:
        try:
            fr = next(frames)
        except StopIteration:
            break
        except (CaptureTruncated, CaptureFormatError) as damage:
            if num == 0 and isinstance(damage, CaptureTruncated):  # not one whole packet
                raise UserError(f"{name}: {damage} (at byte {reader.offset}), before the first "
                                "packet: not a complete capture") from None
            stats.error = str(damage)
            stats.stopped_at = f"byte {reader.offset}, after frame {num}"
            break
        num += 1
        stats.packets += 1
        stats.bytes += fr.wire_len
        stats.read = reader.offset
        if keep is not None:
            keep.add(num, fr.link, fr.ts, fr.data, fr.wire_len)
        rec = decode(fr.link, fr.data, fr.wire_len, fr.ts, num)
        if rec.__class__ is int:
            if rec == NOT_TCP:
                stats.non_tcp += 1
            else:
                stats.undecodable += 1
                if fr.link not in SUPPORTED_LINKS:
                    u = stats.unknown_links
                    u[fr.link] = u.get(fr.link, 0) + 1
            continue
        stats.tcp += 1
        yield rec  # type: ignore[misc]
        if stop is not None and stop.is_set():
            break
    stats.dropped = max(stats.dropped, reader.dropped)
