"""`tshark -T ek -e FIELDS` output -> PacketRecords: the pyshark engine's per-packet work,
compiled with the rest of the core (setup.py). Each line is one packet's JSON; each field a
list of its occurrences, the first being the outermost header."""

from __future__ import annotations

import socket
from collections.abc import Callable

from .decode import parse_options
from .record import CaptureStats, PacketRecord

INDEX_LINE_START = b'{"timesta'  # a packet's line; -T ek puts an index line before each


def ns_of(epoch: str) -> int:
    """'1234.567890123' -> ns, exactly (no float rounding)."""
    sec, _, frac = epoch.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def hexbytes(v: str | None) -> bytes:
    if not v:
        return b""
    return bytes.fromhex(v.replace(":", ""))


def ek_record(layers: dict, num: int) -> PacketRecord | None:
    """One packet's layers -> PacketRecord; None if it carries no TCP."""
    sport = layers.get("tcp_srcport")
    if sport is None:
        return None
    src = layers.get("ip_src")
    if src is not None:
        ipv, dst, fam = 4, layers["ip_dst"], socket.AF_INET
    else:
        src, dst, ipv, fam = layers["ipv6_src"], layers["ipv6_dst"], 6, socket.AF_INET6
    ack = layers.get("tcp_ack_raw")
    tlen = layers.get("tcp_len")
    rec = PacketRecord(
        num, ns_of(layers["frame_time_epoch"][0]), ipv, socket.inet_pton(fam, src[0]),
        socket.inet_pton(fam, dst[0]), int(sport[0]), int(layers["tcp_dstport"][0]),
        int(layers["tcp_seq_raw"][0]), int(ack[0]) if ack else 0,
        int(layers["tcp_flags"][0], 16), int(layers["tcp_window_size_value"][0]),
        int(tlen[0]) if tlen else 0, int(layers["frame_len"][0]))
    ipid = layers.get("ip_id")
    if ipid is not None and ipv == 4:
        rec.ipid = int(ipid[0], 16)
    opts = layers.get("tcp_options")
    if opts:
        b = hexbytes(opts[0])
        parse_options(rec, b, 0, len(b))
    if rec.plen:
        p = layers.get("tcp_payload")
        if p:
            rec.payload = hexbytes(p[0])  # all of it, as the fast decoder (decode.py)
    return rec


def ek_lines(lines: list[bytes], loads: Callable[[bytes], dict], stats: CaptureStats,
             num: int, limit: int, numbered: bool, out: list[PacketRecord]) -> int:
    """Decode whole lines into `out`, counting in `stats`; returns the packets seen so far
    (`num` before). Stops at `limit` packets (0: no limit). `numbered`: take the frame
    number from tshark (a file) rather than counting (live)."""
    for line in lines:
        if line[:9] != INDEX_LINE_START:
            continue
        if limit and num >= limit:
            break
        layers = loads(line)["layers"]
        num += 1
        stats.packets += 1
        stats.bytes += int(layers["frame_len"][0])
        try:
            rec = ek_record(layers, int(layers["frame_number"][0]) if numbered else num)
        except (ValueError, TypeError, KeyError, IndexError, OSError):
            stats.undecodable += 1
            continue
        if rec is None:
            stats.non_tcp += 1
            continue
        stats.tcp += 1
        out.append(rec)
    return num
