"""pcap and pcapng readers over any binary stream (a file, or dumpcap's stdout on a pipe).

Yields raw frames; the fast engine decodes them. Formats:
https://www.tcpdump.org/manpages/pcap-savefile.5.html and RFC draft-ietf-opsawg-pcapng.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),  # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),  # big-endian, nanoseconds
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
# pcapng block types
BT_IDB, BT_PB, BT_SPB, BT_ISB, BT_EPB = 1, 2, 3, 5, 6
OPT_IF_TSRESOL, OPT_IF_TSOFFSET = 9, 14
OPT_ISB_IFDROP = 5
MAX_BLOCK = 256 * 1024 * 1024  # anything larger is corruption, not a frame


class CaptureFormatError(Exception):
    """The input is not a capture file this reader understands."""


class CaptureTruncated(Exception):
    """The input ends (or goes corrupt) in the middle of a record."""


class Frame:
    __slots__ = ("link", "data", "wire_len", "ts")

    def __init__(self, link: int, data: bytes, wire_len: int, ts: int) -> None:
        self.link, self.data, self.wire_len, self.ts = link, data, wire_len, ts


class Reader:
    """Iterate frames of a pcap or pcapng stream. `offset` is where the next record starts;
    `dropped` sums the drop counters that pcapng interface statistics blocks reported."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.offset = 0
        self.dropped = 0
        head = self._read(4)
        if len(head) < 4:
            raise CaptureFormatError("empty or too short to be a capture file")
        if head in PCAP_MAGICS:
            self.format = "pcap"
            self._head = head
        elif head == PCAPNG_SHB:
            self.format = "pcapng"
            self._head = head
        else:
            raise CaptureFormatError("not a pcap or pcapng capture file (unknown magic number "
                                     f"{head.hex()})")

    def _read(self, n: int) -> bytes:
        b = self.f.read(n)
        self.offset += len(b)
        return b

    def _must(self, n: int, what: str) -> bytes:
        b = self._read(n)
        if len(b) < n:
            raise CaptureTruncated(f"file ends in the middle of {what}")
        return b

    def __iter__(self) -> Iterator[Frame]:
        return self._pcap() if self.format == "pcap" else self._pcapng()

    # -- classic pcap -------------------------------------------------------------------------
    def _pcap(self) -> Iterator[Frame]:
        endian, unit = PCAP_MAGICS[self._head]
        rest = self._must(20, "the file header")
        _vmaj, _vmin, _zone, _sig, snaplen, link = struct.unpack(endian + "HHiIII", rest)
        link &= 0xFFFF  # the upper bits carry an FCS length (pcap-savefile(5))
        self.links = [link]
        rec = struct.Struct(endian + "IIII")
        read = self.f.read
        while True:
            start = self.offset
            hdr = read(16)
            if not hdr:
                return
            if len(hdr) < 16:
                self.offset += len(hdr)
                raise CaptureTruncated("file ends in the middle of a record header")
            sec, frac, caplen, wire = rec.unpack(hdr)
            if caplen > MAX_BLOCK or caplen > max(snaplen, 262144) * 4:
                raise CaptureTruncated(f"corrupt record header (captured length {caplen})")
            data = read(caplen)
            self.offset = start + 16 + len(data)
            if len(data) < caplen:
                raise CaptureTruncated("file ends in the middle of a packet")
            yield Frame(link, data, max(wire, caplen), sec * 1_000_000_000 + frac * unit)

    # -- pcapng -------------------------------------------------------------------------------
    def _pcapng(self) -> Iterator[Frame]:
        ifaces: list[tuple[int, int, int, int]] = []  # (link, ts multiplier, divisor, offset ns)
        endian = "<"
        hdr_le, hdr_be = struct.Struct("<II"), struct.Struct(">II")
        epb_le, epb_be = struct.Struct("<IIIII"), struct.Struct(">IIIII")
        hdr_s, epb_s = hdr_le, epb_le
        read = self.f.read
        first = True
        while True:
            if first:  # the section header's type was read to recognise the format
                hdr = self._head + read(4)
                first = False
            else:
                hdr = read(8)  # block type and length in one read: the hot path
            n = len(hdr)
            if n < 8:
                self.offset += n
                if n == 0:
                    return
                raise CaptureTruncated("file ends in the middle of a block header")
            if hdr[:4] == PCAPNG_SHB:
                self.offset += 8
                blen_raw = hdr[4:]
                bom = self._must(4, "a section header")
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian, hdr_s, epb_s = "<", hdr_le, epb_le
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian, hdr_s, epb_s = ">", hdr_be, epb_be
                else:
                    raise CaptureFormatError("corrupt pcapng section header (byte-order magic)")
                blen = struct.unpack(endian + "I", blen_raw)[0]
                if blen < 28 or blen > MAX_BLOCK or blen % 4:
                    raise CaptureTruncated(f"corrupt pcapng section header (length {blen})")
                self._must(blen - 12, "a section header")
                ifaces = []
                self.links = []
                continue
            btype, blen = hdr_s.unpack(hdr)
            self.offset += 8
            if blen < 12 or blen > MAX_BLOCK or blen % 4:
                raise CaptureTruncated(f"corrupt pcapng block (type {btype}, length {blen})")
            body = read(blen - 8)  # the body, then the trailing length (4 bytes, ignored)
            self.offset += len(body)
            if len(body) < blen - 8:
                raise CaptureTruncated("file ends in the middle of a block")
            if btype == BT_EPB:
                if blen < 32:
                    raise CaptureTruncated("corrupt enhanced packet block")
                ifid, hi, lo, caplen, wire = epb_s.unpack_from(body)
                if ifid >= len(ifaces) or caplen > blen - 32:
                    raise CaptureTruncated("corrupt enhanced packet block (interface or length)")
                link, mul, div, off = ifaces[ifid]
                yield Frame(link, body[20:20 + caplen], max(wire, caplen),
                            ((hi << 32) | lo) * mul // div + off)
                continue
            body = body[:-4]
            if btype == BT_SPB:
                if not ifaces or len(body) < 4:
                    raise CaptureTruncated("corrupt simple packet block")
                wire = struct.unpack_from(endian + "I", body)[0]
                data = body[4:4 + wire]
                yield Frame(ifaces[0][0], data, max(wire, len(data)), 0)
            elif btype == BT_PB:  # obsolete packet block
                if len(body) < 20:
                    raise CaptureTruncated("corrupt packet block")
                ifid, _drops, hi, lo, caplen, wire = struct.unpack_from(endian + "HHIIII", body)
                if ifid >= len(ifaces):
                    raise CaptureTruncated("corrupt packet block (interface)")
                link, mul, div, off = ifaces[ifid]
                yield Frame(link, body[20:20 + caplen], max(wire, caplen),
                            ((hi << 32) | lo) * mul // div + off)
            elif btype == BT_IDB:
                if len(body) < 8:
                    raise CaptureTruncated("corrupt interface description block")
                link = struct.unpack_from(endian + "H", body)[0]
                mul, div, tsoff = 1000, 1, 0  # default resolution: microseconds
                for code, val in _options(body, 8, endian):
                    if code == OPT_IF_TSRESOL and val:
                        r = val[0]
                        if r & 0x80:
                            mul, div = 1_000_000_000, 1 << (r & 0x7F)
                        elif r <= 9:
                            mul, div = 10 ** (9 - r), 1
                        else:
                            mul, div = 1, 10 ** (r - 9)
                    elif code == OPT_IF_TSOFFSET and len(val) >= 8:
                        tsoff = struct.unpack(endian + "q", val[:8])[0]
                ifaces.append((link, mul, div, tsoff * 1_000_000_000))
                self.links.append(link)
            elif btype == BT_ISB:
                for code, val in _options(body, 12, endian):
                    if code == OPT_ISB_IFDROP and len(val) >= 8:
                        self.dropped += struct.unpack(endian + "Q", val[:8])[0]
            # every other block (name resolution, decryption secrets, custom) is skipped


def _options(body: bytes, i: int, endian: str) -> Iterator[tuple[int, bytes]]:
    n = len(body)
    while i + 4 <= n:
        code, olen = struct.unpack_from(endian + "HH", body, i)
        if code == 0:
            return
        yield code, body[i + 4:i + 4 + olen]
        i += 4 + ((olen + 3) & ~3)
