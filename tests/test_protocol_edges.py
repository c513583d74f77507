"""Message parsers on captures built here, for what real servers rarely show on cue:
reordered segments (one held until the hole fills: nothing lost), pipelined queries left
unanswered when the connection closes (each still counted), hostile values from the wire (a
non-numeric grpc-status, Unicode digits in a grpc-timeout or a command tag: never a crash),
PostgreSQL over TLS (its turns, no false churn), a client cancel long before its deadline
(not "deadline exceeded")."""

from __future__ import annotations

import json
import subprocess
import sys

from builders import ether, ipv4, pcap_file, tcp_header
from hpack import Encoder
from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame, SettingsFrame
from test_sqlwire import pg, startup

from tcpwatch.analysis import h2, sqlwire

SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


class Conv:
    """One TCP connection's segments, both ways, as a pcap."""

    def __init__(self, sport: int, cport: int = 40000) -> None:
        self.ports = (cport, sport)
        self.seq = [1000, 5000]
        self.frames: list[bytes] = []
        self.raw(0, b"", SYN)
        self.seq[0] += 1
        self.raw(1, b"", SYN | ACK)
        self.seq[1] += 1
        self.raw(0, b"", ACK)

    def raw(self, d: int, payload: bytes, flags: int = ACK | PSH, seq: int | None = None) -> None:
        s = self.seq[d] if seq is None else seq
        sp, dp = self.ports if d == 0 else self.ports[::-1]
        src, dst = ("10.0.0.1", "10.0.0.2") if d == 0 else ("10.0.0.2", "10.0.0.1")
        self.frames.append(ether(ipv4(tcp_header(sp, dp, s, self.seq[1 - d], flags) + payload,
                                      src, dst)))

    def send(self, d: int, payload: bytes, mss: int = 1000) -> None:
        for i in range(0, len(payload), mss):
            self.raw(d, payload[i:i + mss])
            self.seq[d] += len(payload[i:i + mss])

    def close(self) -> None:
        for d in (1, 0):
            self.raw(d, b"", ACK | FIN)
            self.seq[d] += 1

    def report(self, tmp_path) -> dict:
        path = tmp_path / "c.pcap"
        path.write_bytes(pcap_file(self.frames))
        r = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "-r", str(path),
                            "--json"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


def answer(rows: int) -> bytes:
    return pg(b"T", b"\0\0") + b"".join(pg(b"D", b"\0\1\0\0\0\x20" + b"r" * 32)
                                        for _ in range(rows)) \
        + pg(b"C", b"SELECT %d\0" % rows) + pg(b"Z", b"I")


def test_reordered_answer_loses_nothing(tmp_path) -> None:
    c = Conv(5432)
    c.send(0, startup())
    c.send(1, pg(b"R", b"\0\0\0\0") + pg(b"Z", b"I"))
    for i in range(3):
        c.send(0, pg(b"Q", b"select %d\0" % i))
        ans = answer(60)
        if i == 1:  # its second segment arrives before its first
            s0 = c.seq[1]
            c.raw(1, ans[1000:], seq=s0 + 1000)
            c.raw(1, ans[:1000], seq=s0)
            c.seq[1] += len(ans)
        else:
            c.send(1, ans)
    c.close()
    f = c.report(tmp_path)["flows"][0]
    assert f["app"] is None or f["app"]["note"] is None, f["app"]
    tags = [e["response"].get("tag") for e in f["exchanges"][1:]]
    assert tags == ["SELECT 60"] * 3


def test_unanswered_pipelined_queries_are_counted_at_close(tmp_path) -> None:
    c = Conv(5432)
    c.send(0, startup())
    c.send(1, pg(b"R", b"\0\0\0\0") + pg(b"Z", b"I"))
    c.send(0, b"".join(pg(b"Q", b"select %d\0" % i) for i in range(5)))
    c.send(1, pg(b"C", b"SELECT 1\0") + pg(b"Z", b"I"))
    c.close()
    rep = c.report(tmp_path)
    assert rep["requests_counted"] == 6  # the start-up, the answered query, four unanswered
    ex = rep["flows"][0]["exchanges"]
    assert [e["response_frames"] is None for e in ex[2:]] == [True] * 4


def test_hostile_values_never_crash() -> None:
    assert h2.grpc_timeout_ns("\u00b2S") == -1 and h2.grpc_timeout_ns("50m") == 50_000_000
    assert sqlwire._tag_fields("SELECT \u00b2", 0) == {"tag": "SELECT \u00b2",
                                                       "command": "SELECT"}
    t = __import__("time").perf_counter()
    sqlwire.fingerprint("1" * 1023 + "a")  # no catastrophic backtracking
    assert __import__("time").perf_counter() - t < 0.05


