"""Request/response exchanges on one connection, for any TCP protocol: a client data turn
followed by a server data turn is one exchange (RFC 9293 says nothing of messages; this is the
observable turn-taking of request/response protocols). Labelled where apps.py recognises the
protocol. The TLS handshake's turns (RFC 8446 2, RFC 5246 7.3) are not exchanges: they are the
first exchange's "tls" part.

Stalls are recorded in the exchange they happen in:
  rto         the silence before a retransmission sent after the timer ran out (RFC 6298 5)
  fast        one SRTT per segment resent after duplicate ACKs/SACK (RFC 5681 3.2)
  zero_window the time the receiver advertised a zero window (RFC 9293 3.8.6)
  window_full the sender's wait after filling the receiver's window, until it could send again
  nagle       a small segment held back until the peer's (delayed) ACK of the previous one
              (RFC 896 Nagle, RFC 1122 4.2.3.2 delayed ACK): the whole hold, one RTT plus
              the peer's delayed-ACK timer (without Nagle it would have left at once)
Pure: packet times only.
"""

from __future__ import annotations

from typing import Final

from ..capture.record import ACK, PacketRecord
from . import apps
from . import events as E

EXCHANGES_MAX: Final = 1000  # per connection, oldest dropped first (bounded memory)
# a held-back segment waits at least this long (delayed ACK >= 40 ms)
NAGLE_GAP_NS: Final = 10_000_000


class Exchange:
    __slots__ = ("index", "proto", "request", "response", "req_start", "req_end",
                 "req_first", "req_last", "req_bytes", "resp_start", "resp_end", "resp_first",
                 "resp_last", "resp_bytes", "stalls", "evidence", "req_segments")

    def __init__(self, index: int, proto: str, request: dict) -> None:
        self.index = index
        self.proto = proto
        self.request = request
        self.response: dict = {}
        self.req_start: int | None = None
        self.req_end: int | None = None
        self.req_first = self.req_last = 0
        self.req_bytes = 0
        self.req_segments = 0
        self.resp_start: int | None = None
        self.resp_end: int | None = None
        self.resp_first = self.resp_last = 0
        self.resp_bytes = 0
        self.stalls = {"rto": 0, "fast": 0, "zero_window": 0, "window_full": 0, "nagle": 0}
        self.evidence: dict[str, list[tuple[int, int]]] = {}  # cause -> [(frame, time ns)]

    def stall(self, kind: str, ns: int, frame: int, at: int = 0) -> None:
        if ns <= 0:
            return
        self.stalls[kind] += ns
        ev = self.evidence.setdefault(kind, [])
        if len(ev) < 20:
            ev.append((frame, at))


