"""The flow table: which connection a segment belongs to, who is client and server, port
reuse, and capture-wide totals.

Identity is direction-agnostic: the key is the ordered pair of endpoints (address, port), so
both directions of a connection meet in one entry and different connections never collide.
Client and server come from the SYN (or the SYN-ACK). Without either, a stated heuristic:
  1. exactly one port below 1024: that side is the server (well-known services);
  2. else exactly one port in the dynamic range 49152-65535 or Linux's 32768-60999: that side
     is the client (ephemeral ports);
  3. else the lower port is the server; equal ports: the first packet's receiver.
Port reuse: a SYN (or SYN-ACK) whose sequence number differs from the ISN of the flow on that
4-tuple starts a new flow (RFC 9293 3.4: a new incarnation picks a new ISN).
"""

from __future__ import annotations

from ..capture.record import ACK, SYN, PacketRecord
from .flow import Flow

EPHEMERAL_MIN = 32768


def endpoint_key(r: PacketRecord) -> tuple:
    a, b = (r.src, r.sport), (r.dst, r.dport)
    return (a, b) if a <= b else (b, a)


def guess_src_is_client(r: PacketRecord) -> tuple[bool, str]:
    if r.flags & SYN:
        return (not r.flags & ACK), ("syn-ack" if r.flags & ACK else "syn")
    sp, dp = r.sport, r.dport
    if (sp < 1024) != (dp < 1024):
        return dp < 1024, "well-known port"
    if (sp >= EPHEMERAL_MIN) != (dp >= EPHEMERAL_MIN):
        return sp >= EPHEMERAL_MIN, "ephemeral port"
    if sp != dp:
        return sp > dp, "lower port is the server"
    return True, "first packet"


class FlowTable:
    """Feed records in capture order; `flows` lists every connection in order of first
    packet (the index is the flow id, as Wireshark's tcp.stream)."""

    __slots__ = ("flows", "active", "first_ts", "last_ts", "records")

    def __init__(self) -> None:
        self.flows: list[Flow] = []
        self.active: dict[tuple, Flow] = {}
        self.first_ts: int | None = None
        self.last_ts = 0
        self.records = 0

    def feed(self, r: PacketRecord) -> tuple[Flow, int, int]:
        """Returns (flow, direction, analysis event mask)."""
        self.records += 1
        if self.first_ts is None:
            self.first_ts = r.ts
        self.last_ts = r.ts
        key = endpoint_key(r)
        fl = self.active.get(key)
        if fl is None:
            fl = self._new(key, r, reused=False)
        elif r.flags & SYN and self._is_new_incarnation(fl, r):
            fl = self._new(key, r, reused=True)
        d = 0 if (r.src, r.sport) == fl.client else 1
        m = fl.feed(r, d)
        return fl, d, m

    def _new(self, key: tuple, r: PacketRecord, reused: bool) -> Flow:
        src_is_client, why = guess_src_is_client(r)
        fl = Flow(len(self.flows), r, src_is_client, why, reused)
        self.flows.append(fl)
        self.active[key] = fl
        return fl

    @staticmethod
    def _is_new_incarnation(fl: Flow, r: PacketRecord) -> bool:
        d = fl.dirs[0 if (r.src, r.sport) == fl.client else 1]
        return d.base_seq is not None and r.seq != d.base_seq

    def forget_closed(self, now: int, linger_ns: int) -> int:
        """Drop closed flows idle for longer than linger_ns from the lookup (live capture:
        bounded memory). They stay in `flows` until the caller trims it."""
        gone = [k for k, f in self.active.items() if f.closed and now - f.last_ts > linger_ns]
        for k in gone:
            del self.active[k]
        return len(gone)
