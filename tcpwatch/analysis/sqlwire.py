"""Database wire protocols, message by message: PostgreSQL's frontend/backend protocol 3.0
(PostgreSQL docs, "Frontend/Backend Protocol", 55.2 flow and 55.7 formats) and the MySQL /
MariaDB client/server protocol (MySQL internals, "Client/Server Protocol"; MariaDB
"Clients & Utilities / Server & Client protocol").

Fed each direction's in-order payload (d=0 client->server, d=1 server->client) by
exchange.Exchanges; drives its message-mode exchanges (m_open, m_req, m_resp, m_done), one per
query:
  PostgreSQL  the start-up (SSLRequest, StartupMessage, authentication) until the first
              ReadyForQuery is one exchange labelled "startup"; a simple query ('Q') runs to
              its ReadyForQuery; in the extended protocol each Execute ('E') is an exchange
              from the first message that prepared it (Parse/Bind/Describe) to its
              CommandComplete (or error, empty query, portal suspended); several Executes
              may be in flight at once (pipelining), answered in order.
  MySQL       the handshake (server greeting, client response, authentication) until its OK
              is one exchange labelled "handshake"; then every command packet (sequence id
              0) to the end of its response: OK, ERR, or a result set's final EOF/OK.

Only message headers and the bodies that name something are kept (KEEP_MAX bytes of a body:
query text, command tag, error fields); row data is skipped by counting. A gap in the bytes
(never captured, or cut by the snap length) inside something kept loses the direction's
framing: it is found again at the next turn that starts with a recognisable message (a new
query), and the exchange in flight says why its result is unknown.

Strings come from the wire: bounded here (QUERY_MAX), escaped by the UI.
"""

from __future__ import annotations

import re
from typing import Any, Final

KEEP_MAX: Final = 4096  # bytes of a kept message body (a query's text, an error's fields)
QUERY_MAX: Final = 1024  # characters of statement text kept in an exchange
FINGERPRINT_MAX: Final = 200
PENDING_MAX: Final = 256  # queries in flight on one connection (pipelined), beyond: not timed
STATEMENTS_MAX: Final = 256  # prepared statement names remembered per connection

# PostgreSQL
PG_SSL_REQUEST: Final = 80877103  # SSLRequest code (55.7)
PG_GSSENC_REQUEST: Final = 80877104
PG_CANCEL_REQUEST: Final = 80877102
PG_PROTOCOL_3: Final = 196608  # 3.0
PG_FRONTEND: Final = frozenset(b"QPBDESHCXFpfdcc")  # typed frontend messages
PG_BACKEND: Final = frozenset(b"RSKZTDCEN123nstIAGHWVcdv")  # typed backend messages
PG_AUTH: Final = {0: "ok", 2: "kerberos", 3: "cleartext", 5: "md5", 7: "gss", 9: "sspi",
                  10: "sasl", 11: "sasl-continue", 12: "sasl-final"}

# MySQL command bytes (the first byte of a command packet)
MY_COMMANDS: Final = {0x01: "COM_QUIT", 0x02: "COM_INIT_DB", 0x03: "COM_QUERY",
                      0x04: "COM_FIELD_LIST", 0x0E: "COM_PING", 0x11: "COM_CHANGE_USER",
                      0x16: "COM_STMT_PREPARE", 0x17: "COM_STMT_EXECUTE",
                      0x18: "COM_STMT_SEND_LONG_DATA", 0x19: "COM_STMT_CLOSE",
                      0x1A: "COM_STMT_RESET", 0x1F: "COM_RESET_CONNECTION",
                      0x1C: "COM_STMT_FETCH", 0x09: "COM_STATISTICS", 0x0D: "COM_DEBUG",
                      0x1B: "COM_SET_OPTION"}
# no answer at all (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA), or the server closes (COM_QUIT)
MY_SILENT: Final = frozenset((0x01, 0x18, 0x19))
MY_CLIENT_DEPRECATE_EOF: Final = 0x01000000  # capability flag: result sets end with OK
MY_CLIENT_SSL: Final = 0x0800  # capability flag: the client switches to TLS (SSLRequest)
MY_MORE_RESULTS: Final = 0x0008  # SERVER_MORE_RESULTS_EXISTS status flag

# one pass: a double-quoted identifier (kept), a string literal (E'', B'', X'', N''), a
# dollar-quoted string, a number (with its sign), a $n parameter: all but the first become ?
_TOKEN = re.compile(r"(?P<q>\"(?:[^\"]++|\"\")*+\")|[eEbBxXnN]?'(?:[^']++|'')*+'"
                    r"|\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$"
                    r"|(?<![\w$.])[-+]?(?:\d++(?:\.\d*+)?(?:[eE][-+]?\d++)?|\.\d++"
                    r"|0[xX][0-9a-fA-F]++)(?![\w$])|\$\d++", re.S)  # possessive: no backtracking
