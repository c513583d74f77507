"""What one direction of a connection (one sender, and the receiver's window towards it)
has done: the sequence state Wireshark's analysis keeps, counters, windows and in-flight data.

Names follow RFC 9293 where they apply: snd_nxt (highest sequence sent + 1), snd_una (highest
acknowledged by the peer).
"""

from __future__ import annotations

from typing import Final

from .budget import SHARED, Budget, Series
from .retrans import Hole, Resend
from .rtt import RttEstimator

UNACKED_MAX: Final = 1000  # segments remembered for RTT sampling (as Wireshark's analysis)
TSVAL_MAX: Final = 256  # TSval first-sent times remembered for RFC 7323 RTT samples
DUP_IDS: Final = 16  # recent (sequence, IPv4 id) pairs remembered to know a duplicated datagram

# Wireshark's tcp.analysis counts (its rules: events.py), for comparison with tshark
TSHARK_COUNTERS: Final = (
    "retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order",
    "lost_segment", "ack_lost_segment", "duplicate_ack", "zero_window", "zero_window_probe",
    "zero_window_probe_ack", "keep_alive", "keep_alive_ack", "window_update", "window_full")
# tcpwatch's own classification (retrans.py): resends by trigger and by verdict, reordering
COUNTERS: Final = TSHARK_COUNTERS + (
    "resent", "resent_rto", "resent_tlp", "resent_fast", "resent_lost", "resent_spurious",
    "spurious_rto", "spurious_tlp", "spurious_fast", "spurious_dsack", "spurious_eifel",
    "spurious_acked", "late_original", "ambiguous", "window_probe", "dsack", "duplicate_frame")


class Counts:
    """Analysis event counters by name (COUNTERS): `counts["retransmission"] += 1`. Slots,
    not a dict: ~30 counters in ~300 bytes per direction instead of ~1.5 KB."""

    __slots__ = COUNTERS

    def __init__(self) -> None:  # spelled out: a compiled class (setup.py) has fixed fields
        self.retransmission = 0
        self.fast_retransmission = 0
        self.spurious_retransmission = 0
        self.out_of_order = 0
        self.lost_segment = 0
        self.ack_lost_segment = 0
        self.duplicate_ack = 0
        self.zero_window = 0
        self.zero_window_probe = 0
        self.zero_window_probe_ack = 0
        self.keep_alive = 0
        self.keep_alive_ack = 0
        self.window_update = 0
        self.window_full = 0
        self.resent = 0  # segments sent again (copies, and repairs of holes)
        self.resent_rto = 0  # ... because the retransmission timer expired (RFC 6298 5)
        self.resent_tlp = 0  # ... as a tail loss probe (RFC 8985 7)
        self.resent_fast = 0  # ... because the receiver reported the hole (RFC 5681, 6675)
        self.resent_lost = 0  # verdict: the original was lost
        self.resent_spurious = 0  # verdict: the original had arrived (RFC 3708, RFC 3522)
        self.spurious_rto = 0
        self.spurious_tlp = 0
        self.spurious_fast = 0
        self.spurious_dsack = 0  # ... known by a D-SACK (RFC 2883)
        self.spurious_eifel = 0  # ... known by the echoed timestamp (RFC 3522)
        self.spurious_acked = 0  # ... the data was already acknowledged when resent
        self.late_original = 0  # reordering: originals delivered after later segments
        self.ambiguous = 0  # below snd_nxt, late original or resend: the capture cannot tell
        self.window_probe = 0  # zero-window probes, either form (RFC 9293 3.8.6.1)
        self.dsack = 0  # D-SACK blocks this side sent (RFC 2883)
        self.duplicate_frame = 0  # datagrams seen twice (network or capture duplicates)

    def __getitem__(self, name: str) -> int:
        return getattr(self, name)

    def __setitem__(self, name: str, value: int) -> None:
        setattr(self, name, value)

    def items(self) -> list[tuple[str, int]]:
        return list(zip(COUNTERS, map(self.__getattribute__, COUNTERS)))

    def tshark(self) -> dict[str, int]:
        """The counts named and defined as Wireshark's tcp.analysis fields."""
        return {n: getattr(self, n) for n in TSHARK_COUNTERS}


