"""Requests across connections: every finished exchange (exchange.py) is counted once, into
groups that answer "which requests are slow, where, and why":

  service   the server endpoint and the protocol (10.0.0.5:8080 http)
  endpoint  a service's kind of request: HTTP method and route template (numeric, UUID and
            hex path segments become {id}, the query string dropped), Redis command, DNS
            query type, TLS server name (encrypted: the request itself is not visible)
  ...       any grouping the caller adds by a function of the connection (the dashboard's
            local processes, monitor.py)

Each group keeps its count, errors (HTTP 5xx, a RESP error, a DNS rcode other than NOERROR,
a RST inside the exchange), bytes, new connections (exchanges that were the first on their
connection: churn), time lost by cause (the exchange's stalls and the server's think time,
named as the diagnosis names them), and the distribution of total, think and network time in
DDSketch quantile sketches (relative accuracy ACCURACY: the value returned for quantile q is
within 1% of the sample of rank q; mergeable, memory bounded by the range of values, not by
their number). Totals over the whole capture, and for the last 10 s and 60 s in BUCKET_NS
steps. The number of groups of each kind is capped; the rest add up in an "other" row.

An exchange is finished when the next one starts on its connection (Exchanges._start hands it
here), when it was answered and its connection then stayed quiet for QUIET_NS, or when the
connection is closed, evicted or the capture ends (settle()). Pure: times come from packets only.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final

from ddsketch import DDSketch  # type: ignore

from ..capture.record import fmt_addr
from .diagnosis import BADGE, THINK_MIN_S, THINK_SHARE
from .exchange import Exchange, breakdown

ACCURACY: Final = 0.01  # DDSketch relative accuracy (1%)
BUCKET_NS: Final = 5_000_000_000  # the sliding windows move in 5 s steps
WINDOWS_S: Final = (10, 60)  # the windows offered beside the whole capture
QUIET_NS: Final = 1_000_000_000  # an exchange quiet this long (capture time) is finished
MAX_GROUPS: Final = {"service": 256, "endpoint": 1024}  # per kind; the rest: "other"
OTHER_MAX: Final = 256  # groups of a kind added by the caller (processes)
RECENT_MAX: Final = 5000  # the newest finished requests kept for the Requests view
LABEL_MAX: Final = 120  # characters of a label from the wire
OTHER: Final = "other"
SERVED: Final = "served"  # group kinds the caller adds: the local process that answered,
SENT: Final = "sent"  # ... and the one that asked (monitor.py, report/run.py)

# stall kinds (exchange.py) -> the diagnosis that explains them (diagnosis.py)
STALL_KIND: Final = {"rto": "rto_stall", "tlp": "tail_loss_probe", "fast": "fast_retransmit",
                     "zero_window": "zero_window", "window_full": "window_bound",
                     "nagle": "nagle_delayed_ack", "h2_window": "h2_flow_control"}

_SEGMENT_ID = re.compile(
    r"^(\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,})$")


def route_template(path: str) -> str:
    """/users/42/orders/9f1c2e3d4b5a?x=1 -> /users/{id}/orders/{id}: the query string and
    fragment dropped; numeric, UUID and hex (8+ digits) segments become {id}."""
    for sep in ("?", "#"):
        cut = path.find(sep)
        if cut >= 0:
            path = path[:cut]
    if not path.startswith("/"):
        return path[:LABEL_MAX]  # an absolute URI (a proxy request) or "*"
    parts = ["{id}" if _SEGMENT_ID.match(p) else p for p in path.split("/")]
    return "/".join(parts)[:LABEL_MAX]


def endpoint_label(ex: Exchange, sni: str | None) -> str:
    """What kind of request this is, within its service."""
    q = ex.request
    if ex.proto == "http" and q.get("method"):
        return f"{q['method']} {route_template(str(q.get('path', '')))}"[:LABEL_MAX]
    if ex.proto == "redis" and q.get("command"):
        return str(q["command"])[:LABEL_MAX]
    if ex.proto == "dns":
        return f"query {q.get('qtype', '?')}"
    if ex.proto == "tls":
        return f"TLS {sni}"[:LABEL_MAX] if sni else "TLS (no server name)"
    if ex.proto in ("pgsql", "mysql"):
        kind = str(q.get("kind", ""))
        if kind in ("startup", "handshake", "cancel"):
            return kind
        fp = q.get("fingerprint")
        return str(fp)[:LABEL_MAX] if fp else kind or ex.proto
    if ex.proto == "grpc":
        return str(q.get("path", ""))[:LABEL_MAX]
    if ex.proto == "http2" and q.get("method"):
        return f"{q['method']} {route_template(str(q.get('path', '')))}"[:LABEL_MAX]
    return "(unrecognised)" if not ex.proto else ex.proto


def request_text(ex: Exchange) -> str:
    """The request as one line: method and path, command, query name and type."""
    q = ex.request
    if ex.proto == "http" and q.get("method"):
        return f"{q['method']} {q.get('path', '')}"[:LABEL_MAX]
    if ex.proto == "redis" and q.get("command"):
        return str(q["command"])
    if ex.proto == "dns" and q.get("query"):
        return f"{q['query']} {q.get('qtype', '')}".strip()[:LABEL_MAX]
    if ex.proto in ("pgsql", "mysql"):
        if q.get("query"):
            return " ".join(str(q["query"]).split())[:LABEL_MAX]
        if q.get("kind") in ("startup", "handshake"):
            return f"{q['kind']} {q.get('user', '')}".strip()[:LABEL_MAX]
        return str(q.get("command", q.get("kind", "")))[:LABEL_MAX]
    if ex.proto in ("http2", "grpc") and q.get("method"):
        return f"{q['method']} {q.get('path', '')}"[:LABEL_MAX]
    return ""


def result_of(ex: Exchange, reset: bool) -> tuple[str, bool]:
    """(what the server answered, whether it is an error)."""
    a = ex.response
    if reset:
        return "RST", True
    if ex.proto == "http" and "status" in a:
        st = int(a["status"])
        return str(st), st >= 500
    if ex.proto == "redis" and a.get("reply"):
        if a["reply"] == "error":
            return f"-{a.get('error', 'ERR')}"[:LABEL_MAX], True
        return str(a["reply"]), False
    if ex.proto == "dns" and a.get("rcode"):
        return str(a["rcode"]), a["rcode"] != "NOERROR"
    if ex.proto == "pgsql" and a:
        if a.get("sqlstate"):  # ErrorResponse: severity and SQLSTATE (Appendix A)
            return f"{a.get('severity', 'ERROR')} {a['sqlstate']}", True
        if a.get("result"):
            return str(a["result"])[:LABEL_MAX], False
        return str(a.get("tag") or a.get("auth") or a.get("status", "")), False
    if ex.proto == "mysql" and a:
        if a.get("result") == "ERR":
            return f"ERR {a.get('error_code', '')} {a.get('sqlstate', '')}".strip(), True
        if a.get("result") == "resultset":
            return f"{a.get('rows', 0)} rows", False
        if a.get("result") == "OK" and "affected_rows" in a:
            return f"OK {a['affected_rows']}", False
        return str(a.get("result", "")), False
    if ex.proto == "grpc" and "grpc_code" in a:
        return str(a["grpc_code"]), a["grpc_code"] != "OK"
    if ex.proto in ("http2", "grpc") and (a.get("rst") or a.get("goaway")):
        return f"RST_STREAM {a['rst']}" if a.get("rst") else f"GOAWAY {a['goaway']}", True
    if ex.proto in ("http2", "grpc") and a.get("status"):
        st = int(a["status"])
        return str(st), st >= 500
    if ex.resp_start is None:
        return "no answer", False
    return "", False


def _endpoint(ep: tuple, ipv: int) -> str:
    a = fmt_addr(ep[0])
    return f"[{a}]:{ep[1]}" if ipv == 6 else f"{a}:{ep[1]}"


class Sample:
    """One finished request, as the Requests view lists it."""

    __slots__ = ("flow", "index", "start", "service", "endpoint", "proto", "request",
                 "result", "error", "total", "network", "think", "transfer", "stalls",
                 "cause", "lost", "bytes", "new_conn", "client", "groups")

    def __init__(self) -> None:
        self.flow = 0
        self.index = 0
        self.start = 0.0  # epoch seconds
        self.service = ""
        self.endpoint = ""
        self.proto = ""
        self.request = ""
        self.result = ""
        self.error = False
        self.total = 0.0  # seconds
        self.network: float | None = None
        self.think: float | None = None
        self.transfer: float | None = None
        self.stalls = 0.0  # seconds lost inside the parts (stalls)
        self.cause = ""  # the diagnosis kind that cost it most ("" none)
        self.lost = 0.0
        self.bytes = 0
        self.new_conn = False
        self.client = ""
        self.groups: dict[str, str] = {}  # kind -> group name, for the caller's kinds


class Group:
    """The numbers of one service, endpoint or process."""

    __slots__ = ("kind", "name", "service", "proto", "n", "errors", "bytes", "new_conns",
                 "lost", "total", "think", "network", "max", "buckets", "first", "last")

    def __init__(self, kind: str, name: str, service: str = "", proto: str = "") -> None:
        self.kind = kind
        self.name = name
        self.service = service  # an endpoint's service ("" for the others)
        self.proto = proto
        self.n = 0
        self.errors = 0
        self.bytes = 0
        self.new_conns = 0
        self.lost: dict[str, float] = {}  # diagnosis kind -> seconds lost
        self.total = DDSketch(relative_accuracy=ACCURACY)
        self.think = DDSketch(relative_accuracy=ACCURACY)
        self.network = DDSketch(relative_accuracy=ACCURACY)
        self.max = 0.0
        # the sliding windows: (bucket start ns, sketch of total, count, errors), newest last
        self.buckets: deque = deque(maxlen=max(WINDOWS_S) * 1_000_000_000 // BUCKET_NS + 1)
        self.first = 0.0
        self.last = 0.0

    def add(self, s: Sample, at_ns: int) -> None:
        self.n += 1
        self.errors += s.error
        self.bytes += s.bytes
        self.new_conns += s.new_conn
        self.total.add(s.total)
        if s.think is not None:
            self.think.add(s.think)
        if s.network is not None:
            self.network.add(s.network)
        self.max = max(self.max, s.total)
        if s.cause:
            self.lost[s.cause] = self.lost.get(s.cause, 0.0) + s.lost
        b = at_ns - at_ns % BUCKET_NS
        bk = self.buckets
        if not bk or bk[-1][0] < b:
            bk.append([b, DDSketch(relative_accuracy=ACCURACY), 0, 0])
        cur = bk[-1] if bk[-1][0] == b else next((x for x in bk if x[0] == b), None)
        if cur is not None:  # (an exchange older than the newest bucket but still kept)
            cur[1].add(s.total)
            cur[2] += 1
            cur[3] += s.error
        if not self.first:
            self.first = s.start
        self.last = max(self.last, s.start + s.total)

    def window(self, now_ns: int, seconds: int | None) -> tuple[DDSketch | None, int, int]:
        """(sketch of total time, requests, errors) of the last `seconds` (None: all)."""
        if seconds is None:
            return self.total, self.n, self.errors
        lo = now_ns - seconds * 1_000_000_000
        sk: DDSketch | None = None
        n = err = 0
        for start, b, cnt, e in self.buckets:
            if start + BUCKET_NS <= lo:
                continue
            if sk is None:
                sk = DDSketch(relative_accuracy=ACCURACY)
            sk.merge(b)
            n += cnt
            err += e
        return sk, n, err

    def row(self, now_ns: int, seconds: int | None = None) -> dict:
        """The group's numbers (report JSON, the dashboard's rows)."""
        sk, n, err = self.window(now_ns, seconds)
        top = self.max

        def q(p: float, sketch: DDSketch | None = sk) -> float | None:
            if sketch is None or sketch.count == 0:
                return None
            v = sketch.get_quantile_value(p)
            # a bucket's value is within ACCURACY of the sample; never past the exact ends
            return None if v is None else min(max(0.0, float(v)), top)

        recent, _n10, _e10 = self.window(now_ns, WINDOWS_S[0])
        cause = max(self.lost.items(), key=lambda kv: kv[1], default=("", 0.0))
        return {
            "name": self.name, "service": self.service or None, "protocol": self.proto or None,
            "requests": n, "errors": err,
            "requests_per_s": (recent.count if recent is not None else 0) / WINDOWS_S[0],
            "p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
            "max": self.max if seconds is None else q(1.0),
            "think_p50": q(0.5, self.think), "network_p50": q(0.5, self.network),
            "bytes": self.bytes,
            "new_connections": self.new_conns,
            "churn": self.new_conns / self.n if self.n else 0.0,
            "cause": cause[0] or None, "badge": BADGE.get(cause[0]) if cause[0] else None,
            "lost": cause[1],
        }


class Requests:
    """The finished requests of a flow table, grouped (see the module's text)."""

    __slots__ = ("groups", "recent", "extra", "pending", "counted", "last_ns")

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Group]] = {k: {} for k in MAX_GROUPS}
        self.recent: deque[Sample] = deque(maxlen=RECENT_MAX)
        # kind -> function(flow) -> group name: groupings added by the caller (processes)
        self.extra: dict = {}
        self.pending: dict[int, bool] = {}  # ids of connections whose current exchange is open
        self.counted = 0
        self.last_ns = 0

    def add_kind(self, kind: str, name_of) -> None:
        self.extra[kind] = name_of
        self.groups.setdefault(kind, {})

    # ---- hand-over from the connections -----------------------------------------------
    def started(self, flow) -> None:
        """A new exchange began on this connection (it may finish quietly: settle()). Only
        its id is kept: the connections hold this object, so holding them would be a
        reference cycle (the cyclic collector is paused while a file is read)."""
        self.pending[flow.id] = True

    def finished(self, flow, ex: Exchange, reset: bool = False) -> None:
        """Count one exchange, once."""
        if ex.counted or (ex.req_start is None and ex.resp_start is None):
            return
        ex.counted = True
        exs = flow.exchanges
        b = breakdown(ex, flow, exs)
        total = b["total"]
        if total is None:
            return
        s = Sample()
        s.flow, s.index = flow.id, ex.index
        start_ns = ex.req_start if ex.req_start is not None else ex.resp_start
        s.start = (start_ns or 0) / 1e9
        proto = ex.proto or "tcp"
        s.service = f"{_endpoint(flow.server, flow.ipv)} {proto}"
        s.client = _endpoint(flow.client, flow.ipv)
        s.proto = proto
        sni = exs.tls.get("sni") if exs.tls is not None else None
        s.endpoint = endpoint_label(ex, sni)
        s.request = request_text(ex)
        s.result, s.error = result_of(ex, reset)
        s.total = total
        s.network, s.think, s.transfer = b["network"], b["think"], b["transfer"]
        stalls = b["stalls"]
        s.stalls = sum(stalls.values())
        lost: dict[str, float] = {STALL_KIND[k]: v for k, v in stalls.items() if k in STALL_KIND}
        if s.think is not None and s.think >= THINK_MIN_S and total > 0 \
                and s.think / total >= THINK_SHARE:
            lost["server_think"] = s.think
        if lost:
            s.cause, s.lost = max(lost.items(), key=lambda kv: kv[1])
        s.bytes = ex.req_bytes + ex.resp_bytes
        s.new_conn = ex.index == 0
        end_ns = ex.resp_end if ex.resp_end is not None else ex.req_end
        at = end_ns or start_ns or 0
        self.last_ns = max(self.last_ns, at)
        self._group("service", s.service, s, at, proto=proto)
        self._group("endpoint", f"{s.service} {s.endpoint}", s, at, service=s.service,
                    proto=proto, label=s.endpoint)
        for kind, name_of in self.extra.items():
            name = name_of(flow)
            if name:
                s.groups[kind] = name
                self._group(kind, name, s, at)
        self.recent.append(s)
        self.counted += 1

    def _group(self, kind: str, key: str, s: Sample, at: int, service: str = "",
               proto: str = "", label: str = "") -> None:
        groups = self.groups[kind]
        g = groups.get(key)
        if g is None:
            if len(groups) >= MAX_GROUPS.get(kind, OTHER_MAX):
                key, label, service, proto = OTHER, OTHER, "", ""
                g = groups.get(OTHER)
            if g is None:
                g = groups[key] = Group(kind, label or key, service, proto)
        g.add(s, at)

    def settle(self, flows: dict, now_ns: int, final: bool = False) -> int:
        """Count the open exchanges of connections (`flows`: the table's, by id) that are
        closed, answered and then quiet for QUIET_NS of capture time (`now_ns`: the newest
        packet's time, never the wall clock: a live capture's packets arrive late), or all
        of them when the capture ended (`final`). Returns how many were counted."""
        done = []
        n = 0
        for fid in self.pending:
            flow = flows.get(fid)
            if flow is None:
                done.append(fid)
                continue
            cur = flow.exchanges.cur
            opened = flow.exchanges.still_open()
            if opened:  # a message parser's: each finished by the parser, or by the end
                if final or flow.closed:
                    for ex in opened:
                        self.finished(flow, ex, flow.rst_dir >= 0 and ex.resp_start is None)
                    n += len(opened)
                    done.append(fid)
                continue
            if cur is None or cur.counted:
                done.append(fid)
                continue
            # a request still waiting for its answer is in flight, however long it takes
            if final or flow.closed or (cur.resp_start is not None
                                        and now_ns - flow.last_ts >= QUIET_NS):
                self.finished(flow, cur, flow.rst_dir >= 0 and flow.rst_unanswered)
                n += 1
                done.append(fid)
        for fid in done:
            del self.pending[fid]
        return n

    def evicted(self, flow) -> None:
        """The connection leaves the table (its cap): its open exchange is finished."""
        for ex in flow.exchanges.still_open():
            self.finished(flow, ex, flow.rst_dir >= 0 and ex.resp_start is None)
        cur = flow.exchanges.cur
        if cur is not None and not cur.counted:
            self.finished(flow, cur, flow.rst_dir >= 0 and flow.rst_unanswered)
        self.pending.pop(flow.id, None)

    def rows(self, kind: str, now_ns: int, seconds: int | None = None) -> list[dict]:
        return [g.row(now_ns, seconds) for g in self.groups.get(kind, {}).values()]


def process_rows(rq: Requests, now_ns: int, seconds: int | None = None) -> list[dict]:
    """One row per local process: the requests it served and those it sent, slowest first."""
    served = {r["name"]: r for r in rq.rows(SERVED, now_ns, seconds)}
    sent = {r["name"]: r for r in rq.rows(SENT, now_ns, seconds)}
    out = [{"name": n, "served": served.get(n), "sent": sent.get(n)}
           for n in sorted(set(served) | set(sent))]
    out.sort(key=lambda r: -max((r["served"] or {}).get("p99") or 0,
                                (r["sent"] or {}).get("p99") or 0))
    return out
