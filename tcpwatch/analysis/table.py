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

import heapq
from collections.abc import Callable
from typing import Final

from ..capture.record import ACK, SYN, PacketRecord, fmt_addr
from .budget import REPORT_MIB, Budget
from .flow import Flow
from .requests import Requests

EPHEMERAL_MIN: Final = 32768
MAX_FLOWS: Final = 20_000  # connections kept in memory (~8.5 KB for a short one); past it the least
#                      recently active go, finished ones first
EVICT_SHARE: Final = 10  # evict 1/EVICT_SHARE of the cap at a time (amortized: no per-packet cost)
DEST_MAX: Final = 10_000  # destinations counted separately in the half-open summary
HALF_OPEN_STATE: Final = "S0"  # Zeek: a SYN seen, no reply (RFC 9293 3.5: a half-open attempt)
HALF_OPEN_FOLD: Final = 20  # this many half-open attempts to one server are shown as one line/row


def endpoint_key(r: PacketRecord) -> int:
    """The connection lookup key: the same for both directions (PacketRecord.key)."""
    return r.key


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


def endpoint_text(ep: tuple, ipv: int) -> str:
    addr, port = ep
    return f"[{fmt_addr(addr)}]:{port}" if ipv == 6 else f"{fmt_addr(addr)}:{port}"


class Evicted:
    """What the flows that left the table added up to: nothing counted is lost."""

    __slots__ = ("flows", "packets", "bytes", "states", "half_open")

    def __init__(self) -> None:
        self.flows = 0
        self.packets = 0
        self.bytes = 0
        self.states: dict[str, int] = {}
        # server endpoint text -> half-open connections evicted
        self.half_open: dict[str, int] = {}

    def add(self, fl: Flow) -> None:
        c2s, s2c = fl.dirs
        self.flows += 1
        self.packets += c2s.packets + s2c.packets
        self.bytes += c2s.bytes + s2c.bytes
        st = fl.life.conn_state()
        self.states[st] = self.states.get(st, 0) + 1
        if st == HALF_OPEN_STATE:
            key = endpoint_text(fl.server, fl.ipv)
            if key not in self.half_open and len(self.half_open) >= DEST_MAX:
                key = "(other destinations)"
            self.half_open[key] = self.half_open.get(key, 0) + 1

    def as_dict(self) -> dict:
        return {"flows": self.flows, "packets": self.packets, "bytes": self.bytes,
                "states": dict(sorted(self.states.items())),
                "half_open": dict(sorted(self.half_open.items(), key=lambda kv: -kv[1]))}


class FlowTable:
    """Feed records in capture order; `flows` maps flow id -> connection, in order of first
    packet (the id is the connection's index, as Wireshark's tcp.stream).

    Memory is bounded: at most `max_flows` connections are kept. Past it, the least recently
    active are evicted, finished ones first; `evicted` adds up what they carried and
    `on_evict` (if set) sees each one before it goes."""

    __slots__ = ("flows", "active", "first_ts", "last_ts", "records", "max_flows", "next_id",
                 "evicted", "on_evict", "budget", "requests")

    def __init__(self, max_flows: int = MAX_FLOWS,
                 on_evict: Callable[[Flow], None] | None = None,
                 budget_mib: float = REPORT_MIB) -> None:
        if max_flows < 1:
            raise ValueError("max_flows must be positive")
        self.flows: dict[int, Flow] = {}
        self.active: dict[int, Flow] = {}  # PacketRecord.key -> the connection on it now
        self.first_ts: int | None = None
        self.last_ts = 0
        self.records = 0
        self.max_flows = max_flows
        self.next_id = 0
        self.evicted = Evicted()
        self.on_evict = on_evict
        # what grows with a connection's life, shared by all of them (budget.py)
        self.budget = Budget(budget_mib)
        # every finished request, grouped by service and endpoint (requests.py)
        self.requests = Requests()

    def feed(self, r: PacketRecord) -> tuple[Flow, int, int]:
        """Returns (flow, direction, analysis event mask)."""
        self.records += 1
        if self.first_ts is None:
            self.first_ts = r.ts
        if r.ts > self.last_ts:
            self.last_ts = r.ts
        key = r.key
        fl = self.active.get(key)
        if fl is None:
            fl = self._new(key, r, reused=False)
        elif r.flags & SYN and self._is_new_incarnation(fl, r):
            fl = self._new(key, r, reused=True)
        d = 0 if r.side == fl.client_side else 1
        m = fl.feed(r, d)
        return fl, d, m

    def feed_all(self, batch: list[PacketRecord]) -> None:
        """feed() every record of a batch (the report's loop, compiled with the rest)."""
        for r in batch:
            self.feed(r)

    def _new(self, key: int, r: PacketRecord, reused: bool) -> Flow:
        src_is_client, why = guess_src_is_client(r)
        fid = self.next_id
        self.next_id = fid + 1
        fl = Flow(fid, r, src_is_client, why, reused, self.budget)
        fl.exchanges.sink = self.requests
        self.flows[fid] = fl
        self.active[key] = fl
        if len(self.flows) > self.max_flows:
            self._evict(fl)
        if self.budget.set_flows(len(self.flows)):
            self.trim()
        return fl

    def trim(self) -> None:
        """Every connection to its share of the budget (the shares halved: budget.py)."""
        b = self.budget
        for fl in self.flows.values():
            for d in fl.dirs:
                d.series.fit(b.series_cap)
                d.flight.fit(b.series_cap)
                d.rtt.series.fit(b.series_cap)
            fl.events.fit(b.events_cap)
            fl.exchanges.fit(b.exchanges_cap)

    def _evict(self, keep: Flow) -> None:
        """Drop the least recently active tenth of the cap, finished connections first."""
        n = max(1, self.max_flows // EVICT_SHARE)
        victims = heapq.nsmallest(n + 1, self.flows.values(),
                                  key=lambda f: (not f.closed, f.last_ts, f.id))
        ev, hook, active = self.evicted, self.on_evict, self.active
        for fl in victims:
            if fl is keep or n == 0:
                continue
            n -= 1
            del self.flows[fl.id]
            if active.get(fl.key) is fl:
                del active[fl.key]
            ev.add(fl)
            self.requests.evicted(fl)
            if hook is not None:
                hook(fl)

    def half_open(self) -> dict[str, int]:
        """Half-open connection attempts (a SYN, no answer) per server endpoint, kept and
        evicted together, most first."""
        out = dict(self.evicted.half_open)
        for fl in self.flows.values():
            c2s, s2c = fl.dirs
            if s2c.packets == 0 and fl.life.conn_state() == HALF_OPEN_STATE:
                key = endpoint_text(fl.server, fl.ipv)
                out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    @staticmethod
    def _is_new_incarnation(fl: Flow, r: PacketRecord) -> bool:
        d = fl.dirs[0 if r.side == fl.client_side else 1]
        return d.base_seq is not None and r.seq != d.base_seq

    def forget_closed(self, now: int, linger_ns: int) -> int:
        """Drop closed flows idle for longer than linger_ns from the lookup (live capture:
        bounded memory). They stay in `flows` until the caller trims it."""
        gone = [k for k, f in self.active.items() if f.closed and now - f.last_ts > linger_ns]
        for k in gone:
            del self.active[k]
        return len(gone)