class Direction:
    __slots__ = (
        # Wireshark-compatible sequence analysis state (raw 32-bit numbers)
        "base_seq", "nextseq", "nextseqtime", "nextseqframe", "maxseqtobeacked", "lastack",
        "lastacktime", "window", "dupacknum", "lastnondupack", "lastflags", "win_scale",
        "last_sack", "unseen_reported", "zwp_seq",
        # tcpwatch's retransmission classification (retrans.py)
        "holes", "late_fills", "resends", "uncovered", "tsval_max", "tsval_max_at",
        "tsval_first", "tsval_first_at", "timer_resends",
        "rto_point", "stall_rto", "stall_tlp", "stall_fast", "late_max_ns", "sent_ids",
        "sent_ids_at", "last_seq", "last_end", "last_tsval", "last_at",
        # traffic
        "packets", "bytes", "payload", "unique_payload", "first_ts", "last_ts",
        # counters of analysis events, by name in COUNTERS
        "counts",
        # RTT of data sent in this direction
        "rtt", "unacked", "tsvals",
        # receive window advertised by this side, and bytes in flight sent by this side
        "wnd_last", "wnd_min", "wnd_max", "zw_start", "zw_events", "zw_total_ns",
        "zw_longest_ns", "snd_una", "inflight_last", "inflight_max", "series", "flight",
        "first_data_seq",
    )

    def __init__(self, budget: Budget = SHARED) -> None:
        self.base_seq: int | None = None  # ISN (from the SYN) or seq-1 of the first segment
        self.nextseq: int | None = None  # snd_nxt as seen: highest seq + len (+1 SYN/FIN)
        self.nextseqtime = 0
        self.nextseqframe = 0
        self.maxseqtobeacked: int | None = None  # highest contiguous sequence seen
        self.lastack: int | None = None  # last ACK number this side sent
        self.lastacktime = 0
        self.window: int | None = None  # last raw window field this side sent
        self.dupacknum = 0
        self.lastnondupack = 0
        self.lastflags = 0  # analysis events of the previous segment from this side
        # window scale shift of this side: None unknown (no SYN seen), 0 no scaling, n shift
        self.win_scale: int | None = None
        self.zwp_seq: int | None = None  # sequence of the last zero-window probe byte
        self.unseen_reported = False  # an ACK of data we never saw was flagged already
        self.last_sack: tuple = ()  # SACK blocks in this side's last ACK (RFC 2018)
        self.holes: list[Hole] = []  # sequence ranges sent but not seen (retrans.py)
        # holes the receiver reported and a late original filled: (start, end); a resend of
        # them answers the report (the sender could not know the original was coming)
        self.late_fills: list[tuple[int, int]] = []
        self.resends: list[Resend] = []  # recent resends, for their verdicts (retrans.py)
        self.uncovered: list[Resend] = []  # ... of them, those no cumulative ACK covered yet
        self.tsval_max = -1  # newest TSval this side sent (RFC 7323), -1 none yet
        self.tsval_max_at = 0  # ... when it passed
        self.tsval_first = -1  # the first TSval seen, and when: with the newest, the pace of
        self.tsval_first_at = 0  # the sender's timestamp clock (retrans.ts_tick)
        self.timer_resends = 0  # timer-driven resends since the last progress
        self.rto_point: int | None = None  # snd_nxt when the RTO struck: recovery until ACKed
        self.stall_rto = 0  # ns waited for the retransmission timer, real losses only
        self.stall_tlp = 0  # ns waited for the probe timer, real losses only
        self.stall_fast = 0  # ns of fast recovery (one SRTT per resend), real losses only
        self.late_max_ns = 0  # how late the latest-arriving late original was
        # the last DUP_IDS data segments as seq << 16 | IPv4 id: a datagram seen twice
        self.sent_ids: list[int] = []
        self.sent_ids_at = 0
        # this side's last segment that took sequence space: a copy of it right behind it,
        # the peer silent in between, is the same datagram seen twice
        self.last_seq = -1
        self.last_end = -1
        self.last_tsval = -1
        self.last_at = 0
        self.packets = 0
        self.bytes = 0  # frame bytes (as tshark's conv,tcp)
        self.payload = 0  # TCP payload bytes, retransmissions included
        self.unique_payload = 0  # payload bytes that advanced snd_nxt (goodput numerator)
        self.first_ts: int | None = None
        self.last_ts = 0
        self.counts = Counts()
        self.rtt = RttEstimator(budget)
        # lists, not deques, throughout: a short connection costs a few kilobytes
        self.unacked: list[list] = []  # [seq, nextseq, ts, retransmitted], oldest first
        self.tsvals: dict[int, int] = {}  # TSval -> time first sent
        self.wnd_last: int | None = None  # scaled advertised window, bytes
        self.wnd_min: int | None = None
        self.wnd_max: int | None = None
        self.zw_start: int | None = None  # when the current zero-window episode began
        self.zw_events = 0
        self.zw_total_ns = 0
        self.zw_longest_ns = 0
        self.snd_una: int | None = None  # highest sequence the peer acknowledged
        self.inflight_last = 0
        self.inflight_max = 0
        # (time, advertised window of this side) at every change
        self.series = Series(budget)  # (bounded: budget.py)
        # (time, bytes in flight sent by this side) at every data segment
        self.flight = Series(budget)
        self.first_data_seq: int | None = None

    def scaled(self, raw: int, syn: bool) -> int:
        """Advertised window in bytes (RFC 7323 2.3: never scaled in a SYN)."""
        if syn or not self.win_scale:
            return raw
        return raw << self.win_scale

    def zero_window_time(self, now: int) -> int:
        """Total ns spent advertising a zero window, an open episode counted up to `now`."""
        open_ns = max(0, now - self.zw_start) if self.zw_start is not None else 0
        return self.zw_total_ns + open_ns
