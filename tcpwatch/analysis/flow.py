"""One TCP connection: its identity, and the trackers fed by each of its segments.

Sequence analysis follows Wireshark's tcp.analysis rules (so that its counts can be compared
frame by frame), then refines them with SACK and timing: a segment below snd_nxt that fills a
hole the receiver reported (duplicate ACKs or SACK blocks, RFC 2018 / RFC 6675) is a
retransmission even when it arrives soon after the highest segment, where Wireshark says
"out-of-order"; a retransmission with no such report is RTO-driven (RFC 6298 5).
Pure: no I/O, no clocks; time comes only from packet timestamps.
"""

from __future__ import annotations

from typing import Final

from ..capture.record import ACK, FIN, RST, SYN, PacketRecord, fmt_addr
from . import events as E
from .direction import SERIES_MAX, TSVAL_MAX, UNACKED_MAX, Direction
from .exchange import Exchanges
from .handshake import Handshake
from .lifecycle import Lifecycle
from .ring import ring_add
from .seqspace import seq_diff, seq_gt, seq_le, seq_lt

M32: Final = 0xFFFFFFFF
SFR: Final = SYN | FIN | RST
# Wireshark: fast retransmission within 20 ms of dup ACKs
FAST_RETRANS_WINDOW_NS: Final = 20_000_000
OOO_DEFAULT_NS: Final = 3_000_000  # Wireshark: reordering threshold when the iRTT is unknown
EVENTS_MAX: Final = 512  # analysis events kept per flow for the timeline (bounded memory)

_COUNTED: Final = [(bit, E.NAMES[bit]) for bit in (
    E.RETRANSMISSION, E.FAST_RETRANSMISSION, E.SPURIOUS_RETRANSMISSION, E.RTO_RETRANSMISSION,
    E.SACK_RECOVERY, E.OUT_OF_ORDER, E.LOST_SEGMENT, E.ACKED_UNSEEN, E.DUPLICATE_ACK,
    E.ZERO_WINDOW, E.ZERO_WINDOW_PROBE, E.ZERO_WINDOW_PROBE_ACK, E.KEEP_ALIVE, E.KEEP_ALIVE_ACK,
    E.WINDOW_UPDATE, E.WINDOW_FULL)]


def _sack_hole(blocks: tuple, lastack: int | None, seq: int) -> bool:
    """The receiver's SACK blocks say it holds data above `seq` while still missing `seq`."""
    if not blocks or lastack is None or not seq_le(lastack, seq):
        return False
    return any(seq_gt(left, seq) for left, _right in blocks)


