"""Round-trip time: samples and the RFC 6298 estimator, per direction of data.

A sample is measured at the capture point: from a data segment to the ACK that covers it.
Karn's rule (RFC 6298 3): a segment that was retransmitted gives no sample, because the ACK
cannot say which copy it answers. With TCP timestamps (RFC 7323 4.1 RTTM) the echoed TSval
names the copy, so those samples survive retransmission.
"""

from __future__ import annotations

from typing import Final

from .ring import ring_add

# RFC 6298 2: alpha = 1/8, beta = 1/4, K = 4; clock granularity G taken as 1 ms (Linux jiffy
# granularity is 1-4 ms); RTO floor of 1 s (RFC 6298 2.4); initial RTO 1 s (2.1).
ALPHA: Final = 0.125
BETA: Final = 0.25
K: Final = 4
G: Final = 0.001
RTO_MIN: Final = 1.0
RTO_INITIAL: Final = 1.0
SERIES_MAX: Final = 1024  # RTT samples kept per direction for plots (bounded memory per flow)


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "rto", "n", "n_seq", "n_ts", "min", "max", "sum", "last",
                 "series")

    def __init__(self) -> None:
        self.srtt: float | None = None  # smoothed RTT, seconds (RFC 6298 2.2/2.3)
        self.rttvar: float | None = None  # RTT variation, seconds
        self.rto = RTO_INITIAL  # retransmission timeout, seconds (RFC 6298 2)
        self.n = 0
        self.n_seq = 0  # samples from data->ACK (Karn)
        self.n_ts = 0  # samples from timestamp echoes (RFC 7323)
        self.min: float | None = None
        self.max: float | None = None
        self.sum = 0.0
        self.last: float | None = None
        self.series: list[tuple[int, float, float]] = []  # a ring (direction.ring_add)

    def sample(self, r: float, ts: int, from_ts_echo: bool) -> None:
        """Feed one RTT measurement r (seconds) taken at packet time ts (ns)."""
        if self.srtt is None:  # RFC 6298 2.2: first measurement
            self.srtt = r
            self.rttvar = r / 2
        else:  # RFC 6298 2.3: RTTVAR first, using the old SRTT
            rttvar: float = self.rttvar  # type: ignore[assignment]  # set with srtt
            self.rttvar = (1 - BETA) * rttvar + BETA * abs(self.srtt - r)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * r
        self.rto = max(RTO_MIN, self.srtt + max(G, K * self.rttvar))
        self.n += 1
        if from_ts_echo:
            self.n_ts += 1
        else:
            self.n_seq += 1
        self.min = r if self.min is None or r < self.min else self.min
        self.max = r if self.max is None or r > self.max else self.max
        self.sum += r
        self.last = r
        ring_add(self.series, (ts, r, self.srtt), SERIES_MAX)  # (time, sample, SRTT after it)

    @property
    def avg(self) -> float | None:
        return self.sum / self.n if self.n else None

    def as_dict(self) -> dict:
        return {"samples": self.n, "samples_ack": self.n_seq, "samples_timestamp": self.n_ts,
                "min": self.min, "avg": self.avg, "max": self.max, "last": self.last,
                "srtt": self.srtt, "rttvar": self.rttvar, "rto": self.rto}
