"""Connection lifecycle in Zeek's vocabulary: endpoint states, `conn_state` and `history`.

What lives here: a replay, per connection, of the parts of Zeek's TCP analyzer that decide
conn.log's `conn_state` and `history` (github.com/zeek/zeek at a13de64, 9.1.0-dev), with
tcpwatch's client as Zeek's originator; and tcpwatch's own `closed` (both FINs, or a RST the
receiver would act on).
It imports only the packet record and sequence arithmetic: no other tracker's verdict (what
flow.py calls a retransmission is Wireshark's notion, not Zeek's).

The rules, and where Zeek states them:
  * endpoint states, their changes per packet: TCPSessionAdapter.cc UpdateStateMachine and
    UpdateInactiveState / UpdateSYN_SentState / UpdateEstablishedState / UpdateClosedState (a
    RST after both FINs changes nothing: the connection stays SF; a FIN after the peer's
    FIN-then-RST turns that RST back into CLOSED). A bare ACK from the responder to a SYN
    leaves it INACTIVE (UpdateInactiveState, "eccentric TCP's"); only the responder's SYN-ACK
    establishes the originator.
  * conn_state(): scripts/base/protocols/conn/main.zeek conn_state(), verbatim, with the
    endpoint sizes of TCP_Endpoint::Size() (REJ needs both sizes 0) and the history pattern
    /\\^?S[^HAFGIQ]*R.*/ for RSTOS0 (so a lone R is OTH, SaR is RSTOS0).
  * history letters (TCPSessionAdapter.cc update_history; TCP_Endpoint.cc CheckHistory,
    AddHistory; session/Session.h CheckHistory): originator upper case, responder lower case.
    S a SYN, H a SYN-ACK, F a FIN, R a RST: again whenever the packet's relative sequence
    number (for F: after its data) differs from the last of the same kind; A a pure ACK,
    D data, I FIN+RST, Q SYN+FIN or SYN+RST: once per direction (S and H share one bit).
    A packet with more than one of SYN/FIN/RST records only I or Q; data with a SYN or FIN
    records only S/H/F.
  * T (TCP_Endpoint::DidRxmit from update_last_seq): a packet with payload whose end does not
    pass the highest sequence number this side sent; not a SYN, SYN-ACK or FIN repeated
    without payload; reordered data counts (Zeek does not tell them apart).
  * W (update_window -> TCP_Endpoint::ZeroWindow): a zero window field, except in a RST,
    from a side that sent a RST, or after the peer's FIN.
  * G (TCP_Reassembler::Gap via AckReceived -> DataBlockList::Trim -> Undelivered): an ACK
    covers payload never seen (a hole, or payload cut by the snaplen), counted per hole, only
    while both sides are ESTABLISHED (or closed from ESTABLISHED); a hole that a
    retransmission fills before the ACK is no gap. Acks of the FIN, of a partial
    connection's first octets and of data above 16 KiB without any ACK are not gaps
    (AckReceived, Undelivered, TCP_Reassembler::DataSent), as Zeek.
  * T, W, G repeat at the 10th, 100th, 1000th... occurrence (Session::ScaledHistoryEntry).
  * ^: the originator (tcpwatch's client) did not send the first packet seen: Zeek's mark
    for "direction flipped by its heuristic" (Connection::FlipRoles), which Zeek sets exactly
    when it decides that the first packet came from the responder.
  * C/c (bad checksum) is never written: tcpwatch does not verify checksums (as `zeek -C`,
    needed anyway for captures with checksum offload); X (analysis limits) does not apply.

Where tcpwatch and Zeek differ (README "Zeek states"; tests/test_zeek.py):
  1. Roles. tcpwatch's client is the SYN sender, else the SYN-ACK receiver, else a port
     heuristic (table.py). Zeek's originator of a mid-stream connection is the first
     packet's sender unless its port is in likely_server_ports (the ports of the analyzers
     loaded: depends on the scripts run), and a connection that begins with a SYN-ACK is
     flipped only at its first ACK or data packet, after Zeek ran that SYN-ACK as the
     originator's (its state then ends OTH where tcpwatch says S1/SF, history the same);
     likewise for a SYN-ACK seen before its SYN. Where the originators differ, tcpwatch's
     history is Zeek's with the roles swapped.
  2. Timers. Zeek ends a connection 5 s after a SYN left unanswered (tcp_attempt_delay),
     5 s after a close or RST (tcp_close_delay, tcp_reset_delay), after 5 min idle
     (tcp_inactivity_timeout), and logs what follows as a new connection; a SYN after a
     close starts a new one even with the same ISN. tcpwatch keeps one connection.
  3. Truncated packets. Zeek skips a segment whose TCP header the snaplen cut, and takes
     payload as seen only when all of it was captured. tcpwatch reads the fixed header of
     such a segment, and keeps at most 256 payload bytes: payload counts as unseen when the
     record holds some of it but fewer than min(length, 256) bytes (snaplen 68/96
     captures: G as Zeek's). A snaplen that cuts payload past its 256th byte, or exactly at
     the TCP header (no payload byte kept, as records built without payload), loses
     Zeek's G.
  4. RST validity. Zeek takes every RST (REJ, RSTO...) and ends the connection 5 s later;
     tcpwatch's state and history take it too, but `closed` needs a RST the receiver would
     act on (RFC 9293 3.10.7.3: in SYN-SENT it must acknowledge the SYN, ISN + 1; 3.10.7.4,
     RFC 5961 3.2: otherwise its sequence number is in the receiver's window) or one at the
     sender's own next sequence number (it aborted: it is gone). An injected RST does not
     end the connection.
"""