def grpc_call(c: Conv, status: str, timeout: str, cancel: bool) -> None:
    enc = [Encoder(), Encoder()]
    c.send(0, h2.PREFACE + SettingsFrame(0).serialize())
    c.send(1, SettingsFrame(0).serialize())
    blk = enc[0].encode([(":method", "POST"), (":path", "/pkg.Svc/Call"), (":scheme", "http"),
                         (":authority", "x"), ("content-type", "application/grpc"),
                         ("grpc-timeout", timeout)])
    c.send(0, HeadersFrame(1, data=blk, flags=["END_HEADERS"]).serialize()
           + DataFrame(1, data=b"\0\0\0\0\0", flags=["END_STREAM"]).serialize())
    c.send(1, HeadersFrame(1, data=enc[1].encode([(":status", "200"),
                                                   ("content-type", "application/grpc")]),
                           flags=["END_HEADERS"]).serialize())
    if cancel:
        c.send(0, RstStreamFrame(1, error_code=8).serialize())
    else:
        c.send(1, HeadersFrame(1, data=enc[1].encode([("grpc-status", status)]),
                               flags=["END_HEADERS", "END_STREAM"]).serialize())
    c.close()


def test_grpc_status_not_a_number(tmp_path) -> None:
    c = Conv(50051)
    grpc_call(c, "abc", "1S", cancel=False)
    ex = c.report(tmp_path)["flows"][0]["exchanges"][0]
    assert ex["protocol"] == "grpc" and ex["response"]["grpc_code"] == "abc"
    assert "grpc_status" not in ex["response"]


def test_early_cancel_is_not_a_deadline(tmp_path) -> None:
    c = Conv(50051)
    grpc_call(c, "0", "3600S", cancel=True)
    rep = c.report(tmp_path)
    kinds = [d["kind"] for f in rep["flows"] for d in f.get("diagnosis") or []]
    assert "deadline_exceeded" not in kinds
    assert rep["flows"][0]["exchanges"][0]["response"]["rst"] == "CANCEL"


def test_postgres_over_tls_is_turns_and_no_churn(tmp_path) -> None:
    convs = []
    for i in range(3):  # three pooled connections in one capture, many encrypted turns each
        c = Conv(5432, 40000 + i)
        c.send(0, b"\0\0\0\x08\x04\xd2\x16\x2f")  # SSLRequest
        c.send(1, b"S")
        c.send(0, b"\x16\x03\x01\x00\x30" + b"h" * 48)  # TLS from here
        c.send(1, b"\x16\x03\x03\x00\x30" + b"s" * 48)
        for _ in range(5):
            c.send(0, b"\x17\x03\x03\x00\x20" + b"q" * 32)
            c.send(1, b"\x17\x03\x03\x00\x20" + b"a" * 32)
        c.close()
        convs.append(c)
    convs[0].frames = [f for c in convs for f in c.frames]
    rep = convs[0].report(tmp_path)
    assert len(rep["flows"]) == 3
    for f in rep["flows"]:
        assert f["app"]["protocol"] == "tls" and "SSLRequest accepted" in f["app"]["note"]
        assert f["exchanges"][0]["request"]["kind"] == "startup"
        assert len(f["exchanges"]) >= 6  # the start-up, then the encrypted turns
    assert not [d for d in rep["diagnosis"] if d["kind"] == "connection_churn"]


def test_http2_picked_up_mid_connection_says_why(tmp_path) -> None:
    """No preface seen (the capture began later): the frames are HTTP/2, but the header
    blocks cannot be read without the HPACK table built since the preface."""
    c = Conv(8080)
    enc = Encoder()
    enc.encode([(":method", "GET"), (":path", "/warm")])  # entries the capture never saw
    for path in ("/a", "/b"):
        blk = enc.encode([(":method", "GET"), (":path", path), (":scheme", "http"),
                          (":authority", "x")])
        c.send(0, HeadersFrame(3, data=blk, flags=["END_HEADERS", "END_STREAM"]).serialize())
        c.send(1, DataFrame(3, data=b"x" * 100, flags=["END_STREAM"]).serialize())
    c.close()
    f = c.report(tmp_path)["flows"][0]
    assert f["app"] == {"protocol": "http2", "note": "picked up mid-connection: HPACK context "
                        "unknown, requests are its turns, unlabelled"}
    assert [e["protocol"] for e in f["exchanges"]] == ["http2", "http2"]