_LIST = re.compile(r"\b(IN)\s*\(\s*\?(?:\s*,\s*\?)+\s*\)", re.I)
_FP_CACHE: dict[str, str] = {}
FP_CACHE_MAX: Final = 4096  # statements whose fingerprint is remembered (cleared when full)


def _literal(m: re.Match) -> str:
    return m.group(0) if m.group("q") else "?"


def fingerprint(sql: str) -> str:
    """A statement with its literals and parameters replaced by "?" and its whitespace
    collapsed, for grouping (as pg_stat_statements' normalised text): quoted strings,
    numbers, $n and ? parameters become ?, an IN list of them one IN (?); identifiers in
    double quotes are kept."""
    got = _FP_CACHE.get(sql)
    if got is not None:
        return got
    out = " ".join(_TOKEN.sub(_literal, sql).split()).rstrip(";").rstrip()
    if "?," in out or "?  ," in out or "? ," in out:
        out = _LIST.sub(lambda m: f"{m.group(1)} (?)", out)
    out = out[:FINGERPRINT_MAX]
    if len(_FP_CACHE) >= FP_CACHE_MAX:
        _FP_CACHE.clear()
    _FP_CACHE[sql] = out
    return out


def _cstr(b: bytes, i: int) -> tuple[str, int]:
    end = b.find(b"\0", i)
    if end < 0:
        end = len(b)
    return b[i:end].decode("utf-8", "replace"), end + 1


def _query_text(b: bytes) -> str:
    return b[:QUERY_MAX].split(b"\0", 1)[0].decode("utf-8", "replace")


class _Dir:
    """One direction's framing: a partial header, the kept part of a body, the rest of a
    body still to skip."""

    __slots__ = ("hdr", "body", "need", "skip", "mtype", "mlen", "seq", "lost", "t0", "f0",
                 "startup", "cont")

    def __init__(self) -> None:
        self.hdr = bytearray()
        self.body = bytearray()
        self.need = 0  # body bytes still to keep
        self.skip = 0  # body bytes still to skip
        self.mtype = 0
        self.mlen = 0
        self.seq = 0
        self.lost = ""  # why the framing was lost ("" in sync)
        self.t0 = 0  # time and frame of the segment the message started in
        self.f0 = 0
        self.startup = False  # PostgreSQL: the next client message has no type byte
        self.cont = False  # MySQL: the next packet continues one of 0xFFFFFF bytes


