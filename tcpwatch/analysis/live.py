"""The dashboard's per-packet bookkeeping beside the flow table: each connection's rate bins,
the newest packets of the capture (for the drill-down), the capture's total rate, and which
connections changed since the last snapshot. Compiled with the core (setup.py): the monitor
hands it whole batches.

The packets kept for the drill-down are the newest of the whole capture, within one budget
in bytes (`keep_bytes`), not a number per connection: a few busy connections keep many, and
thousands of long-lived ones cannot add up to gigabytes. They wait in one queue, oldest
first, and nothing else per packet: a connection's own are picked out of it when its
drill-down is built (`packets_of`: a record belongs to the connection on its endpoints
between the connection's first and last frame).
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Final

from ..capture.record import PAYLOAD_PREFIX, PacketRecord
from .flow import Flow
from .rate import RateBins
from .table import FlowTable

# a kept record's size in memory, beyond its payload prefix (measured, 64-bit CPython: the
# slotted object, its integers, addresses and key)
RECORD_BYTES: Final = 420


class LiveFeed:
    def __init__(self, table: FlowTable, keep_bytes: int) -> None:
        self.table = table
        self.keep_bytes = keep_bytes  # the packet list's budget, bytes, whole capture
        self.kept_bytes = 0
        self.seen = 0  # packets fed; len(packets) of them are kept
        self.packets: deque[PacketRecord] = deque()  # the newest, oldest first
        self.rates: dict[int, tuple[RateBins, RateBins]] = {}  # per direction
        self.dirty: set[int] = set()  # connections that saw packets since the last snapshot
        self.total = RateBins(maxlen=8)
        self.new_flows = False

    def feed(self, batch: list[PacketRecord]) -> None:
        feed = self.table.feed
        budget = self.table.budget
        rates, dirty, total, packets = self.rates, self.dirty, self.total, self.packets
        keep = self.keep_bytes
        kept = self.kept_bytes
        last = -1
        for r in batch:
            fl, d, _m = feed(r)
            fid = fl.id
            rb = rates.get(fid)
            if rb is None:
                rb = (RateBins(budget=budget), RateBins(budget=budget))
                rates[fid] = rb
                self.new_flows = True
            rb[d].add(r.ts, r.flen)
            if fid != last:
                dirty.add(fid)
                last = fid
            p = r.payload
            if len(p) > PAYLOAD_PREFIX:  # the packet list reads no more (record.py)
                p = r.payload = p[:PAYLOAD_PREFIX]
            packets.append(r)
            kept += RECORD_BYTES + len(p)
            total.add(r.ts, r.flen)
            while kept > keep and packets:
                old = packets.popleft()
                kept -= RECORD_BYTES + len(old.payload)
        self.seen += len(batch)
        self.kept_bytes = kept

    def packets_of(self, fl: Flow) -> list[PacketRecord]:
        """The kept packets of one connection, oldest first (a scan of the queue from the
        connection's first frame: only for the drill-down being built)."""
        packets = self.packets
        if not packets or fl.last_num < packets[0].num:
            return []
        key, first, last = fl.key, fl.first_num, fl.last_num
        # the queue is in frame order: skip to the connection's first frame by bisection
        lo, hi = 0, len(packets)
        while lo < hi:
            mid = (lo + hi) // 2
            if packets[mid].num < first:
                lo = mid + 1
            else:
                hi = mid
        out = []
        for r in islice(packets, lo, None):  # (a deque is walked, not indexed, from there)
            if r.num > last:
                break
            if r.key == key:
                out.append(r)
        return out

    def take_dirty(self) -> set[int]:
        out = self.dirty
        self.dirty = set()
        return out

    def forget(self, fid: int) -> None:
        """The flow table let the connection go (its packets age out with the others)."""
        self.rates.pop(fid, None)
        self.dirty.discard(fid)
