"""analysis/sqlwire.py on hand-built byte streams: the same exchanges however the bytes are cut
into segments, the kept head of a long statement, gaps inside row data (in sync) and inside a
header (framing lost, found again at the next query), MySQL's result-set ends."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpwatch.analysis import sqlwire


class Ex:
    def __init__(self, index: int, proto: str, request: dict) -> None:
        self.index, self.proto, self.request = index, proto, request
        self.response: dict = {}
        self.req_start = self.req_end = self.resp_start = self.resp_end = None
        self.req_first = self.req_last = self.resp_first = self.resp_last = 0
        self.req_bytes = self.resp_bytes = 0
        self.counted = False


class Exs:
    """What Exchanges offers the parsers (m_open .. m_done), recorded."""

    def __init__(self) -> None:
        self.items: list[Ex] = []
        self.cur = None

    def m_open(self, flow, proto, request, ts, frame):
        ex = Ex(len(self.items), proto, request)
        ex.req_start, ex.req_first, ex.req_end, ex.req_last = ts, frame, ts, frame
        self.items.append(ex)
        self.cur = ex
        return ex

    def m_req(self, ex, ts, frame, n):
        if ex.resp_start is None:
            ex.req_end, ex.req_last = ts, frame
        ex.req_bytes += n

    def m_resp(self, ex, ts, frame, n, fields=None):
        if ex.resp_start is None:
            ex.resp_start, ex.resp_first = ts, frame
        ex.resp_end, ex.resp_last = ts, frame
        ex.resp_bytes += n
        if fields:
            ex.response.update(fields)

    def m_done(self, flow, ex):
        ex.counted = True


def pg(t: bytes, body: bytes) -> bytes:
    return t + struct.pack(">I", len(body) + 4) + body


def startup() -> bytes:
    body = struct.pack(">I", sqlwire.PG_PROTOCOL_3) + b"user\0app\0database\0shop\0\0"
    return struct.pack(">I", len(body) + 4) + body


def query_answer(tag: bytes, rows: int, row: bytes = b"x" * 30) -> bytes:
    out = pg(b"T", b"\0\1col\0" + b"\0" * 18)
    out += b"".join(pg(b"D", b"\0\1" + struct.pack(">I", len(row)) + row) for _ in range(rows))
    return out + pg(b"C", tag + b"\0") + pg(b"Z", b"I")


LONG = "SELECT '" + "y" * 5000 + "' AS big"
# (direction, bytes) in the order they cross the wire
CONVERSATION = [
    (0, startup()),
    (1, pg(b"R", struct.pack(">I", 5) + b"salt")),
    (0, pg(b"p", b"md5abcdef\0")),
    (1, pg(b"R", struct.pack(">I", 0)) + pg(b"S", b"server_version\x0016\0")
     + pg(b"K", b"\0" * 8) + pg(b"Z", b"I")),
    (0, pg(b"Q", b"SELECT * FROM orders WHERE id = 42;\0")),
    (1, query_answer(b"SELECT 3", 3)),
    (0, pg(b"Q", b"SELECT * FROM missing;\0")),
    (1, pg(b"E", b"SERROR\0VERROR\0C42P01\0Mrelation \"missing\" does not exist\0\0")
     + pg(b"Z", b"I")),
    # extended protocol, two statements pipelined before one Sync
    (0, pg(b"P", b"\0UPDATE t SET a = $1 WHERE id = $2\0\0\0") + pg(b"B", b"\0\0" + b"\0" * 6)
     + pg(b"E", b"\0\0\0\0\0") + pg(b"P", b"\0SELECT a FROM t WHERE id = $1\0\0\0")
     + pg(b"B", b"\0\0" + b"\0" * 6) + pg(b"D", b"P\0") + pg(b"E", b"\0\0\0\0\0")
     + pg(b"S", b"")),
    (1, pg(b"1", b"") + pg(b"2", b"") + pg(b"C", b"UPDATE 1\0") + pg(b"1", b"")
     + pg(b"2", b"") + query_answer(b"SELECT 1", 1)[:-6] + pg(b"Z", b"I")),
    (0, pg(b"Q", LONG.encode() + b"\0")),
    (1, query_answer(b"SELECT 1", 1, b"y" * 5000)),
]


def run(chunks: list[tuple[int, bytes, int]]) -> list[tuple]:
    exs = Exs()
    conn = sqlwire.PgConn(exs, None, startup=True)
    last = None
    for d, b, frame in chunks:
        conn.data(d, b, frame * 1000, frame, last != d)
        last = d
    return [(e.request.get("kind"), e.request.get("query"), e.request.get("fingerprint"),
             e.response.get("tag"), e.response.get("rows"), e.response.get("sqlstate"),
             e.response.get("auth"), e.req_first, e.resp_last, e.req_bytes, e.resp_bytes,
             e.counted) for e in exs.items]


def whole() -> list[tuple[int, bytes, int]]:
    return [(d, b, i + 1) for i, (d, b) in enumerate(CONVERSATION)]


def test_postgres_conversation() -> None:
    got = run(whole())
    kinds = [g[0] for g in got]
    assert kinds == ["startup", "simple", "simple", "extended", "extended", "simple"]
    assert got[0][6] == "md5" and got[0][11]
    assert got[1][1:6] == ("SELECT * FROM orders WHERE id = 42;",
                           "SELECT * FROM orders WHERE id = ?", "SELECT 3", 3, None)
    assert got[2][5] == "42P01"
    assert got[3][2] == "UPDATE t SET a = ? WHERE id = ?" and got[3][3] == "UPDATE 1"
    assert got[4][2] == "SELECT a FROM t WHERE id = ?" and got[4][3] == "SELECT 1"
    # the long statement: its head kept (QUERY_MAX characters), its rows counted
    assert got[5][1] == LONG[:sqlwire.QUERY_MAX] and got[5][4] == 1
    # request bytes are the client's messages; the pipelined Parse/Bind go with their Execute
    assert got[1][9] == len(CONVERSATION[4][1])
    assert got[3][9] + got[4][9] == len(CONVERSATION[8][1])
    assert all(g[11] for g in got)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_segmentation_gives_the_same_exchanges(data) -> None:
    chunks = []
    for i, (d, b) in enumerate(CONVERSATION):
        cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(b) - 1)),
                                             max_size=6))))
        prev = 0
        for c in [*cuts, len(b)]:
            if c > prev:
                chunks.append((d, b[prev:c], i + 1))
                prev = c
    assert run(chunks) == run(whole())


def test_gap_in_rows_keeps_sync_and_in_a_header_loses_it_until_the_next_query() -> None:
    exs = Exs()
    conn = sqlwire.PgConn(exs, None, startup=False)
    conn.data(0, pg(b"Q", b"SELECT 1\0"), 1, 1, True)
    ans = query_answer(b"SELECT 3", 3)
    conn.data(1, ans[:40], 2, 2, True)  # inside the first DataRow's value
    conn.gap(1, 20)
    conn.data(1, ans[60:], 3, 3, False)
    assert exs.items[0].response.get("tag") == "SELECT 3" and exs.items[0].counted
    conn.data(0, pg(b"Q", b"SELECT 2\0"), 4, 4, True)
    conn.gap(1, 3)  # inside a message header: the framing is lost
    assert conn.dirs[1].lost and conn.lost_note
    conn.data(1, b"whatever", 5, 5, True)  # not a message: still lost
    conn.data(0, pg(b"Q", b"SELECT 3\0"), 6, 6, True)
    conn.data(1, query_answer(b"SELECT 1", 1), 7, 7, True)  # a new turn: found again
    assert not conn.dirs[1].lost
    assert exs.items[-1].request["query"] == "SELECT 3"


def my(seq: int, body: bytes) -> bytes:
    return struct.pack("<I", len(body))[:3] + bytes([seq]) + body


def test_mysql_result_set_ends_and_errors() -> None:
    exs = Exs()
    conn = sqlwire.MyConn(exs, None)
    caps = 0x0200 | 0x8000 | 0x00080000  # protocol 41, secure connection, plugin auth
    greet = b"\x0a" + b"10.11.6-MariaDB\0" + b"\0" * 4 + b"12345678\0" + struct.pack(
        "<H", caps & 0xFFFF) + b"\x21" + b"\x02\0" + struct.pack("<H", caps >> 16) + b"\0" * 15
    conn.data(1, my(0, greet), 1, 1, True)
    conn.data(0, my(1, struct.pack("<I", caps) + b"\0" * 28 + b"lab\0"), 2, 2, True)
    conn.data(1, my(2, b"\0\0\0\2\0\0\0"), 3, 3, True)
    conn.data(0, my(0, b"\x03SELECT a FROM t"), 4, 4, True)
    col = b"\x03def" + b"\0" * 20
    eof = b"\xfe\0\0\2\0"
    conn.data(1, my(1, b"\x01") + my(2, col) + my(3, eof) + my(4, b"\x011") + my(5, b"\x012")
              + my(6, eof), 5, 5, True)
    conn.data(0, my(0, b"\x03SELECT * FROM missing"), 6, 6, True)
    conn.data(1, my(1, b"\xff\x7a\x04#42S02Table 'missing' doesn't exist"), 7, 7, True)
    conn.data(0, my(0, b"\x03INSERT INTO t VALUES (1),(2)"), 8, 8, True)
    conn.data(1, my(1, b"\0\2\0\2\0\0\0"), 9, 9, True)
    hs, sel, err, ins = exs.items
    assert hs.request["kind"] == "handshake" and hs.request["user"] == "lab" and hs.counted
    assert sel.response["result"] == "resultset" and sel.response["rows"] == 2 \
        and sel.counted
    assert err.response["error_code"] == 1146 and err.response["sqlstate"] == "42S02"
    assert ins.response["affected_rows"] == 2 and ins.request["fingerprint"] == \
        "INSERT INTO t VALUES (?),(?)"


def test_fingerprint() -> None:
    fp = sqlwire.fingerprint
    assert fp("SELECT * FROM t WHERE a IN (1, 2, 3) AND b = 'x''y' AND \"Col1\" = $1") == \
        "SELECT * FROM t WHERE a IN (?) AND b = ? AND \"Col1\" = ?"
    assert fp("update  t\n set a = a + -3.5e2 where id=7 ;") == \
        "update t set a = a + ? where id=?"
    assert fp("SELECT $$a 'quoted' body$$, col2 FROM t2") == "SELECT ?, col2 FROM t2"


def test_mysql_prepared_statement() -> None:
    """COM_STMT_PREPARE (the OK with the statement id, parameter and column definitions, each
    list closed by an EOF without CLIENT_DEPRECATE_EOF) then COM_STMT_EXECUTE (a binary
    result set) labelled with the prepared text; COM_STMT_CLOSE has no answer."""
    exs = Exs()
    conn = sqlwire.MyConn(exs, None)
    conn.state = "command"  # picked up after the handshake: no CLIENT_DEPRECATE_EOF
    conn.data(0, my(0, b"\x16SELECT name FROM users WHERE id = ?"), 1, 1, True)
    col = b"\x03def" + b"\0" * 20
    eof = b"\xfe\0\0\2\0"
    ok = b"\0" + struct.pack("<IHH", 7, 1, 1) + b"\0" + b"\0\0"
    conn.data(1, my(1, ok) + my(2, col) + my(3, eof) + my(4, col) + my(5, eof), 2, 2, True)
    conn.data(0, my(0, b"\x17" + struct.pack("<IBI", 7, 0, 1) + b"\0\1\x03\0" + b"\x2a\0\0\0"),
              3, 3, True)
    conn.data(1, my(1, b"\x01") + my(2, col) + my(3, eof) + my(4, b"\0\0\x03bob")
              + my(5, eof), 4, 4, True)
    conn.data(0, my(0, b"\x19" + struct.pack("<I", 7)), 5, 5, True)
    prep, exe, close = exs.items
    assert prep.request["command"] == "COM_STMT_PREPARE" and prep.counted
    assert prep.response["statement_id"] == 7 and prep.response["params"] == 1
    assert exe.request["command"] == "COM_STMT_EXECUTE" and exe.request["statement_id"] == 7
    assert exe.request["fingerprint"] == "SELECT name FROM users WHERE id = ?"
    assert exe.response["result"] == "resultset" and exe.response["rows"] == 1 and exe.counted
    assert close.request["command"] == "COM_STMT_CLOSE" and close.counted
    assert close.resp_start is None


def test_mysql_replies_by_command() -> None:
    """Replies that are not OK/ERR/result sets: COM_STATISTICS (a string), COM_SET_OPTION
    (an EOF), COM_CHANGE_USER (an authentication switch, then OK); LOAD DATA LOCAL INFILE
    (the file's packets, whatever their sequence ids, up to an empty one); a row of 16 MiB
    (a packet of 0xFFFFFF bytes and its continuation, whose first byte is not a marker)."""
    exs = Exs()
    conn = sqlwire.MyConn(exs, None)
    conn.state = "command"
    conn.data(0, my(0, b"\x09"), 1, 1, True)
    conn.data(1, my(1, b"Uptime: 5  Threads: 1"), 2, 2, True)
    conn.data(0, my(0, b"\x1b\0\0"), 3, 3, True)
    conn.data(1, my(1, b"\xfe\0\0\2\0"), 4, 4, True)
    conn.data(0, my(0, b"\x11lab\0"), 5, 5, True)
    conn.data(1, my(1, b"\xfemysql_native_password\0" + b"s" * 20), 6, 6, True)
    conn.data(0, my(2, b"r" * 20), 7, 7, True)
    conn.data(1, my(3, b"\0\0\0\2\0\0\0"), 8, 8, True)
    conn.data(0, my(0, b"\x03LOAD DATA LOCAL INFILE 'f' INTO TABLE t"), 9, 9, True)
    conn.data(1, my(1, b"\xfbf"), 10, 10, True)
    conn.data(0, b"".join(my((2 + i) & 0xFF, b"\x03 not a command\n") for i in range(300))
              + my(46, b""), 11, 11, True)
    conn.data(1, my(47, b"\0\xfc\x2c\x01\0\2\0\0\0"), 12, 12, True)  # 300 rows
    conn.data(0, my(0, b"\x03SELECT big FROM t"), 13, 13, True)
    big = b"\xfc\0\0" + b"\xff" * (0xFFFFFF - 3)
    conn.data(1, my(1, b"\x01") + my(2, b"\x03def" + b"\0" * 20) + my(3, big)
              + my(4, b"\xff" * 9) + my(5, b"\xfe\0\0\2\0"), 14, 14, True)
    stats, opt, change, infile, sel = exs.items
    assert stats.response == {"result": "OK"} and opt.response == {"result": "OK"}
    assert change.response["auth"] == "mysql_native_password" and change.counted \
        and change.response["result"] == "OK"
    assert infile.response["result"] == "OK" and infile.response["affected_rows"] == 300
    assert sel.response["result"] == "resultset" and sel.response["rows"] == 1 and sel.counted