class WireConn:
    """Common framing for both protocols: subclasses say how long a header is, how long the
    body it announces, and what to do with a whole message."""

    __slots__ = ("name", "hdr_len", "dirs", "exs", "flow", "pending", "lost_note", "opened",
                 "unclaimed", "handoff")

    def __init__(self, exs: Any, flow: Any) -> None:
        self.name = ""
        self.hdr_len = 5
        self.dirs = (_Dir(), _Dir())
        self.exs = exs
        self.flow = flow
        self.pending: list = []  # exchanges in flight, oldest first
        self.lost_note = ""
        self.opened = 0  # exchanges opened
        # request bytes framed but not yet given to an exchange: a message's own bytes
        # arrive before it opens its exchange, and PostgreSQL's Parse/Bind/Describe before
        # the Execute that runs them
        self.unclaimed = 0
        # set when the rest of the connection is encrypted (SSLRequest accepted): the
        # exchanges go back to following its turns (exchange.py)
        self.handoff = ""

    # -- fed by Exchanges ------------------------------------------------------------------
    def data(self, d: int, b: bytes, ts: int, frame: int, turn: bool) -> None:
        st = self.dirs[d]
        if st.lost:
            if not (turn and self.resync(d, b)):
                self.unframed(d, len(b), ts, frame)
                return
            st.lost = ""
            st.hdr.clear()
            st.body.clear()
            st.need = st.skip = 0
            if d == 1:
                # an answer starts here: the one that went missing is not coming, and this
                # one is the newest request's
                for ex in self.pending[:-1]:
                    self.done(ex, {"result": "unknown: its answer's framing was lost"})
        i, n = 0, len(b)
        got = 0  # bytes framed since the exchanges were last told (told in one call)
        while i < n:
            if st.need:  # the kept head of a body first, then the rest skipped
                k = st.need if st.need < n - i else n - i
                st.body += b[i:i + k]
                st.need -= k
                i += k
                got += k
                if not st.need and not st.skip:
                    self.body_bytes(d, got, ts, frame)
                    got = 0
                    self._whole(d, st, ts, frame)
                continue
            if st.skip:
                k = st.skip if st.skip < n - i else n - i
                st.skip -= k
                i += k
                got += k
                if not st.skip:
                    self.body_bytes(d, got, ts, frame)
                    got = 0
                    self._whole(d, st, ts, frame)
                continue
            hl = self.header_len(d)
            if not st.hdr:
                st.t0, st.f0 = ts, frame
            k = hl - len(st.hdr)
            if k > n - i:
                k = n - i
            st.hdr += b[i:i + k]
            i += k
            got += k
            if len(st.hdr) < hl:
                continue
            body = self.parse_header(d, st)
            st.hdr.clear()  # whole and read: what follows is the body (gap() tells them apart)
            if body < 0:
                self.body_bytes(d, got, ts, frame)
                self.lose(d, "not a message boundary: the framing was lost")
                self.unframed(d, n - i, ts, frame)
                return
            keep = self.keep(d, st.mtype)
            kb = body if body < keep else keep
            st.need, st.skip = kb, body - kb
            st.body.clear()
            if not body:
                self.body_bytes(d, got, ts, frame)
                got = 0
                self._whole(d, st, ts, frame)
        if got:
            self.body_bytes(d, got, ts, frame)

    def gap(self, d: int, nbytes: int) -> None:
        """nbytes of direction d were never seen."""
        st = self.dirs[d]
        if st.lost:
            return
        if not st.hdr and not st.need and st.skip >= nbytes > 0:
            st.skip -= nbytes  # inside a body skipped anyway: still in sync
            return
        self.lose(d, f"{nbytes} bytes not captured")

    def lose(self, d: int, why: str) -> None:
        st = self.dirs[d]
        st.lost = why
        st.hdr.clear()
        st.body.clear()
        st.need = st.skip = 0
        self.lost_note = why

    def _whole(self, d: int, st: _Dir, ts: int, frame: int) -> None:
        body = bytes(st.body)
        st.hdr.clear()
        st.body.clear()
        opened = self.opened
        self.message(d, st.mtype, body, st.mlen, st.t0, st.f0, ts, frame)
        if d == 0 and self.unclaimed and (self.opened != opened
                                          or not self.prelude(st.mtype)):
            ex = self._req_ex()
            if ex is not None:
                self.exs.m_req(ex, ts, frame, self.unclaimed)
            self.unclaimed = 0

    def prelude(self, mtype: int) -> bool:
        """A client message that belongs to the exchange a later one opens."""
        return False

    # -- the protocol ----------------------------------------------------------------------
    def header_len(self, d: int) -> int:
        return self.hdr_len

    def parse_header(self, d: int, st: _Dir) -> int:
        """Set st.mtype/mlen from st.hdr; the body length, or -1 if it is not a header."""
        return -1

    def keep(self, d: int, mtype: int) -> int:
        return 0

    def message(self, d: int, mtype: int, body: bytes, mlen: int, t0: int, f0: int, ts: int,
                frame: int) -> None:
        pass

    def body_bytes(self, d: int, n: int, ts: int, frame: int) -> None:
        """n bytes of direction d were framed (header or body): the exchange they belong to
        grows (a request's once its message is whole: _whole)."""
        if d == 0:
            self.unclaimed += n
        else:
            ex = self.pending[0] if self.pending else None
            if ex is not None:
                self.exs.m_resp(ex, ts, frame, n)

    def _req_ex(self) -> Any:
        return self.pending[-1] if self.pending else None

    def unframed(self, d: int, n: int, ts: int, frame: int) -> None:
        if n <= 0:
            return
        if d == 0:
            ex = self._req_ex()
            if ex is not None:
                self.exs.m_req(ex, ts, frame, n)
        else:
            self.body_bytes(d, n, ts, frame)

    def resync(self, d: int, b: bytes) -> bool:
        return False

    def open_exchanges(self) -> list:
        """Exchanges in flight (to be counted as they are if the connection ends)."""
        return [ex for ex in self.pending if not ex.counted]

    def open(self, request: dict, t0: int, f0: int) -> Any:
        if len(self.pending) >= PENDING_MAX:
            return None
        ex = self.exs.m_open(self.flow, self.name, request, t0, f0)
        self.pending.append(ex)
        self.opened += 1
        return ex

    def done(self, ex: Any, response: dict) -> None:
        ex.response.update(response)
        if ex in self.pending:
            self.pending.remove(ex)
        self.exs.m_done(self.flow, ex)


