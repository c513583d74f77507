"""The one record type that crosses the capture boundary, and the TCP protocol constants.

Capture engines (fast decoder, pyshark) produce `PacketRecord`s; nothing downstream sees a
pyshark or dpkt object. This module imports nothing from the rest of tcpwatch.
"""

from __future__ import annotations

import ipaddress
from typing import Final

# TCP header flags (RFC 9293 section 3.1; ECE/CWR RFC 3168; NS/AE RFC 3540)
FIN: Final = 0x001  # no more data from sender
SYN: Final = 0x002  # synchronize sequence numbers
RST: Final = 0x004  # reset the connection
PSH: Final = 0x008  # push function
ACK: Final = 0x010  # acknowledgment field is significant
URG: Final = 0x020  # urgent pointer field is significant
ECE: Final = 0x040  # ECN-echo (RFC 3168)
CWR: Final = 0x080  # congestion window reduced (RFC 3168)
NS: Final = 0x100  # ECN-nonce concealment protection (RFC 3540, historic)

FLAG_LETTERS: Final = ((SYN, "S"), (ACK, "A"), (FIN, "F"), (RST, "R"), (PSH, "P"), (URG, "U"),
                (ECE, "E"), (CWR, "C"))

# TCP option kinds (RFC 9293 3.2, RFC 7323, RFC 2018)
OPT_EOL: Final = 0  # end of option list
OPT_NOP: Final = 1  # no-operation
OPT_MSS: Final = 2  # maximum segment size (RFC 9293 3.7.1)
OPT_WSCALE: Final = 3  # window scale shift count (RFC 7323 2.2)
OPT_SACK_PERM: Final = 4  # SACK permitted (RFC 2018 2)
OPT_SACK: Final = 5  # SACK blocks (RFC 2018 3)
OPT_TIMESTAMP: Final = 8  # TSval / TSecr (RFC 7323 3.2)

#: payload bytes the application hints read (HTTP, TLS, Redis, DNS: analysis/apps.py) and a
#: record kept for the packet list holds; the decoder hands the analysis all captured bytes
PAYLOAD_PREFIX: Final = 256


RECORD_FIELDS: Final = ("num", "ts", "ipv", "src", "dst", "sport", "dport", "seq", "ack", "flags",
                 "win", "plen", "flen", "mss", "wscale", "sack_perm", "sack", "tsval", "tsecr",
                 "payload", "ipid")


def endpoint_int(addr: bytes, port: int) -> int:
    """An endpoint (address, port) as one integer: the address's bits, then 16 for the port."""
    return int.from_bytes(addr, "big") << 16 | port


