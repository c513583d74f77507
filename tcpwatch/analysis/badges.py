"""Problem badges shown beside a connection: each a short tag, a severity and a first-principles
explanation (the help screen renders EXPLAIN). One definition per badge, computed from the
trackers only."""

from __future__ import annotations

from typing import Final

from .diagnosis import BADGE, Finding, diagnose_flow
from .flow import Flow

ERROR: Final = "error"
WARN: Final = "warn"
INFO: Final = "info"

# tag: (severity, one-line meaning, what it costs a request, with its RFC)
BADGES: dict[str, tuple[str, str, str]] = {
    "FLOOD": (ERROR, "half-open attempts",
              "Many SYNs to this server got no answer (Zeek state S0): a SYN flood, a port "
              "scan, or a server whose accept queue overflows (RFC 4987). Each attempt holds "
              "a half-open slot until it times out; clients see connect timeouts of 1 s, "
              "3 s, 7 s... (RFC 6298 5.5). Filter state:S0 to list them."),
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
    "TLP": (WARN, "tail loss probe",
            "The last segment of a burst was lost; with no later segment to trigger duplicate "
            "ACKs, the sender probed after about two round trips (RFC 8985 7) - a short "
            "stall instead of a full retransmission timeout."),
    "SPUR": (INFO, "spurious retransmission",
             "A resend was not needed: the original had arrived (D-SACK RFC 2883, timestamps "
             "RFC 3522). Nothing was lost; a timeout or reordering fooled the sender, which "
             "then cut its congestion window for nothing."),
    "OOO": (INFO, "reordering",
            "Segments arrived after segments sent later (timestamps and timing prove they were "
            "originals, not resends): the path reorders. Nothing was lost."),
    "RETX": (WARN, "retransmissions",
             "Segments were lost and resent after duplicate ACKs or SACK (fast retransmit, "
             "RFC 5681 3.2, RFC 2018): costs about one RTT each and halves the sending rate."),
    "ZWIN": (ERROR, "zero window",
             "A receiver advertised a zero receive window (RFC 9293 3.8.6): its application "
             "stopped reading, and the sender must wait, probing, until it reads again."),
    "H2WIN": (WARN, "HTTP/2 flow control",
              "An HTTP/2 sender waited on a zero flow-control window (RFC 9113 5.2): the "
              "receiver's application window, not TCP's, held the stream until its "
              "WINDOW_UPDATE. Small initial windows cap a stream at one window per round "
              "trip whatever the path could carry."),
    "DEADL": (ERROR, "gRPC deadline exceeded",
              "A gRPC call ran out of its deadline (the grpc-timeout header): the client gave "
              "up, cancelling the stream, or the server answered DEADLINE_EXCEEDED. The work "
              "behind it may still run on the server."),
    "DUP": (INFO, "duplicate ACKs",
            "A receiver repeated the same ACK because a segment was missing or reordered "
            "(RFC 5681 2); three in a row trigger fast retransmit."),
    "RST": (ERROR, "reset after data",
            "The connection was aborted with a RST after data flowed (RFC 9293 3.5.2): a "
            "crash, a timeout in a proxy, or an application closing with unread data."),
    "NOWS": (WARN, "window scaling off",
             "Window scaling was not negotiated (RFC 7323 2), so the window cannot exceed 64 KiB "
             "and the sender filled it: throughput is capped at 64 KiB per RTT."),
    "WNDB": (WARN, "window-bound transfer",
             "Bytes in flight kept reaching the receiver's advertised window: flow control "
             "(RFC 9293 3.8.6), not the network, set the pace - one window per round trip."),
    "NAGLE": (WARN, "Nagle meets delayed ACK",
              "A request written in pieces: Nagle's algorithm (RFC 896) held the second piece "
              "until the first was ACKed, and the peer delayed that ACK (RFC 1122 4.2.3.2): "
              "typically 40 ms lost per request."),
    "SS": (INFO, "slow start",
           "A large response on a fresh connection took several round trips because the "
           "congestion window starts small and doubles per RTT (RFC 5681 3.1)."),
    "THINK": (WARN, "server think time",
              "Most of the exchange was the server working between the last request byte and "
              "the first response byte (the network round trip already taken out)."),
    "LOSS": (WARN, "high retransmission rate",
             "At least 2% of the segments were retransmissions: the path loses packets."),
    "HALF": (ERROR, "half-open",
             "One side keeps retransmitting into silence: the peer is gone but this side "
             "still believes the connection is open (RFC 9293 3.5.2)."),
    "CHURN": (WARN, "connection churn",
              "A new connection for every request to the same server: each one pays the "
              "handshake (and TLS) again, where keep-alive would pay it once."),
    "GAP": (INFO, "capture gap",
            "The capture missed segments (data acknowledged or sequence jumps it never saw): "
            "counts for this connection are lower bounds. Not a network problem."),
}

SEVERITY_ORDER: Final = {ERROR: 0, WARN: 1, INFO: 2}


def flow_badges(f: Flow, findings: list[Finding] | None = None) -> tuple[str, ...]:
    """The badges that apply to a connection, most severe first: its diagnosis (diagnosis.py;
    `findings` when already made) plus two facts that are not delays (duplicate ACKs, capture
    gaps). The one definition: the dashboard's column, the report's filter and JSON."""
    if findings is None:
        findings = diagnose_flow(f)
    out = {BADGE[x.kind] for x in findings}
    c2s, s2c = f.dirs
    cc, sc = c2s.counts, s2c.counts
    if cc["duplicate_ack"] + sc["duplicate_ack"] >= 3:
        out.add("DUP")
    if cc["lost_segment"] + sc["lost_segment"] + cc["ack_lost_segment"] + sc["ack_lost_segment"]:
        out.add("GAP")
    return tuple(sorted(out, key=lambda b: (SEVERITY_ORDER[BADGES[b][0]], b)))
