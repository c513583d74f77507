"""pcap and pcapng readers over any binary stream (a file, standard input, or dumpcap's
stdout on a pipe).

The stream is read in chunks of up to CHUNK bytes (`read1`: on a pipe, whatever is there,
never waiting for a full chunk) and parsed in place: `next_frame()` moves to the next packet
and leaves where its bytes are in `buf` (start, caplen), with no copy and no object per
frame. Iterating a Reader yields Frame objects (copies) for callers that want them.
Formats: https://www.tcpdump.org/manpages/pcap-savefile.5.html and RFC draft-ietf-opsawg-pcapng.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO, Final

# classic pcap magic numbers, as read little-endian: (little-endian file, nanoseconds)
PCAP_MAGICS: Final = {
    0xA1B2C3D4: (True, False),  # little-endian, microseconds
    0xD4C3B2A1: (False, False),  # big-endian, microseconds
    0xA1B23C4D: (True, True),  # little-endian, nanoseconds
    0x4D3CB2A1: (False, True),  # big-endian, nanoseconds
}
PCAPNG_SHB: Final = 0x0A0D0D0A  # the same in either byte order
BOM_LE: Final = 0x1A2B3C4D  # the byte-order magic of a section header, read little-endian
BOM_BE: Final = 0x4D3C2B1A
# pcapng block types
BT_IDB: Final = 1
BT_PB: Final = 2
BT_SPB: Final = 3
BT_ISB: Final = 5
BT_EPB: Final = 6
OPT_IF_TSRESOL: Final = 9
OPT_IF_TSOFFSET: Final = 14
OPT_ISB_IFDROP: Final = 5
MAX_BLOCK: Final = 256 * 1024 * 1024  # anything larger is corruption, not a frame
CHUNK: Final = 1 << 20  # bytes asked for per read


class CaptureFormatError(Exception):
    """The input is not a capture file this reader understands."""


class CaptureTruncated(Exception):
    """The input ends (or goes corrupt) in the middle of a record."""


class Frame:
    __slots__ = ("link", "data", "wire_len", "ts")

    def __init__(self, link: int, data: bytes, wire_len: int, ts: int) -> None:
        self.link, self.data, self.wire_len, self.ts = link, data, wire_len, ts


def _u16(b: bytes, i: int, le: bool) -> int:
    return b[i + 1] << 8 | b[i] if le else b[i] << 8 | b[i + 1]


def _u32(b: bytes, i: int, le: bool) -> int:
    if le:
        return b[i + 3] << 24 | b[i + 2] << 16 | b[i + 1] << 8 | b[i]
    return b[i] << 24 | b[i + 1] << 16 | b[i + 2] << 8 | b[i + 3]


def _times(x: int, m: int) -> int:
    """x * m for x >= 0 and 0 <= m < 2**30. Compiled, a product stays a machine word only
    when both factors are below 2**30 (mypyc's overflow check): a timestamp in micro- or
    nanoseconds is not, and took the long-integer path for every frame."""
    if x < 1 << 30:
        return x * m
    return (_times(x >> 30, m) << 30) + (x & 0x3FFFFFFF) * m


def _u64(b: bytes, i: int, le: bool) -> int:
    if le:
        return _u32(b, i + 4, True) << 32 | _u32(b, i, True)
    return _u32(b, i, False) << 32 | _u32(b, i + 4, False)


class Reader:
    """Frames of a pcap or pcapng stream. After `next_frame()` returns True, the frame is
    buf[start:start + caplen], with its link type, wire length and time (ns since the epoch).
    `offset` is where the next record starts in the stream; `dropped` sums the drop counters
    that pcapng interface statistics blocks reported."""

    def __init__(self, f: BinaryIO) -> None:
        read1 = getattr(f, "read1", None)
        self._read: Callable[[int], bytes] = read1 if read1 is not None else f.read
        self.buf = b""
        self.pos = 0  # where the next record starts in buf
        self.base = 0  # the stream offset of buf[0]
        self.dropped = 0
        self.links: list[int] = []
        self.link = 0
        self.start = 0
        self.caplen = 0
        self.wire_len = 0
        self.ts = 0
        self.le = True
        self.nanos = False  # pcap
        self.snaplen = 0  # pcap
        # pcapng interfaces: (link, ts multiplier, divisor, offset ns)
        self._ifaces: list[tuple[int, int, int, int]] = []
        self._fill(4)
        if len(self.buf) < 4:
            self.pos = len(self.buf)
            raise CaptureFormatError("empty or too short to be a capture file")
        magic = _u32(self.buf, 0, True)
        if magic in PCAP_MAGICS:
            self.format = "pcap"
            self.le, self.nanos = PCAP_MAGICS[magic]
        elif magic == PCAPNG_SHB:
            self.format = "pcapng"
        else:
            raise CaptureFormatError("not a pcap or pcapng capture file (unknown magic number "
                                     f"{self.buf[:4].hex()})")

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _fill(self, n: int) -> bool:
        """Make n bytes from pos available in buf; False if the stream ends before."""
        while len(self.buf) - self.pos < n:
            more = self._read(max(CHUNK, n - (len(self.buf) - self.pos)))
            if not more:
                return False
            self.base += self.pos
            # (nothing left over, the usual case on a pipe: no copy)
            self.buf = more if self.pos == len(self.buf) else self.buf[self.pos:] + more
            self.pos = 0
        return True

    def _truncated(self, what: str) -> CaptureTruncated:
        """The stream ended inside a record: everything there was has been read."""
        self.pos = len(self.buf)
        return CaptureTruncated(f"file ends in the middle of {what}")

    def ready(self) -> bool:
        """The next record is already in memory: next_frame() will not wait on the stream."""
        avail = len(self.buf) - self.pos
        if self.format == "pcap":
            return avail >= 16 and avail >= 16 + _u32(self.buf, self.pos + 8, self.le)
        return avail >= 8 and avail >= _u32(self.buf, self.pos + 4, self.le)

    def next_frame(self) -> bool:
        if self.format == "pcap":
            return self._pcap_next()
        return self._pcapng_next()

    def __iter__(self) -> Iterator[Frame]:
        while self.next_frame():
            s = self.start
            yield Frame(self.link, self.buf[s:s + self.caplen], self.wire_len, self.ts)

    # -- classic pcap -------------------------------------------------------------------------
    def _pcap_header(self) -> None:
        if not self._fill(24):
            raise self._truncated("the file header")
        b, le = self.buf, self.le
        self.snaplen = _u32(b, 16, le)
        link = _u32(b, 20, le) & 0xFFFF  # the upper bits carry an FCS length (pcap-savefile)
        self.links = [link]
        self.link = link
        self.pos = 24

    def _pcap_next(self) -> bool:
        if self.pos == 0 and self.base == 0:
            self._pcap_header()
        if len(self.buf) - self.pos < 16 and not self._fill(16):
            if len(self.buf) == self.pos:
                return False
            raise self._truncated("a record header")
        b, p, le = self.buf, self.pos, self.le
        caplen = _u32(b, p + 8, le)
        if caplen > MAX_BLOCK or caplen > max(self.snaplen, 262144) * 4:
            self.pos = p + 16
            raise CaptureTruncated(f"corrupt record header (captured length {caplen})")
        if len(b) - p < 16 + caplen:
            if not self._fill(16 + caplen):
                raise self._truncated("a packet")
            b, p = self.buf, self.pos
        sec = _u32(b, p, le)
        frac = _u32(b, p + 4, le)
        wire = _u32(b, p + 12, le)
        self.ts = _times(sec, 1_000_000_000) + (frac if self.nanos else frac * 1000)
        self.start = p + 16
        self.caplen = caplen
        self.wire_len = wire if wire > caplen else caplen
        self.pos = p + 16 + caplen
        return True

    # -- pcapng -------------------------------------------------------------------------------
    def _pcapng_next(self) -> bool:
        while True:
            if len(self.buf) - self.pos < 8 and not self._fill(8):
                if len(self.buf) == self.pos:
                    return False
                raise self._truncated("a block header")
            b, p, le = self.buf, self.pos, self.le
            btype = _u32(b, p, le)
            if btype == PCAPNG_SHB:
                self._section()
                continue
            blen = _u32(b, p + 4, le)
            if blen < 12 or blen > MAX_BLOCK or blen % 4:
                self.pos = p + 8
                raise CaptureTruncated(f"corrupt pcapng block (type {btype}, length {blen})")
            if len(b) - p < blen:
                if not self._fill(blen):
                    raise self._truncated("a block")
                b, p = self.buf, self.pos
            self.pos = p + blen
            if btype == BT_EPB:
                if blen < 32:
                    raise CaptureTruncated("corrupt enhanced packet block")
                ifid = _u32(b, p + 8, le)
                caplen = _u32(b, p + 20, le)
                if ifid >= len(self._ifaces) or caplen > blen - 32:
                    raise CaptureTruncated("corrupt enhanced packet block (interface or length)")
                link, mul, div, off = self._ifaces[ifid]
                wire = _u32(b, p + 24, le)
                stamp = _u32(b, p + 12, le) << 32 | _u32(b, p + 16, le)
                self.ts = (_times(stamp, mul) if div == 1 else stamp * mul // div) + off
                self.link = link
                self.start = p + 28
                self.caplen = caplen
                self.wire_len = wire if wire > caplen else caplen
                return True
            body, end = p + 8, p + blen - 4  # the block's body; the trailing length ignored
            if btype == BT_SPB:
                if not self._ifaces or end - body < 4:
                    raise CaptureTruncated("corrupt simple packet block")
                wire = _u32(b, body, le)
                caplen = min(wire, end - body - 4)
                self.link = self._ifaces[0][0]
                self.ts = 0
                self.start = body + 4
                self.caplen = caplen
                self.wire_len = wire
                return True
            if btype == BT_PB:  # obsolete packet block
                if end - body < 20:
                    raise CaptureTruncated("corrupt packet block")
                ifid = _u16(b, body, le)
                if ifid >= len(self._ifaces):
                    raise CaptureTruncated("corrupt packet block (interface)")
                caplen = min(_u32(b, body + 12, le), end - body - 20)
                wire = _u32(b, body + 16, le)
                link, mul, div, off = self._ifaces[ifid]
                stamp = _u32(b, body + 4, le) << 32 | _u32(b, body + 8, le)
                self.ts = stamp * mul // div + off
                self.link = link
                self.start = body + 20
                self.caplen = caplen
                self.wire_len = wire if wire > caplen else caplen
                return True
            if btype == BT_IDB:
                self._interface(b, body, end)
            elif btype == BT_ISB:
                for code, at, olen in _options(b, body + 12, end, le):
                    if code == OPT_ISB_IFDROP and olen >= 8:
                        self.dropped += _u64(b, at, le)
            # every other block (name resolution, decryption secrets, custom) is skipped

    def _section(self) -> None:
        """A section header block: its byte order holds until the next one; interfaces
        start again."""
        if not self._fill(12):
            raise self._truncated("a section header")
        p = self.pos
        b = self.buf
        bom = _u32(b, p + 8, True)
        if bom == BOM_LE:
            le = True
        elif bom == BOM_BE:
            le = False
        else:
            self.pos = p + 12
            raise CaptureFormatError("corrupt pcapng section header (byte-order magic)")
        blen = _u32(b, p + 4, le)
        if blen < 28 or blen > MAX_BLOCK or blen % 4:
            self.pos = p + 12
            raise CaptureTruncated(f"corrupt pcapng section header (length {blen})")
        if not self._fill(blen):
            raise self._truncated("a section header")
        self.le = le
        self.pos += blen
        self._ifaces = []
        self.links = []

    def _interface(self, b: bytes, body: int, end: int) -> None:
        le = self.le
        if end - body < 8:
            raise CaptureTruncated("corrupt interface description block")
        link = _u16(b, body, le)
        mul, div, tsoff = 1000, 1, 0  # default resolution: microseconds
        for code, at, olen in _options(b, body + 8, end, le):
            if code == OPT_IF_TSRESOL and olen:
                r = b[at]
                if r & 0x80:
                    mul, div = 1_000_000_000, 1 << (r & 0x7F)
                elif r <= 9:
                    mul, div = 10 ** (9 - r), 1
                else:
                    mul, div = 1, 10 ** (r - 9)
            elif code == OPT_IF_TSOFFSET and olen >= 8:
                tsoff = _u64(b, at, le)
                if tsoff >= 1 << 63:
                    tsoff -= 1 << 64
        self._ifaces.append((link, mul, div, tsoff * 1_000_000_000))
        self.links.append(link)


def _options(b: bytes, i: int, end: int, le: bool) -> list[tuple[int, int, int]]:
    """A block's options in b[i:end]: (code, where its value starts, its length)."""
    out = []
    while i + 4 <= end:
        code = _u16(b, i, le)
        olen = _u16(b, i + 2, le)
        if code == 0:
            break
        olen = min(olen, end - i - 4)
        out.append((code, i + 4, olen))
        i += 4 + ((olen + 3) & ~3)
    return out