from __future__ import annotations

from typing import Final

from ..capture.record import ACK, FIN, PAYLOAD_PREFIX, RST, SYN, PacketRecord
from .seqspace import seq_diff

# endpoint states (Zeek's analyzer::tcp::EndpointState, TCP_Endpoint.h)
INACTIVE: Final = 0  # nothing seen from this side
SYN_SENT: Final = 1  # SYN seen, no reply
SYN_ACK_SENT: Final = 2  # SYN-ACK seen, no SYN from the peer
PARTIAL: Final = 3  # data seen, no SYN
ESTABLISHED: Final = 4  # SYN-ACK seen (implicit for a SYN answered by a SYN-ACK)
CLOSED: Final = 5  # FIN seen
RESET: Final = 6  # RST seen

CONN_STATES: Final = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                      "SH", "SHR", "OTH")

# history bits per direction (TCP_Endpoint::HistoryMasks; the responder's are shifted by 16)
HIST_SYN: Final = 0x1  # S or H
HIST_FIN: Final = 0x2
HIST_RST: Final = 0x4
HIST_FIN_RST: Final = 0x8  # I
HIST_DATA: Final = 0x10
HIST_ACK: Final = 0x20
HIST_MULTI_FLAG: Final = 0x40  # Q

M32: Final = 0xFFFFFFFF
M64: Final = 0xFFFFFFFFFFFFFFFF
SMALL: Final = 1 << 61  # below this an int is a compiled machine word: no masking needed


def u64(x: int) -> int:
    """x as Zeek's uint64 arithmetic leaves it (x & M64), without the long-integer
    operation for the values every connection has (non-negative and small)."""
    return x if 0 <= x < SMALL else x & M64
TOO_LARGE_SEQ_DELTA: Final = 1048576  # TCPSessionAdapter.cc: a SYN/RST this far off is ignored
MAX_ABOVE_HOLE_WITHOUT_ACKS: Final = 16384  # init-bare.zeek tcp_max_above_hole_without_any_acks
MAX_INITIAL_WINDOW: Final = 16384  # init-bare.zeek tcp_max_initial_window
EXCESSIVE_DATA: Final = 10 * 1024 * 1024  # tcp_excessive_data_without_further_acks
SCALE_BASE: Final = 10  # Session::ScaledHistoryEntry: T, W, G again at 10, 100, 1000...


