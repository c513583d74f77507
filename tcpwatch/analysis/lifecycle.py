"""Connection lifecycle in Zeek's vocabulary: endpoint states, `conn_state` and `history`.

conn_state values (Zeek base/protocols/conn):
  S0 attempt, no reply | S1 established, not terminated | SF normal establishment and
  termination | REJ attempt rejected | S2 established, originator closed, no reply |
  S3 established, responder closed, no reply | RSTO originator aborted | RSTR responder
  aborted | RSTOS0 originator SYN then RST, no SYN-ACK | RSTRH responder SYN-ACK then RST,
  no SYN | SH originator SYN then FIN, no SYN-ACK | SHR responder SYN-ACK then FIN, no SYN |
  OTH no SYN, midstream traffic.
history letters (originator upper case, responder lower case), each recorded the first time it
happens: S SYN, H SYN-ACK, A pure ACK, D data, F FIN, R RST, T retransmission, G gap (segment
not captured), W zero window, ^ roles guessed (no SYN seen; see table.py).
"""

from __future__ import annotations

from typing import Final

from ..capture.record import ACK, FIN, RST, SYN

# endpoint states (Zeek's TCP_* endpoint states, RFC 9293 3.3.2 in spirit)
INACTIVE: Final = 0
SYN_SENT: Final = 1
SYN_ACK_SENT: Final = 2
PARTIAL: Final = 3
ESTABLISHED: Final = 4
CLOSED: Final = 5
RESET: Final = 6

CONN_STATES: Final = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                      "SH", "SHR", "OTH")


class Lifecycle:
    __slots__ = ("state", "history", "seen", "fin_ts", "rst_ts", "fin_by", "rst_by",
                 "payload_bytes")

    def __init__(self, guessed_roles: bool) -> None:
        self.state = [INACTIVE, INACTIVE]  # [originator, responder]
        self.history: list[str] = ["^"] if guessed_roles else []
        self.seen = 0  # history letters already recorded: bit (letter - "A") + 26 * direction
        self.fin_ts: int | None = None
        self.rst_ts: int | None = None
        self.fin_by: list[bool] = [False, False]
        self.rst_by: list[bool] = [False, False]
        self.payload_bytes = [0, 0]

    def mark(self, letter: str, d: int) -> None:
        """Record an upper-case history letter for direction d, the first time only."""
        bit = 1 << (ord(letter) - 65 + 26 * d)
        if not self.seen & bit:
            self.seen |= bit
            self.history.append(letter if d == 0 else letter.lower())

    def on_packet(self, flags: int, plen: int, d: int, ts: int) -> None:
        st = self.state
        o = 1 - d
        self.payload_bytes[d] += plen
        if flags & SYN:
            if flags & ACK:
                self.mark("H", d)
                if st[d] in (INACTIVE, PARTIAL):
                    st[d] = SYN_ACK_SENT
            else:
                self.mark("S", d)
                if st[d] in (INACTIVE, PARTIAL):
                    st[d] = SYN_SENT
        if flags & RST:
            self.mark("R", d)
            st[d] = RESET
            self.rst_by[d] = True
            if self.rst_ts is None:
                self.rst_ts = ts
            return
        if not flags & SYN:
            if plen:
                self.mark("D", d)
            elif flags & ACK and not flags & FIN:
                self.mark("A", d)
            if st[d] == INACTIVE:
                st[d] = PARTIAL
            if flags & ACK and (st[d] in (SYN_SENT, SYN_ACK_SENT) or
                                st[o] in (SYN_SENT, SYN_ACK_SENT)):
                # the handshake completed: whoever was mid-handshake is now established
                for e in (d, o):
                    if st[e] in (SYN_SENT, SYN_ACK_SENT):
                        st[e] = ESTABLISHED
            if st[d] == PARTIAL and st[o] in (ESTABLISHED, CLOSED):
                st[d] = ESTABLISHED
        if flags & FIN:
            self.mark("F", d)
            if st[d] != RESET:
                st[d] = CLOSED
            self.fin_by[d] = True
            if self.fin_ts is None:
                self.fin_ts = ts

    def conn_state(self, orig_bytes: int, resp_bytes: int) -> str:
        """Zeek's conn_state() over the endpoint states."""
        os_, rs = self.state
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        hist = "".join(self.history)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                    os_ == RESET and orig_bytes == 0 and resp_bytes == 0 and "h" not in hist
                    and "S" in hist):
                return "REJ"
            if o_inactive:
                return "RSTRH" if "h" in hist and "S" not in hist else "RSTR"
            return "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if "S" in hist and "h" not in hist else "RSTO"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive and "S" in hist else "S2" if not r_inactive else "OTH"
        if rs == CLOSED:
            return "SHR" if o_inactive and "h" in hist else "S3" if not o_inactive else "OTH"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    @property
    def closed(self) -> bool:
        """True once the connection is over: both FINs, or a RST."""
        return self.rst_ts is not None or (self.fin_by[0] and self.fin_by[1])