class PgConn(WireConn):
    __slots__ = ("statements", "batch_start", "batch", "tags", "rows", "setup", "ssl", "syncs",
                 "batch_of")

    def __init__(self, exs: Any, flow: Any, startup: bool) -> None:
        super().__init__(exs, flow)
        self.name = "pgsql"
        self.dirs[0].startup = startup
        self.statements: dict[str, str] = {}  # prepared statement name -> its text
        self.batch_start: tuple[int, int] | None = None  # (ts, frame) of a Parse/Bind
        self.batch: dict = {}  # what the messages before an Execute said (text, statement)
        self.tags: list[str] = []
        self.rows = 0
        self.setup: Any = None  # the start-up exchange until the first ReadyForQuery
        self.ssl = False  # SSLRequest sent: the server's answer is one byte
        self.syncs = 0  # Syncs sent: an extended query belongs to the batch its Sync ends
        self.batch_of: dict[int, int] = {}  # extended exchange index -> its batch

    def header_len(self, d: int) -> int:
        if d == 0 and self.dirs[0].startup:
            return 8
        if d == 1 and self.ssl:
            return 1
        return 5

    def parse_header(self, d: int, st: _Dir) -> int:
        h = st.hdr
        if d == 0 and st.startup:
            ln = int.from_bytes(h[0:4], "big")
            code = int.from_bytes(h[4:8], "big")
            if ln < 8 or ln > 10000:
                return -1
            st.mtype, st.mlen = code, ln
            return ln - 8
        if d == 1 and self.ssl:
            self.ssl = False
            st.mtype, st.mlen = 0x100 + h[0], 1  # not a typed message
            return 0 if h[0] in b"SN" else -1
        t = h[0]
        ln = int.from_bytes(h[1:5], "big")
        if ln < 4 or ln > 0x40000000 or t not in (PG_FRONTEND if d == 0 else PG_BACKEND):
            return -1
        st.mtype, st.mlen = t, ln
        return ln - 4

    def keep(self, d: int, mtype: int) -> int:
        if d == 0:
            return KEEP_MAX if mtype in (0x51, 0x50, 0x42, 0x44, 0x45, 0x43) or mtype > 255 \
                else 0
        return KEEP_MAX if mtype in (0x43, 0x45, 0x52, 0x5A) else 0  # C E R Z

    def prelude(self, mtype: int) -> bool:
        return mtype in (0x50, 0x42, 0x44) and not self.dirs[0].startup  # P B D before E

    def resync(self, d: int, b: bytes) -> bool:
        """A new turn starting with a whole typed message: framing found again."""
        if len(b) < 5:
            return False
        ln = int.from_bytes(b[1:5], "big")
        ok = b[0] in (PG_FRONTEND if d == 0 else PG_BACKEND) and 4 <= ln <= len(b) - 1
        return ok

    def _req_ex(self) -> Any:
        return self.setup if self.setup is not None and not self.setup.counted \
            and self.setup.resp_start is None else super()._req_ex()

    def message(self, d: int, t: int, body: bytes, mlen: int, t0: int, f0: int, ts: int,
                frame: int) -> None:
        if d == 0:
            self._frontend(t, body, t0, f0, ts, frame)
        else:
            self._backend(t, body, ts, frame)

    def _frontend(self, t: int, body: bytes, t0: int, f0: int, ts: int, frame: int) -> None:
        st = self.dirs[0]
        if st.startup:
            if t == PG_SSL_REQUEST or t == PG_GSSENC_REQUEST:
                self.ssl = True  # the answer is one byte; a StartupMessage may follow
                if self.setup is None:
                    self.setup = self.open({"kind": "startup", "ssl": True}, t0, f0)
                return
            st.startup = False
            if t == PG_CANCEL_REQUEST:
                ex = self.open({"kind": "cancel"}, t0, f0)
                if ex is not None:
                    self.done(ex, {})
                return
            params: dict[str, str] = {}
            i = 0
            while i < len(body) and body[i]:
                k, i = _cstr(body, i)
                v, i = _cstr(body, i)
                if k in ("user", "database", "application_name"):
                    params[k] = v[:64]
            req = {"kind": "startup", "user": params.get("user", ""),
                   "database": params.get("database", params.get("user", ""))}
            if self.setup is None:
                self.setup = self.open(req, t0, f0)
            elif self.setup is not None:
                self.setup.request.update(req)
            return
        if t == 0x51:  # Q: simple query, answered up to ReadyForQuery
            text = _query_text(body)
            self.open({"kind": "simple", "query": text, "fingerprint": fingerprint(text)},
                      t0, f0)
            return
        if t == 0x50:  # P: Parse (statement name, text)
            name, i = _cstr(body, 0)
            text = body[i:i + QUERY_MAX].split(b"\0", 1)[0].decode("utf-8", "replace")
            if len(self.statements) < STATEMENTS_MAX or name in self.statements:
                self.statements[name] = text
            self.batch = {"query": text, "statement": name}
        elif t == 0x42:  # B: Bind (portal, statement)
            _portal, i = _cstr(body, 0)
            name, _i = _cstr(body, i)
            if "query" not in self.batch or self.batch.get("statement") != name:
                self.batch = {"query": self.statements.get(name, ""), "statement": name}
        elif t == 0x45:  # E: Execute: the query runs now
            text = str(self.batch.get("query", ""))
            req = {"kind": "extended", "query": text, "fingerprint": fingerprint(text)
                   if text else f"(prepared {self.batch.get('statement', '')})"[:60],
                   "statement": self.batch.get("statement", "")}
            s0 = self.batch_start or (t0, f0)
            ex = self.open(req, s0[0], s0[1])
            if ex is not None:
                self.batch_of[ex.index] = self.syncs
                if len(self.batch_of) > 2 * PENDING_MAX:  # let go of those finished otherwise
                    live = {x.index for x in self.pending}
                    self.batch_of = {k: v for k, v in self.batch_of.items() if k in live}
            self.batch_start = None
            return
        elif t == 0x53:  # S: Sync: ReadyForQuery closes the batch
            self.batch_start = None
            self.syncs += 1
            return
        elif t == 0x58:  # X: Terminate
            return
        elif t == 0x43:  # C: Close a prepared statement ('S') or a portal ('P')
            if body[:1] == b"S":
                name, _i = _cstr(body, 1)
                self.statements.pop(name, None)
            return
        if t in (0x50, 0x42, 0x44) and self.batch_start is None:
            self.batch_start = (t0, f0)

    def _backend(self, t: int, body: bytes, ts: int, frame: int) -> None:
        if t >= 0x100:  # the one-byte answer to SSLRequest / GSSENCRequest
            if self.setup is not None:
                self.setup.response["ssl"] = "accepted" if t == 0x153 else "refused"
            if t == 0x153:  # TLS from here on: nothing more to read in the clear
                setup, self.setup = self.setup, None
                if setup is not None:
                    self.done(setup, {})
                self.handoff = "PostgreSQL over TLS (SSLRequest accepted): requests are its turns"
            return
        if t == 0x52 and len(body) >= 4:  # R: authentication request
            code = int.from_bytes(body[0:4], "big")
            if self.setup is not None and code != 0:
                self.setup.response.setdefault("auth", PG_AUTH.get(code, str(code)))
            return
        if t == 0x43:  # C: CommandComplete
            tag = body.split(b"\0", 1)[0].decode("utf-8", "replace")[:64]
            ex = self._head()
            if ex is None:
                return
            if ex.request.get("kind") == "extended":
                self.batch_of.pop(ex.index, None)
                self.done(ex, _tag_fields(tag, self.rows))
                self.rows = 0
            else:
                self.tags.append(tag)
            return
        if t == 0x44:  # D: DataRow
            self.rows += 1
            return
        if t == 0x45:  # E: ErrorResponse
            f = _error_fields(body)
            ex = self._head()
            if ex is None:
                return
            if ex.request.get("kind") == "extended":
                batch = self.batch_of.pop(ex.index, -1)
                self.done(ex, f)
                self.rows = 0
                # the server skips the other Executes of the same batch, up to its Sync
                for other in [x for x in self.pending if x.request.get("kind") == "extended"
                              and self.batch_of.get(x.index, -2) == batch]:
                    self.batch_of.pop(other.index, None)
                    self.done(other, {"result": "skipped: an earlier error in the batch"})
            else:
                ex.response.update(f)
            return
        if t in (0x49, 0x73):  # I EmptyQueryResponse, s PortalSuspended
            ex = self._head()
            if ex is not None and ex.request.get("kind") == "extended":
                self.batch_of.pop(ex.index, None)
                self.done(ex, {"tag": "EMPTY" if t == 0x49 else "SUSPENDED",
                               "rows": self.rows})
                self.rows = 0
            return
        if t == 0x5A:  # Z: ReadyForQuery
            status = chr(body[0]) if body else "?"
            setup = self.setup
            if setup is not None and not setup.counted:
                self.setup = None
                self.done(setup, {"status": status, "auth": setup.response.get("auth", "trust")
                                  if "sqlstate" not in setup.response else
                                  setup.response.get("auth", "")})
                return
            ex = self._head()
            if ex is not None and ex.request.get("kind") == "simple":
                resp: dict = {"status": status}
                if self.tags:
                    resp.update(_tag_fields(self.tags[-1], self.rows))
                    if len(self.tags) > 1:
                        resp["statements"] = len(self.tags)
                self.tags = []
                self.rows = 0
                self.done(ex, resp)
            return

    def _head(self) -> Any:
        for ex in self.pending:
            if ex is not self.setup:
                return ex
        return self.setup


