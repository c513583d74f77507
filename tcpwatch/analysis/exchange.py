"""Request/response exchanges on one connection, for any TCP protocol: a client data turn
followed by a server data turn is one exchange (RFC 9293 says nothing of messages; this is the
observable turn-taking of request/response protocols). Labelled where apps.py recognises the
protocol. The TLS handshake's turns (RFC 8446 2, RFC 5246 7.3) are not exchanges: they are the
first exchange's "tls" part.

Stalls are recorded in the exchange they happen in (resends by flow.py, which takes the
charge back when a resend proves spurious: it cost nothing):
  rto         the silence before a resend sent when the timer ran out (RFC 6298 5)
  tlp         the silence before a tail loss probe that repaired a loss (RFC 8985 7)
  fast        one SRTT per segment resent after duplicate ACKs/SACK (RFC 5681 3.2)
  zero_window the time the receiver advertised a zero window (RFC 9293 3.8.6)
  window_full the sender's wait after filling the receiver's window, until it could send again
  nagle       a small segment held back until the peer's delayed ACK of the previous one
              (RFC 896 Nagle, RFC 1122 4.2.3.2 delayed ACK), on either side: the whole hold
              (without Nagle it would have left at once)
  h2_window   an HTTP/2 sender blocked on a zero flow-control window (RFC 9113 5.2) until
              the WINDOW_UPDATE that reopened it: the application's window, not TCP's

PostgreSQL, MySQL and HTTP/2 are followed message by message (sqlwire.py, h2streams.py) rather
than turn by turn: their parsers open and finish the exchanges (m_open .. m_done).
Pure: packet times only.
"""

from __future__ import annotations

from typing import Any, Final

from ..capture.record import ACK, PacketRecord
from . import apps, h2, sqlwire
from . import events as E
from .budget import SHARED, Budget
from .h2streams import H2App
from .handshake import Handshake

# a held-back segment waits at least this long (delayed ACK >= 40 ms)
NAGLE_GAP_NS: Final = 10_000_000
# the ACK that releases it came this much later than the path explains: the receiver's
# delayed-ACK timer (RFC 1122 4.2.3.2; 40 ms at least on Linux, 200 ms on Windows)
DELAYED_ACK_MIN_NS: Final = 20_000_000
STALL_KINDS: Final = ("rto", "tlp", "fast", "zero_window", "window_full", "nagle",
                      "h2_window")
HOLD_MAX: Final = 65536  # bytes of a segment held past a hole (one per direction)
MYSQL_PORT: Final = 3306  # IANA; a MySQL connection picked up mid-stream is trusted only here


class Exchange:
    __slots__ = ("index", "proto", "request", "response", "req_start", "req_end",
                 "req_first", "req_last", "req_bytes", "resp_start", "resp_end", "resp_first",
                 "resp_last", "resp_bytes", "stalls", "evidence", "req_segments", "counted")

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
        self.stalls = {k: 0 for k in STALL_KINDS}
        self.evidence: dict[str, list[tuple[int, int]]] = {}  # cause -> [(frame, time ns)]
        self.counted = False  # handed to the requests' groups (requests.py)

    def stall(self, kind: str, ns: int, frame: int, at: int = 0) -> None:
        if ns <= 0:
            return
        self.stalls[kind] += ns
        ev = self.evidence.setdefault(kind, [])
        if len(ev) < 20:
            ev.append((frame, at))

    def unstall(self, kind: str, ns: int, frame: int) -> None:
        """Take back a charge (a resend that proved spurious cost nothing)."""
        self.stalls[kind] = max(0, self.stalls[kind] - ns)
        ev = self.evidence.get(kind)
        if ev:
            self.evidence[kind] = [x for x in ev if x[0] != frame]
            if not self.evidence[kind]:
                del self.evidence[kind]


