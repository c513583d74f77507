"""Bounded series in plain lists: per-flow time series (RTT samples, windows, in flight,
events) must cost little for the many short connections and stay bounded for long ones."""

from __future__ import annotations

from typing import Final


def ring_add(ring: list, item, maxlen: int) -> None:
    """Append to a bounded series kept in a plain list (a deque costs ~600 bytes even for one
    item): past maxlen + maxlen/4 the oldest are dropped down to maxlen, in one slice, so the
    cost stays O(1) amortized and at most RING_SLACK * maxlen items are ever kept."""
    ring.append(item)
    if len(ring) > maxlen + (maxlen >> 2):
        del ring[:len(ring) - maxlen]


RING_SLACK: Final = 1.25  # a ring_add list never holds more than this times its maxlen