def _tag_fields(tag: str, rows: int) -> dict:
    """CommandComplete's tag: "SELECT 5", "INSERT 0 1", "UPDATE 3": the command and the rows
    it touched (55.7), or the DataRows counted."""
    parts = tag.split(" ")
    out: dict = {"tag": tag, "command": parts[0]}
    if len(parts) > 1 and parts[-1].isascii() and parts[-1].isdigit():
        out["rows"] = int(parts[-1])
    elif rows:
        out["rows"] = rows
    return out


def _error_fields(body: bytes) -> dict:
    """ErrorResponse: (code byte, cstring) pairs; S/V severity, C SQLSTATE, M message."""
    out: dict = {}
    i = 0
    while i < len(body) and body[i]:
        code = body[i]
        v, i = _cstr(body, i + 1)
        if code == 0x56 or code == 0x53 and "severity" not in out:
            out["severity"] = v[:16]
        elif code == 0x43:
            out["sqlstate"] = v[:5]
        elif code == 0x4D:
            out["message"] = v[:200]
    return out


# ---- MySQL ---------------------------------------------------------------------------------
def _lenenc(b: bytes, i: int) -> tuple[int, int]:
    """A length-encoded integer at b[i] and the index after it (-1, i on a bad one)."""
    if i >= len(b):
        return -1, i
    c = b[i]
    if c < 0xFB:
        return c, i + 1
    if c == 0xFC:
        return int.from_bytes(b[i + 1:i + 3], "little"), i + 3
    if c == 0xFD:
        return int.from_bytes(b[i + 1:i + 4], "little"), i + 4
    if c == 0xFE:
        return int.from_bytes(b[i + 1:i + 9], "little"), i + 9
    return -1, i + 1


