"""Synthetic captures of the shapes that decide memory: many short connections, many
long-lived ones, a few huge transfers, a SYN flood. Classic pcap (Ethernet, IPv4), written
as a stream so a capture of 10M packets never has to be held; every frame is real TCP that
the decoder and trackers take as they would from the wire (timestamps option on the
long-lived and huge shapes, as Linux sends it).

    write(out, shape, conns, packets_per_conn)   out: a binary file object (closed at the end)

Shapes (packets per connection where it applies):
  short     SYN, SYN-ACK, ACK, request, response, FIN, FIN, ACK (8 packets each)
  long      handshake, then all connections in turn: the client sends 100 bytes, the server
            ACKs them (each connection alive from the start to the end of the capture)
  huge      handshake, then bulk server -> client, 1448-byte segments (snap length 128),
            an ACK every second segment
  synflood  one SYN from a different source address and port to one server, nothing else
"""

from __future__ import annotations

import struct

SNAP = 128  # bytes of each frame written for the huge shape (as dumpcap -s 128)
_REQ = b"GET /x HTTP/1.1\r\nHost: s\r\n\r\n"
_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_REC = struct.Struct("<IIII")
_TCP = struct.Struct("!HHIIBBHHH")
_IP = struct.Struct("!BBHHHBBH4s4s")
_ETH = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
SHAPES = ("short", "long", "huge", "synflood")


def _frame(src: bytes, dst: bytes, sp: int, dp: int, seq: int, ack: int, flags: int,
           data: bytes = b"", tsval: int = -1, tsecr: int = 0, wire_len: int = 0) -> bytes:
    opts = b""
    if tsval >= 0:  # NOP NOP TS (RFC 7323 3.2)
        opts = b"\x01\x01\x08\x0a" + struct.pack("!II", tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF)
    hl = 20 + len(opts)
    tcp = _TCP.pack(sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hl // 4) << 4, flags, 65535,
                    0, 0) + opts
    plen = wire_len or len(data)
    ip = _IP.pack(0x45, 0, 20 + hl + plen, 0, 0x4000, 64, 6, 0, src, dst)
    return _ETH + ip + tcp + data


def _client(i: int) -> tuple[bytes, int]:
    return bytes([10, 1 + (i >> 16) % 200, (i >> 8) & 255, i & 255]), 10000 + i % 50000


class _Writer:
    def __init__(self, out) -> None:
        self.out = out
        self.buf: list[bytes] = []
        self.t = 1_700_000_000_000_000  # microseconds
        self.count = 0
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

    def add(self, fr: bytes, step_us: int = 25, orig: int = 0) -> None:
        cap = fr[:SNAP] if orig else fr
        self.buf.append(_REC.pack(self.t // 1_000_000, self.t % 1_000_000, len(cap),
                                  orig or len(fr)) + cap)
        self.t += step_us
        self.count += 1
        if len(self.buf) >= 4096:
            self.flush()

    def flush(self) -> None:
        self.out.write(b"".join(self.buf))
        self.buf = []


SRV = bytes([10, 9, 0, 1])


def _short(w: _Writer, conns: int) -> None:
    for i in range(conns):
        cli, sp = _client(i)
        c, s = 1000, 5000
        for a, b, x, y, q, k, f, d in (
                (cli, SRV, sp, 80, c, 0, 0x02, b""), (SRV, cli, 80, sp, s, c + 1, 0x12, b""),
                (cli, SRV, sp, 80, c + 1, s + 1, 0x10, b""),
                (cli, SRV, sp, 80, c + 1, s + 1, 0x18, _REQ),
                (SRV, cli, 80, sp, s + 1, c + 1 + len(_REQ), 0x18, _RESP),
                (cli, SRV, sp, 80, c + 1 + len(_REQ), s + 1 + len(_RESP), 0x11, b""),
                (SRV, cli, 80, sp, s + 1 + len(_RESP), c + 2 + len(_REQ), 0x11, b""),
                (cli, SRV, sp, 80, c + 2 + len(_REQ), s + 2 + len(_RESP), 0x10, b"")):
            w.add(_frame(a, b, x, y, q, k, f, d))


def _handshakes(w: _Writer, conns: int, client_sends: bool) -> list[int]:
    """Every connection's handshake (timestamps on); returns the sender's next sequence."""
    for i in range(conns):
        cli, sp = _client(i)
        w.add(_frame(cli, SRV, sp, 80, 1000, 0, 0x02, tsval=1, tsecr=0))
        w.add(_frame(SRV, cli, 80, sp, 5000, 1001, 0x12, tsval=1, tsecr=1))
        w.add(_frame(cli, SRV, sp, 80, 1001, 5001, 0x10, tsval=2, tsecr=1))
    return [1001 if client_sends else 5001] * conns


def _long(w: _Writer, conns: int, per_conn: int) -> None:
    data = b"x" * 100
    seqs = _handshakes(w, conns, client_sends=True)
    rounds = max(0, (per_conn - 3) // 2)
    for k in range(rounds):
        ts = 3 + k  # one millisecond clock tick per round
        for i in range(conns):
            cli, sp = _client(i)
            q = seqs[i]
            w.add(_frame(cli, SRV, sp, 80, q, 5001, 0x18, data, tsval=ts, tsecr=ts - 1), 5)
            w.add(_frame(SRV, cli, 80, sp, 5001, q + 100, 0x10, tsval=ts, tsecr=ts), 5)
            seqs[i] = q + 100


def _huge(w: _Writer, conns: int, per_conn: int) -> None:
    mss = 1448
    body = b"y" * (SNAP - 66)  # what the snap length keeps of each data frame
    seqs = _handshakes(w, conns, client_sends=False)
    rounds = max(0, (per_conn - 3) // 3)
    for k in range(rounds):
        ts = 3 + k // 8
        for i in range(conns):
            cli, sp = _client(i)
            q = seqs[i]
            for j in range(2):
                fr = _frame(SRV, cli, 80, sp, q + j * mss, 1001, 0x10, body, tsval=ts,
                            tsecr=ts, wire_len=mss)
                w.add(fr, 1, orig=len(_frame(SRV, cli, 80, sp, 0, 0, 0x10, tsval=0)) + mss)
            w.add(_frame(cli, SRV, sp, 80, 1001, q + 2 * mss, 0x10, tsval=ts, tsecr=ts), 1)
            seqs[i] = q + 2 * mss


def _synflood(w: _Writer, conns: int) -> None:
    for i in range(conns):
        cli, sp = _client(i)
        w.add(_frame(cli, SRV, sp, 80, 1000 + i, 0, 0x02), 2)


def write(out, shape: str, conns: int, per_conn: int = 1000) -> int:
    """Write the capture to `out` (closed at the end); returns the number of packets."""
    w = _Writer(out)
    try:
        if shape == "short":
            _short(w, conns)
        elif shape == "long":
            _long(w, conns, per_conn)
        elif shape == "huge":
            _huge(w, conns, per_conn)
        elif shape == "synflood":
            _synflood(w, conns)
        else:
            raise ValueError(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
        w.flush()
    finally:
        out.close()
    return w.count