class PacketRecord:
    """One TCP segment as seen on the wire.

    Times are integer nanoseconds since the epoch (exact arithmetic; RFC numbers are derived
    from differences of packet timestamps only). Addresses are packed bytes (4 or 16).
    Option fields are None when the option was absent.

    `key` names the connection's endpoints whichever way the segment goes (one int: the
    lower endpoint, the higher one, the IP version) and `side` says whether the sender is
    the lower (0) or the higher (1) endpoint; a decoder that has the endpoints as integers
    already passes them (src_int, dst_int: endpoint_int's values)."""

    __slots__ = ("num", "ts", "ipv", "src", "dst", "sport", "dport", "seq", "ack", "flags",
                 "win", "plen", "flen", "mss", "wscale", "sack_perm", "sack", "tsval", "tsecr",
                 "payload", "ipid", "key", "side")

    def __init__(self, num: int, ts: int, ipv: int, src: bytes, dst: bytes, sport: int,
                 dport: int, seq: int, ack: int, flags: int, win: int, plen: int, flen: int,
                 mss: int | None = None, wscale: int | None = None, sack_perm: bool = False,
                 sack: tuple[tuple[int, int], ...] = (), tsval: int | None = None,
                 tsecr: int | None = None, payload: bytes = b"", src_int: int = -1,
                 dst_int: int = -1, ipid: int = -1) -> None:
        self.num = num  # frame number in the capture, 1-based (as Wireshark counts)
        self.ts = ts  # capture time, ns since the epoch
        self.ipv = ipv  # 4 or 6
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.seq = seq  # raw 32-bit sequence number
        self.ack = ack  # raw 32-bit acknowledgment number
        self.flags = flags
        self.win = win  # raw 16-bit window field, before scaling
        self.plen = plen  # TCP payload length, from the IP lengths (not the snaplen)
        self.flen = flen  # frame length on the wire (what tshark's conv,tcp sums)
        self.mss = mss
        self.wscale = wscale
        self.sack_perm = sack_perm
        self.sack = sack
        self.tsval = tsval
        self.tsecr = tsecr
        self.payload = payload  # the payload bytes captured (PAYLOAD_PREFIX once kept)
        self.ipid = ipid  # IPv4 identification (RFC 791); -1 for IPv6 or when not known
        a = src_int if src_int >= 0 else endpoint_int(src, sport)
        b = dst_int if dst_int >= 0 else endpoint_int(dst, dport)
        shift = 49 if ipv == 4 else 145  # an endpoint's bits, and one for the IP version
        v6 = 1 if ipv == 6 else 0
        if a <= b:
            self.key = a << shift | b << 1 | v6
            self.side = 0
        else:
            self.key = b << shift | a << 1 | v6
            self.side = 1

    def __repr__(self) -> str:
        return (f"PacketRecord(#{self.num} {fmt_addr(self.src)}:{self.sport} > "
                f"{fmt_addr(self.dst)}:{self.dport} [{flag_string(self.flags)}] seq={self.seq} "
                f"ack={self.ack} win={self.win} len={self.plen})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PacketRecord):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in RECORD_FIELDS)

    __hash__ = None  # type: ignore[assignment]


def fmt_addr(addr: bytes) -> str:
    """Packed IPv4/IPv6 address to its canonical text form."""
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
    return str(ipaddress.IPv6Address(addr))


def parse_addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def flag_string(flags: int) -> str:
    return "".join(letter for bit, letter in FLAG_LETTERS if flags & bit) or "."


STATS_FIELDS: Final = ("packets", "tcp", "non_tcp", "undecodable", "bytes", "dropped", "lost",
                       "stopped_at", "error", "unknown_links", "size", "read")


class CaptureStats:
    """Totals a capture engine keeps while it runs (read by the report and the header)."""

    __slots__ = ("packets", "tcp", "non_tcp", "undecodable", "bytes", "dropped", "lost",
                 "stopped_at", "error", "unknown_links", "size", "read")

    def __init__(self) -> None:
        self.packets = 0  # every frame read
        self.tcp = 0  # frames that carried a decodable TCP header
        self.non_tcp = 0  # decodable frames that were not TCP (ARP, UDP, ICMP...)
        self.undecodable = 0  # frames too short or malformed to decode, unknown link types
        self.bytes = 0  # sum of wire lengths
        self.dropped = 0  # packets the capture (kernel/dumpcap) reported as dropped
        # live: TCP packets tcpwatch itself let go because its analysis fell behind (the
        # hand-over queue was full); never for a file, which waits instead
        self.lost = 0
        self.stopped_at: str | None = None  # where reading stopped early (truncated input)
        self.error: str | None = None  # the one-line reason it stopped early
        self.unknown_links: dict[int, int] = {}  # link types we do not decode -> frames
        self.size: int | None = None  # a file's size in bytes (for progress), when known
        self.read = 0  # bytes of the file read so far

    def progress(self) -> float | None:
        """Share of the file read, 0..1, when its size is known."""
        if not self.size:
            return None
        return min(1.0, self.read / self.size)

    def link_problem(self) -> str | None:
        """One line when frames of a link type we do not decode were counted undecodable."""
        if not self.unknown_links:
            return None
        link, n = max(self.unknown_links.items(), key=lambda kv: kv[1])
        return (f"link type {link} is not one tcpwatch decodes (Ethernet, Linux cooked, raw "
                f"IP, loopback): {n} frames counted undecodable")

    def as_dict(self) -> dict:
        return {s: getattr(self, s) for s in STATS_FIELDS if s not in ("size", "read")}
