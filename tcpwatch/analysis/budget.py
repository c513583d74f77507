"""One memory budget for everything that grows with a connection's life.

A connection's counters are small and fixed; what grows with its life is what the plots, the
timeline and the request list keep: window, in-flight and RTT series, analysis events, and
exchanges. Those draw from budgets shared by every connection of one flow table, stated in
items: each connection's share is the budget divided by the connections kept (never less than
a floor), so a few connections keep much and many keep little, and the whole stays within
the budget whatever the capture. When connections arrive and the shares halve, the table
trims every connection to the new share at once (FlowTable.trim: a few times per doubling of
the connections kept, never per packet).

What a trim keeps:
- series keep their whole life at a coarser step: min-max decimation (each run of points
  becomes its smallest and its largest value, in time order), so a zero window, a peak of
  bytes in flight or the largest RTT sample is never lost to a trim;
- events and exchanges keep the newest, and count what they let go ("N seen, newest M
  kept"); the totals the diagnosis adds up (stall time by cause) are kept whole.

Sizes, measured (64-bit CPython): a series point is 16 bytes (time, value) or 24 (RTT: time,
sample, smoothed), an event 32, an exchange about 1.2 KB.
"""

from __future__ import annotations

from array import array
from typing import Final

# bytes per item, for stating a budget in MiB (measured: see above)
POINT_BYTES: Final = 20
EVENT_BYTES: Final = 32
EXCHANGE_BYTES: Final = 1200
MIB: Final = 1 << 20
# shares of a budget, and the floors every connection keeps whatever the number of them
SERIES_SHARE: Final = 0.35  # window, in flight, RTT: 6 series per connection
BINS_SHARE: Final = 0.05  # the dashboard's 1 s rate bins, 2 per connection (rate.py)
BIN_BYTES: Final = 24
EVENTS_SHARE: Final = 0.20
EXCHANGES_SHARE: Final = 0.40
SERIES_PER_FLOW: Final = 6
SERIES_MIN: Final = 16  # points per series: 8 min-max pairs over the connection's life
SERIES_MAX: Final = 4096
EVENTS_MIN: Final = 16
EVENTS_MAX: Final = 2048
BINS_MIN: Final = 8
BINS_MAX: Final = 600
EXCHANGES_MIN: Final = 2
EXCHANGES_MAX: Final = 1000
# the default budget of what grows: the report's (whole process <= 300 MiB at the default flow
# cap) and the dashboard's capture process (<= 600 MiB, with its packet list: monitor.py)
REPORT_MIB: Final = 64
DASHBOARD_MIB: Final = 160
PACKETS_MIB: Final = 128  # the dashboard's packet list, newest of the whole capture (live.py)


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