class MyConn(WireConn):
    __slots__ = ("caps", "state", "columns", "cols_seen", "rows", "setup", "expect",
                 "cmd", "statements", "infile")

    def __init__(self, exs: Any, flow: Any) -> None:
        super().__init__(exs, flow)
        self.name = "mysql"
        self.hdr_len = 4
        self.caps = 0  # server capabilities & client capabilities
        self.state = "greeting"  # greeting | auth | command | response
        self.columns = 0
        self.cols_seen = 0
        self.rows = 0
        self.setup: Any = None
        self.expect = ""  # what the response to the current command is at: first|cols|rows
        self.cmd = 0
        self.statements: dict[int, str] = {}
        self.infile = False  # LOAD DATA LOCAL INFILE: the client sends the file until empty

    def parse_header(self, d: int, st: _Dir) -> int:
        h = st.hdr
        ln = h[0] | h[1] << 8 | h[2] << 16
        st.seq = h[3]
        st.mlen = ln
        st.mtype = 0
        return ln

    def keep(self, d: int, mtype: int) -> int:
        return KEEP_MAX

    def resync(self, d: int, b: bytes) -> bool:
        if d != 0 or len(b) < 5:
            return False
        ln = b[0] | b[1] << 8 | b[2] << 16
        return b[3] == 0 and b[4] in MY_COMMANDS and ln == len(b) - 4

    def _req_ex(self) -> Any:
        if self.setup is not None and not self.setup.counted:
            return self.setup
        return super()._req_ex()

    def body_bytes(self, d: int, n: int, ts: int, frame: int) -> None:
        if d == 0:
            self.unclaimed += n
            return
        ex = self.setup if self.setup is not None and not self.setup.counted else (
            self.pending[0] if self.pending else None)
        if ex is not None:
            self.exs.m_resp(ex, ts, frame, n)

    def message(self, d: int, t: int, body: bytes, mlen: int, t0: int, f0: int, ts: int,
                frame: int) -> None:
        st = self.dirs[d]
        if st.cont:  # the rest of a payload of 16 MiB or more, not a packet of its own
            st.cont = mlen == 0xFFFFFF
            return
        st.cont = mlen == 0xFFFFFF
        if d == 0 and self.infile:  # the file's content, up to an empty packet
            self.infile = mlen != 0
            return
        if d == 1 and self.state == "greeting":
            if body[:1] == b"\x0a":  # protocol 10: the server's handshake
                ver, i = _cstr(body, 1)
                i += 4 + 8 + 1  # thread id, auth data part 1, filler
                caps = int.from_bytes(body[i:i + 2], "little")
                if len(body) >= i + 2 + 1 + 2 + 2:
                    caps |= int.from_bytes(body[i + 5:i + 7], "little") << 16
                self.caps = caps
                self.setup = self.open({"kind": "handshake", "version": ver[:60]}, t0, f0)
                if self.setup is not None:
                    self.exs.m_resp(self.setup, ts, frame, 0)
                self.state = "auth"
            elif body[:1] == b"\xff":
                self.state = "command"
            return
        if self.state == "auth":
            if d == 0:
                if st.seq == 1 and len(body) >= 4:
                    ccaps = int.from_bytes(body[0:4], "little")
                    self.caps &= ccaps
                    if len(body) == 32 and ccaps & MY_CLIENT_SSL:  # SSLRequest: TLS follows
                        setup, self.setup = self.setup, None
                        if setup is not None:
                            self.done(setup, {"ssl": "requested"})
                        self.handoff = "MySQL over TLS: requests are its turns"
                        return
                    if len(body) > 32:
                        user, _i = _cstr(body, 32)
                        if self.setup is not None:
                            self.setup.request["user"] = user[:64]
                return
            if body[:1] == b"\x00" or body[:1] == b"\xff":
                setup, self.setup = self.setup, None
                self.state = "command"
                if setup is not None:
                    res = _my_ok(body) if body[:1] == b"\x00" else _my_err(body)
                    res.pop("status", None)
                    self.done(setup, res)
            elif body[:1] == b"\xfe" and self.setup is not None:
                plugin, _i = _cstr(body, 1)
                self.setup.response["auth"] = plugin[:40]
            return
        if d == 0:
            if st.seq != 0 or not body:
                return  # a continuation (LOCAL INFILE data, long data)
            cmd = body[0]
            name = MY_COMMANDS.get(cmd, f"COM_0x{cmd:02x}")
            req: dict = {"kind": name, "command": name}
            if cmd in (0x03, 0x16):
                text = body[1:1 + QUERY_MAX].decode("utf-8", "replace")
                req["query"], req["fingerprint"] = text, fingerprint(text)
            elif cmd == 0x17 and len(body) >= 5:
                sid = int.from_bytes(body[1:5], "little")
                text = self.statements.get(sid, "")
                req["statement_id"] = sid
                req["query"] = text
                req["fingerprint"] = fingerprint(text) if text else f"(statement {sid})"
            elif cmd == 0x02:
                req["query"] = body[1:65].decode("utf-8", "replace")
            elif cmd == 0x19 and len(body) >= 5:  # COM_STMT_CLOSE: the id is free again
                self.statements.pop(int.from_bytes(body[1:5], "little"), None)
            for ex in list(self.pending):  # a new command: the last one's answer is over
                self.done(ex, {"result": "no answer"} if not ex.response else {})
            srv = self.dirs[1]
            if srv.lost:  # the server's framing was lost: its next bytes answer this command
                srv.lost = ""
                srv.hdr.clear()
                srv.body.clear()
                srv.need = srv.skip = 0
            ex = self.open(req, t0, f0)
            self.cmd = cmd
            self.expect = "first"
            self.columns = self.cols_seen = self.rows = 0
            if ex is not None and cmd in MY_SILENT:
                self.done(ex, {"result": "no answer expected"})
            return
        ex = self.pending[0] if self.pending else None
        if ex is None:
            return
        first = body[:1]
        if self.expect == "first" and first != b"\xff":
            if self.cmd == 0x09:  # COM_STATISTICS: a plain string
                self.done(ex, {"result": "OK"})
                return
            if self.cmd == 0x1B:  # COM_SET_OPTION: an EOF (or OK)
                self.done(ex, {"result": "OK"})
                return
            if self.cmd == 0x11 and first in (b"\xfe", b"\x01"):
                if first == b"\xfe":  # COM_CHANGE_USER: an authentication switch, then OK
                    plugin, _i = _cstr(body, 1)
                    ex.response["auth"] = plugin[:40]
                return
        if self.expect == "first":
            if first == b"\x00" and (self.cmd != 0x16 or len(body) >= 12):
                if self.cmd == 0x16:  # COM_STMT_PREPARE_OK: id, columns, params
                    sid = int.from_bytes(body[1:5], "little")
                    if len(self.statements) < STATEMENTS_MAX:
                        self.statements[sid] = str(ex.request.get("query", ""))
                    ncol = int.from_bytes(body[5:7], "little")
                    npar = int.from_bytes(body[7:9], "little")
                    ex.response.update({"result": "OK", "statement_id": sid,
                                        "columns": ncol, "params": npar})
                    defs = ncol + npar
                    if not self.caps & MY_CLIENT_DEPRECATE_EOF:
                        defs += (1 if ncol else 0) + (1 if npar else 0)
                    if defs == 0:
                        self.done(ex, {})
                    else:
                        self.expect, self.columns, self.cols_seen = "prepare", defs, 0
                    return
                self._ok_or_more(ex, _my_ok(body), body)
                return
            if first == b"\xff":
                self.done(ex, _my_err(body))
                return
            if first == b"\xfb":
                ex.response["result"] = "LOCAL INFILE"
                self.infile = True
                return
            ncol, _i = _lenenc(body, 0)
            self.columns = ncol
            self.cols_seen = 0
            self.expect = "cols"
            ex.response.update({"result": "resultset", "columns": ncol})
            return
        if self.expect == "prepare":
            self.cols_seen += 1
            if self.cols_seen >= self.columns:
                self.done(ex, {})
            return
        if self.expect == "cols":
            if self.cols_seen < self.columns:
                self.cols_seen += 1
                if self.cols_seen == self.columns and self.caps & MY_CLIENT_DEPRECATE_EOF:
                    self.expect = "rows"
                return
            if first == b"\xfe" and len(body) < 9:  # the EOF after the column definitions
                self.expect = "rows"
                return
            self.expect = "rows"
        if self.expect == "rows":
            if first == b"\xfe" and len(body) < 0xFFFFFF and (len(body) < 9 or self.caps
                                                              & MY_CLIENT_DEPRECATE_EOF
                                                              and len(body) < 0xFFFFFF
                                                              and len(body) < 64):
                status = int.from_bytes(body[3:5], "little") if len(body) >= 5 else 0
                if len(body) >= 7 and self.caps & MY_CLIENT_DEPRECATE_EOF:
                    ok = _my_ok(body)
                    status = ok.pop("status", 0)
                ex.response["rows"] = ex.response.get("rows", 0) + self.rows
                self.rows = 0
                if status & MY_MORE_RESULTS:
                    self.expect = "first"
                    ex.response["results"] = ex.response.get("results", 1) + 1
                    return
                self.done(ex, {})
                return
            if first == b"\xff":
                self.done(ex, _my_err(body))
                return
            self.rows += 1

    def _ok_or_more(self, ex: Any, ok: dict, body: bytes) -> None:
        status = ok.pop("status", 0)
        if status & MY_MORE_RESULTS:
            ex.response.update(ok)
            self.expect = "first"
            return
        self.done(ex, ok)


