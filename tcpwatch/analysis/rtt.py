"""Round-trip time: samples and the RFC 6298 estimator, per direction of data.

A sample is measured at the capture point: from a data segment to the ACK that covers it.
Karn's rule (RFC 6298 3): a segment that was retransmitted gives no sample, because the ACK
cannot say which copy it answers. With TCP timestamps (RFC 7323 4.1 RTTM) the echoed TSval
names the copy, so those samples survive retransmission.

The path's RTT and the receiver's delay are kept apart. A receiver may hold the ACK of a lone
segment (RFC 1122 4.2.3.2, RFC 5681 4.2: delayed ACK, up to 500 ms; Linux 40 ms at least), or
until its application answers and the ACK rides on the answer. Such a sample measures the
receiver, not the path. flow.py marks a sample `held` when its ACK covers one segment and
nothing else was outstanding (the only case in which the receiver may wait; Linux's
FLAG_ACK_MAYBE_DELAYED is the same test) and it took at least twice the path's base RTT and
HELD_MIN_NS more. `srtt` is the path's: RFC 6298 smoothing over the other samples; `srtt_all`
and `rto` smooth every sample, as the sender's own estimator does.
"""

from __future__ import annotations

from typing import Final

from .budget import SHARED, Budget, Series

# RFC 6298 2: alpha = 1/8, beta = 1/4, K = 4; clock granularity G taken as 1 ms (Linux jiffy
# granularity is 1-4 ms); RTO floor of 1 s (RFC 6298 2.4); initial RTO 1 s (2.1).
ALPHA: Final = 0.125
BETA: Final = 0.25
K: Final = 4
G: Final = 0.001
RTO_MIN: Final = 1.0
RTO_INITIAL: Final = 1.0
HELD_MIN_NS: Final = 100_000  # a held sample exceeds the path's base by at least this (0.1 ms)


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "srtt_all", "rttvar_all", "rto", "n", "n_seq", "n_ts",
                 "n_held", "n_path", "min", "max", "sum", "last", "series")

    def __init__(self, budget: Budget = SHARED) -> None:
        self.srtt: float | None = None  # the path's smoothed RTT, seconds (RFC 6298 2.2/2.3)
        self.rttvar: float | None = None  # ... and its variation
        self.srtt_all: float | None = None  # smoothed over every sample, held ones included
        self.rttvar_all: float | None = None
        self.rto = RTO_INITIAL  # retransmission timeout from every sample, seconds (RFC 6298 2)
        self.n = 0
        self.n_seq = 0  # samples from data->ACK (Karn)
        self.n_ts = 0  # samples from timestamp echoes (RFC 7323)
        self.n_held = 0  # samples whose ACK the receiver held (delayed ACK, piggyback)
        self.n_path = 0
        self.min: float | None = None  # smallest sample: the path's base RTT
        self.max: float | None = None
        self.sum = 0.0  # of the path's samples
        self.last: float | None = None
        # (time, sample, the path's SRTT after it) for plots, bounded (budget.py)
        self.series = Series(budget, two=True)

    def sample(self, r: float, ts: int, from_ts_echo: bool, held: bool = False) -> None:
        """Feed one RTT measurement r (seconds) taken at packet time ts (ns)."""
        if self.srtt_all is None:  # RFC 6298 2.2: first measurement
            self.srtt_all = r
            self.rttvar_all = r / 2
        else:  # RFC 6298 2.3: RTTVAR first, using the old SRTT
            rv: float = self.rttvar_all  # type: ignore[assignment]  # set with srtt_all
            self.rttvar_all = (1 - BETA) * rv + BETA * abs(self.srtt_all - r)
            self.srtt_all = (1 - ALPHA) * self.srtt_all + ALPHA * r
        self.rto = max(RTO_MIN, self.srtt_all + max(G, K * self.rttvar_all))
        if held:
            self.n_held += 1
        else:
            self.n_path += 1
            self.sum += r
            if self.srtt is None:
                self.srtt = r
                self.rttvar = r / 2
            else:
                pv: float = self.rttvar  # type: ignore[assignment]  # set with srtt
                self.rttvar = (1 - BETA) * pv + BETA * abs(self.srtt - r)
                self.srtt = (1 - ALPHA) * self.srtt + ALPHA * r
        self.n += 1
        if from_ts_echo:
            self.n_ts += 1
        else:
            self.n_seq += 1
        self.min = r if self.min is None or r < self.min else self.min
        self.max = r if self.max is None or r > self.max else self.max
        self.last = r
        # the SRTT is the sample itself until a path sample exists
        smooth = self.srtt if self.srtt is not None else r
        self.series.add(ts, int(r * 1e9), int(smooth * 1e9))

    @property
    def avg(self) -> float | None:
        return self.sum / self.n_path if self.n_path else None

    def as_dict(self) -> dict:
        return {"samples": self.n, "samples_ack": self.n_seq, "samples_timestamp": self.n_ts,
                "samples_delayed": self.n_held,
                "delayed_share": self.n_held / self.n if self.n else None,
                "min": self.min, "avg": self.avg, "max": self.max, "last": self.last,
                "srtt": self.srtt, "rttvar": self.rttvar, "srtt_all": self.srtt_all,
                "rto": self.rto}