class Exchanges:
    """Fed by Flow.feed after its own trackers, with the new payload bytes of the segment."""

    __slots__ = ("items", "dropped", "cur", "last_data_dir", "last_ts", "last_num",
                 "tls", "tls_turns", "tls_done_ts", "tls_done_num", "zw_since", "wf_since",
                 "small_pending", "last_pure_ack", "count", "proto")

    def __init__(self) -> None:
        self.items: list[Exchange] = []
        self.dropped = 0
        self.count = 0
        self.cur: Exchange | None = None
        self.last_data_dir: int | None = None
        self.last_ts: int | None = None  # previous segment of the connection (any direction)
        self.last_num = 0
        # sni, version, resumed, rtts, client_hello / server_hello time and frame
        self.tls: dict | None = None
        self.tls_turns = 0  # client turns seen since the ClientHello (the hello is turn 0)
        self.tls_done_ts: int | None = None
        self.tls_done_num = 0
        self.zw_since: list = [None, None]  # receiver d advertising zero since (ts)
        self.wf_since: list = [None, None]  # sender d filled the window at (ts, frame)
        self.small_pending: tuple | None = None  # client's last small data segment (ts, end)
        self.last_pure_ack: tuple | None = None  # server's last pure ACK (ts, ack)
        self.proto = ""

    # ---- per segment ----------------------------------------------------------------------
    def on_segment(self, r: PacketRecord, d: int, new: int, m: int, flow) -> None:
        prev_ts = self.last_ts
        # exchange times never go backwards (a capture whose clock steps back): every part of
        # a breakdown stays >= 0
        ts = r.ts if prev_ts is None or r.ts >= prev_ts else prev_ts
        self.last_ts, self.last_num = ts, r.num
        cur = self.cur
        # zero window advertised by the receiver of direction 1-d... i.e. by this sender
        if r.win == 0 and not r.flags & 0x03 and self.zw_since[d] is None:
            self.zw_since[d] = ts
            self.wf_since[1 - d] = None  # the wait is now the zero window's, not counted twice
        elif r.win and self.zw_since[d] is not None:
            if cur is not None:
                cur.stall("zero_window", ts - self.zw_since[d], r.num, ts)
            self.zw_since[d] = None
        if m & (E.RETRANSMISSION | E.SACK_RECOVERY) and cur is not None and prev_ts is not None:
            if m & E.RTO_RETRANSMISSION:
                cur.stall("rto", ts - prev_ts, r.num, ts)
            else:
                srtt = flow.dirs[d].rtt.srtt
                cur.stall("fast", int((srtt or 0) * 1e9), r.num, ts)
        wf = self.wf_since[d]
        if new and wf is not None:
            if cur is not None:
                cur.stall("window_full", ts - wf[0], wf[1], wf[0])
            self.wf_since[d] = None
        if m & E.WINDOW_FULL:
            self.wf_since[d] = (ts, r.num)
        if not new:
            if d == 1 and r.flags & ACK and not r.plen:
                self.last_pure_ack = (ts, r.ack)
            return
        if d == 0:
            self._client_data(r, new, flow)
        else:
            self._server_data(r, new, flow)
        self.last_data_dir = d

    def _client_data(self, r: PacketRecord, new: int, flow) -> None:
        ts: int = self.last_ts  # type: ignore[assignment]  # set by on_segment (r.ts or later)
        new_turn = self.last_data_dir != 0
        if self.tls is None and self.count == 0 and self.cur is None and apps.is_client_hello(
                r.payload):
            self.tls = {"sni": apps.client_hello_sni(r.payload), "version": None,
                        "resumed": None, "rtts": None, "client_hello": ts / 1e9,
                        "client_hello_frame": r.num}
            self.tls_turns = 0
            self.proto = "tls"
            return
        if self.tls is not None and self.tls_done_ts is None:
            if new_turn:
                self.tls_turns += 1
            rtts = self.tls["rtts"] or 2
            if self.tls_turns < rtts:
                return  # still the handshake (e.g. TLS 1.2's ClientKeyExchange/Finished)
            self.tls_done_ts, self.tls_done_num = ts, r.num
            new_turn = True
        cur = self.cur
        if cur is not None and not new_turn and cur.resp_start is None and not cur.proto \
                and cur.req_bytes <= 1 and apps.label_request(r.payload, flow.server[1])[0]:
            # a lone byte opened the turn (a keep-alive probe caught mid-stream): the request
            # proper starts here
            self.items.remove(cur)
            self.count -= 1
            cur = None
        if cur is None or new_turn and (cur.resp_start is not None or cur.req_start is None):
            cur = self._start(r, flow)
        elif self.small_pending is not None and self.last_pure_ack is not None:
            # Nagle: the previous small segment waited for its ACK, which came late (delayed)
            sp_ts, sp_end = self.small_pending
            ack_ts, ack = self.last_pure_ack
            if ack == sp_end and ack_ts >= sp_ts and ts - sp_ts >= NAGLE_GAP_NS \
                    and ts - ack_ts < NAGLE_GAP_NS // 2:
                cur.stall("nagle", ts - sp_ts, r.num, ts)
        if cur.req_start is None:
            cur.req_start, cur.req_first = ts, r.num
        cur.req_end, cur.req_last = ts, r.num
        cur.req_bytes += new
        cur.req_segments += 1
        if cur.proto == "http" and r.payload[:8].split(b" ")[0] in apps.HTTP_METHODS \
                and cur.req_segments > 1:
            cur.request["pipelined"] = cur.request.get("pipelined", 0) + 1
        mss = flow.handshake.server.mss or 1460
        self.small_pending = (ts, (r.seq + r.plen) & 0xFFFFFFFF) if r.plen < mss else None

    def _start(self, r: PacketRecord, flow) -> Exchange:
        proto, req = apps.label_request(r.payload, flow.server[1])
        if self.proto and proto in ("", "tls"):
            proto = self.proto
        elif proto and proto != "tls":
            self.proto = proto
        ex = Exchange(self.count, proto, req)
        self.count += 1
        self.items.append(ex)
        if len(self.items) > EXCHANGES_MAX:
            del self.items[0]
            self.dropped += 1
        self.cur = ex
        self.small_pending = None
        return ex

    def _server_data(self, r: PacketRecord, new: int, flow) -> None:
        ts: int = self.last_ts  # type: ignore[assignment]  # set by on_segment (r.ts or later)
        if self.tls is not None and self.tls_done_ts is None:
            if self.tls["rtts"] is None:
                sh = apps.server_hello(r.payload)
                if sh is not None:
                    self.tls.update(sh)
                    self.tls["server_hello"] = ts / 1e9
                    self.tls["server_hello_frame"] = r.num
            return
        cur = self.cur
        if cur is None:  # the server spoke first (a greeting): an exchange with no request
            proto = self.proto or ("http" if apps.http_response(r.payload) else "")
            cur = Exchange(self.count, proto, {})
            self.count += 1
            self.items.append(cur)
            self.cur = cur
        if cur.resp_start is None:
            cur.resp_start, cur.resp_first = ts, r.num
            cur.response = apps.label_response(cur.proto, r.payload)
        cur.resp_end, cur.resp_last = ts, r.num
        cur.resp_bytes += new
        self.small_pending = None


