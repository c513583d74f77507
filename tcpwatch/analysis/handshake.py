"""The three-way handshake (RFC 9293 3.5): times, the initial RTT and its two halves, and the
options each side offered (MSS RFC 9293 3.7.1, window scale RFC 7323 2, SACK-permitted
RFC 2018, timestamps RFC 7323 3)."""

from __future__ import annotations

from ..capture.record import ACK, RST, SYN, PacketRecord


class SideOptions:
    __slots__ = ("mss", "wscale", "sack_perm", "timestamps")

    def __init__(self) -> None:
        self.mss: int | None = None
        self.wscale: int | None = None
        self.sack_perm = False
        self.timestamps = False

    def take(self, r: PacketRecord) -> None:
        self.mss, self.wscale = r.mss, r.wscale
        self.sack_perm, self.timestamps = r.sack_perm, r.tsval is not None

    def as_dict(self) -> dict:
        return {"mss": self.mss, "window_scale": self.wscale, "sack_permitted": self.sack_perm,
                "timestamps": self.timestamps}


class Handshake:
    __slots__ = ("syn_ts", "last_syn_ts", "syn_count", "synack_ts", "synack_count", "ack_ts",
                 "irtt_ns", "client", "server", "rejected_ts", "syn_num", "synack_num",
                 "ack_num")

    def __init__(self) -> None:
        self.syn_ts: int | None = None  # first SYN
        self.last_syn_ts: int | None = None  # most recent SYN (after SYN retransmissions)
        self.syn_count = 0
        self.synack_ts: int | None = None  # first SYN-ACK
        self.synack_count = 0
        self.ack_ts: int | None = None  # the first non-SYN ACK after a SYN
        self.irtt_ns: int | None = None
        self.client = SideOptions()
        self.server = SideOptions()
        self.rejected_ts: int | None = None  # RST answering a SYN (connection refused)
        self.syn_num = self.synack_num = self.ack_num = 0

    def on_packet(self, r: PacketRecord, from_client: bool, duplicate: bool = False) -> None:
        """`duplicate`: the same datagram seen again (flow.py): not a SYN sent again."""
        f = r.flags
        if f & SYN:
            if f & ACK:
                if not duplicate:
                    self.synack_count += 1
                if self.synack_ts is None:
                    self.synack_ts, self.synack_num = r.ts, r.num
                    self.server.take(r)
            else:
                if not duplicate:
                    self.syn_count += 1
                if self.syn_ts is None:
                    self.syn_ts, self.syn_num = r.ts, r.num
                    self.client.take(r)
                self.last_syn_ts = r.ts
        elif f & ACK and self.ack_ts is None and self.last_syn_ts is not None:
            # iRTT as Wireshark defines tcp.analysis.initial_rtt: the first ACK without SYN,
            # minus the most recent SYN
            self.ack_ts, self.ack_num = r.ts, r.num
            if r.ts >= self.last_syn_ts:  # a clock stepping back gives no iRTT
                self.irtt_ns = r.ts - self.last_syn_ts
        if (f & RST and not from_client and self.syn_ts is not None and self.synack_ts is None
                and self.rejected_ts is None):
            self.rejected_ts = r.ts

    @property
    def syn_retransmissions(self) -> int:
        return max(0, self.syn_count - 1)

    def as_dict(self, t0: int) -> dict:
        def rel(t: int | None) -> float | None:
            return None if t is None else (t - t0) / 1e9

        to_server = to_client = None
        if self.synack_ts is not None and self.last_syn_ts is not None \
                and self.synack_ts >= self.last_syn_ts:
            to_server = (self.synack_ts - self.last_syn_ts) / 1e9
        if self.ack_ts is not None and self.synack_ts is not None \
                and self.ack_ts >= self.synack_ts:
            to_client = (self.ack_ts - self.synack_ts) / 1e9
        return {
            "syn_time": rel(self.syn_ts), "synack_time": rel(self.synack_ts),
            "ack_time": rel(self.ack_ts),
            "irtt": None if self.irtt_ns is None else self.irtt_ns / 1e9,
            # capture point -> server -> capture point, and capture point -> client -> back
            "irtt_server_side": to_server, "irtt_client_side": to_client,
            "syn_count": self.syn_count, "syn_retransmissions": self.syn_retransmissions,
            "synack_count": self.synack_count, "rejected": self.rejected_ts is not None,
            "client_options": self.client.as_dict(), "server_options": self.server.as_dict(),
        }