def _my_ok(body: bytes) -> dict:
    """OK packet: affected rows, last insert id (length-encoded), status flags."""
    rows, i = _lenenc(body, 1)
    _last, i = _lenenc(body, i)
    status = int.from_bytes(body[i:i + 2], "little") if len(body) >= i + 2 else 0
    return {"result": "OK", "affected_rows": max(rows, 0), "status": status}


def _my_err(body: bytes) -> dict:
    """ERR packet: error code, '#' and the SQL state, message."""
    code = int.from_bytes(body[1:3], "little")
    out: dict = {"result": "ERR", "error_code": code}
    i = 3
    if body[i:i + 1] == b"#":
        out["sqlstate"] = body[i + 1:i + 6].decode("latin-1")
        i += 6
    out["message"] = body[i:i + 200].decode("utf-8", "replace")
    return out


# ---- recognising them ---------------------------------------------------------------------
def pg_startup(p: bytes) -> bool:
    """An SSLRequest, GSSENCRequest, CancelRequest or a v3 StartupMessage (55.7)."""
    if len(p) < 8:
        return False
    ln = int.from_bytes(p[0:4], "big")
    code = int.from_bytes(p[4:8], "big")
    if code in (PG_SSL_REQUEST, PG_GSSENC_REQUEST):
        return ln == 8
    if code == PG_CANCEL_REQUEST:
        return ln == 16
    return code == PG_PROTOCOL_3 and 8 < ln <= 10000