class Flow:
    """A connection. Direction 0 is client->server, 1 is server->client."""

    __slots__ = ("id", "ipv", "key", "client_side", "client", "server", "roles_from",
                 "first_ts", "last_ts",
                 "first_num", "last_num", "dirs", "handshake", "life", "events", "reused",
                 "exchanges")

    def __init__(self, fid: int, r: PacketRecord, src_is_client: bool, roles_from: str,
                 reused: bool = False) -> None:
        self.id = fid
        self.ipv = r.ipv
        a, b = (r.src, r.sport), (r.dst, r.dport)
        self.client, self.server = (a, b) if src_is_client else (b, a)
        self.key = r.key  # the flow table's lookup key (PacketRecord.key)
        # which endpoint of the key is the client (PacketRecord.side); a connection from an
        # endpoint to itself has one side, and everything on it goes client -> server
        self.client_side = r.side if src_is_client or a == b else 1 - r.side
        self.roles_from = roles_from  # "syn", "syn-ack", or the heuristic used (table.py)
        self.first_ts = self.last_ts = r.ts
        self.first_num = self.last_num = r.num
        self.dirs = (Direction(), Direction())
        self.handshake = Handshake()
        self.life = Lifecycle(guessed_roles=roles_from not in ("syn", "syn-ack"))
        self.events: list[tuple[int, int, int, int]] = []  # a ring (direction.ring_add)
        self.reused = reused  # this flow reuses a 4-tuple seen earlier (port reuse)
        self.exchanges = Exchanges()  # request/response turns (exchange.py)

    # ------------------------------------------------------------------------------------
    def direction_of(self, r: PacketRecord) -> int:
        return 0 if r.side == self.client_side else 1

    @property
    def closed(self) -> bool:
        return self.life.closed

    def label(self) -> str:
        c, s = self.client, self.server
        fmt = (lambda a, p: f"[{fmt_addr(a)}]:{p}") if self.ipv == 6 else (
            lambda a, p: f"{fmt_addr(a)}:{p}")
        return f"{fmt(*c)} -> {fmt(*s)}"

    # ------------------------------------------------------------------------------------
    def feed(self, r: PacketRecord, d: int) -> int:
        """Account one segment sent in direction d; returns its analysis event mask."""
        fwd = self.dirs[d]
        rev = self.dirs[1 - d]
        ts = r.ts
        flags = r.flags
        if ts > self.last_ts:  # a timestamp going backwards never shortens the connection
            self.last_ts = ts
        self.last_num = r.num
        fwd.packets += 1
        fwd.bytes += r.flen
        before = fwd.unique_payload
        fwd.payload += r.plen
        if fwd.first_ts is None:
            fwd.first_ts = ts
        if ts > fwd.last_ts:
            fwd.last_ts = ts
        if flags & SYN:
            self.handshake.on_packet(r, d == 0)
            self._window_scale(r, d)
        elif flags & (ACK | RST):
            self.handshake.on_packet(r, d == 0)
        m = self._sequence(r, fwd, rev, ts)
        if flags & ACK:
            self._acked(r, fwd, rev, ts)
        self._windows(r, fwd, ts)
        self.life.on_packet(flags, r.plen, d, ts)
        if m:
            self._count(m, fwd, d, ts, r.num)
        # the flow's event timeline; window updates and window-full marks are too frequent
        # for a bounded timeline (they stay counted)
        self.exchanges.on_segment(r, d, fwd.unique_payload - before, m, self)
        if m & ~(E.WINDOW_UPDATE | E.WINDOW_FULL) or flags & SFR:
            if flags & SFR:
                m_ev = m | (E.SYN_SEEN if flags & SYN else 0) | (
                    E.FIN_SEEN if flags & FIN else 0) | (E.RST_SEEN if flags & RST else 0)
            else:
                m_ev = m
            ring_add(self.events, (ts, r.num, d, m_ev), EVENTS_MAX)
        return m

    # ------------------------------------------------------------------------------------
    def _window_scale(self, r: PacketRecord, d: int) -> None:
        """RFC 7323 2.2: scaling is in effect only if both SYN and SYN-ACK carry the option."""
        hs = self.handshake
        c, s = self.dirs
        syn_seen, synack_seen = hs.syn_count > 0, hs.synack_count > 0
        cw = hs.client.wscale if syn_seen else None
        sw = hs.server.wscale if synack_seen else None
        if syn_seen and synack_seen:
            if cw is not None and sw is not None:
                c.win_scale, s.win_scale = cw, sw
            else:
                c.win_scale = s.win_scale = 0
        elif syn_seen:
            if cw is None:
                c.win_scale = s.win_scale = 0
            else:  # the client's shift holds only if the server agrees: not known yet
                c.win_scale = cw
        elif synack_seen:
            if sw is None:
                c.win_scale = s.win_scale = 0
            else:  # a SYN-ACK carries the option only if the SYN did (RFC 7323 2.2)
                s.win_scale = sw

    def _sequence(self, r: PacketRecord, fwd: Direction, rev: Direction, ts: int) -> int:
        """Wireshark 4.0's sequence analysis (tcp_analyze_sequence_number, with its default
        preferences), then tcpwatch's refinements (_why_resent)."""
        seq, ack, seglen, flags, window = r.seq, r.ack, r.plen, r.flags, r.win
        m = 0
        nxt = fwd.nextseq
        fwd.unseen_reported = False
        if fwd.base_seq is None:
            fwd.base_seq = seq if flags & SYN else (seq - 1) & M32
        if seglen == 1 and nxt is not None and seq == nxt and rev.window == 0:
            m = E.ZERO_WINDOW_PROBE
            fwd.zwp_seq = seq
        else:
            plain = not flags & SFR
            if window == 0 and plain:
                m |= E.ZERO_WINDOW
            if nxt is not None and seq_gt(seq, nxt) and not flags & RST:
                m |= E.LOST_SEGMENT
            if seglen <= 1 and nxt is not None and seq == (nxt - 1) & M32 and plain:
                m |= E.KEEP_ALIVE
            same = seglen == 0 and plain and seq == nxt and ack == fwd.lastack
            if same and window and window != fwd.window:
                m |= E.WINDOW_UPDATE
            if (seglen and plain and rev.win_scale is not None and rev.lastack is not None
                    and rev.window is not None
                    and (seq + seglen) & M32 == (rev.lastack + (rev.window << rev.win_scale))
                    & M32):
                m |= E.WINDOW_FULL
            if same and window and window == fwd.window and rev.lastflags & E.KEEP_ALIVE:
                m |= E.KEEP_ALIVE_ACK
            elif (seglen == 0 and plain and window == 0 and window == fwd.window
                  and seq == nxt and ack == fwd.lastack
                  and rev.lastflags & E.ZERO_WINDOW_PROBE):
                m |= E.ZERO_WINDOW_PROBE_ACK
            elif same and window and window == fwd.window:
                # -1 marks "ACKed unseen already reported" (see below): restart the count
                fwd.dupacknum = 1 if fwd.dupacknum == -1 else fwd.dupacknum + 1
                m |= E.DUPLICATE_ACK
        if ack != fwd.lastack:  # Wireshark resets the dup-ACK count only when the ACK moves
            fwd.lastnondupack = r.num
            fwd.dupacknum = 0
        if (flags & ACK and rev.maxseqtobeacked is not None
                and seq_gt(ack, rev.maxseqtobeacked)):
            # flagged once until the peer sends again (as Wireshark 4.0 counts)
            if not rev.unseen_reported:
                m |= E.ACKED_UNSEEN
                rev.unseen_reported = True
            rev.maxseqtobeacked = rev.nextseq
        syn_fin = 1 if flags & (SYN | FIN) else 0
        if (seglen or syn_fin) and not m & E.KEEP_ALIVE:
            back = nxt is not None and seq_lt(seq, nxt)
            if seglen > 1 and nxt is not None and (nxt - 1) & M32 == seq:
                back = False  # new data right after a zero-window probe byte
            if seglen and rev.lastack and seq_le((seq + seglen) & M32, rev.lastack):
                m |= E.SPURIOUS_RETRANSMISSION | E.RETRANSMISSION
            elif (back and rev.dupacknum >= 2 and rev.lastack == seq
                    and 0 <= ts - rev.lastacktime < FAST_RETRANS_WINDOW_NS):
                m |= E.FAST_RETRANSMISSION | E.RETRANSMISSION
            elif back:
                irtt = self.handshake.irtt_ns
                thres = irtt if irtt else OOO_DEFAULT_NS
                # a timestamp going backwards is never "soon after" (Wireshark's unsigned test)
                if (0 <= ts - fwd.nextseqtime < thres
                        and nxt != (seq + seglen + syn_fin) & M32):
                    m |= E.OUT_OF_ORDER
                else:
                    m |= E.RETRANSMISSION
            if m & (E.RETRANSMISSION | E.OUT_OF_ORDER) and not m & (
                    E.FAST_RETRANSMISSION | E.SPURIOUS_RETRANSMISSION):
                m |= self._why_resent(seq, fwd, rev, ts, m)
            if back:
                self._mark_resent(fwd, seq, (seq + seglen + syn_fin) & M32)
        nextseq = (seq + seglen + syn_fin) & M32
        if nxt is None or seq_gt(nextseq, nxt):
            if not m & E.ZERO_WINDOW_PROBE:
                if seglen:
                    fwd.unique_payload += seglen if nxt is None else min(
                        seglen, seq_diff(nextseq, nxt))
                    if fwd.first_data_seq is None:
                        fwd.first_data_seq = seq
                fwd.nextseq = nextseq
                fwd.nextseqframe = r.num
                fwd.nextseqtime = ts
                if (seglen or syn_fin) and len(fwd.unacked) < UNACKED_MAX:
                    # a byte already sent as a zero-window probe is a resend: Karn's rule
                    probed = fwd.zwp_seq is not None and seq_le(seq, fwd.zwp_seq) \
                        and seq_lt(fwd.zwp_seq, nextseq)
                    fwd.unacked.append([seq, nextseq, ts, probed])
                    fwd.zwp_seq = None
        if r.tsval is not None and (seglen or syn_fin) and len(fwd.tsvals) < TSVAL_MAX:
            # RFC 7323 4.1: the echoed TSval names the copy, retransmissions included
            fwd.tsvals.setdefault(r.tsval, ts)
        if fwd.maxseqtobeacked is None or seq == fwd.maxseqtobeacked:
            if not m & E.ZERO_WINDOW_PROBE:
                fwd.maxseqtobeacked = fwd.nextseq
        fwd.window = window
        fwd.lastack = ack
        fwd.lastacktime = ts
        fwd.lastflags = m
        return m

    @staticmethod
    def _why_resent(seq: int, fwd: Direction, rev: Direction, ts: int, m: int) -> int:
        """Tell loss recovery driven by the receiver's reports from a timer expiry."""
        reported = (rev.lastack == seq and rev.dupacknum >= 1) or _sack_hole(
            rev.last_sack, rev.lastack, seq)
        if m & E.OUT_OF_ORDER:
            return E.SACK_RECOVERY if reported else 0
        rto_ns = int(fwd.rtt.rto * 1e9)  # the sender's own timer (RFC 6298)
        if reported and ts - rev.lastacktime < rto_ns:
            return E.SACK_RECOVERY
        return E.RTO_RETRANSMISSION

    @staticmethod
    def _mark_resent(fwd: Direction, start: int, end: int) -> None:
        """Karn's rule: segments overlapping a retransmission give no RTT sample."""
        for seg in fwd.unacked:
            if seq_lt(seg[0], end) and seq_lt(start, seg[1]):
                seg[3] = True

    def _acked(self, r: PacketRecord, fwd: Direction, rev: Direction, ts: int) -> None:
        """The ACK in this segment (sent by fwd) covers data sent by rev: RTT samples and
        snd_una of rev."""
        ack = r.ack
        fwd.last_sack = r.sack
        una = rev.snd_una
        advanced = una is None or seq_gt(ack, una)
        if not advanced:
            return
        if rev.nextseq is not None and seq_gt(ack, rev.nextseq):
            # acknowledges data never seen: the capture missed it; do not move snd_una past
            # what we know was sent, so in-flight stays meaningful
            rev.snd_una = rev.nextseq
        else:
            rev.snd_una = ack
        sample = None
        from_ts = False
        if r.tsecr is not None and rev.tsvals:
            sent = rev.tsvals.get(r.tsecr)
            if sent is not None:
                sample, from_ts = ts - sent, True
                while rev.tsvals:  # drop this TSval and every older one
                    k = next(iter(rev.tsvals))
                    del rev.tsvals[k]
                    if k == r.tsecr:
                        break
        q = rev.unacked
        k, n = 0, len(q)
        while k < n and seq_le(q[k][1], ack):
            seg = q[k]
            k += 1
            if sample is None and seg[1] == ack and not seg[3]:
                sample = ts - seg[2]
        if k:
            del q[:k]  # a list, not a deque: ~60 bytes, not ~600, for a short connection
        if q and seq_lt(q[0][0], ack):
            q[0][0] = ack  # partially acknowledged
        if sample is not None and sample >= 0:
            rev.rtt.sample(sample / 1e9, ts, from_ts)

    def _windows(self, r: PacketRecord, fwd: Direction, ts: int) -> None:
        flags = r.flags
        syn = bool(flags & SYN)
        if not flags & RST:
            w = fwd.scaled(r.win, syn)
            if w != fwd.wnd_last:
                fwd.wnd_last = w
                if fwd.wnd_min is None or w < fwd.wnd_min:
                    fwd.wnd_min = w
                if fwd.wnd_max is None or w > fwd.wnd_max:
                    fwd.wnd_max = w
                ring_add(fwd.series, (ts, w), SERIES_MAX)
            if r.win == 0 and not flags & (SYN | FIN):
                if fwd.zw_start is None:  # a zero-window episode begins (RFC 9293 3.8.6.1)
                    fwd.zw_start = ts
                    fwd.zw_events += 1
            elif r.win and fwd.zw_start is not None:
                dur = max(0, ts - fwd.zw_start)  # >= 0 even if the clock stepped back
                fwd.zw_total_ns += dur
                fwd.zw_longest_ns = max(fwd.zw_longest_ns, dur)
                fwd.zw_start = None
        if r.plen and fwd.snd_una is not None and fwd.nextseq is not None:
            # bytes in flight = snd_nxt - snd_una (RFC 5681 2: FlightSize)
            inflight = seq_diff(fwd.nextseq, fwd.snd_una)
            if inflight >= 0:
                fwd.inflight_last = inflight
                ring_add(fwd.flight, (ts, inflight), SERIES_MAX)
                if inflight > fwd.inflight_max:
                    fwd.inflight_max = inflight

    def _count(self, m: int, fwd: Direction, d: int, ts: int, num: int) -> None:
        counts = fwd.counts
        for bit, name in _COUNTED:
            if m & bit:
                counts[name] += 1
        if m & E.OUT_OF_ORDER and m & E.SACK_RECOVERY:
            counts["ooo_resent"] += 1  # tshark: out-of-order; tcpwatch: a retransmission
        if m & (E.RETRANSMISSION | E.SACK_RECOVERY):
            self.life.mark("T", d)
        if m & E.LOST_SEGMENT:
            self.life.mark("G", d)
        if m & E.ZERO_WINDOW:
            self.life.mark("W", d)


