"""Retransmissions and reordering, read from first principles at the capture point.

A segment below the highest sequence seen from its sender (snd_nxt) is one of three things:

* a late original (reordering): the network delivered it after segments sent later. Proof by
  timestamps (RFC 7323): a sender's TSval never goes back, so a segment whose TSval is older
  than one already seen was sent before it. Without that proof, by timing: a segment filling a
  hole sooner after the receiver reported it than the capture point's round trip to the sender
  cannot be the repair, and an unreported hole filled sooner than any timer fires (two round
  trips: RFC 8985 7.2) cannot be a resend.
* a resend, by what made the sender send it again:
    fast  the receiver had reported the hole (duplicate ACKs, SACK: RFC 5681 3.2, RFC 6675,
          RFC 8985 6);
    tlp   a tail loss probe: the first timer-driven resend after progress, of the highest
          outstanding segment, on a SACK connection (RFC 8985 7.3; Linux probes only then);
    rto   the retransmission timer expired: the earliest unacknowledged segment resent
          (RFC 6298 5.4), and the ACK-clocked resends of the recovery that follows it.
* ambiguous: a hole filled when the capture point can tell neither (no timestamps, and a
  timing that allows both). Counted apart, never as loss.

A resend's verdict often comes later, from the receiver's ACKs:
    spurious  the original had arrived: a D-SACK for it (RFC 2883 4, RFC 3708), the first ACK
              covering it echoes an older TSval than the resend's (Eifel, RFC 3522), or the
              data was already acknowledged when the resend passed;
    lost      the resend filled a hole the capture point saw (the original never passed), the
              covering ACK echoes the resend's own TSval, or the receiver had reported the
              hole and no D-SACK followed;
    otherwise unconfirmed.
Pure: no I/O, no clocks; time comes only from packet timestamps.
"""

from __future__ import annotations

from typing import Final

from . import events as E
from .seqspace import seq_gt, seq_le, seq_lt

HOLES_MAX: Final = 32  # sequence holes remembered per direction (bounded memory)
RESENDS_MAX: Final = 64  # recent resends kept per direction, awaiting or revising a verdict
LATE_FILLS_MAX: Final = 8  # reported holes a late original filled, remembered per direction
TICKS_MIN: Final = 10  # timestamp ticks seen before the clock's pace is trusted
# a hole filled sooner than this share of the capture point's round trip to the sender cannot
# be the sender's reaction to anything the capture point saw
REACTION_SHARE: Final = 0.5

# the smallest minimum RTO of common stacks (Linux TCP_RTO_MIN; Windows 300 ms; RFC 6298 2.4: 1 s)
RTO_FLOOR_NS: Final = 200_000_000
# a probe timer never waits longer than two round trips and this (RFC 8985 7.2 adds the
# worst-case delayed ACK for a lone segment; Linux TCP_RTO_MIN, 200 ms; margin for timer ticks)
PTO_EXTRA_NS: Final = 250_000_000

PENDING: Final = 0
LOST: Final = 1
SPURIOUS: Final = 2


def ts_lt(a: int, b: int) -> bool:
    """TSval a older than b (RFC 7323 5.2: compared modulo 2**32, as sequence numbers)."""
    return seq_lt(a, b)


class Hole:
    """Sequence space [start, end) a sender must have sent (a later segment passed) that the
    capture point has not seen."""

    __slots__ = ("start", "end", "at", "tsval", "reported")

    def __init__(self, start: int, end: int, at: int, tsval: int) -> None:
        self.start = start
        self.end = end
        self.at = at  # when the segment that revealed it passed
        self.tsval = tsval  # that segment's TSval, -1 without timestamps
        self.reported = 0  # when the receiver first reported it missing (0: not yet)


class Resend:
    """One resent segment, kept while its verdict may still come or change."""

    __slots__ = ("start", "end", "at", "num", "tsval", "trigger", "verdict", "stall_kind",
                 "stall_ns", "exchange")

    def __init__(self, start: int, end: int, at: int, num: int, tsval: int,
                 trigger: int) -> None:
        self.start = start
        self.end = end
        self.at = at
        self.num = num
        self.tsval = tsval  # -1 without timestamps
        self.trigger = trigger  # E.RTO_RETRANSMISSION | E.TLP_RESEND | E.FAST_RESEND
        self.verdict = PENDING
        self.stall_kind = ""  # the wait it was charged with (exchange.py's stall kinds)
        self.stall_ns = 0
        self.exchange: object = None  # the exchange charged, to take the charge back


def add_hole(holes: list[Hole], start: int, end: int, at: int, tsval: int) -> None:
    holes.append(Hole(start, end, at, tsval))
    if len(holes) > HOLES_MAX:
        del holes[0]


def take_from_holes(holes: list[Hole], start: int, end: int) -> tuple[Hole | None, bool]:
    """Remove [start, end) from the holes (those bytes have now passed the capture point).
    Returns the first hole it touched (None: every byte was seen before, a copy) and whether
    it lay wholly inside that hole (no byte of it seen before)."""
    first: Hole | None = None
    inside = False
    i = 0
    while i < len(holes):
        h = holes[i]
        if not (seq_lt(h.start, end) and seq_lt(start, h.end)):
            i += 1
            continue
        if first is None:
            first = h
            inside = seq_le(h.start, start) and seq_le(end, h.end)
        if seq_lt(h.start, start) and seq_lt(end, h.end):  # the middle: two holes remain
            rest = Hole(end, h.end, h.at, h.tsval)
            rest.reported = h.reported
            h.end = start
            holes.insert(i + 1, rest)
            break
        if seq_lt(h.start, start):
            h.end = start
        elif seq_lt(end, h.end):
            h.start = end
        else:
            del holes[i]
            continue
        i += 1
    return first, inside


def note_report(holes: list[Hole], ack: int, dupack: bool, sack: tuple, ts: int) -> None:
    """The receiver said what it misses: a duplicate ACK at a hole's start, or SACK blocks
    above a hole it has not acknowledged (RFC 5681 3.2, RFC 2018). Holes the cumulative ACK
    passed are gone: the receiver got those bytes by a path the capture did not see."""
    k = 0
    while k < len(holes):
        h = holes[k]
        if seq_le(h.end, ack):
            del holes[k]
            continue
        if not h.reported and seq_le(ack, h.start):
            if (dupack and ack == h.start) or any(seq_gt(left, h.start) for left, _r in sack):
                h.reported = ts
        k += 1


def dsack_block(sack: tuple, ack: int) -> tuple[int, int] | None:
    """RFC 2883 4: the first SACK block reports a duplicate segment when it lies at or below
    the cumulative ACK, or inside the second block."""
    if not sack:
        return None
    left, right = sack[0]
    if seq_le(right, ack):
        return (left, right)
    if len(sack) > 1:
        l2, r2 = sack[1]
        if seq_le(l2, left) and seq_le(right, r2):
            return (left, right)
    return None


def is_probe(silence: int, timestamps: bool, path_rtt: int) -> bool:
    """May a first timer-driven resend of the highest segment (the shape of a tail loss probe,
    RFC 8985 7.3) be a probe rather than an RTO? Not if it waited longer than any PTO
    (2 SRTT + PTO_EXTRA_NS). A lone outstanding segment is probed when its RTO would fire
    (Linux: PTO = min(2 SRTT + 200 ms, RTO)): there only a stack that probes tells them apart,
    and those (Linux since 3.10) send timestamps; without timestamps, a resend sooner than any
    common minimum RTO is a probe, a later one an RTO."""
    if path_rtt > 0 and silence > 2 * path_rtt + PTO_EXTRA_NS:
        return False
    return timestamps or silence < RTO_FLOOR_NS


def ts_tick(first: int, first_at: int, last: int, last_at: int) -> int:
    """The length of one tick of a sender's timestamp clock, ns (0: not known yet), from the
    TSvals it sent and when they passed (RFC 7323 5.4: 1 ms to 1 s per tick; Linux 1 ms).
    Needs TICKS_MIN ticks seen, for a steady estimate."""
    ticks = (last - first) & 0xFFFFFFFF
    if first < 0 or ticks < TICKS_MIN or ticks >= 0x80000000 or last_at <= first_at:
        return 0
    return (last_at - first_at) // ticks


def hole_fill_order(h: Hole, tsval: int, ts: int, sender_rtt: int, path_rtt: int,
                    tick: int) -> int:
    """A segment filling hole h: E.LATE_ORIGINAL, 0 (a resend) or E.AMBIGUOUS.
    sender_rtt: the capture point's round trip to the sender; path_rtt: the whole round trip
    (sender to receiver and back); tick: the sender's timestamp clock tick; ns, 0 unknown."""
    if tsval >= 0 and h.tsval >= 0:
        if tsval != h.tsval:
            # sent before the segment that revealed the hole: an original; after it: a resend
            return E.LATE_ORIGINAL if ts_lt(tsval, h.tsval) else 0
        if tick and path_rtt and tick < path_rtt:
            # sent within the tick of that segment, and a repair needs a whole round trip
            return E.LATE_ORIGINAL
    if h.reported:
        # a repair reaches the capture point a round trip to the sender after the report
        if sender_rtt > 0 and ts - h.reported < REACTION_SHARE * sender_rtt:
            return E.LATE_ORIGINAL
        return 0  # the receiver reported the hole, and it was filled in time to be the repair
    # unreported: only a timer could have resent it, and no timer fires sooner than two
    # round trips after the sender's last segment (RFC 8985 7.2 PTO; RFC 6298 RTO, longer)
    if path_rtt > 0 and ts - h.at < REACTION_SHARE * 2 * path_rtt:
        return E.LATE_ORIGINAL
    return E.AMBIGUOUS
