"""A pcap/pcapng stream -> PacketRecords, with the capture's totals kept in CaptureStats: the
fast engine's loop over every frame (a file, standard input, or dumpcap's pipe). Compiled
with the rest of the per-packet core (setup.py).

Records come in batches (lists): a batch is handed over when it is full, and also whenever
the next frame is not in memory yet, before the read that would wait for it, so that a live
capture never holds back packets it already has."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import BinaryIO, Final

from ..errors import UserError
from .decode import NOT_TCP, SUPPORTED_LINKS, decode_at
from .pcapio import CaptureFormatError, CaptureTruncated, Reader
from .rawring import RawRing
from .record import CaptureStats, PacketRecord

BATCH: Final = 512  # records per batch at most


def open_reader(f: BinaryIO, name: str) -> Reader:
    try:
        return Reader(f)
    except CaptureFormatError as bad:
        raise UserError(f"{name}: {bad}: give a pcap or pcapng file (tcpdump -w / dumpcap -w)") \
            from None
    except OSError as oserr:
        raise UserError(f"{name}: cannot read: {oserr}") from None


def iter_batches(f: BinaryIO, stats: CaptureStats, name: str,
                 stop: threading.Event | None = None, keep: RawRing | None = None,
                 limit: int = 0, batch_max: int = BATCH) -> Iterator[list[PacketRecord]]:
    """Decode every frame of a pcap/pcapng stream, `limit` frames at most (0: all). A damaged
    tail stops the iteration (after yielding everything before it) and is recorded in
    stats.stopped_at / stats.error. `keep` holds on to the newest raw frames (live capture,
    for dissection). `stop` is looked at between batches."""
    reader = open_reader(f, name)
    num = 0
    batch: list[PacketRecord] = []
    while True:
        if batch and (len(batch) >= batch_max or not reader.ready()):
            stats.read = reader.offset
            yield batch
            batch = []
            if stop is not None and stop.is_set():
                break
        if limit and num >= limit:
            break
        # (one name per exception variable: compiled, a name has one type)
        try:
            if not reader.next_frame():
                break
        except (CaptureTruncated, CaptureFormatError) as damage:
            if num == 0 and isinstance(damage, CaptureTruncated):  # not one whole packet
                raise UserError(f"{name}: {damage} (at byte {reader.offset}), before the first "
                                "packet: not a complete capture") from None
            stats.error = str(damage)
            stats.stopped_at = f"byte {reader.offset}, after frame {num}"
            break
        except OSError as oserr:
            if num == 0:
                raise UserError(f"{name}: cannot read: {oserr}") from None
            stats.error = f"cannot read: {oserr}"
            stats.stopped_at = f"byte {reader.offset}, after frame {num}"
            break
        num += 1
        wire = reader.wire_len
        link = reader.link
        start = reader.start
        stats.packets += 1
        stats.bytes += wire
        if keep is not None:
            keep.add(num, link, reader.ts, reader.buf[start:start + reader.caplen], wire)
        rec = decode_at(link, reader.buf, start, start + reader.caplen, wire, reader.ts, num)
        if isinstance(rec, int):
            if rec == NOT_TCP:
                stats.non_tcp += 1
            else:
                stats.undecodable += 1
                if link not in SUPPORTED_LINKS:
                    u = stats.unknown_links
                    u[link] = u.get(link, 0) + 1
            continue
        stats.tcp += 1
        batch.append(rec)
    stats.read = reader.offset
    stats.dropped = max(stats.dropped, reader.dropped)
    if batch:
        yield batch


def iter_stream(f: BinaryIO, stats: CaptureStats, name: str,
                stop: threading.Event | None = None,
                keep: RawRing | None = None) -> Iterator[PacketRecord]:
    """iter_batches, one record at a time."""
    for batch in iter_batches(f, stats, name, stop, keep):
        yield from batch
