"""Hand-built TCP conversations for unit tests: records and raw frames."""

from __future__ import annotations

import struct

from tcpwatch.capture.record import ACK, SYN, PacketRecord, parse_addr

C = parse_addr("10.0.0.1")
S = parse_addr("10.0.0.2")
MS = 1_000_000  # ns


class Conv:
    """Builds records of one connection: c() for client->server, s() for server->client."""

    def __init__(self, cport: int = 40000, sport: int = 80, t0: int = 1_000_000 * 10**9):
        self.cport, self.sport, self.t = cport, sport, t0
        self.num = 0

    def _rec(self, from_client: bool, at_ms: float, seq: int, ack: int, flags: int,
             win: int = 1000, plen: int = 0, **opts) -> PacketRecord:
        self.num += 1
        src, dst = (C, S) if from_client else (S, C)
        sp, dp = (self.cport, self.sport) if from_client else (self.sport, self.cport)
        r = PacketRecord(self.num, self.t + int(at_ms * MS), 4, src, dst, sp, dp,
                         seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, win, plen, 54 + plen)
        for k, v in opts.items():
            setattr(r, k, v)
        return r

    def c(self, at_ms, seq, ack, flags=ACK, **kw):
        return self._rec(True, at_ms, seq, ack, flags, **kw)

    def s(self, at_ms, seq, ack, flags=ACK, **kw):
        return self._rec(False, at_ms, seq, ack, flags, **kw)

    def handshake(self, isn_c=1000, isn_s=5000, rtt_ms=10.0, **opts):
        return [self.c(0, isn_c, 0, SYN, **opts.get("c", {})),
                self.s(rtt_ms, isn_s, isn_c + 1, SYN | ACK, **opts.get("s", {})),
                self.c(rtt_ms + 0.1, isn_c + 1, isn_s + 1)]


# ---- raw frames ----------------------------------------------------------------------------
def tcp_header(sport=1234, dport=80, seq=1, ack=0, flags=SYN, win=65535, options=b""):
    options += b"\x00" * (-len(options) % 4)
    off = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0,
                       0) + options


def ipv4(payload, src="10.0.0.1", dst="10.0.0.2", proto=6, options=b"", frag=0):
    ihl = (20 + len(options)) // 4
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 0,
                       frag, 64, proto, 0, parse_addr(src), parse_addr(dst)) + options + payload


def ipv6(payload, src="2001:db8::1", dst="2001:db8::2", nxt=6):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64, parse_addr(src),
                       parse_addr(dst)) + payload


def ether(payload, ethertype=0x0800, vlans=()):
    hdr = b"\x02" * 6 + b"\x04" * 6
    for tpid, vid in vlans:
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", ethertype) + payload


def pcap_file(frames, link=1, nanos=False, endian="<"):
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, link)
    for i, f in enumerate(frames):
        out += struct.pack(endian + "IIII", 1_700_000_000 + i, 500, len(f), len(f)) + f
    return out


def pcapng_file(frames, link=1, tsresol=None):
    def block(btype, body):
        body += b"\x00" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts = struct.pack("<HHB", 9, 1, tsresol) + b"\x00" * 3 + b"\x00" * 4
    idb = block(1, struct.pack("<HHI", link, 0, 262144) + opts)
    out = shb + idb
    for i, f in enumerate(frames):
        ts = (1_700_000_000 + i) * (10**9 if tsresol == 9 else 10**6) + 7
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f)
    return out


def client_hello(sni: str) -> bytes:
    name = sni.encode("latin-1")
    ext = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    body = (b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(ext)) + ext)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs
