"""The request-timing lab (issue 16): real PostgreSQL, MariaDB, nginx (cleartext HTTP/2) and
gRPC servers on 127.0.0.1, real clients, a tcpdump capture, and tshark's dissectors as the
oracle (tests/lab/backends.py). These tests check the lab itself: the workload is on the wire
the way later tests will rely on, message by message. As root; each backend is skipped when
its programs are missing (bash .ci/setup installs them)."""

from __future__ import annotations

import collections
import os
import subprocess

import pytest
from lab import backends as lab
from lab.marks import LAB, NEED_GRPC, NEED_MARIADB, NEED_NGINX, NEED_PG

pytestmark = LAB
LAB_PREFIXES = ("tcpwatch-pg-", "tcpwatch-mariadb-", "tcpwatch-nginx-", "tcpwatch-grpc-")


def _lab_processes() -> list[str]:
    """Processes a lab server left: anything run by tcpwatch-pg, or naming a lab directory."""
    try:
        pg_uid = lab.pwd.getpwnam(lab.PG_USER).pw_uid
    except KeyError:
        pg_uid = None
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        if uid == pg_uid or any(p in cmd for p in LAB_PREFIXES):
            out.append(f"{pid} {cmd}")
    return out


@pytest.fixture(scope="module", autouse=True)
def no_leftovers():
    yield  # set up first, so this runs after every server of the module has stopped
    assert _lab_processes() == []


@pytest.fixture(scope="module")
def pg():
    with lab.postgres() as server:
        yield server


@pytest.fixture(scope="module")
def maria():
    with lab.mariadb() as server:
        yield server


def by_code(msgs: list[dict], code: str, direction: str | None = None) -> list[dict]:
    return [m for m in msgs if m["code"] == code and direction in (None, m["dir"])]


# ---- PostgreSQL ---------------------------------------------------------------------------
@NEED_PG
def test_postgres_simple_queries_and_an_error(pg, tmp_path):
    with lab.capture(pg.port, tmp_path / "pg.pcap") as pcap:
        r = pg.psql(input="SELECT 1;\nSELECT pg_sleep(0.2);\nSELECT * FROM nonexistent;\n")
    assert "does not exist" in r.stderr
    msgs = lab.tshark_pgsql(pcap, pg.port)
    assert len({m["stream"] for m in msgs}) == 1
    queries = by_code(msgs, "Q", "c2s")
    assert [q["query"] for q in queries] == [
        "SELECT 1;", "SELECT pg_sleep(0.2);", "SELECT * FROM nonexistent;"]
    [err] = [m for m in msgs if m["type"] == "Error"]
    assert (err["sqlstate"], err["severity"]) == ("42P01", "ERROR")
    assert 'relation "nonexistent" does not exist' == err["message"]
    assert [m["tag"] for m in by_code(msgs, "C", "s2c")] == ["SELECT 1", "SELECT 1"]
    # one ReadyForQuery after the start-up, then one per query (the error's too), all idle
    assert [m["status"] for m in by_code(msgs, "Z", "s2c")] == ["I"] * 4
    # each query's answer ends with its ReadyForQuery; pg_sleep's comes >= 200 ms later
    zs = by_code(msgs, "Z", "s2c")[1:]
    waits = [z["time"] - q["time"] for q, z in zip(queries, zs)]
    assert waits[1] >= 0.2 and waits[0] < 0.2 and waits[2] < 0.2
    # several messages in one TCP segment: the answer to SELECT 1 (T, D, C, Z) is one send
    first_answer = [m for m in msgs if m["dir"] == "s2c" and m["frame"] == zs[0]["frame"]]
    assert [m["code"] for m in first_answer] == ["T", "D", "C", "Z"]
    assert [m["index"] for m in first_answer] == [0, 1, 2, 3]
    assert by_code(msgs, "X", "c2s"), "psql's Terminate"


@NEED_PG
def test_postgres_pgbench_statement_count(pg, tmp_path):
    if not pg.dir.joinpath("pgbench-initialised").exists():
        pg.pgbench("-i", "-q", "-s", "1")
        pg.dir.joinpath("pgbench-initialised").touch()
    with lab.capture(pg.port, tmp_path / "pgbench.pcap") as pcap:
        r = pg.pgbench("-n", "-t", "10", "-c", "1")
    assert "number of transactions actually processed: 10/10" in r.stdout
    msgs = lab.tshark_pgsql(pcap, pg.port)
    per_stream = collections.Counter(m["stream"] for m in by_code(msgs, "Q", "c2s"))
    # pgbench first asks, on a connection of its own, for the scale (count(*) of
    # pgbench_branches) and partitioning (-n: no vacuum/truncate); then the client's
    # connection: the builtin TPC-B-like script is 7 statements (BEGIN; UPDATE accounts;
    # SELECT abalance; UPDATE tellers; UPDATE branches; INSERT history; END;) a transaction
    assert sorted(per_stream.values()) == [2, 70]
    [bench] = [s for s, n in per_stream.items() if n == 70]
    words = collections.Counter(m["query"].split()[0] for m in by_code(msgs, "Q", "c2s")
                                if m["stream"] == bench)
    assert words == {"BEGIN;": 10, "UPDATE": 30, "SELECT": 10, "INSERT": 10, "END;": 10}
    tags = collections.Counter(m["tag"] for m in by_code(msgs, "C", "s2c")
                               if m["stream"] == bench)
    assert tags["BEGIN"] == tags["COMMIT"] == tags["INSERT 0 1"] == 10
    assert tags["UPDATE 1"] == 30


