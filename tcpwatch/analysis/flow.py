"""One TCP connection: its identity, and the trackers fed by each of its segments.

Two readings of every segment. Wireshark's tcp.analysis rules, exactly (so that its flags can
be compared frame by frame: events.py's first group); and tcpwatch's own classification of
what was resent, why, and whether it was needed, from the RFCs (retrans.py), which every
counter, the timeline and the diagnosis use. Where the two differ, tests name the case.
Pure: no I/O, no clocks; time comes only from packet timestamps.
"""

from __future__ import annotations

from typing import Final

from ..capture.record import ACK, FIN, RST, SYN, PacketRecord, fmt_addr
from . import events as E
from .budget import SHARED, Budget, EventLog
from .direction import DUP_IDS, TSVAL_MAX, UNACKED_MAX, Direction
from .exchange import Exchange, Exchanges
from .handshake import Handshake
from .lifecycle import Lifecycle
from .retrans import (
    LATE_FILLS_MAX,
    LOST,
    PENDING,
    RESENDS_MAX,
    SPURIOUS,
    Resend,
    add_hole,
    dsack_block,
    hole_fill_order,
    is_probe,
    note_report,
    take_from_holes,
    ts_lt,
    ts_tick,
)
from .rtt import HELD_MIN_NS
from .seqspace import seq_diff, seq_gt, seq_le, seq_lt

M32: Final = 0xFFFFFFFF
SFR: Final = SYN | FIN | RST
# a copy of the previous segment this soon, nothing from the peer between, is a duplicated
# datagram: no timer fires so soon (Linux's shortest, the probe timer, is 2 ms and more)
DUP_WINDOW_NS: Final = 1_000_000
# Wireshark: fast retransmission within 20 ms of dup ACKs
FAST_RETRANS_WINDOW_NS: Final = 20_000_000
OOO_DEFAULT_NS: Final = 3_000_000  # Wireshark: reordering threshold when the iRTT is unknown

# Wireshark's flags, counted under its field names; tcpwatch's under its own (direction.py)
_COUNTED: Final = [(bit, E.NAMES[bit]) for bit in (
    E.RETRANSMISSION, E.FAST_RETRANSMISSION, E.SPURIOUS_RETRANSMISSION, E.OUT_OF_ORDER,
    E.LOST_SEGMENT, E.ACKED_UNSEEN, E.DUPLICATE_ACK, E.ZERO_WINDOW, E.ZERO_WINDOW_PROBE,
    E.ZERO_WINDOW_PROBE_ACK, E.KEEP_ALIVE, E.KEEP_ALIVE_ACK, E.WINDOW_UPDATE, E.WINDOW_FULL)] + [
    (E.RTO_RETRANSMISSION, "resent_rto"), (E.TLP_RESEND, "resent_tlp"),
    (E.FAST_RESEND, "resent_fast"), (E.LATE_ORIGINAL, "late_original"),
    (E.AMBIGUOUS, "ambiguous"), (E.WINDOW_PROBE, "window_probe"),
    (E.DUPLICATE_FRAME, "duplicate_frame")]