class Exchanges:
    """Fed by Flow.feed after its own trackers, with the new payload bytes of the segment."""

    __slots__ = ("items", "dropped", "cur", "last_data_dir", "last_ts", "last_num",
                 "tls", "tls_turns", "tls_done_ts", "tls_done_num", "zw_since", "wf_since",
                 "small_pending", "last_pure_ack", "count", "proto", "nagle_ns", "max_seg",
                 "budget", "retired_stalls", "sink", "app", "app_next", "app_note", "greeting",
                 "app_flip", "app_dead", "app_held")

    def __init__(self, budget: Budget = SHARED) -> None:
        self.items: list[Exchange] = []  # the newest, within the budget's share (budget.py)
        self.dropped = 0
        self.budget = budget
        # where finished exchanges go (requests.Requests, set by the flow table), or None
        self.sink: Any = None
        # stall time by cause of the exchanges let go: the diagnosis's totals stay whole
        self.retired_stalls: dict[str, int] = {}
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
        # per sender d: its last small data segment of the turn (ts, end, frame), and the last
        # pure ACK of its data by the peer (ts, ack)
        self.small_pending: list = [None, None]
        self.last_pure_ack: list = [None, None]
        self.nagle_ns = [0, 0]  # time lost to Nagle x delayed ACK, client's and server's sends
        self.max_seg = [0, 0]  # the largest payload each side has sent
        self.proto = ""
        # a message-level parser (sqlwire.PgConn / MyConn, h2streams.H2App) once the
        # protocol is recognised: it opens and finishes the exchanges itself (m_open ...
        # m_done), several at once if the protocol pipelines or multiplexes
        self.app: Any = None
        self.app_next: list = [None, None]  # next in-order sequence number per direction
        self.app_note = ""  # why the parser could not follow some of the bytes
        # 1: the parser's client is the flow's server (roles guessed from ports, wrongly:
        # a connection picked up mid-stream whose requests come from the "server" side)
        self.app_flip = 0
        self.app_dead = False  # the parser failed on bytes it did not expect: it stopped
        # per direction, a segment that came past a hole, held for one more segment: the
        # hole is often filled by the next (reordering), and then nothing was lost
        self.app_held: list = [None, None]
        # the server's first segment when it spoke first (seq, bytes, ts, frame): an HTTP/2
        # server may send its SETTINGS before the client's preface arrives
        self.greeting: tuple | None = None

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
        wf = self.wf_since[d]
        if new and wf is not None:
            if cur is not None:
                cur.stall("window_full", ts - wf[0], wf[1], wf[0])
            self.wf_since[d] = None
        if m & E.WINDOW_FULL:
            self.wf_since[d] = (ts, r.num)
        if not new:
            if r.flags & ACK and not r.plen:
                self.last_pure_ack[1 - d] = (ts, r.ack)
            elif r.plen and self.app is not None and self.app_held[d] is not None:
                # below the highest sequence seen, so nothing "new" to the flow: it may fill
                # the hole a held segment waits on (the parser keeps its own byte order)
                self._app_data(r, d, ts, flow)
            return
        self.small_pending[1 - d] = None  # the other side spoke: a new turn for it
        if self.app is None and (self.count == 0 or self.last_data_dir != d) \
                and self.tls is None and not self.app_dead:
            self._recognise(r, d, flow)
        if self.app is not None:
            if self.cur is not None and self.last_data_dir == d:
                self._nagle(r, d, ts, flow, self.cur)  # the same turn going on
            self._app_data(r, d, ts, flow)
        elif d == 0:
            self._client_data(r, new, flow)
        else:
            self._server_data(r, new, flow)
        self.last_data_dir = d
        if r.plen > self.max_seg[d]:
            self.max_seg[d] = r.plen
        if r.plen < self._mss(flow.handshake, d):
            # what the receiver's window allowed beyond it (RFC 9293 3.8.6): a next segment
            # past that waited for the window, not for Nagle
            snd, rcv = flow.dirs[d], flow.dirs[1 - d]
            room = (snd.snd_una + rcv.wnd_last) & 0xFFFFFFFF \
                if snd.snd_una is not None and rcv.wnd_last is not None else -1
            self.small_pending[d] = (ts, (r.seq + r.plen) & 0xFFFFFFFF, r.num, room)
        else:
            self.small_pending[d] = None

    # ---- message-level protocols ---------------------------------------------------------
    def _recognise(self, r: PacketRecord, d: int, flow) -> None:
        """PostgreSQL, MySQL or HTTP/2 from the first bytes of a connection, or of a turn
        when the connection was picked up later (then only from shapes that are hard to
        mistake: whole PostgreSQL query messages, a MySQL command on MySQL's port)."""
        p = r.payload
        first = self.count == 0 and self.cur is None
        app: Any = None
        if d == 0:
            spoke = self.max_seg[0] > 0  # the client sent data before this segment
            if first and sqlwire.pg_startup(p):
                app = sqlwire.PgConn(self, flow, startup=True)
            elif not spoke and (h2.looks_like_h2_preface(p) or h2.is_h2c_upgrade(p)):
                app = H2App(self, flow)
            elif self.proto in ("", "pgsql") and sqlwire.pg_query_segment(p):
                app = sqlwire.PgConn(self, flow, startup=False)
                self.app_note = "picked up after its start-up"
            elif not self.proto and h2.looks_like_h2_frames(p):
                # HTTP/2 without its start: the header blocks need the HPACK table built since
                # the preface (RFC 7541 2.3.2), so the streams cannot be told apart or named
                self.proto = "http2"
                self.app_note = ("picked up mid-connection: HPACK context unknown, requests "
                                 "are its turns, unlabelled")
                self.app_dead = True  # nothing more to look for
                return
            elif self.proto in ("", "mysql") and flow.server[1] == MYSQL_PORT \
                    and sqlwire.my_command_segment(p):
                app = sqlwire.MyConn(self, flow)
                app.state = "command"
                self.app_note = "picked up after its handshake: capabilities unknown"
        elif first and sqlwire.my_greeting(p):
            app = sqlwire.MyConn(self, flow)
        elif flow.handshake.syn_ts is None and self.proto in ("", "pgsql") \
                and sqlwire.pg_query_segment(p):
            # no SYN: the roles came from the ports, and the queries say otherwise
            app = sqlwire.PgConn(self, flow, startup=False)
            self.app_flip = 1
            self.app_note = ("picked up after its start-up; its client is the side taken for "
                             "the server (no SYN seen: roles guessed from the ports)")
        if app is None:
            return
        self.app = app
        self.proto = app.name
        cur = self.cur
        gr = self.greeting
        if cur is not None and cur.req_start is None and gr is not None and cur.index == 0:
            # the server's greeting, taken for an exchange: the parser reads it instead
            self.items.remove(cur)
            self.count -= 1
            self.app_next[1] = gr[0]
            self._app_seg(1, gr[0], len(gr[1]), gr[1], gr[2], gr[3], True)
        elif cur is not None and not cur.counted and self.sink is not None:
            self.sink.finished(flow, cur)  # what the turns made of it before
        self.greeting = None
        self.cur = None

    def _app_data(self, r: PacketRecord, d: int, ts: int, flow) -> None:
        """Hand the parser this segment's bytes in order: what it has not had yet, and say
        which bytes it will never have (a hole the capture missed, payload cut by the snap
        length)."""
        self._app_seg(d, r.seq, r.plen, r.payload, ts, r.num, self.last_data_dir != d)

    def _app_seg(self, d: int, seq: int, plen: int, p: bytes, ts: int, num: int,
                 turn: bool) -> None:
        """The parser's part, never the analysis' end: bytes from the wire it did not expect
        stop the parser for this connection (said in app_note), nothing else."""
        if self.app_dead:
            return
        try:
            self._app_seg_in(d, seq, plen, p, ts, num, turn)
        except Exception as e:  # noqa: BLE001 - untrusted bytes
            self.app_dead = True
            self.app_note = f"the {self.proto} parser stopped at frame {num}: " \
                            f"{type(e).__name__}"

    def _app_seg_in(self, d: int, seq: int, plen: int, p: bytes, ts: int, num: int,
                    turn: bool) -> None:
        held = self.app_held[d]
        if held is None:
            nxt = self.app_next[d]
            if nxt is not None and ((nxt - seq) & 0xFFFFFFFF) >= 0x80000000 \
                    and plen <= HOLD_MAX:
                # past a hole: wait one segment for it to be filled
                self.app_held[d] = (seq, plen, p, ts, num, turn)
                return
            self._app_one(d, seq, plen, p, ts, num, turn)
            return
        self.app_held[d] = None
        if ((held[0] - seq) & 0xFFFFFFFF) < 0x80000000:  # this one first (it fills the hole)
            self._app_one(d, seq, plen, p, ts, num, turn)
            self._app_one(d, held[0], held[1], held[2], held[3], held[4], held[5])
        else:
            self._app_one(d, held[0], held[1], held[2], held[3], held[4], held[5])
            self._app_one(d, seq, plen, p, ts, num, turn)

    def _app_one(self, d: int, seq: int, plen: int, p: bytes, ts: int, num: int,
                 turn: bool) -> None:
        app = self.app
        if app is None:
            return
        nxt = self.app_next[d]
        ad = d ^ self.app_flip  # the direction as the parser sees it
        if nxt is None:
            nxt = seq
        off = (nxt - seq) & 0xFFFFFFFF
        if off >= 0x80000000:  # starts past what came before: a hole
            app.gap(ad, (seq - nxt) & 0xFFFFFFFF)
            off = 0
        elif off >= plen:
            return  # all of it came before
        kept = len(p)
        if off < kept:
            app.data(ad, p[off:] if off else p, ts, num, turn)
        lost = app.lost_note
        if kept < plen:
            app.gap(ad, plen - (off if off > kept else kept))
            if app.lost_note and app.lost_note != lost:
                app.lost_note = f"payload cut by the capture's snap length ({app.lost_note})"
        self.app_next[d] = (seq + plen) & 0xFFFFFFFF
        if app.lost_note:
            self.app_note = app.lost_note
        handoff = app.handoff
        if handoff:  # encrypted from here: back to the turns, labelled TLS
            self.app = None
            self.app_dead = True  # and never looked for again
            self.app_note = handoff
            self.proto = "tls"
            self.cur = None
            self.last_data_dir = None

    def still_open(self) -> list:
        """The message parser's exchanges still in flight (pipelined queries, open HTTP/2
        streams): counted as they stand when the connection ends (requests.py)."""
        return [] if self.app is None else self.app.open_exchanges()

    def m_open(self, flow, proto: str, request: dict, ts: int, frame: int) -> Exchange:
        """A request the parser found, starting at (ts, frame)."""
        prev = self.cur
        if prev is not None and prev.proto == proto and prev.req_start is not None \
                and not prev.counted and proto in ("pgsql", "mysql"):
            request["behind"] = prev.index  # pipelined: sent before the previous was answered
        ex = Exchange(self.count, proto, request)
        self.count += 1
        self._keep(ex)
        ex.req_start, ex.req_first = ts, frame
        ex.req_end, ex.req_last = ts, frame
        self.cur = ex
        if self.sink is not None:
            self.sink.started(flow)
        return ex

    def m_req(self, ex: Exchange, ts: int, frame: int, nbytes: int) -> None:
        if ex.resp_start is None:
            if ex.req_start is None:
                ex.req_start, ex.req_first = ts, frame
            ex.req_end, ex.req_last = ts, frame
            ex.req_segments += 1
        ex.req_bytes += nbytes
        self.cur = ex

    def m_resp(self, ex: Exchange, ts: int, frame: int, nbytes: int,
               fields: dict | None = None) -> None:
        if ex.resp_start is None:
            ex.resp_start, ex.resp_first = ts, frame
        ex.resp_end, ex.resp_last = ts, frame
        ex.resp_bytes += nbytes
        if fields:
            ex.response.update(fields)
        self.cur = ex

    def m_done(self, flow, ex: Exchange) -> None:
        """The parser saw the end of this exchange's answer: it is counted now."""
        if self.sink is not None:
            self.sink.finished(flow, ex)

    def _mss(self, hs: Handshake, d: int) -> int:
        """The largest segment sender d may send: the smaller MSS option of the handshake
        (RFC 9293 3.7.1: the peer's bound, and its own link's), less the timestamp option
        (RFC 7323 3); without a handshake, the largest it has sent (at least 536)."""
        c, s = hs.client.mss, hs.server.mss
        if c and s:
            m = c if c < s else s
        elif c:
            m = c
        elif s:
            m = s
        else:
            return max(self.max_seg[d], 536)
        return m - (12 if hs.client.timestamps and hs.server.timestamps else 0)

    def _nagle(self, r: PacketRecord, d: int, ts: int, flow, cur: Exchange) -> None:
        """Nagle's algorithm (RFC 896, RFC 9293 3.7.4) holds a small segment while an earlier
        small one is unacknowledged; the peer may delay that ACK (RFC 1122 4.2.3.2). Seen from
        the wire: sender d's previous small segment of this turn, the peer's pure ACK of
        exactly it coming late (more than the path explains, by a delayed-ACK timer), and this
        segment leaving as soon as that ACK could reach the sender. The whole hold is lost."""
        sp, pa = self.small_pending[d], self.last_pure_ack[d]
        if sp is None or pa is None:
            return
        sp_ts, sp_end, _num, room = sp
        ack_ts, ack = pa
        if ack != sp_end or ack_ts < sp_ts or ts - sp_ts < NAGLE_GAP_NS:
            return
        end = (r.seq + r.plen) & 0xFFFFFFFF
        if r.plen >= self._mss(flow.handshake, d):
            return  # Nagle never holds a full-sized segment (RFC 1122 4.2.3.4)
        if room >= 0 and 0 < ((end - room) & 0xFFFFFFFF) < 0x80000000:
            return  # past the receiver's window: flow control held it
        to_peer = flow._sender_rtt(1 - d)  # capture point -> peer -> capture point
        to_me = flow._sender_rtt(d)  # capture point -> this sender -> capture point
        if ack_ts - sp_ts - to_peer < DELAYED_ACK_MIN_NS:
            return  # the ACK was not held: Nagle alone costs one round trip, no more
        if ts - ack_ts > to_me + NAGLE_GAP_NS // 2 + to_me // 4:
            return  # it left later than the ACK explains: the application wrote it late
        cur.stall("nagle", ts - sp_ts, r.num, ts)
        self.nagle_ns[d] += ts - sp_ts

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
            cur = self.cur = None
        if cur is None or new_turn and (cur.resp_start is not None or cur.req_start is None):
            cur = self._start(r, flow)
        else:
            self._nagle(r, 0, ts, flow, cur)
        if cur.req_start is None:
            cur.req_start, cur.req_first = ts, r.num
        cur.req_end, cur.req_last = ts, r.num
        cur.req_bytes += new
        cur.req_segments += 1
        if cur.proto == "http" and r.payload[:8].split(b" ")[0] in apps.HTTP_METHODS \
                and cur.req_segments > 1:
            cur.request["pipelined"] = cur.request.get("pipelined", 0) + 1

    def _keep(self, ex: Exchange) -> None:
        self.items.append(ex)
        cap = self.budget.exchanges_cap
        if len(self.items) > cap + (cap >> 2) + 1:  # amortized: let go a share at a time
            self.fit(cap)

    def fit(self, cap: int) -> None:
        """Keep the newest `cap` exchanges (the current one always), adding the stall time
        of those let go to retired_stalls."""
        items = self.items
        n = len(items) - max(1, cap)
        if n <= 0:
            return
        ret = self.retired_stalls
        for ex in items[:n]:
            for k, v in ex.stalls.items():
                if v:
                    ret[k] = ret.get(k, 0) + v
        del items[:n]
        self.dropped += n

    def unstall(self, ex: Exchange, kind: str, ns: int, frame: int) -> None:
        """Take back a charge (a spurious resend), from the totals if ex was let go."""
        if self.items and ex.index < self.items[0].index:
            ret = self.retired_stalls
            ret[kind] = max(0, ret.get(kind, 0) - min(ns, ex.stalls[kind]))
        ex.unstall(kind, ns, frame)

    def stall_totals(self) -> dict[str, int]:
        """Stall time by cause over every exchange, kept or let go (ns)."""
        out = dict(self.retired_stalls)
        for ex in self.items:
            for k, v in ex.stalls.items():
                out[k] = out.get(k, 0) + v
        return out

    def _start(self, r: PacketRecord, flow) -> Exchange:
        proto, req = apps.label_request(r.payload, flow.server[1])
        if self.proto and proto in ("", "tls"):
            proto = self.proto
        elif proto and proto != "tls":
            self.proto = proto
        ex = Exchange(self.count, proto, req)
        self.count += 1
        self._keep(ex)
        prev, self.cur = self.cur, ex
        self.small_pending[0] = None
        sink = self.sink
        if sink is not None:
            if prev is not None:
                sink.finished(flow, prev)
            sink.started(flow)
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
            if self.count == 0:
                self.greeting = (r.seq, r.payload[:4096], ts, r.num)
            proto = self.proto or ("http" if apps.http_response(r.payload) else "")
            cur = Exchange(self.count, proto, {})
            self.count += 1
            self._keep(cur)
            self.cur = cur
            if self.sink is not None:
                self.sink.started(flow)
        if cur.resp_start is None:
            cur.resp_start, cur.resp_first = ts, r.num
            cur.response = apps.label_response(cur.proto, r.payload)
            self.small_pending[1] = None
        else:
            self._nagle(r, 1, ts, flow, cur)
        cur.resp_end, cur.resp_last = ts, r.num
        cur.resp_bytes += new


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