@NEED_PG
@pytest.mark.parametrize("auth,codes", [("md5", [5, 0]), ("scram-sha-256", [10, 11, 12, 0])])
def test_postgres_password_exchange_and_a_row_over_many_segments(auth, codes, tmp_path):
    with lab.postgres(auth) as server:
        with lab.capture(server.port, tmp_path / "auth.pcap") as pcap:
            r = server.psql("-At", "-c", "SELECT length(repeat('x', 300000))",
                            "-c", "SELECT repeat('x', 300000)", check=True)
        assert r.stdout.startswith("300000\n")
    msgs = lab.tshark_pgsql(pcap, server.port)
    assert [m["authtype"] for m in by_code(msgs, "R", "s2c")] == codes
    assert by_code(msgs, "p", "c2s")
    # the 300 kB DataRow spans several TCP segments (lo's MTU is 64 KiB): tshark
    # reassembles it into one message, in the frame of its last segment
    [big] = [m for m in by_code(msgs, "D", "s2c")
             if int(m["fields"]["pgsql.length"][0]) > 300000]
    assert len(big["segments"]) > 1 and big["segments"][-1] == big["frame"]
    assert len(by_code(msgs, "Q", "c2s")) == 2


# ---- MariaDB ------------------------------------------------------------------------------
@NEED_MARIADB
def test_mariadb_queries_sleep_and_error(maria, tmp_path):
    with lab.capture(maria.port, tmp_path / "my.pcap") as pcap:
        r = maria.client("SELECT 1; SELECT SLEEP(0.2); SELECT * FROM missing; "
                         "CREATE TABLE IF NOT EXISTS t (a INT); INSERT INTO t VALUES (1),(2);")
    assert "ERROR 1146 (42S02)" in r.stderr
    pkts = lab.tshark_mysql(pcap, maria.port)
    assert len({p["stream"] for p in pkts}) == 1
    assert pkts[0]["greeting"] and pkts[0]["dir"] == "s2c"
    [login] = [p for p in pkts if p["login"]]
    assert login["fields"]["mysql.user"] == [maria.user]
    assert login["fields"]["mysql.client_auth_plugin"] == ["mysql_native_password"]
    queries = [p for p in pkts if p["command"] == 3]  # COM_QUERY
    assert [q["query"] for q in queries] == [
        "SELECT 1", "SELECT SLEEP(0.2)", "SELECT * FROM missing",
        "CREATE TABLE IF NOT EXISTS t (a INT)", "INSERT INTO t VALUES (1),(2)"]
    assert [p["command"] for p in pkts if p["dir"] == "c2s"][-1] == 1  # COM_QUIT
    [err] = [p for p in pkts if p["response"] == "ERR"]
    assert (err["error_code"], err["sqlstate"]) == (1146, "42S02")
    # each query's answer: the server's packets until the next request
    answers: dict[int, list[dict]] = {}
    current = None
    for p in pkts:
        if p["dir"] == "c2s":
            current = p["frame"]
        elif current is not None:  # (not the greeting)
            answers.setdefault(current, []).append(p)
    last = {q["query"]: answers[q["frame"]][-1] for q in queries}
    assert last["SELECT SLEEP(0.2)"]["time"] - queries[1]["time"] >= 0.2
    assert last["SELECT 1"]["time"] - queries[0]["time"] < 0.2
    assert last["SELECT 1"]["response"] == "EOF"  # result set: columns, EOF, rows, EOF
    assert answers[queries[0]["frame"]][0]["num_fields"] == 1
    assert last["INSERT INTO t VALUES (1),(2)"]["response"] == "OK"
    assert last["INSERT INTO t VALUES (1),(2)"]["affected_rows"] == 2