def pg_query_segment(p: bytes) -> bool:
    """A segment made of whole frontend messages, the first a Query or a Parse: PostgreSQL
    picked up after its start-up."""
    if len(p) < 6 or p[0] not in (0x51, 0x50):
        return False
    i = 0
    while i < len(p):
        if i + 5 > len(p):
            return False
        ln = int.from_bytes(p[i + 1:i + 5], "big")
        if p[i] not in PG_FRONTEND or ln < 4:
            return False
        i += 1 + ln
    if i != len(p):
        return False
    ln = int.from_bytes(p[1:5], "big")
    return p[ln] == 0  # the query text ends with its NUL


def my_greeting(p: bytes) -> bool:
    """The server's initial handshake packet: sequence 0, protocol version 10, a version
    string."""
    if len(p) < 10:
        return False
    ln = p[0] | p[1] << 8 | p[2] << 16
    return p[3] == 0 and p[4] == 0x0A and 20 < ln < 512 and ln + 4 <= len(p) + 4 \
        and 0 < p.find(b"\0", 5) < 5 + 64


def my_command_segment(p: bytes) -> bool:
    """A whole command packet with sequence id 0: MySQL picked up mid-connection (only
    trusted on MySQL's port: the shape is not distinctive)."""
    if len(p) < 5:
        return False
    ln = p[0] | p[1] << 8 | p[2] << 16
    return p[3] == 0 and p[4] in MY_COMMANDS and ln == len(p) - 4
