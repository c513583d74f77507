"""Throughput over capture time: bytes and packets per 1-second bin, for "now" rates and plots.

Definition (one place): the rate "now" is the traffic of the last second of capture time,
(now - 1 s, now], approximated from 1 s bins: all of the current bin plus the share of the
previous bin that still lies inside the window. Time comes from packet timestamps only.
"""

from __future__ import annotations

from array import array
from typing import Final

BIN_NS: Final = 1_000_000_000
BINS_MAX: Final = 600  # ten minutes of 1 s bins at the most (the budget may allow fewer)


class RateBins:
    """The newest 1 s bins, at most `maxlen` (or the budget's share, budget.py) of them:
    closed bins as three numbers each (index, bytes, packets) in one flat array, the current
    bin in plain fields (a packet adds to two integers)."""

    __slots__ = ("a", "maxlen", "budget", "cur", "cur_bytes", "cur_pkts")

    def __init__(self, maxlen: int = BINS_MAX, budget=None) -> None:
        self.a = array("q")
        self.maxlen = maxlen
        self.budget = budget  # a Budget: its bins_cap, when it is lower than maxlen
        self.cur = -1  # the current bin's index, -1 none yet
        self.cur_bytes = 0
        self.cur_pkts = 0

    def add(self, ts: int, nbytes: int) -> None:
        i = ts // BIN_NS
        if i <= self.cur:  # the current bin, or a timestamp going backwards
            self.cur_bytes += nbytes
            self.cur_pkts += 1
            return
        if self.cur >= 0:
            self._close()
        self.cur = i
        self.cur_bytes = nbytes
        self.cur_pkts = 1

    def _close(self) -> None:
        a = self.a
        a.append(self.cur)
        a.append(self.cur_bytes)
        a.append(self.cur_pkts)
        cap = self.maxlen
        b = self.budget
        if b is not None and b.bins_cap < cap:
            cap = b.bins_cap
        cap -= 1  # the current bin is one of them
        if len(a) // 3 > cap + (cap >> 2):  # amortized: a quarter at a time
            del a[:len(a) - 3 * max(1, cap)]

    def _bins(self) -> list[tuple[int, int, int]]:
        a = self.a
        out = [(a[k], a[k + 1], a[k + 2]) for k in range(0, len(a), 3)]
        if self.cur >= 0:
            out.append((self.cur, self.cur_bytes, self.cur_pkts))
        return out

    def __len__(self) -> int:
        return len(self.a) // 3 + (1 if self.cur >= 0 else 0)

    def now(self, now_ts: int) -> tuple[float, float]:
        """(bytes/s, packets/s) over the last second of capture time ending at now_ts."""
        if self.cur < 0:
            return 0.0, 0.0
        i = now_ts // BIN_NS
        frac = (now_ts - i * BIN_NS) / BIN_NS  # how far into the current bin we are
        nbytes = npk = 0.0
        a = self.a
        last = [(self.cur, self.cur_bytes, self.cur_pkts)]
        if len(a) >= 3:
            last.insert(0, (a[len(a) - 3], a[len(a) - 2], a[len(a) - 1]))
        for idx, by, pk in last:
            if idx == i:
                nbytes += by
                npk += pk
            elif idx == i - 1:
                nbytes += by * (1 - frac)
                npk += pk * (1 - frac)
        return nbytes, npk

    def series(self) -> list[tuple[float, int]]:
        """[(bin start, seconds since the epoch; bytes in that second)], gaps filled with 0."""
        out: list[tuple[float, int]] = []
        prev = None
        for idx, by, _pk in self._bins():
            if prev is not None:
                for gap in range(prev + 1, min(idx, prev + 60)):
                    out.append((gap * BIN_NS / 1e9, 0))
            out.append((idx * BIN_NS / 1e9, by))
            prev = idx
        return out
