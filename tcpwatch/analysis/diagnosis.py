"""Why a connection (or a request) was slow, from first principles: detectors over the trackers
and the exchanges. Each finding has a kind, a severity, the time it cost, the evidence (frames
and times) and what to do about it. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from . import events as E
from .exchange import breakdown

# kinds (one definition each; the badge shown in the flow table in brackets)
SYN_RETRANSMITTED: Final = "syn_retransmitted"  # [SYN+] RFC 6298 2.1: initial RTO 1 s
CONNECTION_REFUSED: Final = "connection_refused"  # [REJ] RFC 9293 3.10.7.1: RST to a SYN
RTO_STALL: Final = "rto_stall"  # [RTO] RFC 6298 5: the retransmission timer expired
TAIL_LOSS_PROBE: Final = "tail_loss_probe"  # [TLP] RFC 8985 7: a probe repaired a tail loss
FAST_RETRANSMIT: Final = "fast_retransmit"  # [RETX] RFC 5681 3.2 / RFC 6675 loss recovery
SPURIOUS_RETRANSMISSION: Final = "spurious_retransmission"  # [SPUR] RFC 3708, RFC 3522
REORDERING: Final = "reordering"  # [OOO] RFC 4737: segments delivered out of order
ZERO_WINDOW: Final = "zero_window"  # [ZWIN] RFC 9293 3.8.6: the receiver stopped reading
WINDOW_BOUND: Final = "window_bound"  # [WNDB] RFC 7323 2: in flight pinned at the peer's window
NAGLE_DELAYED_ACK: Final = "nagle_delayed_ack"  # [NAGLE] RFC 896 + RFC 1122 4.2.3.2
SLOW_START: Final = "slow_start"  # [SS] RFC 5681 3.1: cwnd grows one window per RTT
CONNECTION_CHURN: Final = "connection_churn"  # [CHURN] a new connection per request
SERVER_THINK: Final = "server_think"  # [THINK] the server took long to answer
HIGH_RETRANSMISSION: Final = "high_retransmission_rate"  # [LOSS]
RST_MIDSTREAM: Final = "rst_midstream"  # [RST] RFC 9293 3.5.2: aborted after data
HALF_OPEN: Final = "half_open"  # [HALF] RFC 9293 3.5.2: one side sends into the void
H2_FLOW_CONTROL: Final = "h2_flow_control"  # [H2WIN] RFC 9113 5.2: a zero HTTP/2 window
DEADLINE_EXCEEDED: Final = "deadline_exceeded"  # [DEADL] gRPC: the call's deadline ran out

BADGE: Final = {SYN_RETRANSMITTED: "SYN+", CONNECTION_REFUSED: "REJ", RTO_STALL: "RTO",
         TAIL_LOSS_PROBE: "TLP", FAST_RETRANSMIT: "RETX", SPURIOUS_RETRANSMISSION: "SPUR",
         REORDERING: "OOO", ZERO_WINDOW: "ZWIN", WINDOW_BOUND: "WNDB",
         NAGLE_DELAYED_ACK: "NAGLE", SLOW_START: "SS", CONNECTION_CHURN: "CHURN",
         SERVER_THINK: "THINK", HIGH_RETRANSMISSION: "LOSS", RST_MIDSTREAM: "RST",
         HALF_OPEN: "HALF", H2_FLOW_CONTROL: "H2WIN", DEADLINE_EXCEEDED: "DEADL"}

THINK_MIN_S: Final = 0.1  # server think time worth reporting
# a zero window shorter than this held nothing up (a reader a moment behind a loopback sender)
ZERO_WINDOW_MIN_NS: Final = 1_000_000
THINK_SHARE: Final = 0.5  # ... and at least this share of the exchange
LOSS_RATE: Final = 0.02  # resends that were needed / segments
LOSS_MIN: Final = 3
SPURIOUS_TLP_MIN: Final = 3  # spurious probes cost a segment each: worth a word when they recur
WINDOW_FULL_MIN: Final = 3  # window-full marks before calling a transfer window-bound
SLOW_START_ROUNDS: Final = 3  # response transfer of at least this many RTTs
INITIAL_WINDOW: Final = 10  # segments (RFC 6928)
CHURN_MIN: Final = 3  # connections from one client to one server, each with <= 1 exchange
HALF_OPEN_RETRIES: Final = 3


@dataclass
class Finding:
    kind: str
    severity: str  # error | warn | info
    lost: float  # seconds this cost (0 when it is not a delay)
    flow: int | None  # connection id (None: capture-wide)
    evidence: list = field(default_factory=list)  # [(frame, time s)]
    explain: str = ""
    advice: str = ""
    exchange: int | None = None
    flows: list = field(default_factory=list)  # capture-wide findings: the connections
    side: str = ""  # the side whose behaviour it is ("client" | "server"), where it matters

    def __post_init__(self) -> None:
        # time lost is a difference of packet timestamps: a capture whose clock steps back
        # must not report a negative cost
        self.lost = max(0.0, self.lost)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "badge": BADGE[self.kind], "severity": self.severity,
                "lost": self.lost, "flow": self.flow, "exchange": self.exchange,
                "evidence": [{"frame": f, "time": t} for f, t in self.evidence],
                "flows": self.flows, "side": self.side or None, "explain": self.explain,
                "advice": self.advice}


def _ev(flow, kinds: int, limit: int = 10, without: int = 0) -> list:
    return [(num, ts / 1e9) for ts, num, _d, m in flow.events.items()
            if m & kinds and not m & without][:limit]


def needed(d) -> tuple[int, int, int]:
    """Resends of one direction that were not spurious: (rto, tlp, fast). One definition, for
    the diagnosis, the summary and the table."""
    c = d.counts
    return (c["resent_rto"] - c["spurious_rto"], c["resent_tlp"] - c["spurious_tlp"],
            c["resent_fast"] - c["spurious_fast"])


def _sides(flow, counts: tuple) -> str:
    names = [n for n, k in zip(("client", "server"), counts) if k]
    return " and ".join(names)


def diagnose_flow(flow) -> list[Finding]:
    out: list[Finding] = []
    hs, (c2s, s2c), exs = flow.handshake, flow.dirs, flow.exchanges
    fid = flow.id
    if hs.syn_retransmissions:
        lost = (hs.last_syn_ts - hs.syn_ts) / 1e9
        out.append(Finding(
            SYN_RETRANSMITTED, "error", lost, fid, _ev(flow, E.SYN_SEEN),
            f"The SYN was sent {hs.syn_count} times: the first got no answer, and the "
            f"client waited its initial retransmission timeout (1 s, doubling) before "
            f"trying again - {lost:.2f} s before the connection could even start.",
            "A lost SYN or a full accept queue (server's listen backlog): check the "
            "server's SYN backlog and accept rate (ss -lnt: Recv-Q), and packet loss."))
    if hs.rejected_ts is not None:
        out.append(Finding(
            CONNECTION_REFUSED, "error", (hs.rejected_ts - hs.syn_ts) / 1e9, fid,
            _ev(flow, E.RST_SEEN | E.SYN_SEEN),
            "The server answered the SYN with a RST: nothing listens on that port (or a "
            "firewall rejects it). The request failed at once.",
            "Check that the service is running and listening on that address and port."))
    stalls = exs.stall_totals()  # stall kind -> ns lost, exchanges let go included
    # resends that were needed (a spurious one is not a loss: retrans.py), by trigger
    (rto_c, tlp_c, fast_c), (rto_s, tlp_s, fast_s) = needed(c2s), needed(s2c)
    unconfirmed = sum(d.counts["resent"] - d.counts["resent_lost"] - d.counts["resent_spurious"]
                      for d in flow.dirs)
    unsure = (f" The capture cannot confirm {unconfirmed} of them (no timestamps or SACK to "
              "tell whether the original had arrived)." if unconfirmed else "")
    if rto_c + rto_s:
        lost = (c2s.stall_rto + s2c.stall_rto) / 1e9
        out.append(Finding(
            RTO_STALL, "error", lost, fid,
            _ev(flow, E.RTO_RETRANSMISSION, without=E.SPURIOUS_RESEND),
            f"{rto_c + rto_s} segment(s) sent by the {_sides(flow, (rto_c, rto_s))} were "
            "resent only after the retransmission timer expired (RFC 6298 5): nothing told "
            "the sender of the loss sooner - it was at the tail of a burst, or the probes and "
            f"duplicate ACKs were lost too. The connection sat silent for {lost:.3f} s and the "
            "congestion window restarted from one segment." + unsure,
            "Find the loss (interface drops, a congested link, a policer): ip -s link, "
            "ethtool -S, and the path's queues.", side=_sides(flow, (rto_c, rto_s))))
    if tlp_c + tlp_s:
        lost = (c2s.stall_tlp + s2c.stall_tlp) / 1e9
        out.append(Finding(
            TAIL_LOSS_PROBE, "warn", lost, fid,
            _ev(flow, E.TLP_RESEND, without=E.SPURIOUS_RESEND),
            f"{tlp_c + tlp_s} segment(s) lost at the end of a burst were resent as tail "
            "loss probes (RFC 8985 7): no later segment could trigger duplicate ACKs, so the "
            f"sender waited its probe timeout - {lost:.3f} s in all; about two round trips, "
            "or up to the RTO when one segment was outstanding." + unsure,
            "Some loss is normal; if it recurs, find where packets are dropped.",
            side=_sides(flow, (tlp_c, tlp_s))))
    if fast_c + fast_s:
        out.append(Finding(
            FAST_RETRANSMIT, "warn", (c2s.stall_fast + s2c.stall_fast) / 1e9, fid,
            _ev(flow, E.FAST_RESEND, without=E.SPURIOUS_RESEND),
            f"{fast_c + fast_s} segment(s) were lost and recovered by fast retransmit: "
            "duplicate ACKs or SACK told the sender at once (RFC 5681 3.2, RFC 6675). Each "
            "recovery costs about one round trip and halves the sending rate." + unsure,
            "Some loss is normal; persistent loss means a congested or faulty path.",
            side=_sides(flow, (fast_c, fast_s))))
    sp = [(d.counts["spurious_rto"], d.counts["spurious_tlp"], d.counts["spurious_fast"])
          for d in flow.dirs]
    sp_rto, sp_tlp, sp_fast = (sp[0][i] + sp[1][i] for i in range(3))
    if sp_rto or sp_fast or sp_tlp >= SPURIOUS_TLP_MIN:
        how = ", ".join(f"{n} {w}" for n, w in ((sp_rto, "after a timeout"),
                                                  (sp_tlp, "as tail loss probes"),
                                                  (sp_fast, "as fast retransmits")) if n)
        why = []
        if sp_tlp:
            why.append("the probe timeout (about two round trips) was shorter than the "
                       "receiver's delayed ACK, so the sender probed data that had arrived")
        if sp_rto:
            why.append("ACKs came later than the retransmission timeout (a delay spike on "
                       "the path, or the ACKs were lost), and the sender cut its congestion "
                       "window to one segment for nothing")
        if sp_fast:
            why.append("the path reordered segments and the sender took the duplicate ACKs "
                       "for a loss, halving its congestion window for nothing")
        dsack = sum(d.counts["spurious_dsack"] for d in flow.dirs)
        eifel = sum(d.counts["spurious_eifel"] for d in flow.dirs)
        acked = sum(d.counts["spurious_acked"] for d in flow.dirs)
        out.append(Finding(
            SPURIOUS_RETRANSMISSION, "warn" if sp_rto or sp_fast else "info", 0.0, fid,
            _ev(flow, E.SPURIOUS_RESEND | E.DSACK),
            f"{sp_rto + sp_tlp + sp_fast} resend(s) were not needed ({how}): the original "
            f"had arrived (D-SACK {dsack}, RFC 2883; timestamp echo {eifel}, RFC 3522; already "
            f"acknowledged {acked}). Nothing was lost: " + "; ".join(why) + ".",
            "Nothing to repair on the path's loss. For probes, the receiver's delayed ACK "
            "(quick ACKs, TCP_QUICKACK) or the sender's minimum RTO (ip route ... rto_min) "
            "set the race; for reordering, Linux adapts on its own (RACK, RFC 8985)."))
    late = c2s.counts["late_original"] + s2c.counts["late_original"]
    if late:
        worst = max(c2s.late_max_ns, s2c.late_max_ns) / 1e9
        out.append(Finding(
            REORDERING, "info", 0.0, fid, _ev(flow, E.LATE_ORIGINAL),
            f"{late} segment(s) arrived after segments sent later (up to {worst * 1e3:.1f} ms "
            "late): the path reorders. Nothing was lost; the receiver sent duplicate ACKs, "
            "and a sender whose loss detection does not tolerate reordering (three duplicate "
            "ACKs, RFC 5681) would have resent them and halved its window.",
            "Usually per-packet load balancing (ECMP, bonding) or a multi-queue device; "
            "RACK (RFC 8985, Linux's default) tolerates it."))
    zw = c2s.zero_window_time(flow.last_ts) + s2c.zero_window_time(flow.last_ts)
    if (c2s.zw_events or s2c.zw_events) and zw >= ZERO_WINDOW_MIN_NS:
        who = "client" if c2s.zw_events else "server"
        out.append(Finding(
            ZERO_WINDOW, "error", zw / 1e9, fid, _ev(flow, E.ZERO_WINDOW, 5),
            f"The {who} advertised a zero receive window for {zw / 1e9:.3f} s: its "
            "application stopped reading from the socket, its buffer filled, and the sender "
            "had to stop and probe.",
            f"Look at the {who} application: a slow consumer, a blocked thread, or a receive "
            "buffer too small for the rate."))
    for d, name in ((0, "client -> server"), (1, "server -> client")):
        snd = flow.dirs[d]
        if snd.counts["window_full"] >= WINDOW_FULL_MIN:
            # both SYNs seen and one lacked the option: no scaling (RFC 7323 2.2)
            no_scale = hs.syn_count > 0 and hs.synack_count > 0 and (
                hs.client.wscale is None or hs.server.wscale is None)
            lost = stalls.get("window_full", 0) / 1e9
            frames = _stall_evidence(exs, "window_full")
            out.append(Finding(
                WINDOW_BOUND, "warn", lost, fid, frames,
                f"{name}: bytes in flight reached the receiver's advertised window "
                f"{snd.counts['window_full']} times (flow control, not congestion, limited "
                "the transfer to one window per round trip)"
                + (": window scaling was not negotiated, so the window cannot exceed "
                   "64 KiB (RFC 7323)." if no_scale else "."),
                "Enable window scaling on both ends (net.ipv4.tcp_window_scaling)."
                if no_scale else "Raise the receiver's buffer (SO_RCVBUF / tcp_rmem) or "
                "read faster."))
    h2w = stalls.get("h2_window", 0)
    if h2w >= ZERO_WINDOW_MIN_NS:  # (as a TCP zero window: shorter held nothing up)
        frames = _stall_evidence(exs, "h2_window")
        out.append(Finding(
            H2_FLOW_CONTROL, "warn", h2w / 1e9, fid, frames,
            f"HTTP/2 flow control (RFC 9113 5.2) stopped a sender for {h2w / 1e6:.0f} ms in "
            "all: its window for a stream or for the connection reached zero and it waited "
            "for the receiver's WINDOW_UPDATE - the receiving application read slowly, or "
            "its windows are small, whatever TCP could carry.",
            "Raise the receiver's HTTP/2 windows (SETTINGS_INITIAL_WINDOW_SIZE and the "
            "connection window: e.g. gRPC's initial window / BDP probing), or read faster."))
    for d, side in ((0, "client"), (1, "server")):
        nagle = exs.nagle_ns[d]
        if not nagle:
            continue
        what = "request" if d == 0 else "response"
        frames = _stall_evidence(exs, "nagle")
        out.append(Finding(
            NAGLE_DELAYED_ACK, "warn", nagle / 1e9, fid, frames,
            f"The {side} wrote its {what} in pieces: Nagle's algorithm (RFC 896) held the "
            "next small piece until the first was acknowledged, and the "
            f"{'server' if d == 0 else 'client'} delayed that ACK (RFC 1122 4.2.3.2: 40 ms "
            f"and more) waiting for more data - {nagle / 1e6:.0f} ms lost in all.",
            f"Set TCP_NODELAY on the {side}'s socket, or write each {what} in one call "
            "(buffer the pieces).", side=side))
    if flow.rst_dir >= 0 and hs.rejected_ts is None and (c2s.payload or s2c.payload) \
            and not flow.rst_closing:
        # a RST after a FIN is a close with data still arriving (TLS alerts, a late answer):
        # nothing was cut. A client's RST cuts something only if a request was unanswered
        # (it gave up waiting); a server's, whatever it was doing (RFC 9293 3.5.2)
        by_server = flow.rst_dir == 1
        if by_server or flow.rst_unanswered:
            cur = exs.cur
            waited = ""
            if flow.rst_unanswered and cur is not None and cur.req_end is not None:
                waited = (f" {(flow.life.rst_ts - cur.req_end) / 1e9:.3f} s after request "
                          f"#{cur.index} was sent, unanswered")
            out.append(Finding(
                RST_MIDSTREAM, "error" if by_server else "warn", 0.0, fid,
                _ev(flow, E.RST_SEEN, 3),
                (f"The server aborted the connection with a RST{waited}: a crash, a "
                 "restart, a proxy or load balancer timing out, or an application closing "
                 "with unread data." if by_server else
                 f"The client reset the connection{waited}: it gave up waiting (its "
                 "timeout), or the request was cancelled."),
                "Check both applications' logs at that time, and idle timeouts of "
                "middleboxes." if by_server else "Compare the wait with the client's "
                "timeout; if the server was slow, see its think time.",
                side="server" if by_server else "client"))
    data_segs = max(1, c2s.packets + s2c.packets)  # every segment of the connection
    retx = sum(needed(c2s)) + sum(needed(s2c))
    if retx >= LOSS_MIN and retx / data_segs >= LOSS_RATE:
        out.append(Finding(
            HIGH_RETRANSMISSION, "warn", 0.0, fid,
            _ev(flow, E.RESENT, 5, without=E.SPURIOUS_RESEND),
            f"{retx} of {data_segs} segments ({100 * retx / data_segs:.1f}%) were "
            "resends of lost data (spurious ones not counted): the path is losing packets."
            + unsure,
            "Check interface errors and drops along the path (ip -s link, ethtool -S)."))
    half = _half_open(flow)
    if half is not None:
        out.append(half)
    for ex in exs.items:
        b = breakdown(ex, flow, exs)
        think, total = b["think"], b["total"]
        deadline = float(ex.request.get("deadline") or 0)
        if ex.response.get("grpc_code") == "DEADLINE_EXCEEDED" or (
                deadline > 0 and ex.response.get("rst") == "CANCEL"
                and ex.response.get("rst_by") == "client"
                and float(ex.response.get("rst_after") or 0) >= 0.9 * deadline):
            # (a cancel when the deadline ran out, not before: the client gave up otherwise)
            out.append(Finding(
                DEADLINE_EXCEEDED, "error",
                max(total or 0.0, float(ex.response.get("rst_after") or 0)), fid,
                [(ex.req_first, (ex.req_start or 0) / 1e9)],
                f"The gRPC call {ex.request.get('path', '')} ran out of its "
                f"{deadline * 1e3:.0f} ms deadline "
                "(grpc-timeout): the client gave up"
                + (" and cancelled the stream (RST_STREAM CANCEL)."
                   if ex.response.get("rst") else "; the server answered DEADLINE_EXCEEDED."),
                "See where the time went (the server's think time, or a queue before it); "
                "raise the deadline only if the work really takes that long.",
                exchange=ex.index))
            continue
        if think is not None and total and think >= THINK_MIN_S and think >= THINK_SHARE \
                * total:
            db = ex.proto in ("pgsql", "mysql")
            behind = ex.request.get("behind")
            out.append(Finding(
                SERVER_THINK, "warn", think, fid,
                [(ex.req_last, ex.req_end / 1e9), (ex.resp_first, ex.resp_start / 1e9)],
                (f"The database took {think * 1e3:.0f} ms to answer this query after its last "
                 f"byte arrived (network round trip already taken out): "
                 f"{100 * think / total:.0f}% of it"
                 + (f", queued behind pipelined query #{behind} on the same connection."
                    if behind is not None else ": the server executing it (a small result; "
                    "the rows' transfer is counted apart).") if db else
                 f"The server took {think * 1e3:.0f} ms between the last request byte and "
                 f"the first response byte (network round trip already taken out): "
                 f"{100 * think / total:.0f}% of this exchange."),
                "EXPLAIN ANALYZE the statement; look for locks (pg_locks / SHOW PROCESSLIST) "
                "and missing indexes." if db else
                "Profile the server's handler (database queries, locks, upstream calls).",
                exchange=ex.index))
        ss = _slow_start(ex, b, flow)
        if ss is not None:
            out.append(ss)
    return out


def _slow_start(ex, b: dict, flow) -> Finding | None:
    """A large response early on a connection whose transfer time is explained by slow start's
    round trips: from an initial window of 10 segments (RFC 6928), doubling per RTT
    (RFC 5681 3.1), k rounds deliver 10 * MSS * (2^k - 1) bytes. Cost: (k - 1) RTTs."""
    srtt = flow.dirs[1].rtt.srtt
    mss = flow.handshake.client.mss or 1460
    transfer = b["transfer"]
    if not srtt or transfer is None or ex.index > 1:
        return None
    s2c, c2s = flow.dirs[1], flow.dirs[0]
    if sum(needed(s2c)) or c2s.zw_events \
            or ex.stalls["zero_window"]:
        return None  # loss recovery or a stalled reader shaped this transfer
    rounds = 1
    while INITIAL_WINDOW * mss * ((1 << rounds) - 1) < ex.resp_bytes:
        rounds += 1
    if rounds < SLOW_START_ROUNDS or transfer > (rounds + 2) * srtt:
        return None  # small, or the time went elsewhere (bandwidth, the application)
    lost = (rounds - 1) * srtt
    return Finding(
        SLOW_START, "info", lost, flow.id,
        [(ex.resp_first, ex.resp_start / 1e9), (ex.resp_last, ex.resp_end / 1e9)],
        f"The {ex.resp_bytes / 1024:.0f} KiB response needed {rounds} round trips of slow "
        f"start on a fresh connection (the congestion window starts at {INITIAL_WINDOW} "
        "segments and doubles each round trip, RFC 5681 3.1); the transfer took "
        f"{transfer / srtt:.1f} RTTs.",
        "Reuse warm connections (keep-alive, pooling); for large first responses, a larger "
        "initial window (ip route ... initcwnd) helps.", exchange=ex.index)


def _half_open(flow) -> Finding | None:
    """One side keeps retransmitting and the other never answers until the capture ends."""
    if flow.closed:
        return None
    tail = flow.events.tail(HALF_OPEN_RETRIES)
    if len(tail) < HALF_OPEN_RETRIES or not all(
            m & (E.RTO_RETRANSMISSION | E.TLP_RESEND) for _ts, _n, _d, m in tail):
        return None
    d = tail[-1][2]
    if any(dd != d for _ts, _n, dd, _m in tail) or flow.dirs[1 - d].last_ts > tail[0][0]:
        return None
    lost = (flow.last_ts - tail[0][0]) / 1e9
    return Finding(
        HALF_OPEN, "error", lost, flow.id, [(n, ts / 1e9) for ts, n, _d, _m in tail],
        f"The {'client' if d == 0 else 'server'} keeps retransmitting and the other side "
        "never answers: the peer is gone (crashed, rebooted, or a middlebox dropped the "
        "connection's state) while this side still believes it is open.",
        "Enable TCP keep-alives or application heartbeats, and lower tcp_retries2 or use "
        "TCP_USER_TIMEOUT so dead peers are noticed sooner.")


def _stall_evidence(exs, kind: str) -> list:
    """The first ten (frame, time s) where exchanges stalled for this cause."""
    return [(f, t / 1e9) for ex in exs.items for f, t in ex.evidence.get(kind, [])][:10]


def _requests_and_setup(fl) -> tuple[int, int]:
    """A connection's requests, and the ns its database start-up / handshake took: for
    PostgreSQL and MySQL the start-up exchange and the goodbye (Terminate, COM_QUIT) are not
    requests."""
    exs = fl.exchanges
    if exs.proto not in ("pgsql", "mysql"):
        return exs.count, 0
    n, setup = exs.dropped, 0
    for ex in exs.items:
        kind = ex.request.get("kind")
        if kind in ("startup", "handshake"):
            end = ex.resp_end if ex.resp_end is not None else ex.req_end
            if end is not None and ex.req_start is not None:
                setup += end - ex.req_start
        elif kind not in ("COM_QUIT", "cancel"):
            n += 1
    return n, setup


def diagnose_capture(flows: list) -> list[Finding]:
    """Findings across connections: connection churn (a new connection per request)."""
    groups: dict[tuple, list] = {}
    for fl in flows:
        if fl.handshake.syn_ts is None or fl.handshake.ack_ts is None:
            continue
        groups.setdefault((fl.client[0], fl.server), []).append(fl)
    out = []
    for (_caddr, _server), group in groups.items():
        counted = {fl.id: _requests_and_setup(fl) for fl in group}
        fls = [fl for fl in group if counted[fl.id][0] <= 1]  # one request, then closed
        if len(fls) < CHURN_MIN:
            continue
        cost = sum(fl.handshake.ack_ts - fl.handshake.syn_ts for fl in fls[1:])
        setup = sum(counted[fl.id][1] for fl in fls[1:])
        db = any(fl.exchanges.proto in ("pgsql", "mysql") for fl in fls)
        if db:
            out.append(Finding(
                CONNECTION_CHURN, "warn", (cost + setup) / 1e9, None,
                [(fl.first_num, fl.first_ts / 1e9) for fl in fls[:10]],
                f"{len(fls)} connections from one client to one database, one query each: "
                "every query paid a TCP handshake and the database's start-up and "
                f"authentication ({setup / 1e6 / max(1, len(fls) - 1):.1f} ms each) where a "
                "connection pool would pay them once.",
                "Use a connection pool (the driver's, or PgBouncer / ProxySQL) and keep "
                "connections open between queries.",
                flows=[fl.id for fl in fls]))
            continue
        tls = sum(int(breakdown(fl.exchanges.items[0], fl, fl.exchanges)["tls"] * 1e9)
                  for fl in fls[1:] if fl.exchanges.items
                  and fl.exchanges.tls is not None
                  and breakdown(fl.exchanges.items[0], fl, fl.exchanges)["tls"])
        out.append(Finding(
            CONNECTION_CHURN, "warn", (cost + tls) / 1e9, None,
            [(fl.first_num, fl.first_ts / 1e9) for fl in fls[:10]],
            f"{len(fls)} connections from one client to one server, one request each: every "
            "request paid a new handshake" + (" and TLS handshake" if tls else "")
            + " where one kept-alive connection would pay it once.",
            "Reuse connections: HTTP keep-alive, a connection pool in the client library.",
            flows=[fl.id for fl in fls]))
    return out
