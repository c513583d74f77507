"""Per-segment analysis events: one bit each. The first group is named as Wireshark's
tcp.analysis.* fields and follows Wireshark's rules exactly, so that tests can compare frame
by frame; the second is tcpwatch's own reading of the same segments, from the RFCs (flow.py
explains each class), which the counters, the timeline and the diagnosis use."""

from typing import Final

# ---- Wireshark's tcp.analysis flags (its rules, for frame-by-frame comparison) ------------
# data (or SYN/FIN) below the highest sequence already sent (RFC 9293)
RETRANSMISSION: Final = 1 << 0
FAST_RETRANSMISSION: Final = 1 << 1  # retransmission after >=2 duplicate ACKs (RFC 5681 3.2)
SPURIOUS_RETRANSMISSION: Final = 1 << 2  # retransmitted data that was already acknowledged
OUT_OF_ORDER: Final = 1 << 3  # below the highest sequence, soon after it (Wireshark's timing)
LOST_SEGMENT: Final = 1 << 4  # above the expected sequence: an earlier segment was not captured
ACKED_UNSEEN: Final = 1 << 5  # acknowledges data the capture never saw
DUPLICATE_ACK: Final = 1 << 6  # same ACK, window and sequence as before, no data (RFC 5681 2)
ZERO_WINDOW: Final = 1 << 7  # advertises a zero receive window (RFC 9293 3.8.6.1)
ZERO_WINDOW_PROBE: Final = 1 << 8  # 1 byte past a zero window (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17)
ZERO_WINDOW_PROBE_ACK: Final = 1 << 9  # the receiver's answer to a zero-window probe
KEEP_ALIVE: Final = 1 << 10  # 0/1 byte at snd.nxt-1 (RFC 1122 4.2.3.6)
KEEP_ALIVE_ACK: Final = 1 << 11  # the answer to a keep-alive
WINDOW_UPDATE: Final = 1 << 12  # pure ACK that only changes the window
WINDOW_FULL: Final = 1 << 13  # data that fills the peer's advertised window to its right edge
REUSED_PORTS: Final = 1 << 14  # a SYN with a new ISN on a 4-tuple seen before

# ---- tcpwatch's classification (flow.py) ---------------------------------------------------
# a resend, by what made the sender send it again:
RTO_RETRANSMISSION: Final = 1 << 16  # its retransmission timer expired (RFC 6298 5)
# the receiver had reported the hole (dup ACKs, SACK: RFC 5681 3.2, RFC 6675, RFC 8985 6)
FAST_RESEND: Final = 1 << 17
TLP_RESEND: Final = 1 << 18  # a tail loss probe: the highest segment resent at the PTO (RFC 8985 7)
# ... and its verdict, which may come later (an ACK after it): the original had arrived
SPURIOUS_RESEND: Final = 1 << 19  # D-SACK (RFC 2883, RFC 3708), Eifel (RFC 3522) or already ACKed
# connection control segments, kept in a flow's event timeline (not analysis verdicts):
SYN_SEEN: Final = 1 << 20  # SYN or SYN-ACK (RFC 9293 3.5)
FIN_SEEN: Final = 1 << 21  # the sender has no more data (RFC 9293 3.6)
RST_SEEN: Final = 1 << 22  # the connection is aborted (RFC 9293 3.5.2)
LATE_ORIGINAL: Final = 1 << 23  # an original sent before segments seen earlier: reordering
AMBIGUOUS: Final = 1 << 24  # below snd_nxt: a late original or a resend, the capture cannot tell
# a zero-window probe, 1 byte or Linux's snd_una-1 form (RFC 9293 3.8.6.1)
WINDOW_PROBE: Final = 1 << 25
DSACK: Final = 1 << 26  # an ACK reporting a duplicate segment received (RFC 2883)
# the same IP datagram seen again (same sequence and IPv4 identification, RFC 791 / RFC 6864):
# duplicated by the network or the capture (a SPAN port), not sent again by TCP
DUPLICATE_FRAME: Final = 1 << 27

RESENT: Final = RTO_RETRANSMISSION | FAST_RESEND | TLP_RESEND  # any tcpwatch resend

NAMES: Final = {
    RETRANSMISSION: "retransmission", FAST_RETRANSMISSION: "fast_retransmission",
    SPURIOUS_RETRANSMISSION: "spurious_retransmission", OUT_OF_ORDER: "out_of_order",
    LOST_SEGMENT: "lost_segment", ACKED_UNSEEN: "ack_lost_segment",
    DUPLICATE_ACK: "duplicate_ack", ZERO_WINDOW: "zero_window",
    ZERO_WINDOW_PROBE: "zero_window_probe", ZERO_WINDOW_PROBE_ACK: "zero_window_probe_ack",
    KEEP_ALIVE: "keep_alive", KEEP_ALIVE_ACK: "keep_alive_ack",
    WINDOW_UPDATE: "window_update", WINDOW_FULL: "window_full", REUSED_PORTS: "reused_ports",
    RTO_RETRANSMISSION: "rto_resend", FAST_RESEND: "fast_resend", TLP_RESEND: "tlp_resend",
    SPURIOUS_RESEND: "spurious_resend", LATE_ORIGINAL: "late_original",
    AMBIGUOUS: "ambiguous_order", WINDOW_PROBE: "window_probe", DSACK: "dsack",
    DUPLICATE_FRAME: "duplicate_frame",
    SYN_SEEN: "syn", FIN_SEEN: "fin", RST_SEEN: "rst",
}


def names(mask: int) -> list[str]:
    return [n for bit, n in NAMES.items() if mask & bit]