class Budget:
    """Shares of the growth budget for one flow table (see the module's text)."""

    __slots__ = ("mib", "series_points", "events", "exchanges", "bins", "flows", "series_cap",
                 "events_cap", "exchanges_cap", "bins_cap", "trimmed_cap", "trims")

    def __init__(self, mib: float = REPORT_MIB) -> None:
        if mib <= 0:
            raise ValueError("the memory budget must be positive")
        total = mib * MIB
        self.mib = mib
        self.series_points = int(total * SERIES_SHARE / POINT_BYTES)
        self.events = int(total * EVENTS_SHARE / EVENT_BYTES)
        self.exchanges = int(total * EXCHANGES_SHARE / EXCHANGE_BYTES)
        self.bins = int(total * BINS_SHARE / BIN_BYTES)
        self.flows = 0
        self.bins_cap = BINS_MAX
        self.series_cap = SERIES_MAX
        self.events_cap = EVENTS_MAX
        self.exchanges_cap = EXCHANGES_MAX
        self.trimmed_cap = SERIES_MAX  # series_cap at the last trim
        self.trims = 0
        self.set_flows(1)

    def set_flows(self, n: int) -> bool:
        """The table keeps n connections now; True when the shares fell to half of what they
        were at the last trim (the table then trims every connection)."""
        n = max(1, n)
        self.flows = n
        self.series_cap = _clamp(self.series_points // (n * SERIES_PER_FLOW), SERIES_MIN,
                                 SERIES_MAX)
        self.events_cap = _clamp(self.events // n, EVENTS_MIN, EVENTS_MAX)
        self.exchanges_cap = _clamp(self.exchanges // n, EXCHANGES_MIN, EXCHANGES_MAX)
        self.bins_cap = _clamp(self.bins // (2 * n), BINS_MIN, BINS_MAX)
        if self.series_cap * 2 <= self.trimmed_cap:
            self.trimmed_cap = self.series_cap
            self.trims += 1
            return True
        if self.series_cap > self.trimmed_cap:
            self.trimmed_cap = self.series_cap
        return False

    def as_dict(self) -> dict:
        return {"mib": self.mib, "series_points": self.series_points, "events": self.events,
                "exchanges": self.exchanges, "rate_bins": self.bins, "flows": self.flows,
                "per_flow": {"series_points": self.series_cap, "events": self.events_cap,
                             "exchanges": self.exchanges_cap, "rate_bins": self.bins_cap},
                "trims": self.trims}


class Series:
    """A bounded time series: (time ns, value[, value2]) points, at most the budget's share.

    Points are kept as they come while there is room. At the share, min-max decimation
    (module text): every 4 points become 2, the smallest and the largest (by the first
    value) in time order, and from then on each run of `step` new points is kept as its own
    smallest and largest. The series then covers the connection's whole life at one even
    step, its extremes exact. Integers, `w` per point, in one flat array (new points wait in
    a short list, moved over in chunks: one call per chunk, not per point); an RTT series
    (`two`) keeps nanoseconds and gives seconds back."""

    __slots__ = ("a", "buf", "w", "step", "n", "kept", "seen", "budget",
                 "t0", "v0", "x0", "t1", "v1", "x1")

    def __init__(self, budget: Budget, two: bool = False) -> None:
        self.a = array("q")
        self.buf: list[int] = []
        self.w = 3 if two else 2
        self.budget = budget
        self.step = 1  # points of the input per run kept as (min, max); 1: kept as they come
        self.n = 0  # points of the current run so far; its min (t0, v0, x0), max (t1, v1, x1)
        self.kept = 0  # points stored (a and buf), the current run not counted
        self.seen = 0  # points offered over the series' life
        self.t0 = self.v0 = self.x0 = self.t1 = self.v1 = self.x1 = 0

    def __len__(self) -> int:
        return self.kept + (2 if self.n else 0)

    def _put(self, t: int, v: int, x: int) -> None:
        buf = self.buf
        buf.append(t)
        buf.append(v)
        if self.w == 3:
            buf.append(x)
        self.kept += 1
        if len(buf) >= 240:
            self._flush()

    def _flush(self) -> None:
        if self.buf:
            self.a.extend(self.buf)
            self.buf.clear()

    def add(self, t: int, v: int, v2: int = 0) -> None:
        self.seen += 1
        if self.step == 1:
            self._put(t, v, v2)
        else:
            if self.n == 0:
                self.t0 = self.t1 = t
                self.v0 = self.v1 = v
                self.x0 = self.x1 = v2
            elif v < self.v0:
                self.t0, self.v0, self.x0 = t, v, v2
            elif v > self.v1:
                self.t1, self.v1, self.x1 = t, v, v2
            self.n += 1
            if self.n < self.step:
                return
            self._close_run()
        cap = self.budget.series_cap
        if self.kept >= cap:
            self.fit(cap)

    def _close_run(self) -> None:
        """The run is complete: its min and max in time order, one point if they are one."""
        if self.t0 == self.t1 and self.v0 == self.v1:
            self._put(self.t0, self.v0, self.x0)
        elif self.t0 <= self.t1:
            self._put(self.t0, self.v0, self.x0)
            self._put(self.t1, self.v1, self.x1)
        else:
            self._put(self.t1, self.v1, self.x1)
            self._put(self.t0, self.v0, self.x0)
        self.n = 0

    def fit(self, cap: int) -> None:
        """Decimate until at most `cap` points are kept (cap >= 4)."""
        cap = max(4, cap)
        self._flush()
        while self.kept >= cap:
            self._halve()

    def _halve(self) -> None:
        a, w = self.a, self.w
        out = array("q")
        n = len(a) // w
        i = 0
        while i < n:
            j = min(n, i + 4)
            lo = hi = i
            for k in range(i + 1, j):
                if a[k * w + 1] < a[lo * w + 1]:
                    lo = k
                if a[k * w + 1] > a[hi * w + 1]:
                    hi = k
            keep = (lo, hi) if lo < hi else (hi, lo) if hi < lo else (lo,)
            for k in keep:
                out.extend(a[k * w:k * w + w])
            i = j
        self.a = out
        self.kept = len(out) // w
        # each kept pair now stands for twice the input points (4 at the first halving)
        self.step = 4 if self.step == 1 else self.step * 2

    def points(self) -> list[tuple]:
        """[(t, v)] or, for RTT, [(t, seconds, seconds)], oldest first; the current run as
        its min and max in time order."""
        self._flush()
        a, w = self.a, self.w
        raw = [tuple(a[i:i + w]) for i in range(0, len(a), w)]
        if self.n:
            run = sorted({(self.t0, self.v0, self.x0), (self.t1, self.v1, self.x1)})
            raw.extend(p[:w] for p in run)
        if w == 3:
            return [(p[0], p[1] / 1e9, p[2] / 1e9) for p in raw]
        return raw


class EventLog:
    """The connection's analysis events for its timeline: (time ns, frame, direction, mask),
    the newest kept within the budget's share; `seen` counts them all."""

    __slots__ = ("a", "seen", "budget")

    def __init__(self, budget: Budget) -> None:
        self.a = array("q")  # 4 numbers per event
        self.seen = 0
        self.budget = budget

    def __len__(self) -> int:
        return len(self.a) >> 2

    def add(self, ts: int, num: int, d: int, m: int) -> None:
        a = self.a
        a.append(ts)
        a.append(num)
        a.append(d)
        a.append(m)
        self.seen += 1
        cap = self.budget.events_cap
        if len(a) > (cap + (cap >> 2)) << 2:  # amortized: cut a quarter at a time
            self.fit(cap)

    def fit(self, cap: int) -> None:
        if len(self.a) > cap << 2:
            del self.a[:len(self.a) - (cap << 2)]

    def mark(self, num: int, bit: int) -> None:
        """Add a verdict that came later to a segment's event (newest first)."""
        a = self.a
        i = len(a) - 4
        while i >= 0:
            n = a[i + 1]
            if n == num:
                a[i + 3] |= bit
                return
            if n < num:
                return
            i -= 4

    def items(self) -> list[tuple[int, int, int, int]]:
        a = self.a
        return [(a[i], a[i + 1], a[i + 2], a[i + 3]) for i in range(0, len(a), 4)]

    def tail(self, k: int) -> list[tuple[int, int, int, int]]:
        a = self.a
        start = max(0, len(a) - 4 * k)
        return [(a[i], a[i + 1], a[i + 2], a[i + 3]) for i in range(start, len(a), 4)]


# for trackers made outside a flow table (tests, tools): the report's budget, one connection
SHARED: Final = Budget()
