"""Message-level exchanges (issue 16) against tshark's dissectors, on captures of real servers
made here (tests/lab/backends.py): PostgreSQL (simple and extended protocol, md5 start-up),
MariaDB, HTTP/2 (nginx, cleartext) and gRPC. For every request tshark finds, tcpwatch has an
exchange with the same text, the same request frame, the same outcome, and the answer's last
frame where tshark sees it end; timings where the servers were made to wait (pg_sleep, SLEEP,
a 200 ms gRPC handler) show up as server think time, network round trip taken out.

One server and one capture per backend, module-scoped (the whole file runs in a few
seconds); each part is skipped when its programs are missing (bash .ci/setup installs them).
"""

from __future__ import annotations

import collections
import importlib.util
import json
import re
import shutil
import subprocess
import sys

import pytest
from lab import backends as lab
from lab.marks import LAB, NEED_GRPC, NEED_MARIADB, NEED_NGINX, NEED_PG

pytestmark = LAB

SLEEP = 0.2  # what the servers are told to wait: pg_sleep, SLEEP, the gRPC Slow handler
THINK_TOLERANCE = 0.005
QUERY_KEEP = 1024  # tcpwatch keeps this much of a query's text


def report(pcap, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "-r", str(pcap), "--json",
                        *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def exchanges(rep: dict) -> list[tuple[dict, dict]]:
    """(flow, exchange) for every exchange of the report."""
    return [(f, e) for f in rep["flows"] for e in f.get("exchanges", [])]


def by_request_frame(rep: dict, protocols: tuple[str, ...]) -> dict[int, list[tuple]]:
    got: dict[int, list[tuple]] = collections.defaultdict(list)
    for f, e in exchanges(rep):
        if e["protocol"] in protocols:
            got[e["request_frames"][0]].append((f, e))
    return got


def findings(rep: dict) -> list[dict]:
    """The diagnosis' findings: the report's own and every flow's."""
    out = list(rep.get("diagnosis") or [])
    for f in rep["flows"]:
        out += f.get("diagnosis") or []
    return out


def one(items: list, what: str):
    assert len(items) == 1, f"{what}: {len(items)} matches: {items!r}"[:3000]
    return items[0]


# ---- PostgreSQL ---------------------------------------------------------------------------
PSQL_INPUT = ("SELECT 1;\nSELECT pg_sleep(0.2);\nSELECT * FROM nonexistent;\n"
              "SELECT generate_series(1,20000);\n")
PROCESSED = re.compile(r"number of transactions actually processed: (\d+)/(\d+)")


@pytest.fixture(scope="module")
def pg_capture(tmp_path_factory):
    """psql's session, pgbench (simple protocol) and pgbench -M extended, md5 start-ups, in
    one capture. pgbench -i runs before the capture: its 100 000 COPY rows would be as many
    PDUs for tshark (12 s of PDML) and are not what this file checks."""
    if lab.pg_bindir() is None or shutil.which("setpriv") is None:
        pytest.skip("PostgreSQL (postgresql) or setpriv not installed")
    pcap = tmp_path_factory.mktemp("pg") / "pg.pcap"
    with lab.postgres(auth="md5") as pg:
        pg.pgbench("-i", "-q", "-s", "1")
        with lab.capture(pg.port, pcap):
            psql = pg.psql(input=PSQL_INPUT)
            simple = pg.pgbench("-n", "-t", "10", "-c", "1")
            extended = pg.pgbench("-n", "-t", "10", "-c", "1", "-M", "extended")
        churn = pcap.with_name("churn.pcap")
        with lab.capture(pg.port, churn):  # a new connection (and md5 start-up) per query
            for _ in range(3):
                pg.psql("-c", "SELECT 1", check=True)
        port = pg.port
    assert 'relation "nonexistent" does not exist' in psql.stderr
    assert "20000" in psql.stdout
    return {"pcap": pcap, "port": port, "simple": simple, "extended": extended, "churn": churn,
            "tshark": lab.tshark_pgsql(pcap, port), "report": report(pcap)}


def pg_answers(msgs: list[dict]) -> list[tuple[dict, list[dict]]]:
    """Each Query (tshark) with the server's messages up to and including its
    ReadyForQuery, per TCP connection."""
    out: list[tuple[dict, list[dict]]] = []
    open_q: dict[int, tuple[dict, list[dict]]] = {}
    for m in msgs:
        s = m["stream"]
        if m["dir"] == "c2s" and m["code"] == "Q":
            open_q[s] = (m, [])
            out.append(open_q[s])
        elif m["dir"] == "s2c" and s in open_q:
            open_q[s][1].append(m)
            if m["code"] == "Z":
                del open_q[s]
    return out


@NEED_PG
def test_pg_every_simple_query_is_an_exchange(pg_capture):
    rep, msgs = pg_capture["report"], pg_capture["tshark"]
    ex_at = by_request_frame(rep, ("pgsql",))
    answers = pg_answers(msgs)
    assert len(answers) == 4 + 2 + 70 + 2  # psql, pgbench's set-up + benchmark (x2 set-ups)
    seen_error = seen_big = False
    for q, answer in answers:
        _, e = one([fe for fe in ex_at[q["frame"]]
                    if fe[1]["request"].get("query") == q["query"][:QUERY_KEEP]],
                   f"tcpwatch exchange for Query {q['query']!r} in frame {q['frame']}")
        assert e["request"]["kind"] == "simple"
        assert answer and answer[-1]["code"] == "Z", f"no ReadyForQuery for {q['query']!r}"
        resp = e["response"]
        # the answer ends with ReadyForQuery; tcpwatch's last response frame is its frame
        assert e["response_frames"][1] == answer[-1]["frame"], (q["query"], answer[-1])
        assert resp["status"] == answer[-1]["status"]
        tags = [m["tag"] for m in answer if m["code"] == "C"]
        errors = [m for m in answer if m["type"] == "Error"]
        if tags:
            assert resp.get("tag") == tags[-1], (q["query"], resp)
        else:
            assert "tag" not in resp, (q["query"], resp)
        if errors:
            seen_error = True
            assert resp.get("sqlstate") == errors[0]["sqlstate"] == "42P01"
            assert resp.get("severity") == errors[0]["severity"]
            assert resp.get("message") == errors[0]["message"]
        else:
            assert "sqlstate" not in resp, (q["query"], resp)
        if q["query"].startswith("SELECT generate_series"):
            seen_big = True  # ~300 kB of DataRows over many segments
            assert resp["rows"] == 20000 and resp["tag"] == "SELECT 20000"
            assert e["response_frames"][0] < e["response_frames"][1]
        # the request's bytes are its Query message: 'Q', a 4-byte length, the text, NUL
        assert e["request_bytes"] == 1 + 4 + len(q["query"].encode()) + 1, (q, e)
    assert seen_error and seen_big
    # and tcpwatch has no simple-query exchange tshark did not see
    tshark_frames = collections.Counter(q["frame"] for q, _ in answers)
    mine = collections.Counter(e["request_frames"][0] for _, e in exchanges(rep)
                               if e["protocol"] == "pgsql" and e["request"]["kind"] == "simple")
    assert mine == tshark_frames


@NEED_PG
def test_pg_extended_protocol_one_exchange_per_execute(pg_capture):
    rep, msgs = pg_capture["report"], pg_capture["tshark"]
    # tshark: for each Execute, the text of the Parse before it (pgbench -M extended parses
    # an unnamed statement each time), the frame the batch started in (Parse) and the
    # frame of the Execute's CommandComplete
    expected: list[dict] = []
    parse: dict[int, dict] = {}
    waiting: dict[int, list[dict]] = collections.defaultdict(list)
    for m in msgs:
        s = m["stream"]
        if m["dir"] == "c2s" and m["code"] == "P":
            parse[s] = m
        elif m["dir"] == "c2s" and m["code"] == "E":
            p = parse.pop(s)
            item = {"query": p["query"], "start": p["frame"], "execute": m["frame"],
                    "stream": s, "done": None}
            expected.append(item)
            waiting[s].append(item)
        elif m["dir"] == "s2c" and m["code"] in ("C", "E") and waiting[s]:
            item = waiting[s].pop(0)
            item["done"] = m["frame"]
            item["tag"] = m["tag"]
    assert len(expected) == 70 and all(x["done"] for x in expected)
    ext = [e for _, e in exchanges(rep) if e["protocol"] == "pgsql"
           and e["request"]["kind"] == "extended"]
    assert len(ext) == len(expected)
    for x, e in zip(expected, ext):
        assert e["request"]["query"] == x["query"][:QUERY_KEEP]
        # the exchange starts with the batch's first message (the Parse), not the Execute:
        # Parse/Bind/Describe/Execute/Sync are one request (here all in one segment)
        assert e["request_frames"][0] == x["start"] and e["request_frames"][1] >= x["execute"]
        assert e["response_frames"][1] == x["done"]
        assert e["response"]["tag"] == x["tag"]


def _bench_flow(rep: dict, kind: str) -> tuple[dict, list[dict]]:
    """The flow of pgbench's client connection (the one running the TPC-B-like script)."""
    flows = [f for f in rep["flows"]
             if any(e["protocol"] == "pgsql" and e["request"].get("kind") == kind
                    and e["request"].get("query", "").startswith("UPDATE pgbench_accounts")
                    for e in f.get("exchanges", []))]
    f = one(flows, f"pgbench {kind} connection")
    return f, [e for e in f["exchanges"] if e["request"]["kind"] != "startup"]


@NEED_PG
@pytest.mark.parametrize("mode,kind", [("simple", "simple"), ("extended", "extended")])
def test_pgbench_transactions_times_seven(pg_capture, mode, kind):
    m = PROCESSED.search(pg_capture[mode].stdout)
    assert m, pg_capture[mode].stdout
    done = int(m.group(1))
    assert done == int(m.group(2)) == 10
    flow, exs = _bench_flow(pg_capture["report"], kind)
    # the builtin TPC-B-like script: BEGIN; UPDATE accounts; SELECT abalance; UPDATE
    # tellers; UPDATE branches; INSERT history; END; (Terminate is not an exchange)
    assert len(exs) == 7 * done
    assert all(e["request"]["kind"] == kind for e in exs)
    words = collections.Counter(e["request"]["query"].split()[0].rstrip(";") for e in exs)
    assert words == {"BEGIN": done, "UPDATE": 3 * done, "SELECT": done, "INSERT": done,
                     "END": done}
    assert all(e["response_frames"] for e in exs)
    assert not any("sqlstate" in e["response"] for e in exs)


@NEED_PG
def test_pg_sleep_is_server_think(pg_capture):
    rep = pg_capture["report"]
    f, e = one([(f, e) for f, e in exchanges(rep)
                if e["request"].get("query") == "SELECT pg_sleep(0.2);"], "pg_sleep")
    b = e["breakdown"]
    # think: the server's time from the query's last byte to the answer's first, less the
    # network round trip (loopback: microseconds); pg_sleep(0.2) sleeps at least 200 ms
    assert abs(b["think"] - SLEEP) < THINK_TOLERANCE, b
    assert b["think"] >= SLEEP - 0.001 and b["network"] < 0.001
    assert e["request"]["fingerprint"] == "SELECT pg_sleep(?)"
    assert any(d["kind"] == "server_think" and d.get("flow") == f["id"]
               and d.get("exchange") == e["index"] for d in findings(rep)), findings(rep)


@NEED_PG
def test_pg_startup_md5(pg_capture):
    rep, msgs = pg_capture["report"], pg_capture["tshark"]
    startups = [m for m in msgs if m["type"] == "Startup message"]
    mine = [e for _, e in exchanges(rep) if e["protocol"] == "pgsql"
            and e["request"]["kind"] == "startup"]
    # psql, pgbench (its set-up connection, its client) twice: five start-ups, all md5
    assert len(startups) == len(mine) == 5
    assert sorted(e["request_frames"][0] for e in mine) == [m["frame"] for m in startups]
    for e in mine:
        assert e["response"]["auth"] == "md5" and e["response"]["status"] == "I"
        assert e["request"]["user"] == "postgres" and e["request"]["database"] == "postgres"
    # tshark: an MD5 request (5) then AuthenticationOk (0) on each connection
    auth = collections.defaultdict(list)
    for m in msgs:
        if m["type"] == "Authentication request":
            auth[m["stream"]].append(m["authtype"])
    assert list(auth.values()) == [[5, 0]] * 5


@NEED_PG
def test_pg_endpoints(pg_capture):
    rep = report(pg_capture["pcap"], "--by", "endpoint")
    eps = {e["name"]: e for e in rep["endpoints"] if e["service"].endswith("pgsql")}
    assert eps["SELECT pg_sleep(?)"]["requests"] == 1
    assert eps["SELECT pg_sleep(?)"]["errors"] == 0
    assert eps["SELECT * FROM nonexistent"]["requests"] == 1
    assert eps["SELECT * FROM nonexistent"]["errors"] == 1
    assert eps["SELECT pg_sleep(?)"]["badge"] == "THINK"


# ---- MariaDB ------------------------------------------------------------------------------
MARIA_SQL = ("SELECT 1; SELECT SLEEP(0.2); SELECT * FROM nonexistent; CREATE TABLE t (a INT); "
             "INSERT INTO t VALUES (1),(2); SELECT * FROM t;")
MARIA_QUERIES = ["SELECT 1", "SELECT SLEEP(0.2)", "SELECT * FROM nonexistent",
                 "CREATE TABLE t (a INT)", "INSERT INTO t VALUES (1),(2)", "SELECT * FROM t"]


@pytest.fixture(scope="module")
def maria_capture(tmp_path_factory):
    for prog in ("mariadbd", "mariadb-install-db", "mariadb"):
        if shutil.which(prog) is None:
            pytest.skip(f"{prog} not installed (bash .ci/setup installs it)")
    pcap = tmp_path_factory.mktemp("my") / "my.pcap"
    with lab.mariadb() as db:
        with lab.capture(db.port, pcap):
            r = db.client(MARIA_SQL)
        port, user = db.port, db.user
    assert "ERROR 1146 (42S02)" in r.stderr
    return {"pcap": pcap, "port": port, "user": user, "tshark": lab.tshark_mysql(pcap, port),
            "report": report(pcap)}


def my_answers(pkts: list[dict]) -> list[tuple[dict, list[dict]]]:
    """Each client packet (tshark) with the server's packets until the next one."""
    out: list[tuple[dict, list[dict]]] = []
    for p in pkts:
        if p["dir"] == "c2s":
            out.append((p, []))
        elif out:
            out[-1][1].append(p)
    return out


@NEED_MARIADB
def test_mariadb_every_com_query_is_an_exchange(maria_capture):
    rep, pkts = maria_capture["report"], maria_capture["tshark"]
    ex_at = by_request_frame(rep, ("mysql",))
    answers = [(q, a) for q, a in my_answers(pkts) if q["command"] == 3]  # COM_QUERY
    assert [q["query"] for q, _ in answers] == MARIA_QUERIES
    got = {}
    for q, answer in answers:
        _, e = one([fe for fe in ex_at[q["frame"]]
                    if fe[1]["request"].get("query") == q["query"]],
                   f"tcpwatch exchange for COM_QUERY {q['query']!r} in frame {q['frame']}")
        assert e["request"]["kind"] == e["request"]["command"] == "COM_QUERY"
        assert e["response_frames"][1] == answer[-1]["frame"], (q["query"], answer[-1])
        got[q["query"]] = (e, answer)
    e, answer = got["SELECT * FROM nonexistent"]
    err = one([p for p in answer if p["response"] == "ERR"], "ERR")
    assert e["response"]["result"] == "ERR"
    assert (e["response"]["error_code"], e["response"]["sqlstate"]) == \
        (err["error_code"], err["sqlstate"]) == (1146, "42S02")
    assert e["response"]["message"] == err["error_message"]
    e, answer = got["INSERT INTO t VALUES (1),(2)"]
    ok = one([p for p in answer if p["response"] == "OK"], "OK")
    assert e["response"]["result"] == "OK"
    assert e["response"]["affected_rows"] == ok["affected_rows"] == 2
    e, answer = got["SELECT * FROM t"]
    assert e["response"]["result"] == "resultset"
    assert e["response"]["columns"] == answer[0]["num_fields"] == 1
    # a text result set: column count, 1 column definition, EOF, the rows, EOF
    rows = [p for p in answer if p["response"] is None and "mysql.row.text" in p["fields"]]
    assert e["response"]["rows"] == len(rows) == 2
    e, _ = got["CREATE TABLE t (a INT)"]
    assert e["response"]["result"] == "OK" and e["response"]["affected_rows"] == 0


@NEED_MARIADB
def test_mariadb_sleep_and_handshake(maria_capture):
    rep = maria_capture["report"]
    exs = [e for _, e in exchanges(rep) if e["protocol"] == "mysql"]
    sleep = one([e for e in exs if e["request"].get("query") == "SELECT SLEEP(0.2)"], "SLEEP")
    assert abs(sleep["breakdown"]["think"] - SLEEP) < THINK_TOLERANCE, sleep["breakdown"]
    hs = one([e for e in exs if e["request"]["kind"] == "handshake"], "handshake")
    assert hs["request"]["user"] == maria_capture["user"] == "lab"
    assert hs["response"]["result"] == "OK"
    assert hs["index"] == 0
    # tcpwatch's handshake exchange spans the whole login: it starts with the server's
    # greeting (the connection's first packet, tshark's "server greeting"), so its
    # request_frames name the greeting's frame, not the client's login request (a
    # deliberate difference: the greeting is what the server sends first, unasked), and
    # it ends with the OK that answers the login
    pkts = maria_capture["tshark"]
    greeting = one([p for p in pkts if p["greeting"]], "greeting")
    login = one([p for p in pkts if p["login"]], "login request")
    ok = [p for p in pkts if p["dir"] == "s2c" and p["response"] == "OK"][0]
    assert greeting["frame"] < login["frame"] < ok["frame"]
    assert hs["request_frames"][0] == greeting["frame"]
    assert hs["response_frames"][1] == ok["frame"]
    assert exs[-1]["request"]["kind"] == "COM_QUIT"


# ---- HTTP/2: nginx ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def h2_capture(tmp_path_factory):
    for prog in ("nginx", "nghttp"):
        if shutil.which(prog) is None:
            pytest.skip(f"{prog} not installed (bash .ci/setup installs it)")
    pcap = tmp_path_factory.mktemp("h2") / "h2.pcap"
    with lab.nginx_h2c() as ng:
        with lab.capture(ng.port, pcap):
            subprocess.run(["nghttp", "-n", "--no-dep", ng.url("/small.txt"),
                            ng.url("/large.bin"), ng.url("/nope")],
                           capture_output=True, text=True, timeout=30, check=True)
        port = ng.port
    frames = lab.tshark_http2(pcap, port)
    return {"pcap": pcap, "port": port, "frames": frames, "reqs": lab.h2_requests(frames),
            "report": report(pcap)}


def h2_match(rep: dict, reqs: dict) -> dict[tuple[int, int], tuple[dict, dict]]:
    """tshark's request streams -> (tshark's, tcpwatch's exchange): the same stream id, the
    request's first frame (a TCP frame belongs to one connection) as request_frames[0]."""
    mine = collections.defaultdict(list)
    for _, e in exchanges(rep):
        if e["protocol"] in ("http2", "grpc"):
            mine[(e["request_frames"][0], e["request"]["stream"])].append(e)
    out = {}
    for key, r in reqs.items():
        first = [f for f in r["frames"] if f["dir"] == "c2s"][0]
        out[key] = (r, one(mine[(first["frame"], key[1])], f"exchange for stream {key}"))
    assert sum(len(v) for v in mine.values()) == len(out), "exchanges tshark did not see"
    return out


def s2c_end(r: dict) -> dict:
    """The frame that ended the server's side of a stream (END_STREAM, or RST_STREAM)."""
    return [f for f in r["frames"] if f["dir"] == "s2c"
            and (f["end_stream"] or f["type"] == "RST_STREAM")][-1]


@NEED_NGINX
def test_h2_nginx_streams(h2_capture):
    reqs = h2_capture["reqs"]
    matched = h2_match(h2_capture["report"], reqs)
    assert sorted((k[1], r["path"], r["status"]) for k, (r, _) in matched.items()) == [
        (1, "/small.txt", "200"), (3, "/large.bin", "200"), (5, "/nope", "404")]
    ends = set()
    for (_, sid), (r, e) in matched.items():
        assert e["protocol"] == "http2"
        assert (e["request"]["stream"], e["request"]["method"], e["request"]["path"]) == \
            (sid, r["method"], r["path"])
        assert e["response"]["status"] == int(r["status"])
        # each stream timed on its own: its answer starts with its HEADERS and ends with
        # its END_STREAM, not the connection's next bytes
        s2c = [f for f in r["frames"] if f["dir"] == "s2c"]
        assert e["response_frames"][0] == s2c[0]["frame"] and s2c[0]["type"] == "HEADERS"
        assert e["response_frames"][1] == s2c_end(r)["frame"]
        ends.add(tuple(e["response_frames"]))
    assert len(ends) == 3
    # the 1 MiB body spans many segments, the small one fits in one or two
    _, big = matched[next(k for k in matched if k[1] == 3)]
    assert big["response_frames"][1] - big["response_frames"][0] > 10


# ---- gRPC ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grpc_capture(tmp_path_factory):
    if importlib.util.find_spec("grpc") is None:
        pytest.skip("grpcio not installed in the venv")
    pcap = tmp_path_factory.mktemp("grpc") / "grpc.pcap"
    with lab.grpc_server() as g:
        with lab.capture(g.port, pcap):
            out = g.client()  # Unary, Slow, Fail, Stream:5, Slow@0.05 on one channel
        port = g.port
    frames = lab.tshark_http2(pcap, port)
    return {"pcap": pcap, "port": port, "calls": out["calls"], "frames": frames,
            "reqs": lab.h2_requests(frames), "report": report(pcap)}


@NEED_GRPC
def test_grpc_calls(grpc_capture):
    calls, reqs = grpc_capture["calls"], grpc_capture["reqs"]
    matched = h2_match(grpc_capture["report"], reqs)
    rows = [matched[k] for k in sorted(matched)]
    assert [r["path"] for r, _ in rows] == [c["path"] for c in calls]
    for (r, e), c in zip(rows, calls):
        req = e["request"]
        assert e["protocol"] == "grpc"
        assert (req["method"], req["path"]) == (r["method"], r["path"]) == ("POST", c["path"])
        assert (req["service"], req["rpc"]) == ("lab.Echo", c["method"])
    for (r, e), c in zip(rows[:4], calls):  # the deadline call: test_grpc_deadline
        resp = e["response"]
        assert resp["status"] == int(r["status"]) == 200
        # tshark decodes the trailers' grpc-status (HEADERS with END_STREAM)
        assert resp["grpc_status"] == int(r["grpc_status"]) == c["code_value"]
        assert resp["grpc_code"] == c["code"]
    unary, slow, fail, stream, late = (e for _, e in rows)
    assert fail["response"]["grpc_message"] == rows[2][0]["grpc_message"] == "no such thing"
    assert fail["response"]["grpc_code"] == "NOT_FOUND"
    for (r, e) in rows[:4]:  # answered: the answer ends with the trailers' END_STREAM
        assert e["response_frames"][1] == s2c_end(r)["frame"]
    assert stream["response_frames"][0] <= stream["response_frames"][1]


@NEED_GRPC
def test_grpc_slow_call_think(grpc_capture):
    (r, e) = h2_match(grpc_capture["report"], grpc_capture["reqs"])[(0, 3)]
    assert e["request"]["rpc"] == "Slow"
    # From first principles: the python server sends nothing on the stream until the
    # handler returns (initial metadata goes out with the first message): the response's
    # first frame (HEADERS, with DATA and trailers) comes >= 200 ms after the request's
    # last (DATA, END_STREAM). So the first response byte - the last request byte - the
    # network round trip, tcpwatch's think, is the handler's 200 ms (plus gRPC's overhead:
    # well under 5 ms on loopback). The connection's PINGs and WINDOW_UPDATEs are on
    # stream 0 and do not count.
    c2s = [f for f in r["frames"] if f["dir"] == "c2s"]
    s2c = [f for f in r["frames"] if f["dir"] == "s2c"]
    req_end = [f for f in c2s if f["end_stream"]][0]  # the request's DATA, END_STREAM
    gap = s2c[0]["time"] - req_end["time"]
    assert gap >= lab.GRPC_SLOW
    assert e["request_frames"] == [c2s[0]["frame"], req_end["frame"]]
    assert e["response_frames"][0] == s2c[0]["frame"]
    b = e["breakdown"]
    assert abs(b["think"] - lab.GRPC_SLOW) < THINK_TOLERANCE, b
    assert abs(b["think"] + b["network"] - gap) < 0.001, (b, gap)


@NEED_GRPC
def test_grpc_deadline(grpc_capture):
    rep = grpc_capture["report"]
    (r, e) = h2_match(rep, grpc_capture["reqs"])[(0, 9)]
    assert grpc_capture["calls"][4]["code"] == "DEADLINE_EXCEEDED"
    assert e["request"]["rpc"] == "Slow"
    assert e["request"]["deadline"] == pytest.approx(0.05, abs=0.01)
    # a race (see test_backends_lab): the server's own timer answers DEADLINE_EXCEEDED
    # (grpc-status 4), or the client's RST_STREAM CANCEL comes first
    resp = e["response"]
    assert resp.get("grpc_code") == "DEADLINE_EXCEEDED" or resp.get("rst") == "CANCEL", resp
    c2s = [f for f in r["frames"] if f["dir"] == "c2s"]
    s2c = [f for f in r["frames"] if f["dir"] == "s2c"]
    cancel = [f for f in c2s if f["type"] == "RST_STREAM" and f["rst_error"] == 8]
    if resp.get("rst") == "CANCEL":
        # the client's RST_STREAM CANCEL (error 8) came before any answer on the stream.
        # A deliberate difference: the server may still have sent its answer (HEADERS
        # :status 200, grpc-status 4, END_STREAM; then RST_STREAM NO_ERROR) in flight
        # when the CANCEL arrived, and tshark shows it on the stream (h2_requests then has
        # grpc_status "4"); tcpwatch closes the exchange at the CANCEL (RFC 9113 5.1: a
        # stream reset is closed, what comes later on it is ignored): no response frames
        assert resp["rst_by"] == "client"
        assert cancel and cancel[0]["frame"] <= min([f["frame"] for f in s2c],
                                                    default=cancel[0]["frame"])
        assert e["response_frames"] is None
    else:
        # the server's timer first: :status 200 and grpc-status 4 in the trailers
        assert resp["grpc_status"] == int(r["grpc_status"]) == 4
        assert resp["status"] == int(r["status"]) == 200
        assert e["response_frames"][1] == s2c_end(r)["frame"]
        assert not cancel or cancel[0]["frame"] >= s2c[0]["frame"]
    assert any(d["kind"] == "deadline_exceeded" and d.get("exchange") == e["index"]
               for d in findings(rep)), findings(rep)


@NEED_PG
def test_pg_picked_up_after_its_startup(pg_capture, tmp_path):
    """A capture that starts after psql's start-up (no StartupMessage, no authentication):
    its queries are still recognised (whole Query messages), labelled and timed, and the
    connection says why its start-up is unknown."""
    msgs = pg_capture["tshark"]
    first_q = min(m["frame"] for m in msgs if m["dir"] == "c2s" and m["code"] == "Q")
    cut = tmp_path / "mid.pcap"
    subprocess.run(["editcap", "-r", str(pg_capture["pcap"]), str(cut), f"{first_q}-10000000"],
                   check=True, capture_output=True)
    rep = report(cut)
    flow = one([f for f in rep["flows"] if any(
        e["request"].get("query") == "SELECT pg_sleep(0.2);" for e in f["exchanges"])],
        "the psql connection")
    # (no SYN: the roles come from the ports, the lower being taken for the server, which
    # the private port of the test's server may not be; the queries tell)
    assert flow["app"]["protocol"] == "pgsql"
    assert flow["app"]["note"].startswith("picked up after its start-up")
    kinds = [e["request"].get("kind") for e in flow["exchanges"]]
    assert "startup" not in kinds and kinds.count("simple") == 4
    sleep = one([e for e in flow["exchanges"]
                 if e["request"].get("query") == "SELECT pg_sleep(0.2);"], "pg_sleep")
    assert abs(sleep["breakdown"]["think"] - 0.2) < 0.005


@NEED_PG
def test_pg_connection_per_query_is_churn(pg_capture):
    """Three psql runs, one query each: three TCP handshakes and three md5 start-ups where a
    pool would pay once; the finding counts the start-ups' time."""
    rep = report(pg_capture["churn"])
    f = one([x for x in findings(rep) if x["kind"] == "connection_churn"], "churn finding")
    assert len(f["flows"]) == 3
    assert "one query each" in f["explain"] and "pool" in f["advice"]
    setups = [e for _, e in exchanges(rep) if e["request"].get("kind") == "startup"]
    assert len(setups) == 3
    # the cost: two extra TCP handshakes and two extra start-ups (the first is paid anyway)
    assert f["lost"] > 0.99 * sum(e["response_end"] - e["request_start"] for e in setups[1:])