@NEED_MARIADB
def test_mysqlslap_queries(maria, tmp_path):
    with lab.capture(maria.port, tmp_path / "slap.pcap") as pcap:
        maria.slap("--query=SELECT 1", "--concurrency=1", "--iterations=1",
                   "--number-of-queries=10", f"--create-schema={maria.dbname}")
    pkts = lab.tshark_mysql(pcap, maria.port)
    per_stream = collections.Counter(p["stream"] for p in pkts
                                     if p["command"] == 3 and p["query"] == "SELECT 1")
    assert 10 in per_stream.values()


# ---- nginx, cleartext HTTP/2 --------------------------------------------------------------
@NEED_NGINX
def test_nginx_h2c_three_paths_on_one_connection(tmp_path):
    with lab.nginx_h2c() as ng:
        with lab.capture(ng.port, tmp_path / "h2.pcap") as pcap:
            r = subprocess.run(["nghttp", "-n", "--no-dep", ng.url("/small.txt"),
                                ng.url("/large.bin"), ng.url("/nope")],
                               capture_output=True, text=True, timeout=30, check=True)
            c = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                                "-w", "%{http_version} %{http_code} %{size_download}",
                                ng.url("/large.bin")], capture_output=True, text=True,
                               timeout=30, check=True)
        assert r.returncode == 0 and c.stdout == f"2 200 {lab.LARGE_SIZE}"
    frames = lab.tshark_http2(pcap, ng.port)
    reqs = lab.h2_requests(frames)
    assert {s for s, _ in reqs} == {0, 1}  # nghttp's connection, then curl's
    got = sorted((s, sid, v["method"], v["path"], v["status"], v["data_bytes"]["s2c"])
                 for (s, sid), v in reqs.items())
    assert got[:3] == [(0, 1, "GET", "/small.txt", "200", len(lab.SMALL_BODY)),
                       (0, 3, "GET", "/large.bin", "200", lab.LARGE_SIZE),
                       (0, 5, "GET", "/nope", "404", got[2][5])]
    assert got[3] == (1, 1, "GET", "/large.bin", "200", lab.LARGE_SIZE)
    assert frames[0]["type"] == "MAGIC" and frames[0]["dir"] == "c2s"
    for v in reqs.values():  # each response ends with END_STREAM on its last DATA frame
        last = [f for f in v["frames"] if f["dir"] == "s2c"][-1]
        assert last["type"] == "DATA" and last["end_stream"]
        assert v["frames"][0]["type"] == "HEADERS" and v["frames"][0]["end_stream"]
    assert any(f["index"] > 0 for f in frames), "several HTTP/2 frames in one TCP segment"


# ---- gRPC ---------------------------------------------------------------------------------
@NEED_GRPC
def test_grpc_calls_status_and_deadline(tmp_path):
    with lab.grpc_server() as g:
        with lab.capture(g.port, tmp_path / "grpc.pcap") as pcap:
            out = g.client()  # Unary, Slow, Fail, Stream:5, Slow@0.05 on one channel
    calls = out["calls"]
    assert [(c["method"], c["code"]) for c in calls] == [
        ("Unary", "OK"), ("Slow", "OK"), ("Fail", "NOT_FOUND"), ("Stream", "OK"),
        ("Slow", "DEADLINE_EXCEEDED")]
    assert calls[1]["elapsed"] >= lab.GRPC_SLOW and calls[4]["elapsed"] < lab.GRPC_SLOW
    assert calls[3]["responses"] == 5
    frames = lab.tshark_http2(pcap, g.port)
    reqs = lab.h2_requests(frames)
    assert {s for s, _ in reqs} == {0}, "one channel, one connection"
    rpcs = [reqs[k] for k in sorted(reqs)]
    assert [(r["method"], r["path"]) for r in rpcs] == [("POST", c["path"]) for c in calls]
    assert [r["status"] for r in rpcs[:4]] == ["200"] * 4  # gRPC's status: in the trailers
    assert [r["grpc_status"] for r in rpcs[:4]] == ["0", "0", "5", "0"]
    assert rpcs[2]["grpc_message"] == "no such thing"
    assert rpcs[1]["last"] - rpcs[1]["first"] >= lab.GRPC_SLOW
    # the stream's five 100-byte messages, each a gRPC message in a DATA frame
    assert sum((f["grpc"] for f in rpcs[3]["frames"] if f["dir"] == "s2c"), []) == [100] * 5
    # the deadline: the client sends grpc-timeout, then cancels with RST_STREAM when it
    # expires; the server, whose own timer runs too, may or may not get to answer first
    # (:status 200 and grpc-status 4, DEADLINE_EXCEEDED), never grpc-status 0
    late = rpcs[4]
    assert late["status"] in (None, "200")
    assert late["timeout"] and late["timeout"][-1] in "mu"
    assert late["grpc_status"] in (None, "4")
    assert late["rst"] is not None or late["grpc_status"] == "4"
    assert late["last"] - late["first"] < lab.GRPC_SLOW
