"""Exchanges and their labels against tshark's HTTP dissector (http.request / http.response /
http.time per tcp.stream) on the shared captures, and the breakdown's arithmetic.

Named differences, each checked by its own rule below:
  PATH_PREFIX   tcpwatch keeps the first 256 payload bytes of a segment (PAYLOAD_PREFIX), so a
                longer request line gives a path that is a prefix of tshark's.
  CAPTURE_GAP   when the capture missed a segment of a response, tshark's reassembly never
                completes it and shows no response; tcpwatch still counts the turn (its first
                bytes carry the status line). Then tshark's responses are a subsequence of ours.
  PDU_FRAME     tshark puts http.time on the frame that completes reassembly: sometimes a later
                frame than the last new response byte (a FIN, or the end of a retransmission).
                Times are compared where both name the same frame.
"""

from __future__ import annotations

import collections
import os
import subprocess

import pytest
from conftest import NEED_SHARED, NEED_TSHARK
from oracle import SHARED

from tcpwatch.analysis.exchange import breakdown
from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.fast import iter_file
from tcpwatch.capture.record import CaptureStats
from tcpwatch.cli import demo_capture

HTTP_CAPTURES = ["http.dmp", "http_espn.pcapng", "four_ipv6_http_streams.pcap",
                 "pipelined-requests.pcap", "many-protocols.pcap", "simple_http_sll2.pcap",
                 "one_http_stream_rst.pcap", "http_espn_fail.pcapng",
                 "1000-requests-one-dropped-response.pcap"]


def flows_of(path: str) -> list:
    t = FlowTable()
    for r in iter_file(path, CaptureStats()):
        t.feed(r)
    return list(t.flows.values())


def tshark_http(path: str):
    out = subprocess.run(
        ["tshark", "-r", path, "-Y", "tcp and (http.request or http.response)", "-T",
         "fields", "-e", "tcp.stream", "-e", "frame.number", "-e", "http.request.method",
         "-e", "http.request.uri", "-e", "http.response.code", "-e", "http.time",
         "-E", "occurrence=f"], capture_output=True, text=True, check=True).stdout
    req, resp = collections.defaultdict(list), collections.defaultdict(list)
    for line in out.splitlines():
        stream, num, method, uri, code, t = line.split("\t")
        if method:
            req[int(stream)].append((method, uri))
        if code:
            resp[int(stream)].append((int(code), float(t) if t else None, int(num)))
    return req, resp


def subsequence(small: list, big: list) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


@NEED_SHARED
@NEED_TSHARK
@pytest.mark.parametrize("name", HTTP_CAPTURES)
def test_http_exchanges_agree_with_tshark(name):
    path = os.path.join(SHARED, name)
    req, resp = tshark_http(path)
    n_req = n_time = n_same_frame = 0
    for fl in flows_of(path):
        exs = [x for x in fl.exchanges.items if x.proto == "http"]
        ours = [(x.request["method"], x.request["path"]) for x in exs if x.request.get("method")]
        theirs = req.get(fl.id, [])
        # PATH_PREFIX: same requests in the same order, paths equal or a 256-byte prefix
        assert len(ours) == len(theirs), (name, fl.id, ours, theirs)
        for (m1, p1), (m2, p2) in zip(ours, theirs, strict=True):
            assert m1 == m2 and (p1 == p2 or (len(p1) > 100 and p2.startswith(p1))), \
                (name, fl.id, p1, p2)
        n_req += len(ours)
        codes = [x.response["status"] for x in exs if x.response.get("status")]
        tcodes = [c for c, _t, _f in resp.get(fl.id, [])]
        gap = sum(d.counts["lost_segment"] + d.counts["ack_lost_segment"] for d in fl.dirs)
        if gap:  # CAPTURE_GAP
            assert subsequence(tcodes, codes), (name, fl.id, codes, tcodes)
            continue
        assert codes == tcodes, (name, fl.id, codes, tcodes)
        with_resp = [x for x in exs if x.response.get("status")]
        for x, (_c, t, frame) in zip(with_resp, resp.get(fl.id, []), strict=True):
            if t is None:
                continue
            n_time += 1
            if frame == x.resp_last:  # PDU_FRAME otherwise
                n_same_frame += 1
                ours_t = (x.resp_end - x.req_end) / 1e9
                assert abs(ours_t - t) < 2e-6, (name, fl.id, x.index, ours_t, t)
    assert n_req == sum(len(v) for v in req.values())
    # the PDU_FRAME exception stays an exception
    assert n_same_frame >= 0.75 * n_time, (n_same_frame, n_time)


def test_breakdown_parts_add_up_on_the_demo():
    n = 0
    for fl in flows_of(demo_capture()):
        for x in fl.exchanges.items:
            b = breakdown(x, fl, fl.exchanges)
            parts = sum(v or 0 for k, v in b.items() if k not in ("total", "stalls"))
            assert abs(parts - b["total"]) < 1e-9, (fl.id, x.index, b)
            n += 1
    assert n == 16