# stall kinds charged for a resend (exchange.py), by trigger
_STALL: Final = {E.RTO_RETRANSMISSION: "rto", E.TLP_RESEND: "tlp", E.FAST_RESEND: "fast"}


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
                 "exchanges", "sack_seen", "new_resend", "silence", "last_dir", "rst_dir",
                 "rst_closing", "rst_unanswered")

    def __init__(self, fid: int, r: PacketRecord, src_is_client: bool, roles_from: str,
                 reused: bool = False, budget: Budget = SHARED) -> None:
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
        self.dirs = (Direction(budget), Direction(budget))
        self.handshake = Handshake()
        self.life = Lifecycle()  # Zeek's conn_state and history (lifecycle.py)
        self.events = EventLog(budget)  # the timeline, newest kept (budget.py)
        self.reused = reused  # this flow reuses a 4-tuple seen earlier (port reuse)
        self.exchanges = Exchanges(budget)  # request/response turns (exchange.py)
        self.sack_seen = False  # a SACK block was seen (SACK in use even without the SYNs)
        self.new_resend: Resend | None = None  # the resend the current segment is, if any
        self.silence = 0  # ns since the connection's previous segment (the current one's wait)
        self.last_dir = -1  # the direction of the connection's previous segment
        # the RST that ended it (lifecycle.py: one its receiver would act on): who sent it,
        # after a FIN, and with a request unanswered (diagnosis.py)
        self.rst_dir = -1
        self.rst_closing = False
        self.rst_unanswered = False

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
        prev_ts = self.last_ts  # the connection's previous segment: the silence before this one
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
            # the same datagram seen twice (flow._classify) is no SYN sent again
            dup = r.ipid > 0 and (r.seq << 16 | r.ipid) in fwd.sent_ids
            self.handshake.on_packet(r, d == 0, dup)
            self._window_scale(r, d)
        elif flags & (ACK | RST):
            self.handshake.on_packet(r, d == 0)
        self.silence = ts - prev_ts if ts > prev_ts else 0
        m = self._sequence(r, fwd, rev, ts, d)  # sets new_resend
        if flags & ACK:
            m |= self._acked(r, fwd, rev, ts, d, m)
        self._windows(r, fwd, ts)
        fin_before = self.life.fin_by[0] or self.life.fin_by[1]
        self.life.on_packet(r, d)
        if flags & RST and self.rst_dir < 0 and self.life.rst_ts == ts:
            cur = self.exchanges.cur
            self.rst_dir, self.rst_closing = d, fin_before
            self.rst_unanswered = cur is not None and cur.req_start is not None \
                and cur.resp_start is None
        if m:
            self._count(m, fwd, d, ts, r.num)
        # the flow's event timeline; window updates and window-full marks are too frequent
        # for a bounded timeline (they stay counted)
        self.exchanges.on_segment(r, d, fwd.unique_payload - before, m, self)
        if self.new_resend is not None:
            self._charge(self.new_resend, fwd, self.silence)
        self.last_dir = d
        if m & ~(E.WINDOW_UPDATE | E.WINDOW_FULL) or flags & SFR:
            if flags & SFR:
                m_ev = m | (E.SYN_SEEN if flags & SYN else 0) | (
                    E.FIN_SEEN if flags & FIN else 0) | (E.RST_SEEN if flags & RST else 0)
            else:
                m_ev = m
            self.events.add(ts, r.num, d, m_ev)
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

    def _sequence(self, r: PacketRecord, fwd: Direction, rev: Direction, ts: int,
                  d: int) -> int:
        """Wireshark 4.0's sequence analysis (tcp_analyze_sequence_number, with its default
        preferences), then tcpwatch's own classification (_classify)."""
        seq, ack, seglen, flags, window = r.seq, r.ack, r.plen, r.flags, r.win
        m = 0
        # not in feed(): a type checker would take the attribute for None after it
        self.new_resend = None
        nxt = fwd.nextseq
        fwd.unseen_reported = False
        if fwd.base_seq is None and not flags & RST:
            # not from a RST: one injected into a handshake (acking the ISN, RFC 5961) would
            # make the real SYN-ACK look like a new incarnation (table.py)
            fwd.base_seq = seq if flags & SYN else (seq - 1) & M32
        if seglen == 1 and nxt is not None and seq == nxt and rev.window == 0:
            m = E.ZERO_WINDOW_PROBE | E.WINDOW_PROBE
            fwd.zwp_seq = seq
        else:
            plain = not flags & SFR
            if window == 0 and plain:
                m |= E.ZERO_WINDOW
            if nxt is not None and seq_gt(seq, nxt) and not flags & RST:
                m |= E.LOST_SEGMENT
                # tcpwatch: bytes the sender must have sent that the capture has not seen
                add_hole(fwd.holes, nxt, seq, ts, -1 if r.tsval is None else r.tsval)
            if seglen <= 1 and nxt is not None and seq == (nxt - 1) & M32 and plain:
                m |= E.KEEP_ALIVE
                if rev.window == 0:
                    # Linux probes a zero window with snd_una - 1 and no data (tcp_xmit_probe_skb),
                    # which Wireshark calls a keep-alive: it is a window probe (RFC 9293 3.8.6.1)
                    m |= E.WINDOW_PROBE
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
        end = (seq + seglen + syn_fin) & M32
        back = False
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
            if back and not flags & SYN:  # a SYN sent again is the handshake's business
                m |= self._classify(r, fwd, rev, ts, d, seq, end, m)
            elif m & E.SPURIOUS_RETRANSMISSION:
                # bytes seen for the first time, yet acknowledged already: the capture saw the
                # ACK first (a capture on several CPUs reorders) or missed the original; not
                # known to be a resend
                m |= E.AMBIGUOUS
            if back:
                self._mark_resent(fwd, seq, end)
        nextseq = end
        if nxt is None or seq_gt(nextseq, nxt):
            if not m & E.ZERO_WINDOW_PROBE:
                if seglen:
                    fwd.unique_payload += seglen if nxt is None else min(
                        seglen, seq_diff(nextseq, nxt))
                    if fwd.first_data_seq is None:
                        fwd.first_data_seq = seq
                    fwd.timer_resends = 0  # new data: the sender made progress
                fwd.nextseq = nextseq
                fwd.nextseqframe = r.num
                fwd.nextseqtime = ts
                if (seglen or syn_fin) and len(fwd.unacked) < UNACKED_MAX:
                    # a byte already sent as a zero-window probe is a resend: Karn's rule
                    probed = fwd.zwp_seq is not None and seq_le(seq, fwd.zwp_seq) \
                        and seq_lt(fwd.zwp_seq, nextseq)
                    fwd.unacked.append([seq, nextseq, ts, probed])
                    fwd.zwp_seq = None
        if r.tsval is not None:
            if (seglen or syn_fin) and len(fwd.tsvals) < TSVAL_MAX:
                # RFC 7323 4.1: the echoed TSval names the copy, retransmissions included
                fwd.tsvals.setdefault(r.tsval, ts)
            if fwd.tsval_max < 0 or ts_lt(fwd.tsval_max, r.tsval):
                if fwd.tsval_max < 0:
                    fwd.tsval_first, fwd.tsval_first_at = r.tsval, ts
                fwd.tsval_max, fwd.tsval_max_at = r.tsval, ts
        if seglen or syn_fin:
            fwd.last_seq, fwd.last_end, fwd.last_at = seq, end, ts
            fwd.last_tsval = -1 if r.tsval is None else r.tsval
        if (seglen or syn_fin) and r.ipid > 0:
            key = seq << 16 | r.ipid
            ids = fwd.sent_ids
            if len(ids) < DUP_IDS:
                ids.append(key)
            else:
                ids[fwd.sent_ids_at] = key
                fwd.sent_ids_at = (fwd.sent_ids_at + 1) % DUP_IDS
        if fwd.maxseqtobeacked is None or seq == fwd.maxseqtobeacked:
            if not m & E.ZERO_WINDOW_PROBE:
                fwd.maxseqtobeacked = fwd.nextseq
        fwd.window = window
        fwd.lastack = ack
        fwd.lastacktime = ts
        fwd.lastflags = m
        return m

    # ---- tcpwatch's classification (retrans.py) -----------------------------------------
    def _sender_rtt(self, d: int) -> int:
        """The capture point's round trip to the sender of direction d, ns (0 unknown): its
        side of the handshake (RFC 9293 3.5: a SYN-ACK and the final ACK are never delayed),
        else the quickest sample of the other direction's data that this sender ACKed."""
        hs = self.handshake
        if d == 1 and hs.synack_ts is not None and hs.last_syn_ts is not None \
                and hs.synack_ts >= hs.last_syn_ts:
            return hs.synack_ts - hs.last_syn_ts
        if d == 0 and hs.ack_ts is not None and hs.synack_ts is not None \
                and hs.ack_ts >= hs.synack_ts:
            return hs.ack_ts - hs.synack_ts
        low = self.dirs[1 - d].rtt.min
        return int(low * 1e9) if low is not None else 0

    def _sack_ok(self) -> bool:
        """SACK in use (RFC 2018 2: both SYNs offered it; or blocks were seen)."""
        hs = self.handshake
        if hs.syn_count and hs.synack_count:
            return hs.client.sack_perm and hs.server.sack_perm
        return self.sack_seen

    def _classify(self, r: PacketRecord, fwd: Direction, rev: Direction, ts: int, d: int,
                  seq: int, end: int, m: int) -> int:
        """A segment below snd_nxt (or already acknowledged): a late original, a resend (and
        why), or ambiguous. See retrans.py for the rules and their RFCs."""
        tsval = -1 if r.tsval is None else r.tsval
        if r.ipid > 0 and (seq << 16 | r.ipid) in fwd.sent_ids or (
                self.last_dir == d and seq == fwd.last_seq and end == fwd.last_end
                and tsval == fwd.last_tsval and 0 <= ts - fwd.last_at < DUP_WINDOW_NS):
            # the same datagram again: a retransmission is a new one, with a new IPv4 id
            # where the sender numbers them (RFC 6864 4.1), and no stack resends with nothing
            # from the peer and no timer in between. The network or the capture duplicated it
            return E.DUPLICATE_FRAME
        sender_rtt = self._sender_rtt(d)
        hole, inside = take_from_holes(fwd.holes, seq, end)
        if inside and hole is not None:  # bytes the capture never saw
            rx = self._sender_rtt(1 - d)  # the capture point's round trip to the receiver
            order = hole_fill_order(hole, tsval, ts, sender_rtt,
                                    sender_rtt + rx if sender_rtt and rx else 0,
                                    ts_tick(fwd.tsval_first, fwd.tsval_first_at,
                                            fwd.tsval_max, fwd.tsval_max_at))
            if order:
                if order == E.LATE_ORIGINAL:
                    if ts - hole.at > fwd.late_max_ns:
                        fwd.late_max_ns = ts - hole.at
                    if hole.reported:
                        fwd.late_fills.append((seq, end))
                        if len(fwd.late_fills) > LATE_FILLS_MAX:
                            del fwd.late_fills[0]
                return order
        elif hole is None and tsval >= 0 and fwd.tsval_max >= 0 and ts_lt(tsval, fwd.tsval_max):
            # a copy sent before a segment already seen: delayed in the network (e.g. the
            # original arriving after its resend), not sent again now
            return E.LATE_ORIGINAL
        # a resend: what triggered it
        reported = (rev.lastack == seq and rev.dupacknum >= 1) or _sack_hole(
            rev.last_sack, rev.lastack, seq) or (hole is not None and hole.reported > 0) or any(
            seq_lt(a, end) and seq_lt(seq, b) for a, b in fwd.late_fills)
        # a reaction to the receiver's last word reaches the capture point within the round
        # trip to the sender plus one of the receiver's: later, only a timer explains it
        path = fwd.rtt.srtt  # the capture point's round trip to the receiver
        reaction = sender_rtt * 2 + (int(path * 1e9) if path is not None else 0)
        quick = ts - rev.lastacktime <= max(reaction, 1_000_000)
        followup = False
        if reported and quick:
            trigger = E.FAST_RESEND
        elif fwd.rto_point is not None and seq_lt(seq, fwd.rto_point) and quick:
            trigger, followup = E.RTO_RETRANSMISSION, True  # the recovery after a timeout
        elif (self._sack_ok() and fwd.timer_resends == 0 and end == fwd.nextseq
              and fwd.rto_point is None
              and is_probe(self.silence, tsval >= 0, sender_rtt + self._sender_rtt(1 - d))):
            trigger = E.TLP_RESEND
            fwd.timer_resends += 1
        else:
            trigger = E.RTO_RETRANSMISSION  # RFC 6298 5.4: the earliest unacknowledged segment
            fwd.timer_resends += 1
            fwd.rto_point = fwd.nextseq
        e = Resend(seq, end, ts, r.num, tsval, trigger)
        if followup:
            e.stall_kind = "-"  # the timeout's wait was charged to the resend that ended it
        fwd.counts.resent += 1
        if m & E.SPURIOUS_RETRANSMISSION:
            self._verdict(fwd, e, SPURIOUS, "spurious_acked")  # the receiver had it already
        elif hole is not None:
            self._verdict(fwd, e, LOST, "")  # the original never passed the capture point
        fwd.resends.append(e)
        if len(fwd.resends) > RESENDS_MAX:
            del fwd.resends[0]
        fwd.uncovered.append(e)
        if len(fwd.uncovered) > RESENDS_MAX:
            del fwd.uncovered[0]
        self.new_resend = e
        return trigger | (E.SPURIOUS_RESEND if e.verdict == SPURIOUS else 0)

    def _charge(self, e: Resend, fwd: Direction, silence: int) -> None:
        """The wait a resend stands for, charged to its exchange and its direction: a timer's
        silence (RFC 6298 5, RFC 8985 7), or one round trip of fast recovery (RFC 5681 3.2)."""
        if e.verdict == SPURIOUS or e.stall_kind:
            return
        kind = _STALL[e.trigger]
        if kind == "fast":
            srtt = fwd.rtt.srtt
            ns = int(srtt * 1e9) if srtt is not None else 0
        else:
            ns = silence
        if ns <= 0:
            return
        e.stall_kind, e.stall_ns = kind, ns
        if kind == "rto":
            fwd.stall_rto += ns
        elif kind == "tlp":
            fwd.stall_tlp += ns
        else:
            fwd.stall_fast += ns
        ex = self.exchanges.cur
        if ex is not None:
            ex.stall(kind, ns, e.num, e.at)
            e.exchange = ex

    def _verdict(self, fwd: Direction, e: Resend, verdict: int, why: str) -> None:
        """Settle (or revise) a resend's verdict; a spurious one gives its wait back."""
        if e.verdict == verdict:
            return
        c = fwd.counts
        if e.verdict == LOST:
            c.resent_lost -= 1
        if verdict == LOST:
            c.resent_lost += 1
        else:
            c.resent_spurious += 1
            if e.trigger == E.RTO_RETRANSMISSION:
                c.spurious_rto += 1
            elif e.trigger == E.TLP_RESEND:
                c.spurious_tlp += 1
            else:
                c.spurious_fast += 1
            if why:
                c[why] += 1
            if e.stall_ns:
                if e.stall_kind == "rto":
                    fwd.stall_rto -= e.stall_ns
                elif e.stall_kind == "tlp":
                    fwd.stall_tlp -= e.stall_ns
                else:
                    fwd.stall_fast -= e.stall_ns
                ex = e.exchange
                if isinstance(ex, Exchange):
                    self.exchanges.unstall(ex, e.stall_kind, e.stall_ns, e.num)
                e.stall_ns = 0
            self._mark_event(e.num, E.SPURIOUS_RESEND)
        e.verdict = verdict

    def _mark_event(self, num: int, bit: int) -> None:
        """Add a verdict that came later to a segment's entry in the timeline."""
        self.events.mark(num, bit)

    @staticmethod
    def _mark_resent(fwd: Direction, start: int, end: int) -> None:
        """Karn's rule: segments overlapping a retransmission give no RTT sample."""
        for seg in fwd.unacked:
            if seq_lt(seg[0], end) and seq_lt(start, seg[1]):
                seg[3] = True

    def _acked(self, r: PacketRecord, fwd: Direction, rev: Direction, ts: int, d: int,
               m: int) -> int:
        """The ACK in this segment (sent by fwd) covers data sent by rev: what it reports
        (holes, duplicates: the verdicts of rev's resends), RTT samples and snd_una of rev.
        Returns tcpwatch's event bits for this segment (E.DSACK)."""
        ack = r.ack
        sack = r.sack
        fwd.last_sack = sack
        out = 0
        if sack:
            self.sack_seen = True
        if rev.holes:
            note_report(rev.holes, ack, bool(m & E.DUPLICATE_ACK), sack, ts)
        if sack:
            dup = dsack_block(sack, ack)
            if dup is not None:
                fwd.counts.dsack += 1
                out = E.DSACK
                # RFC 3708: the receiver got [left, right) twice: for each segment of it, the
                # latest resend was not needed
                left, right = dup
                done: list[int] = []
                for e in reversed(rev.resends):
                    if seq_lt(e.start, right) and seq_lt(left, e.end) and e.start not in done:
                        done.append(e.start)
                        self._verdict(rev, e, SPURIOUS, "spurious_dsack")
        una = rev.snd_una
        advanced = una is None or seq_gt(ack, una)
        if not advanced:
            return out
        if rev.nextseq is not None and seq_gt(ack, rev.nextseq):
            # acknowledges data never seen: the capture missed it; do not move snd_una past
            # what we know was sent, so in-flight stays meaningful
            rev.snd_una = rev.nextseq
        else:
            rev.snd_una = ack
        rev.timer_resends = 0  # the sender made progress
        if rev.rto_point is not None and seq_le(rev.rto_point, ack):
            rev.rto_point = None
        if rev.uncovered:
            waiting: list[Resend] = []
            for e in rev.uncovered:
                if not seq_le(e.end, ack):
                    waiting.append(e)
                    continue
                if e.verdict != PENDING:
                    continue
                if r.tsecr is not None and e.tsval >= 0:
                    # Eifel (RFC 3522 2): the first ACK covering a resend echoes the TSval of
                    # the copy that arrived first; older than the resend's: the original
                    self._verdict(rev, e, SPURIOUS if ts_lt(r.tsecr, e.tsval) else LOST,
                                  "spurious_eifel")
                elif e.trigger == E.FAST_RESEND:
                    self._verdict(rev, e, LOST, "")  # the receiver had reported the hole
            rev.uncovered = waiting
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
            est = rev.rtt
            # the receiver may hold the ACK of a lone segment (RFC 1122 4.2.3.2): one segment
            # covered, nothing else outstanding, and far slower than the path (rtt.py)
            held = False
            if k == 1 and not q:
                base = self._sender_rtt(d)
                if est.min is not None and (base == 0 or est.min * 1e9 < base):
                    base = int(est.min * 1e9)
                held = base > 0 and sample >= 2 * base and sample - base >= HELD_MIN_NS
            est.sample(sample / 1e9, ts, from_ts, held)
        return out

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
                fwd.series.add(ts, w)
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
                fwd.flight.add(ts, inflight)
                if inflight > fwd.inflight_max:
                    fwd.inflight_max = inflight

    def _count(self, m: int, fwd: Direction, d: int, ts: int, num: int) -> None:
        counts = fwd.counts
        for bit, name in _COUNTED:
            if m & bit:
                counts[name] += 1


