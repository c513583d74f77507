"""HTTP/2 streams as exchanges: h2.H2Conn's events (one connection's frames) turned into one
exchange per stream, timed independently however the streams interleave (RFC 9113 5): the
request from its first HEADERS to END_STREAM, the response from its first HEADERS to
END_STREAM (or RST_STREAM), and the time a sender sat on a zero flow-control window as the
stream's "h2_window" stall. gRPC (application/grpc) streams are labelled "grpc", with the
status from the trailers."""

from __future__ import annotations

from typing import Any, Final

from .h2 import H2Conn

GRPC_CODES: Final = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                     "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                     "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                     "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")  # grpc/codes


class H2App:
    __slots__ = ("name", "conn", "exs", "flow", "streams", "blocked", "lost_note", "goaway",
                 "handoff")

    def __init__(self, exs: Any, flow: Any) -> None:
        self.name = "http2"
        self.conn = H2Conn()
        self.exs = exs
        self.flow = flow
        self.streams: dict[int, Any] = {}  # stream id -> its exchange, while open
        self.blocked: dict[tuple[int, int], int] = {}  # (stream, sender) -> blocked since
        self.lost_note = ""
        self.goaway: dict = {}
        self.handoff = ""  # (never: HTTP/2 in the clear stays so; see sqlwire.WireConn)

    def open_exchanges(self) -> list:
        """Streams still open (to be counted as they are if the connection ends)."""
        return [ex for ex in self.streams.values() if not ex.counted]

    def data(self, d: int, b: bytes, ts: int, frame: int, turn: bool) -> None:
        self.conn.feed(d, b, ts, frame)
        self._events()

    def gap(self, d: int, nbytes: int) -> None:
        self.conn.gap(d, nbytes)
        self._events()

    def _events(self) -> None:
        exs, streams = self.exs, self.streams
        for ev in self.conn.take():
            kind = ev[0]
            if kind == "open":
                _k, sid, ts, frame, fields = ev
                proto = "grpc" if "grpc-service" in fields else "http2"
                req = {"method": fields.get("method", ""), "path": fields.get("path", ""),
                       "authority": fields.get("authority", ""), "stream": sid}
                if proto == "grpc":
                    req["service"] = fields.get("grpc-service", "")
                    req["rpc"] = fields.get("grpc-method", "")
                    ns = fields.get("grpc-timeout-ns")
                    if isinstance(ns, int) and ns > 0:
                        req["deadline"] = ns / 1e9
                if len(streams) < 4096:
                    streams[sid] = exs.m_open(self.flow, proto, req, ts, frame)
            elif kind == "req_end":
                ex = streams.get(ev[1])
                if ex is not None:
                    exs.m_req(ex, ev[2], ev[3], 0)
            elif kind == "data":
                _k, sid, d, ts, frame, n = ev
                ex = streams.get(sid)
                if ex is not None:
                    if d == 0:
                        exs.m_req(ex, ts, frame, n)
                    else:
                        exs.m_resp(ex, ts, frame, n)
            elif kind == "resp":
                ex = streams.get(ev[1])
                if ex is not None:
                    exs.m_resp(ex, ev[2], ev[3], 0, {"status": ev[4].get("status", 0)})
            elif kind == "resp_end":
                _k, sid, ts, frame, fields = ev
                ex = streams.pop(sid, None)
                if ex is not None:
                    out: dict = {}
                    if "grpc-status" in fields:
                        raw = fields["grpc-status"]
                        if isinstance(raw, int):
                            out["grpc_status"] = raw
                            out["grpc_code"] = GRPC_CODES[raw] if 0 <= raw < len(GRPC_CODES) \
                                else str(raw)
                        else:  # not a number: shown as sent (escaped by the UI), an error
                            out["grpc_code"] = str(raw)[:40] or "?"
                        if fields.get("grpc-message"):
                            out["grpc_message"] = str(fields["grpc-message"])[:200]
                    exs.m_resp(ex, ts, frame, 0, out)
                    self._close(ex, sid, ts, frame)
            elif kind == "rst":
                _k, sid, d, ts, frame, rcode = ev
                ex = streams.pop(sid, None)
                if ex is not None:
                    ex.response["rst"] = rcode
                    ex.response["rst_by"] = "client" if d == 0 else "server"
                    # how long after the request began (a cancel at the deadline, or not)
                    ex.response["rst_after"] = (ts - (ex.req_start or ts)) / 1e9
                    if d == 1:
                        exs.m_resp(ex, ts, frame, 0)
                    self._close(ex, sid, ts, frame)
            elif kind == "goaway":
                _k, d, ts, frame, last_sid, gacode, _debug = ev
                self.goaway = {"by": "client" if d == 0 else "server", "last_stream": last_sid,
                               "error": gacode}
                if gacode != "NO_ERROR":
                    for sid in [s for s in streams if s > last_sid]:
                        ex = streams.pop(sid)
                        ex.response["goaway"] = gacode
                        self._close(ex, sid, ts, frame)
            elif kind == "blocked":
                _k, sid, d, ts, _frame = ev
                self.blocked.setdefault((sid, d), ts)
            elif kind == "unblocked":
                _k, sid, d, ts, frame = ev
                since = self.blocked.pop((sid, d), None)
                if since is not None:
                    ex = streams.get(sid) if sid else exs.cur
                    if ex is not None:
                        ex.stall("h2_window", ts - since, frame, since)
            elif kind == "lost":
                self.lost_note = f"HTTP/2 {'client' if ev[1] == 0 else 'server'} side: {ev[2]}"

    def _close(self, ex: Any, sid: int, ts: int, frame: int) -> None:
        for key in [k for k in self.blocked if k[0] == sid]:
            since = self.blocked.pop(key)
            ex.stall("h2_window", ts - since, frame, since)
        self.exs.m_done(self.flow, ex)
