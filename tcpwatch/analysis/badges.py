"""Problem badges shown beside a connection: each a short tag, a severity and a first-principles
explanation (the help screen renders EXPLAIN). One definition per badge, computed from the
trackers only."""

from __future__ import annotations

from .flow import Flow

ERROR, WARN, INFO = "error", "warn", "info"

# tag: (severity, one-line meaning, what it costs a request, with its RFC)
BADGES: dict[str, tuple[str, str, str]] = {
    "REJ": (ERROR, "connection refused",
            "The server answered the SYN with a RST: nothing listens on that port, or a "
            "firewall rejects it (RFC 9293 3.10.7.1). The request fails at once."),
    "SYN+": (WARN, "SYN retransmitted",
             "The first SYN got no answer and was sent again after the initial retransmission "
             "timeout of 1 s (RFC 6298 2.1): a lost SYN or a full accept queue. Every "
             "retransmitted SYN adds 1 s, then 2 s, 4 s... to connect time."),
    "RTO": (ERROR, "retransmission timeout",
            "Data was resent only after the sender's timer ran out (RFC 6298 5): no duplicate "
            "ACKs told it earlier. The connection sat idle for at least one RTO (200 ms on "
            "Linux, 1 s by the RFC) and the congestion window restarts from one segment."),
    "RETX": (WARN, "retransmissions",
             "Segments were lost and resent after duplicate ACKs or SACK (fast retransmit, "
             "RFC 5681 3.2, RFC 2018): costs about one RTT each and halves the sending rate."),
    "ZWIN": (ERROR, "zero window",
             "A receiver advertised a zero receive window (RFC 9293 3.8.6): its application "
             "stopped reading, and the sender must wait, probing, until it reads again."),
    "DUP": (INFO, "duplicate ACKs",
            "A receiver repeated the same ACK because a segment was missing or reordered "
            "(RFC 5681 2); three in a row trigger fast retransmit."),
    "RST": (ERROR, "reset after data",
            "The connection was aborted with a RST after data flowed (RFC 9293 3.5.2): a "
            "crash, a timeout in a proxy, or an application closing with unread data."),
    "NOWS": (WARN, "window scaling off",
             "Window scaling was not negotiated (RFC 7323 2), so the window cannot exceed 64 KiB "
             "and the sender filled it: throughput is capped at 64 KiB per RTT."),
    "GAP": (INFO, "capture gap",
            "The capture missed segments (data acknowledged or sequence jumps it never saw): "
            "counts for this connection are lower bounds. Not a network problem."),
}

SEVERITY_ORDER = {ERROR: 0, WARN: 1, INFO: 2}


def flow_badges(f: Flow) -> tuple[str, ...]:
    """The badges that apply to a connection, most severe first."""
    c2s, s2c = f.dirs
    out = []
    hs = f.handshake
    if hs.rejected_ts is not None:
        out.append("REJ")
    if hs.syn_retransmissions:
        out.append("SYN+")
    cc, sc = c2s.counts, s2c.counts
    if cc["rto_retransmission"] or sc["rto_retransmission"]:
        out.append("RTO")
    retx = cc["retransmission"] + sc["retransmission"] + cc["ooo_resent"] + sc["ooo_resent"]
    if retx > cc["rto_retransmission"] + sc["rto_retransmission"]:
        out.append("RETX")
    if c2s.zw_events or s2c.zw_events:
        out.append("ZWIN")
    if cc["duplicate_ack"] + sc["duplicate_ack"] >= 3:
        out.append("DUP")
    life = f.life
    if life.rst_ts is not None and hs.rejected_ts is None and (c2s.payload or s2c.payload):
        out.append("RST")
    if (c2s.win_scale == 0 and s2c.win_scale == 0
            and (cc["window_full"] or sc["window_full"])):
        out.append("NOWS")
    if cc["lost_segment"] + sc["lost_segment"] + cc["ack_lost_segment"] + sc["ack_lost_segment"]:
        out.append("GAP")
    out.sort(key=lambda b: SEVERITY_ORDER[BADGES[b][0]])
    return tuple(out)