class Endpoint:
    """One side as Zeek's TCP_Endpoint and its TCP_Reassembler see it (sequence numbers
    relative to start_seq, as Zeek's), plus what tcpwatch needs to judge a RST."""

    __slots__ = ("state", "prev_state", "start_seq", "last_seq", "seq_wraps", "ack_seq",
                 "ack_wraps", "fin_cnt", "fin_seq", "last_syn", "last_fin", "last_rst",
                 "rxmt_cnt", "rxmt_thresh", "win0_cnt", "win0_thresh", "gap_cnt",
                 "gap_thresh", "reassem_seq", "trim_seq", "above", "above_bytes", "skip",
                 "isn", "synack", "snd_nxt", "last_ack", "last_win", "wscale")

    def __init__(self) -> None:
        self.state = INACTIVE
        self.prev_state = INACTIVE
        self.start_seq = 0  # ISN (or the first sequence number - 1 without a SYN), 32 bits
        self.last_seq = 0  # one past the highest sequence number sent, 32 bits
        self.seq_wraps = 0
        self.ack_seq = 0  # the highest ACK the peer sent for this side's data, 32 bits
        self.ack_wraps = 0
        self.fin_cnt = 0
        self.fin_seq = 0  # relative sequence number after the FIN
        self.last_syn = 0  # relative sequence numbers of the last SYN, FIN, RST (history)
        self.last_fin = 0
        self.last_rst = 0
        self.rxmt_cnt = 0  # T, W, G: count and next threshold (logarithmic history)
        self.rxmt_thresh = 1
        self.win0_cnt = 0
        self.win0_thresh = 1
        self.gap_cnt = 0
        self.gap_thresh = 1
        # reassembly (relative sequence numbers): delivered up to reassem_seq, acknowledged
        # up to trim_seq, and the payload seen above a hole as disjoint [lo, hi) ranges
        self.reassem_seq = 1
        self.trim_seq = 1
        self.above: list[list[int]] = []
        self.above_bytes = 0
        self.skip = False  # Zeek gave up reassembling this side (no gaps any more)
        # tcpwatch: RST acceptability (RFC 9293 3.10.7)
        self.isn = -1  # the sequence number of this side's SYN (not SYN-ACK), -1: none
        self.synack = False  # this side sent a SYN-ACK
        self.snd_nxt = -1  # one past the highest sequence number it sent, RSTs aside
        self.last_ack = -1  # the last acknowledgment number this side sent (its RCV.NXT)
        self.last_win = 0  # the window that came with it, scaled
        self.wscale = -1  # window scale option of this side's SYN, -1: none

    def set_state(self, new: int) -> None:
        if new != self.state:
            self.prev_state = self.state
            self.state = new

    def relative(self, cur: int, last: int, wraps: int) -> tuple[int, bool]:
        """get_relative_seq(): `cur` relative to start_seq, unwrapped against `last` (a 32-bit
        value that has wrapped `wraps` times); also whether it fell below the start."""
        delta = seq_diff(cur, last)
        if delta < 0:
            if wraps and cur > last:
                wraps -= 1
        elif delta > 0 and cur < last:
            wraps += 1
        if wraps == 0:
            delta = seq_diff(cur, self.start_seq)
            return u64(delta), delta < 0
        return u64((wraps << 32) + cur - self.start_seq), False

    def init_seq(self, start: int, last: int) -> None:
        self.start_seq = start & M32
        self.ack_seq = start & M32
        self.last_seq = last & M32

    def no_data_acked(self) -> bool:
        ack = (self.ack_wraps << 32) + self.ack_seq
        return ack == self.start_seq or ack == self.start_seq + 1


def _is_clean(e: Endpoint) -> bool:
    """Reassembler: gaps count only in an established (or cleanly closing) connection."""
    return e.state == ESTABLISHED or (e.state == CLOSED and e.prev_state == ESTABLISHED)


def _rstos0_history(h: str) -> bool:
    """h matches Zeek's /\\^?S[^HAFGIQ]*R.*/ (the whole string): the originator's SYN, then
    its RST before any H, A, F, G, I or Q of its own (the responder's letters may come)."""
    i = 1 if h.startswith("^") else 0
    if i >= len(h) or h[i] != "S":
        return False
    for ch in h[i + 1:]:
        if ch == "R":
            return True
        if ch in "HAFGIQ":
            return False
    return False