def test_demo_requests_and_findings_match_what_was_recorded():
    """tests/lab/record_demo.py made these: a 400 ms handler on 8081's keep-alive connection,
    eight one-request connections, a client that stops reading for 1.5 s on 8082, nftables
    dropping every twelfth segment towards the client on 8083, a closed port 8084."""
    from tcpwatch.analysis.diagnosis import diagnose_capture, diagnose_flow
    flows = flows_of(demo_capture())
    keep = flows[0].exchanges.items
    assert [x.request["path"] for x in keep][-1] == "/slow"
    slow = breakdown(keep[-1], flows[0], flows[0].exchanges)
    assert 0.400 <= slow["think"] < 0.405
    kinds = {(f.flow, f.kind) for fl in flows for f in diagnose_flow(fl)}
    assert (0, "server_think") in kinds
    assert (9, "zero_window") in kinds and (11, "connection_refused") in kinds
    assert (10, "fast_retransmit") in kinds
    churn = diagnose_capture(flows)
    assert [f.kind for f in churn] == ["connection_churn"] and churn[0].flows == list(
        range(1, 9))
    zw = next(f for f in diagnose_flow(flows[9]) if f.kind == "zero_window")
    assert 1.4 < zw.lost < 1.5


@NEED_SHARED
def test_tls_handshakes_are_labelled():
    fl = flows_of(os.path.join(SHARED, "curl-enabled-tls13.pcap"))[0]
    tls = fl.exchanges.tls
    assert tls["sni"] == "enabled.tls13.com" and tls["version"] == "1.3"
    assert tls["rtts"] == 1 and tls["resumed"] is False
    b = breakdown(fl.exchanges.items[0], fl, fl.exchanges)
    assert b["tls"] > 0 and b["connect"] > 0
    v12 = [f for f in flows_of(os.path.join(SHARED, "tls.pcap")) if f.exchanges.tls]
    assert {f.exchanges.tls["version"] for f in v12} >= {"1.2", "1.3"}
    assert all(f.exchanges.tls["rtts"] == (1 if f.exchanges.tls["version"] == "1.3" else 2)
               for f in v12 if not f.exchanges.tls["resumed"])


# ---- Redis RESP and DNS over TCP, on segments built here ------------------------------------
def _conv_flows(port: int, turns: list[tuple[bool, bytes]]) -> list:
    from builders import ether, ipv4, pcap_file, tcp_header

    from tcpwatch.capture.record import ACK, PSH, SYN
    frames = []
    cs, ss = 1000, 5000

    def seg(c2s, seq, ack, flags, data=b""):
        src, dst = ("10.0.0.1", "10.0.0.2") if c2s else ("10.0.0.2", "10.0.0.1")
        sp, dp = (40000, port) if c2s else (port, 40000)
        return ether(ipv4(tcp_header(sp, dp, seq, ack, flags) + data, src, dst))
    frames += [seg(True, cs, 0, SYN), seg(False, ss, cs + 1, SYN | ACK),
               seg(True, cs + 1, ss + 1, ACK)]
    cs, ss = cs + 1, ss + 1
    for c2s, data in turns:
        if c2s:
            frames.append(seg(True, cs, ss, ACK | PSH, data))
            cs += len(data)
        else:
            frames.append(seg(False, ss, cs, ACK | PSH, data))
            ss += len(data)
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
        f.write(pcap_file(frames))
        f.flush()
        return flows_of(f.name)


def test_redis_commands_and_replies():
    fl = _conv_flows(6379, [(True, b"*1\r\n$4\r\nPING\r\n"), (False, b"+PONG\r\n"),
                            (True, b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"),
                            (False, b"-ERR wrong type\r\n")])[0]
    xs = fl.exchanges.items
    assert [x.proto for x in xs] == ["redis", "redis"]
    assert [x.request["command"] for x in xs] == ["PING", "GET"]
    assert xs[0].response == {"reply": "status"}
    assert xs[1].response == {"reply": "error", "error": "ERR wrong type"}


def test_dns_over_tcp_query_and_answer():
    import struct

    def msg(qid, flags, name):
        q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
        body = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + q + b"\0\1\0\1"
        return struct.pack("!H", len(body)) + body
    fl = _conv_flows(53, [(True, msg(7, 0x0100, "example.org")),
                          (False, msg(7, 0x8183, "example.org"))])[0]
    x = fl.exchanges.items[0]
    assert x.proto == "dns" and x.request["query"] == "example.org"
    assert x.response["rcode"] == "NXDOMAIN" and x.response["response"]


def test_report_shows_slowest_requests_and_diagnosis():
    import json
    import sys
    p = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "--demo"],
                       capture_output=True, text=True, check=True)
    assert "slowest requests (of 16)" in p.stdout
    assert "flow 0 #5 GET /slow -> 200: 400" in p.stdout
    assert "[ZWIN] flow 9: zero_window, lost 1.45s" in p.stdout
    assert "[CHURN] flows 1,2,3,4,5,6,7,8" in p.stdout
    j = json.loads(subprocess.run([sys.executable, "-m", "tcpwatch", "report", "--demo",
                                   "--json"], capture_output=True, text=True,
                                  check=True).stdout)
    assert j["schema"] == 5 and j["diagnosis"][0]["kind"] == "connection_churn"
    slow = j["flows"][0]["exchanges"][5]
    assert slow["request"]["path"] == "/slow" and slow["keep_alive"] is True
    assert {d["kind"] for d in j["flows"][9]["diagnosis"]} >= {"zero_window"}
