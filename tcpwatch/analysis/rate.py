"""Throughput over capture time: bytes and packets per 1-second bin, for "now" rates and plots.

Definition (one place): the rate "now" is the traffic of the last second of capture time,
(now - 1 s, now], approximated from 1 s bins: all of the current bin plus the share of the
previous bin that still lies inside the window. Time comes from packet timestamps only.
"""

from __future__ import annotations

from collections import deque
from typing import Final

BIN_NS: Final = 1_000_000_000
BINS_MAX: Final = 600  # ten minutes of 1 s bins kept (bounded memory per flow)


class RateBins:
    __slots__ = ("bins",)

    def __init__(self, maxlen: int = BINS_MAX) -> None:
        self.bins: deque[list[int]] = deque(maxlen=maxlen)  # [bin index, bytes, packets]

    def add(self, ts: int, nbytes: int) -> None:
        i = ts // BIN_NS
        b = self.bins
        if b and b[-1][0] == i:
            last = b[-1]
            last[1] += nbytes
            last[2] += 1
        elif not b or i > b[-1][0]:
            b.append([i, nbytes, 1])
        else:  # a timestamp going backwards: account it to the newest bin
            b[-1][1] += nbytes
            b[-1][2] += 1

    def now(self, now_ts: int) -> tuple[float, float]:
        """(bytes/s, packets/s) over the last second of capture time ending at now_ts."""
        b = self.bins
        if not b:
            return 0.0, 0.0
        i = now_ts // BIN_NS
        frac = (now_ts - i * BIN_NS) / BIN_NS  # how far into the current bin we are
        nbytes = npk = 0.0
        for idx, by, pk in reversed(b):
            if idx == i:
                nbytes += by
                npk += pk
            elif idx == i - 1:
                nbytes += by * (1 - frac)
                npk += pk * (1 - frac)
            elif idx < i - 1:
                break
        return nbytes, npk

    def series(self) -> list[tuple[float, int]]:
        """[(bin start, seconds since the epoch; bytes in that second)], gaps filled with 0."""
        out: list[tuple[float, int]] = []
        prev = None
        for idx, by, _pk in self.bins:
            if prev is not None:
                for gap in range(prev + 1, min(idx, prev + 60)):
                    out.append((gap * BIN_NS / 1e9, 0))
            out.append((idx * BIN_NS / 1e9, by))
            prev = idx
        return out