class Lifecycle:
    """Feed every segment with on_packet(r, d), d = 0 client->server, 1 server->client."""

    __slots__ = ("orig", "resp", "history", "hist_seen", "is_partial", "seen_first",
                 "fin_by", "rst_ts")

    def __init__(self) -> None:
        self.orig = Endpoint()  # tcpwatch's client
        self.resp = Endpoint()
        self.history: list[str] = []
        self.hist_seen = 0  # Zeek's hist_seen: HIST_* bits, the responder's shifted by 16
        self.is_partial = False  # TCPSessionAdapter::is_partial (no SYN started it)
        self.seen_first = 0  # 1: the originator's first packet seen, 2: the responder's
        self.fin_by = [False, False]
        self.rst_ts: int | None = None  # when an acceptable RST ended the connection

    # ---- history -------------------------------------------------------------------------
    def _check(self, d: int, mask: int, code: str) -> bool:
        """Session::CheckHistory: record `code` the first time; True if seen before."""
        bit = mask << 16 if d else mask
        if self.hist_seen & bit:
            return True
        self.hist_seen |= bit
        self.history.append(code.lower() if d else code)
        return False

    def _add(self, d: int, code: str) -> None:
        self.history.append(code.lower() if d else code)

    def _scaled(self, d: int, code: str, cnt: int, thresh: int) -> int:
        """Session::ScaledHistoryEntry for a count just raised to `cnt`: the new threshold."""
        if cnt == thresh:
            self._add(d, code)
            return thresh * SCALE_BASE
        return thresh

    def _rxmit(self, d: int, e: Endpoint) -> None:
        e.rxmt_cnt += 1
        e.rxmt_thresh = self._scaled(d, "T", e.rxmt_cnt, e.rxmt_thresh)

    def _zero_window(self, d: int, e: Endpoint) -> None:
        e.win0_cnt += 1
        e.win0_thresh = self._scaled(d, "W", e.win0_cnt, e.win0_thresh)

    def _gap(self, d: int, e: Endpoint, peer: Endpoint) -> None:
        if _is_clean(e) and _is_clean(peer):
            e.gap_cnt += 1
            e.gap_thresh = self._scaled(d, "G", e.gap_cnt, e.gap_thresh)

    # ---- one packet: TCPSessionAdapter::Process -----------------------------------------
    def on_packet(self, r: PacketRecord, d: int) -> None:
        flags = r.flags
        syn = flags & SYN != 0
        fin = flags & FIN != 0
        rst = flags & RST != 0
        ackf = flags & ACK != 0
        seq = r.seq
        plen = r.plen
        is_orig = d == 0
        e, peer = (self.orig, self.resp) if is_orig else (self.resp, self.orig)
        if self.seen_first == 0 and not is_orig:
            self.history.append("^")  # the responder spoke first (Zeek: roles flipped)
        # SetPartialStatus
        if is_orig:
            if not self.seen_first & 1:
                self.is_partial = not syn or ackf
        elif not self.seen_first & 2 and not self.is_partial:
            self.is_partial = not syn
        seg_len = plen + (1 if syn else 0) + (1 if fin else 0) - (plen if rst else 0)
        end = (seq + seg_len) & M32
        self._init_endpoint(e, syn, seq, end)
        rel_seq, underflow = e.relative(seq, e.last_seq, e.seq_wraps)
        self._update_history(d, e, syn, fin, rst, ackf, rel_seq, plen)
        if (r.win == 0 and not rst and peer.state != CLOSED  # update_window
                and e.state != RESET):
            self._zero_window(d, e)
        if fin:
            e.fin_cnt += 1
            e.fin_seq = u64(rel_seq + seg_len)
        rel_ack = 0
        if ackf:
            if peer.state == INACTIVE:  # init_peer: number the peer as if its SYN was seen
                rel_ack = 1
                peer.init_seq(r.ack - 1, r.ack - 1)
            else:
                rel_ack, ack_underflow = peer.relative(r.ack, peer.ack_seq, peer.ack_wraps)
                if ack_underflow:
                    rel_ack = 0
                elif not rst:  # update_ack_seq; RSTs' ACKs are not trusted
                    delta = seq_diff(r.ack, peer.ack_seq)
                    if delta > 0 and not (r.ack == 0 and delta > TOO_LARGE_SEQ_DELTA):
                        if r.ack < peer.ack_seq:
                            peer.ack_wraps += 1
                        peer.ack_seq = r.ack
        self._update_last_seq(d, e, end, syn, fin, rst, plen)
        self._state_machine(d, e, peer, syn, fin, rst, ackf, seq, plen)
        if ackf:
            self._ack_received(1 - d, peer, e, rel_ack)
        if plen and not rst and not underflow:
            kept = len(r.payload)  # 0: a record without payload bytes (hand-built, pyshark)
            if kept == 0 or kept >= min(plen, PAYLOAD_PREFIX):  # not cut by the snaplen
                self._data_sent(e, u64(rel_seq + 1 if syn else rel_seq), plen)
        self.seen_first |= 1 if is_orig else 2
        self._tcpwatch_close(r, d, e, peer, syn, fin, rst, ackf)

    def _init_endpoint(self, e: Endpoint, syn: bool, seq: int, end: int) -> None:
        """init_endpoint(): where this side's relative numbering starts."""
        st = e.state
        if st == INACTIVE:
            if syn:
                e.init_seq(seq, end)
            else:  # partial: number as if a SYN came just before (first packet no resend)
                e.init_seq(seq - 1, seq)
        elif st == SYN_SENT or st == SYN_ACK_SENT:
            if syn and seq != e.start_seq:
                e.init_seq(seq, end)
        elif st == ESTABLISHED or st == PARTIAL:
            if syn:
                e.init_seq(seq, end)
        elif st == RESET:
            if syn and e.prev_state == INACTIVE:  # the RST came first: likely spoofed
                e.init_seq(seq, end)

    def _update_history(self, d: int, e: Endpoint, syn: bool, fin: bool, rst: bool,
                        ackf: bool, rel_seq: int, plen: int) -> None:
        bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if bits > 1:
            if fin and rst:
                self._check(d, HIST_FIN_RST, "I")
            else:
                self._check(d, HIST_MULTI_FLAG, "Q")
        elif bits == 1:
            if syn:
                code = "H" if ackf else "S"
                if self._check(d, HIST_SYN, code) and rel_seq != e.last_syn:
                    self._add(d, code)
                e.last_syn = rel_seq
            elif fin:  # a FIN's sequence number is the one after its data
                fin_at = u64(rel_seq + plen)
                if self._check(d, HIST_FIN, "F") and fin_at != e.last_fin:
                    self._add(d, "F")
                e.last_fin = fin_at
            else:
                if self._check(d, HIST_RST, "R") and rel_seq != e.last_rst:
                    self._add(d, "R")
                e.last_rst = rel_seq
        elif plen:
            self._check(d, HIST_DATA, "D")
        elif ackf:
            self._check(d, HIST_ACK, "A")

    def _update_last_seq(self, d: int, e: Endpoint, end: int, syn: bool, fin: bool,
                         rst: bool, plen: int) -> None:
        """update_last_seq(): advance this side's highest sequence number; payload that does
        not pass it is a retransmission (T)."""
        delta = seq_diff(end, e.last_seq)
        if (syn or rst) and (delta > TOO_LARGE_SEQ_DELTA or delta < -TOO_LARGE_SEQ_DELTA):
            return
        if (fin and e.last_seq == (e.start_seq + 1) & M32) or (
                e.state != RESET and delta > 0):
            if end < e.last_seq:
                e.seq_wraps += 1
            e.last_seq = end
        elif e.state != RESET and plen > 0:
            self._rxmit(d, e)

    def _state_machine(self, d: int, e: Endpoint, peer: Endpoint, syn: bool, fin: bool,
                       rst: bool, ackf: bool, seq: int, plen: int) -> None:
        """UpdateStateMachine() and its Update*State handlers (their weirds, events and
        timers left out)."""
        st = e.state
        if st == INACTIVE:
            if syn:
                if d == 0:
                    e.set_state(SYN_ACK_SENT if ackf else SYN_SENT)
                else:
                    if not ackf and peer.state == SYN_ACK_SENT and seq == e.start_seq:
                        # a SYN after the originator's SYN-ACK: Zeek flips roles here;
                        # tcpwatch's roles stay (difference 1), the states as Zeek's
                        self.is_partial = False
                        peer.set_state(ESTABLISHED)
                        self.seen_first |= 2
                    if peer.state == SYN_SENT:
                        peer.set_state(ESTABLISHED)
                    e.set_state(ESTABLISHED)
            if fin:
                e.set_state(CLOSED)
            if rst:
                e.set_state(RESET)
            if e.state == INACTIVE:
                if d == 1 and plen == 0 and self.orig.state == SYN_SENT:
                    pass  # an ACK of the SYN before the SYN-ACK: not yet a connection
                elif ackf and peer.state == ESTABLISHED:  # its SYN was missed
                    e.set_state(ESTABLISHED)
                    self.is_partial = False
                    self.seen_first |= 1 if d == 0 else 2
                else:
                    e.set_state(PARTIAL)
        elif st == SYN_SENT or st == SYN_ACK_SENT:
            if fin:
                e.set_state(CLOSED)
            if rst:
                e.set_state(RESET)
        elif st == ESTABLISHED or st == PARTIAL:
            if syn and st == PARTIAL and peer.state == INACTIVE and not ackf:
                e.set_state(SYN_SENT)
            if fin and not rst:
                e.set_state(CLOSED)
                if peer.state == RESET and peer.prev_state == CLOSED:
                    peer.set_state(CLOSED)  # the peer's FIN then RST: a normal close
            if rst:
                e.set_state(RESET)
        elif st == CLOSED:
            if rst and peer.state != CLOSED:  # after both FINs a RST changes nothing
                e.set_state(RESET)

    # ---- reassembly: where Zeek finds content gaps -------------------------------------
    def _ack_received(self, d: int, e: Endpoint, peer: Endpoint, seq: int) -> None:
        """TCP_Reassembler::AckReceived for e's data (e sent in direction d), then Trim."""
        if e.fin_cnt > 0 and seq >= e.fin_seq:
            seq = u64(e.fin_seq - 1)  # the FIN takes no content
        if seq <= e.trim_seq:
            return
        if seq > e.reassem_seq:
            self._undelivered(d, e, peer, seq)
        e.trim_seq = seq

    def _undelivered(self, d: int, e: Endpoint, peer: Endpoint, up_to: int) -> None:
        """TCP_Reassembler::Undelivered: the peer acknowledged payload never delivered."""
        if up_to <= 2 and self.is_partial:
            return  # a partial connection's first octet (or keep-alive)
        above = e.above
        if not e.skip:
            while above and above[0][0] < up_to:
                lo, hi = above.pop(0)
                e.above_bytes -= hi - lo
                self._gap(d, e, peer)  # the hole below this block
                e.reassem_seq = hi
            if up_to > e.reassem_seq:
                self._gap(d, e, peer)
        if up_to > e.reassem_seq:
            e.reassem_seq = up_to
        if above and above[0][0] == e.reassem_seq:  # Trim: now deliverable
            lo, hi = above.pop(0)
            e.above_bytes -= hi - lo
            e.reassem_seq = hi

    def _data_sent(self, e: Endpoint, lo: int, n: int) -> None:
        """TCP_Reassembler::DataSent and Reassembler::NewBlock for payload [lo, lo + n)."""
        if e.skip:
            return
        hi = lo + n
        acked = u64((e.ack_wraps << 32) + e.ack_seq - e.start_seq)
        if lo < acked:
            if hi <= acked:
                return
            lo = acked
        if hi > e.trim_seq and hi > e.reassem_seq:
            lo = max(lo, e.trim_seq, e.reassem_seq)
            if lo == e.reassem_seq and not e.above:
                # in order, nothing held above: delivered at once (the same as adding the
                # block and delivering it, without the block)
                e.reassem_seq = hi
                if e.no_data_acked() and self._size(e) > MAX_INITIAL_WINDOW:
                    e.trim_seq = e.reassem_seq
            else:
                e.above_bytes += _add_range(e.above, lo, hi)
                if e.above[0][0] == e.reassem_seq:  # fills the leading hole: deliver
                    blo, bhi = e.above.pop(0)
                    e.above_bytes -= bhi - blo
                    e.reassem_seq = bhi
                    if e.no_data_acked() and self._size(e) > MAX_INITIAL_WINDOW:
                        e.trim_seq = e.reassem_seq  # peer's ACKs unseen: do not hold data
        if e.no_data_acked() and e.above and \
                e.above[-1][1] - e.reassem_seq > MAX_ABOVE_HOLE_WITHOUT_ACKS:
            e.above.clear()
            e.above_bytes = 0
            e.skip = True  # above_hole_data_without_any_acks
        elif max(0, e.reassem_seq - e.trim_seq) + e.above_bytes > EXCESSIVE_DATA:
            e.above.clear()
            e.above_bytes = 0
            e.skip = True  # excessive_data_without_further_acks

    def _size(self, e: Endpoint) -> int:
        """TCP_Endpoint::Size(): payload octets from sequence numbers."""
        peer = self.resp if e is self.orig else self.orig
        if (e.prev_state == SYN_SENT and e.state == RESET and peer.state == INACTIVE
                and not e.no_data_acked()):
            return 0  # a half-open connection discovered and aborted
        last = (e.seq_wraps << 32) + e.last_seq
        ack = (e.ack_wraps << 32) + e.ack_seq
        size = u64((last if last > ack else ack) - e.start_seq)
        if size:
            size -= 1  # the SYN
        if e.fin_cnt > 0 and size:
            size -= 1  # the FIN
        return size

    # ---- tcpwatch: is the connection over? ----------------------------------------------
    def _tcpwatch_close(self, r: PacketRecord, d: int, e: Endpoint, peer: Endpoint,
                        syn: bool, fin: bool, rst: bool, ackf: bool) -> None:
        if syn:
            if ackf:
                e.synack = True
            elif e.isn < 0:
                e.isn = r.seq
            if r.wscale is not None:
                e.wscale = r.wscale
        if fin:
            self.fin_by[d] = True
        if rst:
            if self.rst_ts is None and self._acceptable_rst(r, e, peer, ackf):
                self.rst_ts = r.ts
            return
        end = (r.seq + r.plen + (1 if syn else 0) + (1 if fin else 0)) & M32
        if e.snd_nxt < 0 or seq_diff(end, e.snd_nxt) > 0:
            e.snd_nxt = end
        if ackf:
            win = r.win
            if not syn and e.wscale >= 0 and peer.wscale >= 0:
                win <<= e.wscale  # RFC 7323 2.2: both SYNs offered scaling
            e.last_ack = r.ack
            e.last_win = win

    @staticmethod
    def _acceptable_rst(r: PacketRecord, e: Endpoint, peer: Endpoint, ackf: bool) -> bool:
        """Does this RST from e end the connection? RFC 9293 3.10.7.3: a receiver in
        SYN-SENT acts on it only if it acknowledges the SYN (ISN + 1). Synchronized (3.10.7.4,
        RFC 5961 3.2), only if its sequence number is in the receiver's window (an exact
        match resets, the rest of the window draws a challenge ACK that a genuine sender
        answers with an exact RST); or if it is the sender's own next sequence number: a
        sender that aborts with data in flight (its peer's window lagging behind) is gone,
        whatever its peer makes of the RST."""
        if peer.isn >= 0 and not e.synack and e.isn < 0:
            return ackf and r.ack == (peer.isn + 1) & M32
        if peer.last_ack < 0 or r.seq == e.snd_nxt:
            return True  # nothing known of the receiver's window, or the sender's state
        off = seq_diff(r.seq, peer.last_ack)
        return 0 <= off < max(peer.last_win, 1)

    # ---- results --------------------------------------------------------------------------
    def conn_state(self) -> str:
        """Zeek's conn_state() (scripts/base/protocols/conn/main.zeek) for TCP."""
        os_, rs = self.orig.state, self.resp.state
        o_inactive = os_ == INACTIVE or os_ == PARTIAL
        r_inactive = rs == INACTIVE or rs == PARTIAL
        if rs == RESET:
            if os_ == SYN_SENT or os_ == SYN_ACK_SENT or (
                    os_ == RESET and self._size(self.orig) == 0
                    and self._size(self.resp) == 0):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _rstos0_history("".join(self.history)) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    @property
    def closed(self) -> bool:
        """The connection is over: both sides sent a FIN, or an acceptable RST came."""
        return self.rst_ts is not None or (self.fin_by[0] and self.fin_by[1])


def _add_range(ranges: list[list[int]], lo: int, hi: int) -> int:
    """Merge [lo, hi) into sorted disjoint ranges; returns how many octets were new."""
    if not ranges or lo > ranges[-1][1]:
        ranges.append([lo, hi])
        return hi - lo
    last = ranges[-1]
    if lo >= last[0]:  # overlaps or extends the highest range (the common case)
        if hi <= last[1]:
            return 0
        added = hi - last[1]
        last[1] = hi
        return added
    i = 0
    while ranges[i][1] < lo:
        i += 1
    j = i
    covered = 0
    new_lo, new_hi = lo, hi
    while j < len(ranges) and ranges[j][0] <= hi:
        covered += ranges[j][1] - ranges[j][0]
        new_lo = min(new_lo, ranges[j][0])
        new_hi = max(new_hi, ranges[j][1])
        j += 1
    ranges[i:j] = [[new_lo, new_hi]]
    return new_hi - new_lo - covered
