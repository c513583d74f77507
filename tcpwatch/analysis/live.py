"""The dashboard's per-packet bookkeeping beside the flow table: each connection's rate bins
and newest packets (for the drill-down), the capture's total rate, and which connections
changed since the last snapshot. Compiled with the core (setup.py): the monitor hands it
whole batches."""

from __future__ import annotations

from collections import deque

from ..capture.record import PacketRecord
from .rate import RateBins
from .table import FlowTable


class LiveFeed:
    def __init__(self, table: FlowTable, keep: int) -> None:
        self.table = table
        self.keep = keep  # newest packets kept per connection (PACKETS_PER_FLOW)
        self.rates: dict[int, tuple[RateBins, RateBins]] = {}  # per direction
        self.ring: dict[int, deque[PacketRecord]] = {}
        self.ring_dropped: dict[int, int] = {}  # older packets not kept, per connection
        self.dirty: set[int] = set()  # connections that saw packets since the last snapshot
        self.total = RateBins(maxlen=8)
        self.new_flows = False

    def feed(self, batch: list[PacketRecord]) -> None:
        feed = self.table.feed
        rates, ring, dirty, total = self.rates, self.ring, self.dirty, self.total
        keep = self.keep
        for r in batch:
            fl, d, _m = feed(r)
            fid = fl.id
            rb = rates.get(fid)
            if rb is None:
                rb = (RateBins(), RateBins())
                rates[fid] = rb
                ring[fid] = deque(maxlen=keep)
                self.new_flows = True
            rb[d].add(r.ts, r.flen)
            dirty.add(fid)
            q = ring[fid]
            if len(q) == keep:
                self.ring_dropped[fid] = self.ring_dropped.get(fid, 0) + 1
            q.append(r)
            total.add(r.ts, r.flen)

    def take_dirty(self) -> set[int]:
        out = self.dirty
        self.dirty = set()
        return out

    def forget(self, fid: int) -> None:
        self.rates.pop(fid, None)
        self.ring.pop(fid, None)
        self.ring_dropped.pop(fid, None)
        self.dirty.discard(fid)
