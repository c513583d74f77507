"""Per-segment analysis events: one bit each, named as Wireshark's tcp.analysis.* fields where
Wireshark has the same notion, so that tests can compare frame by frame."""

from typing import Final

# data (or SYN/FIN) below the highest sequence already sent (RFC 9293)
RETRANSMISSION: Final = 1 << 0
FAST_RETRANSMISSION: Final = 1 << 1  # retransmission after >=2 duplicate ACKs (RFC 5681 3.2)
SPURIOUS_RETRANSMISSION: Final = 1 << 2  # retransmitted data that was already acknowledged
OUT_OF_ORDER: Final = 1 << 3  # below the highest sequence, soon after it: reordering, not loss
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
# tcpwatch's own refinements (not Wireshark's):
RTO_RETRANSMISSION: Final = 1 << 16  # retransmitted after the sender's timer ran out (RFC 6298 5)
# a hole the receiver reported (dup-ACK/SACK) being filled (RFC 6675)
SACK_RECOVERY: Final = 1 << 17
# connection control segments, kept in a flow's event timeline (not analysis verdicts):
SYN_SEEN: Final = 1 << 20  # SYN or SYN-ACK (RFC 9293 3.5)
FIN_SEEN: Final = 1 << 21  # the sender has no more data (RFC 9293 3.6)
RST_SEEN: Final = 1 << 22  # the connection is aborted (RFC 9293 3.5.2)

NAMES: Final = {
    RETRANSMISSION: "retransmission", FAST_RETRANSMISSION: "fast_retransmission",
    SPURIOUS_RETRANSMISSION: "spurious_retransmission", OUT_OF_ORDER: "out_of_order",
    LOST_SEGMENT: "lost_segment", ACKED_UNSEEN: "ack_lost_segment",
    DUPLICATE_ACK: "duplicate_ack", ZERO_WINDOW: "zero_window",
    ZERO_WINDOW_PROBE: "zero_window_probe", ZERO_WINDOW_PROBE_ACK: "zero_window_probe_ack",
    KEEP_ALIVE: "keep_alive", KEEP_ALIVE_ACK: "keep_alive_ack",
    WINDOW_UPDATE: "window_update", WINDOW_FULL: "window_full", REUSED_PORTS: "reused_ports",
    RTO_RETRANSMISSION: "rto_retransmission", SACK_RECOVERY: "sack_recovery",
    SYN_SEEN: "syn", FIN_SEEN: "fin", RST_SEEN: "rst",
}


def names(mask: int) -> list[str]:
    return [n for bit, n in NAMES.items() if mask & bit]