def _s(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def breakdown(ex: Exchange, flow, exs: Exchanges) -> dict:
    """Where an exchange's time went. The parts add up to `total` (seconds):
      connect  SYN -> the handshake's final ACK (first exchange of a connection only)
      tls      ClientHello -> the first application data (first exchange only)
      wait     the client's own idle time before the request (first exchange only)
      upload   first -> last new request byte
      network  one round trip between the capture point and the server (the part of the
               response wait the network explains: the handshake's server-side RTT, else the
               SRTT of client->server data)
      think    last request byte -> first response byte, minus `network`: the server's time
      transfer first -> last new response byte
    `stalls` (inside those parts, not added): time lost to RTO waits, fast-retransmit
    recovery, zero window, a full window and Nagle meeting delayed ACK (see module doc)."""
    hs = flow.handshake
    first = ex.index == 0 and ex.req_start is not None
    req_start = ex.req_start if ex.req_start is not None else 0  # read only when `first`
    start = ex.req_start if ex.req_start is not None else ex.resp_start
    connect = tls = wait = 0
    if first and hs.syn_ts is not None and hs.ack_ts is not None \
            and hs.syn_ts <= hs.ack_ts <= ex.req_start:
        start = hs.syn_ts
        connect = hs.ack_ts - hs.syn_ts
        pre = req_start - hs.ack_ts
        if exs.tls is not None and exs.tls_done_ts is not None:
            tls = min(pre, max(0, exs.tls_done_ts - int(exs.tls["client_hello"] * 1e9)))
        wait = pre - tls
    elif first and exs.tls is not None and exs.tls_done_ts is not None:
        ch = int(exs.tls["client_hello"] * 1e9)
        start = ch
        tls = req_start - ch
    upload = (ex.req_end - ex.req_start) if ex.req_start is not None and ex.req_end is not None \
        else 0
    network = think = transfer = None
    if ex.resp_start is not None:
        resp_end = ex.resp_end if ex.resp_end is not None else ex.resp_start  # set together
        transfer = resp_end - ex.resp_start
        if ex.req_end is not None:
            gap = max(0, ex.resp_start - ex.req_end)
            rtt = None
            if hs.synack_ts is not None and hs.last_syn_ts is not None \
                    and hs.synack_ts >= hs.last_syn_ts:
                rtt = hs.synack_ts - hs.last_syn_ts
            elif flow.dirs[0].rtt.srtt is not None:
                rtt = int(flow.dirs[0].rtt.srtt * 1e9)
            network = min(gap, rtt or 0)
            think = gap - network
        end = ex.resp_end
    else:
        end = ex.req_end
    total = end - start if start is not None and end is not None else None
    out = {
        "total": _s(total), "connect": _s(connect) if first else None,
        "tls": _s(tls) if first and exs.tls is not None else None,
        "wait": _s(wait) if first else None, "upload": _s(upload),
        "network": _s(network), "think": _s(think), "transfer": _s(transfer),
        "stalls": {k: v / 1e9 for k, v in ex.stalls.items() if v},
    }
    return out


def exchange_summary(ex: Exchange, flow, exs: Exchanges) -> dict:
    keep_alive = None
    if ex.proto == "http" and ex.request.get("method"):
        # HTTP/1.1 keeps the connection unless either side says "Connection: close";
        # HTTP/1.0 closes it (RFC 9112 9.3)
        keep_alive = ex.request.get("version") == "HTTP/1.1" and not (
            ex.request.get("close") or ex.response.get("close"))
    return {
        "index": ex.index,
        "protocol": ex.proto or None,  # http | tls | redis | dns | None (unrecognised)
        "keep_alive": keep_alive,
        "request": ex.request,  # protocol fields (strings from the wire)
        "response": ex.response,
        "request_start": _s(ex.req_start), "request_end": _s(ex.req_end),
        "response_start": _s(ex.resp_start), "response_end": _s(ex.resp_end),
        "request_frames": [ex.req_first, ex.req_last] if ex.req_start is not None else None,
        "response_frames": [ex.resp_first, ex.resp_last] if ex.resp_start is not None
        else None,
        "request_bytes": ex.req_bytes, "response_bytes": ex.resp_bytes,
        "breakdown": breakdown(ex, flow, exs),
        "stall_frames": {k: [f for f, _t in v] for k, v in ex.evidence.items()},
    }
