"""HTTP/2 and gRPC parsing (tcpwatch/analysis/h2.py) over byte streams built with hyperframe
and hpack, fed as the per-connection code feeds them; one conversation checked against
tshark's HTTP/2 dissector."""

from __future__ import annotations

import base64
import random
import shutil
import subprocess

import pytest
from builders import ether, ipv4, pcap_file, tcp_header
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tcpwatch.analysis.h2 import (
    MAX_STREAMS,
    PREFACE,
    VALUE_MAX,
    H2Conn,
    grpc_message,
    grpc_timeout_ns,
    is_h2c_upgrade,
    looks_like_h2_preface,
)

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

C, S = 0, 1
GRPC = "application/grpc"


class Wire:
    """One conversation as (direction, bytes) items, one HPACK encoder per direction."""

    def __init__(self) -> None:
        self.enc = [Encoder(), Encoder()]
        self.items: list[tuple[int, bytes]] = []

    def add(self, d: int, b: bytes) -> Wire:
        self.items.append((d, b))
        return self

    def preface(self, **kw) -> Wire:
        return self.add(C, PREFACE + SettingsFrame(0, settings=kw.get("c", {})).serialize()
                        ).add(S, SettingsFrame(0, settings=kw.get("s", {})).serialize())

    def settings(self, d: int, values: dict, ack: bool = False) -> Wire:
        f = SettingsFrame(0, settings=values, flags=["ACK"] if ack else [])
        return self.add(d, f.serialize())

    def block(self, d: int, hdrs: list) -> bytes:
        return self.enc[d].encode(hdrs)

    def headers(self, d: int, sid: int, hdrs: list, end: bool = False, pad: int = 0,
                priority: bool = False, split: int = 0) -> Wire:
        block = self.block(d, hdrs)
        parts = [block]
        if split:  # HEADERS and CONTINUATION fragments of about `split` bytes
            parts = [block[i:i + split] for i in range(0, len(block), split)]
        flags = (["END_STREAM"] if end else []) + (["PADDED"] if pad else [])
        flags += ["PRIORITY"] if priority else []
        if len(parts) == 1:
            flags.append("END_HEADERS")
        out = HeadersFrame(sid, data=parts[0], flags=flags, pad_length=pad, depends_on=0,
                           stream_weight=15).serialize()
        for k, p in enumerate(parts[1:], 2):
            out += ContinuationFrame(sid, data=p, flags=["END_HEADERS"] if k == len(parts)
                                     else []).serialize()
        return self.add(d, out)

    def data(self, d: int, sid: int, payload: bytes, end: bool = False, pad: int = 0) -> Wire:
        flags = (["END_STREAM"] if end else []) + (["PADDED"] if pad else [])
        return self.add(d, DataFrame(sid, data=payload, flags=flags, pad_length=pad).serialize())

    def window(self, d: int, sid: int, inc: int) -> Wire:
        return self.add(d, WindowUpdateFrame(sid, window_increment=inc).serialize())

    def bytes_of(self, d: int) -> bytes:
        return b"".join(b for k, b in self.items if k == d)


def run(items, conn: H2Conn | None = None, ts0: int = 0) -> list[tuple]:
    """Feed each item as one segment: ts = 1000 * index, frame = index + 1."""
    conn = conn or H2Conn()
    for k, (d, b) in enumerate(items):
        conn.feed(d, b, ts0 + 1000 * k, k + 1)
    return conn.take()


def kinds(events, kind):
    return [e for e in events if e[0] == kind]


def req(path: str, method: str = "GET", ct: str | None = None, extra=()) -> list:
    h = [(":method", method), (":scheme", "http"), (":authority", "example.test"),
         (":path", path)]
    if ct:
        h.append(("content-type", ct))
    return h + list(extra)


def resp(status: int = 200, ct: str | None = "text/plain", extra=()) -> list:
    return [(":status", str(status))] + ([("content-type", ct)] if ct else []) + list(extra)


def three_streams() -> Wire:
    w = Wire().preface()
    w.headers(C, 1, req("/a"), end=True)
    w.headers(C, 3, req("/b"), end=True)
    w.headers(C, 5, req("/upload", "POST", "application/octet-stream"))
    w.data(C, 5, b"x" * 300)
    w.headers(S, 5, resp(201, "application/json"))
    w.data(C, 5, b"y" * 200, end=True)
    w.headers(S, 3, resp(404))
    w.data(S, 5, b"{}", end=True)
    w.headers(S, 1, resp(200))
    w.data(S, 1, b"a" * 1000)
    w.data(S, 3, b"not found", end=True)
    w.data(S, 1, b"a" * 500, end=True)
    return w


# ---- prior knowledge, concurrency ---------------------------------------------------------
def test_three_concurrent_streams_out_of_order():
    w = three_streams()
    ev = run(w.items)
    opens = kinds(ev, "open")
    assert [(e[1], e[4]["method"], e[4]["path"]) for e in opens] == [
        (1, "GET", "/a"), (3, "GET", "/b"), (5, "POST", "/upload")]
    assert opens[0][4] == {"method": "GET", "path": "/a", "authority": "example.test",
                           "scheme": "http"}
    assert opens[2][4]["content-type"] == "application/octet-stream"
    assert [e[1] for e in kinds(ev, "req_end")] == [1, 3, 5]
    assert [(e[1], e[4]["status"]) for e in kinds(ev, "resp")] == [(5, 201), (3, 404), (1, 200)]
    assert [e[1] for e in kinds(ev, "resp_end")] == [5, 3, 1]
    sent = {}
    for e in kinds(ev, "data"):
        sent[(e[1], e[2])] = sent.get((e[1], e[2]), 0) + e[5]
    assert sent == {(5, C): 500, (5, S): 2, (3, S): 9, (1, S): 1500}
    # timestamps and frames are those of the segment completing each frame
    r5 = kinds(ev, "resp")[0]
    assert r5[2:4] == (6000, 7)
    assert not kinds(ev, "lost") and not kinds(ev, "blocked")


def test_streams_are_forgotten_when_closed():
    conn = H2Conn()
    run(three_streams().items, conn)
    assert conn.streams == {}
    assert conn.opened == 3 and conn.mode == "prior-knowledge"


# ---- gRPC ---------------------------------------------------------------------------------
def grpc_call(w: Wire, sid: int, method: str, status: int, message: str | None = None):
    w.headers(C, sid, req(f"/helloworld.Greeter/{method}", "POST", GRPC,
                          [("te", "trailers"), ("grpc-timeout", "100m")]))
    w.data(C, sid, b"\x00\x00\x00\x00\x05hello", end=True)
    w.headers(S, sid, resp(200, "application/grpc+proto"))
    if status == 0:
        w.data(S, sid, b"\x00\x00\x00\x00\x03abc")
    trailers = [("grpc-status", str(status))]
    if message is not None:
        trailers.append(("grpc-message", message))
    w.headers(S, sid, trailers, end=True)


def test_grpc_unary_ok_and_error():
    w = Wire().preface()
    grpc_call(w, 1, "SayHello", 0)
    grpc_call(w, 3, "Find", 5, "Not%20found%3A%20%E2%9C%93 %zz%4")
    ev = run(w.items)
    o1, o3 = kinds(ev, "open")
    assert o1[4]["grpc-service"] == "helloworld.Greeter" and o1[4]["grpc-method"] == "SayHello"
    assert o1[4]["grpc-timeout"] == "100m" and o1[4]["grpc-timeout-ns"] == 100_000_000
    assert o3[4]["grpc-method"] == "Find"
    r1, r3 = kinds(ev, "resp")
    assert r1[4] == {"status": 200, "content-type": "application/grpc+proto"}
    e1, e3 = kinds(ev, "resp_end")
    assert e1[1] == 1 and e1[4] == {"grpc-status": 0}
    # invalid escapes are kept as they are (gRPC PROTOCOL-HTTP2.md)
    assert e3[1] == 3 and e3[4] == {"grpc-status": 5, "grpc-message": "Not found: ✓ %zz%4"}


def test_grpc_trailers_only_response():
    w = Wire().preface()
    w.headers(C, 1, req("/pkg.Svc/Get", "POST", GRPC))
    w.data(C, 1, b"\x00\x00\x00\x00\x00", end=True)
    w.headers(S, 1, resp(200, GRPC, [("grpc-status", "14"), ("grpc-message", "unavailable")]),
              end=True)
    ev = run(w.items)
    assert kinds(ev, "resp")[0][4] == {"status": 200, "content-type": GRPC}
    assert kinds(ev, "resp_end")[0][4] == {"grpc-status": 14, "grpc-message": "unavailable"}


def test_grpc_helpers():
    assert grpc_timeout_ns("1S") == 10**9 and grpc_timeout_ns("2H") == 7200 * 10**9
    assert grpc_timeout_ns("123456789m") == -1 and grpc_timeout_ns("S") == -1
    assert grpc_timeout_ns("10x") == -1
    assert grpc_message(b"%41%") == "A%"
    assert len(grpc_message(b"%41" * 5000)) == VALUE_MAX


# ---- RST_STREAM, GOAWAY -------------------------------------------------------------------
def test_rst_stream_cancel_and_goaway():
    w = Wire().preface()
    w.headers(C, 1, req("/slow"), end=True)
    w.headers(C, 3, req("/fast"), end=True)
    w.add(C, RstStreamFrame(1, error_code=8).serialize())
    w.headers(S, 3, resp(200), end=True)
    w.add(S, RstStreamFrame(3, error_code=0).serialize())  # closed already: no event
    w.add(S, GoAwayFrame(0, last_stream_id=3, error_code=11,
                         additional_data=b"calm down \xff" + b"!" * 2000).serialize())
    w.headers(C, 5, req("/after"), end=True)
    ev = run(w.items)
    assert kinds(ev, "rst") == [("rst", 1, C, 4000, 5, "CANCEL")]
    (g,) = kinds(ev, "goaway")
    assert g[:6] == ("goaway", S, 7000, 8, 3, "ENHANCE_YOUR_CALM")
    assert g[6].startswith("calm down \ufffd!!") and len(g[6]) == 256
    # framing continues after the long GOAWAY (its debug data beyond the kept part skipped)
    assert [e[1] for e in kinds(ev, "open")] == [1, 3, 5]


def test_unknown_error_code_and_ignored_frames():
    w = Wire().preface()
    w.headers(C, 1, req("/"), end=True)
    w.add(S, PingFrame(0, opaque_data=b"12345678").serialize())
    w.add(C, PriorityFrame(1, depends_on=0, stream_weight=3).serialize())
    w.add(C, b"\x00\x00\x03\xfa\x00\x00\x00\x00\x00abc")  # an extension frame type
    w.add(S, RstStreamFrame(1, error_code=0x77).serialize())
    ev = run(w.items)
    assert kinds(ev, "rst") == [("rst", 1, S, 6000, 7, "0x77")]
    assert not kinds(ev, "lost")


# ---- CONTINUATION, padding, priority, HPACK table size ------------------------------------
def test_continuation_padding_priority():
    big = [(f"x-long-{i}", "v" * 300) for i in range(8)] + [("x-huge", "h" * 2000)]
    w = Wire().preface()
    w.headers(C, 1, req("/cont", extra=big), end=True, split=200, pad=17, priority=True)
    w.headers(S, 1, resp(200), pad=3)
    w.data(S, 1, b"z" * 100, pad=50)
    w.data(S, 1, b"", pad=9, end=True)
    w.headers(C, 3, req("/cont", extra=big), end=True)  # indexed from the dynamic table
    ev = run(w.items)
    assert [(e[1], e[4]["path"]) for e in kinds(ev, "open")] == [(1, "/cont"), (3, "/cont")]
    assert [e[5] for e in kinds(ev, "data")] == [100]
    assert kinds(ev, "resp_end")[0][1] == 1
    assert not kinds(ev, "lost")


def test_header_value_truncated():
    w = Wire().preface()
    w.headers(C, 1, req("/" + "p" * 3000), end=True)
    (o,) = kinds(run(w.items), "open")
    assert len(o[4]["path"]) == VALUE_MAX


def test_header_table_size_setting():
    w = Wire().preface(s={1: 16384})  # the server lets the client use a bigger table
    w.settings(C, {}, ack=True)
    w.enc[C].header_table_size = 16384
    for sid in (1, 3, 5):
        w.headers(C, sid, req(f"/t{sid}", extra=[("x-big", "b" * 6000)]), end=True)
    ev = run(w.items)
    assert [e[4]["path"] for e in kinds(ev, "open")] == ["/t1", "/t3", "/t5"]
    assert not kinds(ev, "lost")


def test_table_size_beyond_what_was_allowed_is_lost():
    w = Wire().preface()
    w.enc[C].header_table_size = 8192  # never allowed by the server's SETTINGS
    w.headers(C, 1, req("/"), end=True)
    ev = run(w.items)
    assert kinds(ev, "lost")[0][1] == C and "HPACK" in kinds(ev, "lost")[0][2]


# ---- chunking -----------------------------------------------------------------------------
def conversation() -> Wire:
    w = Wire().preface(c={4: 2000})
    grpc_call(w, 1, "SayHello", 0)
    big = [(f"x-{i}", "v" * 200) for i in range(10)]
    w.headers(C, 3, req("/c", extra=big), end=True, split=300, pad=5, priority=True)
    w.headers(S, 3, resp(200))
    w.data(S, 3, b"q" * 1500, pad=20)
    w.data(S, 3, b"q" * 1000)
    w.window(C, 3, 5000)
    w.data(S, 3, b"q" * 10, end=True)
    grpc_call(w, 5, "Find", 5, "gone%21")
    w.add(C, RstStreamFrame(7, error_code=8).serialize())
    w.add(S, GoAwayFrame(0, last_stream_id=5, error_code=0, additional_data=b"bye").serialize())
    return w


def run_chunked(items, cuts: list[int]) -> list[tuple]:
    conn = H2Conn()
    r = random.Random(sum(cuts) + len(cuts))
    for d, b in items:
        i = 0
        while i < len(b):
            n = cuts[r.randrange(len(cuts))] if cuts else len(b)
            conn.feed(d, b[i:i + n], 0, 1)
            i += n
    return conn.take()


def test_chunking_does_not_change_events_bytewise():
    items = conversation().items
    whole = run_chunked(items, [])
    assert kinds(whole, "blocked") and kinds(whole, "unblocked")
    assert run_chunked(items, [1]) == whole
    for seed in range(20):
        r = random.Random(seed)
        assert run_chunked(items, [r.randint(1, 40) for _ in range(10)]) == whole


if given is not None:
    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.integers(1, 600), min_size=1, max_size=20))
    def test_chunking_does_not_change_events(cuts):
        items = conversation().items
        assert run_chunked(items, cuts) == run_chunked(items, [])


# ---- flow control -------------------------------------------------------------------------
def test_stream_window_blocked_and_unblocked():
    w = Wire().preface(c={4: 100})  # the server may send 100 bytes per stream
    w.headers(C, 1, req("/big"), end=True)
    w.headers(S, 1, resp(200))
    w.data(S, 1, b"a" * 60)
    w.data(S, 1, b"a" * 40)  # window 0: stalled
    w.window(C, 1, 50)  # reopened (item 6)
    w.data(S, 1, b"a" * 50)  # 0 again
    w.settings(C, {4: 150})  # +50 for open streams (item 8)
    w.data(S, 1, b"a" * 50, end=True)  # 0, but the stream ended: not a stall
    ev = run(w.items)
    fc = [e for e in ev if e[0] in ("blocked", "unblocked")]
    assert fc == [("blocked", 1, S, 5000, 6), ("unblocked", 1, S, 6000, 7),
                  ("blocked", 1, S, 7000, 8), ("unblocked", 1, S, 8000, 9)]


def test_connection_window_blocked_and_unblocked():
    w = Wire().preface(c={4: 1 << 20})  # streams may send 1 MiB; the connection 65535
    w.headers(C, 1, req("/a"), end=True)
    w.headers(C, 3, req("/b"), end=True)
    w.headers(S, 1, resp(200))
    w.headers(S, 3, resp(200))
    for k in range(3):
        w.data(S, 1 + 2 * (k % 2), b"d" * 16384)
    w.data(S, 3, b"d" * (65535 - 3 * 16384))  # conn window 0, both streams still open
    w.window(C, 1, 30000)  # only the stream: still blocked
    w.window(C, 0, 30000)
    w.data(S, 1, b"d" * 10, end=True)
    w.data(S, 3, b"d" * 10, end=True)
    ev = run(w.items)
    fc = [e for e in ev if e[0] in ("blocked", "unblocked")]
    assert fc == [("blocked", 0, S, 9000, 10), ("unblocked", 0, S, 11000, 12)]


def test_stalled_stream_reset_ends_the_stall():
    w = Wire().preface(c={4: 10})
    w.headers(C, 1, req("/"), end=True)
    w.headers(S, 1, resp(200))
    w.data(S, 1, b"a" * 10)
    w.add(C, RstStreamFrame(1, error_code=8).serialize())
    ev = run(w.items)
    assert [e[0] for e in ev if e[0] in ("blocked", "unblocked", "rst")] == [
        "blocked", "unblocked", "rst"]


def test_client_upload_blocked_by_server_window():
    w = Wire().preface(s={4: 1000})
    w.headers(C, 1, req("/up", "POST"))
    w.data(C, 1, b"u" * 1000)
    w.window(S, 1, 500)
    w.data(C, 1, b"u" * 500, end=True)
    ev = run(w.items)
    assert [e[:3] for e in ev if e[0] in ("blocked", "unblocked")] == [
        ("blocked", 1, C), ("unblocked", 1, C)]


# ---- gaps, loss, bounds -------------------------------------------------------------------
def test_gap_of_unknown_size_loses_the_direction():
    w = three_streams()
    conn = H2Conn()
    run(w.items[:4], conn)
    conn.gap(S)
    ev = run(w.items[4:], conn)
    lost = kinds(ev, "lost")
    assert lost == [("lost", S, "gap: bytes missing, frame boundaries lost (HPACK context "
                                "unknown)")]
    assert conn.lost(S) and not conn.lost(C)
    assert not kinds(ev, "resp")  # nothing more from the server...
    assert [e[1] for e in kinds(ev, "req_end")] == [5]  # ...the client's side goes on


def test_gap_inside_data_keeps_sync():
    w = Wire().preface()
    w.headers(C, 1, req("/"), end=True)
    w.headers(S, 1, resp(200))
    frame = DataFrame(1, data=b"k" * 3000, flags=["PADDED"], pad_length=4).serialize()
    w.headers(S, 1, [("x-trailer", "t")], end=True)
    conn = H2Conn()
    run(w.items[:4], conn)
    conn.feed(S, frame[:1000], 10, 50)
    conn.gap(S, 1500)  # snap length cut: the caller knows how much is missing
    conn.feed(S, frame[2500:], 20, 51)
    ev = run(w.items[4:], conn, ts0=30)
    assert kinds(ev, "data") == [("data", 1, S, 20, 51, 3000)]
    assert kinds(ev, "resp_end") == [("resp_end", 1, 30, 1, {"x-trailer": "t"})]
    assert not kinds(ev, "lost")


def test_gap_inside_header_block_is_lost():
    w = Wire().preface()
    w.headers(C, 1, req("/x" * 100), end=True)
    conn = H2Conn()
    run(w.items[:2], conn)
    hdr = w.items[2][1]
    conn.feed(C, hdr[:30], 1, 1)
    conn.gap(C, 5)
    conn.feed(C, hdr[35:], 2, 2)
    assert conn.take() == [("lost", C, "gap inside a header block: HPACK context lost")]


def test_gap_in_window_update_drops_it_and_stops_flow_control():
    w = Wire().preface(c={4: 10})
    w.headers(C, 1, req("/"), end=True)
    w.headers(S, 1, resp(200))
    w.data(S, 1, b"a" * 10)
    conn = H2Conn()
    ev = run(w.items, conn)
    assert kinds(ev, "blocked")
    wu = WindowUpdateFrame(1, window_increment=10).serialize()
    conn.feed(C, wu[:10], 1, 1)
    conn.gap(C, 2)
    conn.feed(C, wu[12:] + RstStreamFrame(1, error_code=8).serialize(), 2, 2)
    ev = conn.take()
    assert kinds(ev, "rst") and not kinds(ev, "lost") and not conn.fc
    assert conn.dropped_frames == 1


def test_no_preface_mid_stream():
    w = three_streams()
    conn = H2Conn()
    ev = run(w.items[3:], conn)  # picked up after the preface and the first HEADERS
    assert ("lost", C, "no connection preface: HPACK context unknown") in ev
    assert kinds(ev, "lost")[1][1] == S
    assert [e for e in ev if e[0] != "lost"] == []


def test_server_without_settings_preface_is_lost():
    conn = H2Conn()
    conn.feed(S, DataFrame(1, data=b"abc").serialize(), 1, 1)
    assert conn.take()[0][:2] == ("lost", S)


def test_frame_too_large_is_lost():
    w = Wire().preface()
    w.add(S, DataFrame(1, data=b"x" * 20000).serialize())
    ev = run(w.items)
    assert kinds(ev, "lost")[0][1] == S and "SETTINGS_MAX_FRAME_SIZE" in kinds(ev, "lost")[0][2]


def test_max_frame_size_setting_allows_larger_frames():
    w = Wire().preface(c={5: 65536})
    w.headers(C, 1, req("/"), end=True)
    w.headers(S, 1, resp(200))
    w.data(S, 1, b"x" * 60000, end=True)
    ev = run(w.items)
    assert kinds(ev, "data")[0][5] == 60000 and not kinds(ev, "lost")


def test_header_block_too_large_is_lost():
    w = Wire().preface(s={5: 1 << 20})
    w.headers(C, 1, req("/", extra=[(f"x-{i}", "v" * 4000) for i in range(20)]),
              split=16000)
    ev = run(w.items)
    assert kinds(ev, "lost") == [("lost", C, "header block larger than 64 KiB: HPACK context "
                                             "lost")]


def test_streams_beyond_the_limit_are_counted():
    w = Wire().preface()
    for k in range(MAX_STREAMS + 10):
        w.headers(C, 1 + 2 * k, req("/s"))
    w.headers(S, 1, resp(200), end=True)
    conn = H2Conn()
    ev = run(w.items, conn)
    assert len(kinds(ev, "open")) == MAX_STREAMS
    assert conn.untracked == 10 and conn.opened == MAX_STREAMS + 10
    assert len(kinds(ev, "resp")) == 1  # HPACK followed the untracked streams too


def test_recognition_helpers():
    assert looks_like_h2_preface(PREFACE + b"\x00\x00")
    assert looks_like_h2_preface(PREFACE[:16])
    assert not looks_like_h2_preface(b"PRI ")
    assert not looks_like_h2_preface(b"GET / HTTP/1.1\r\n\r\n")
    up = (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
          b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    assert is_h2c_upgrade(up) and is_h2c_upgrade(up[:-10])
    assert not is_h2c_upgrade(up.replace(b"h2c", b"websocket"))
    assert not is_h2c_upgrade(b"HTTP/1.1 101 Switching\r\nUpgrade: h2c\r\n\r\n")


# ---- h2c upgrade --------------------------------------------------------------------------
def h2c_request(settings: dict, body: bytes = b"") -> bytes:
    payload = b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in settings.items())
    b64 = base64.urlsafe_b64encode(payload).rstrip(b"=")
    head = (b"POST /upgrade?x=1 HTTP/1.1\r\nHost: h2c.test\r\nConnection: Upgrade, HTTP2-Settings"
            b"\r\nUpgrade: h2c\r\nHTTP2-Settings: " + b64 + b"\r\nContent-Type: text/plain\r\n")
    if body:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def test_h2c_upgrade():
    w = Wire()
    w.add(C, h2c_request({4: 100}, b"hello body"))  # the client's settings: 100-byte windows
    w.add(S, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
          + SettingsFrame(0, settings={}).serialize())
    w.add(C, PREFACE + SettingsFrame(0, settings={4: 100}).serialize())
    w.headers(S, 1, resp(200))
    w.data(S, 1, b"r" * 100)  # the upgrade's settings apply: blocked
    w.window(C, 1, 1000)
    w.data(S, 1, b"r" * 5, end=True)
    w.headers(C, 3, req("/next"), end=True)
    w.headers(S, 3, resp(204, None), end=True)
    conn = H2Conn()
    ev = run(w.items, conn)
    assert conn.mode == "h2c"
    o1, o3 = kinds(ev, "open")
    assert o1 == ("open", 1, 0, 1, {"method": "POST", "path": "/upgrade?x=1",
                                    "authority": "h2c.test", "scheme": "http",
                                    "content-type": "text/plain"})
    assert o3[1] == 3
    assert kinds(ev, "req_end")[0] == ("req_end", 1, 0, 1)
    assert [(e[1], e[4]["status"]) for e in kinds(ev, "resp")] == [(1, 200), (3, 204)]
    assert [e[1] for e in kinds(ev, "resp_end")] == [1, 3]
    assert [e[0] for e in ev if e[0] in ("blocked", "unblocked")] == ["blocked", "unblocked"]
    assert not kinds(ev, "lost")


def test_h2c_upgrade_in_small_pieces_with_interim_response():
    w = Wire()
    w.add(C, h2c_request({}, b"0123456789"))
    w.add(S, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n"
          b"Upgrade: h2c\r\n\r\n" + SettingsFrame(0).serialize())
    w.add(C, PREFACE + SettingsFrame(0).serialize())
    w.headers(S, 1, resp(200), end=True)
    whole = run_chunked(w.items, [])
    assert [e[0] for e in whole] == ["open", "req_end", "resp", "resp_end"]
    for size in (1, 2, 3, 7, 23):
        assert run_chunked(w.items, [size]) == whole


def test_h2c_declined_and_plain_http1():
    w = Wire()
    w.add(C, h2c_request({}))
    w.add(S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    ev = run(w.items)
    assert [e[0] for e in ev] == ["open", "req_end", "lost", "lost"]
    assert ev[2] == ("lost", C, "h2c upgrade not accepted (HTTP 200)")
    ev = run([(C, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")])
    assert [e[:2] for e in ev] == [("lost", C), ("lost", S)]
    ev = run([(C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")])  # TLS
    assert ev[0] == ("lost", C, "no connection preface: HPACK context unknown")


def test_preface_split_across_segments():
    w = three_streams()
    data = w.bytes_of(C)
    conn = H2Conn()
    for i in range(0, 40):
        conn.feed(C, data[i:i + 1], 0, 1)
    conn.feed(C, data[40:], 0, 1)
    assert not kinds(conn.take(), "lost")


# ---- against tshark -----------------------------------------------------------------------
PORT = 50051


def pcap_of(items) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """Ethernet/IPv4/TCP frames: a handshake, then one segment per item."""
    seq = [1001, 5001]
    frames = [
        ether(ipv4(tcp_header(40000, PORT, 1000, 0, 0x02))),
        ether(ipv4(tcp_header(PORT, 40000, 5000, 1001, 0x12), "10.0.0.2", "10.0.0.1")),
        ether(ipv4(tcp_header(40000, PORT, 1001, 5001, 0x10))),
    ]
    fed = []
    for d, b in items:
        if d == C:
            hdr = tcp_header(40000, PORT, seq[0], seq[1], 0x18)
            frames.append(ether(ipv4(hdr + b)))
        else:
            hdr = tcp_header(PORT, 40000, seq[1], seq[0], 0x18)
            frames.append(ether(ipv4(hdr + b, "10.0.0.2", "10.0.0.1")))
        seq[d] += len(b)
        fed.append((d, len(frames), b))
    return pcap_file(frames), fed


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_agrees_with_tshark(tmp_path):
    w = Wire().preface()
    w.headers(C, 1, req("/one"), end=True)
    w.headers(C, 3, req("/helloworld.Greeter/SayHello", "POST", GRPC))
    w.data(C, 3, b"\x00\x00\x00\x00\x02hi", end=True)
    w.headers(C, 5, req("/five", extra=[("x-rep", "r" * 50)]), end=True)
    w.headers(S, 5, resp(404))
    w.headers(S, 3, resp(200, GRPC))
    w.data(S, 5, b"nope", end=True)
    w.data(S, 3, b"\x00\x00\x00\x00\x02ok")
    w.headers(S, 3, [("grpc-status", "0")], end=True)
    w.headers(C, 7, req("/seven", extra=[("x-rep", "r" * 50)]), end=True)
    w.headers(S, 1, resp(200), end=True)
    w.headers(S, 7, resp(503), end=True)
    pcap, fed = pcap_of(w.items)
    f = tmp_path / "h2.pcap"
    f.write_bytes(pcap)
    out = subprocess.run(
        ["tshark", "-r", str(f), "-d", f"tcp.port=={PORT},http2", "-T", "fields",
         "-e", "frame.number", "-e", "http2.streamid", "-e", "http2.headers.path",
         "-e", "http2.headers.status"], capture_output=True, text=True, check=True).stdout
    t_paths, t_status = set(), set()
    for line in out.splitlines():
        num, sids, path, status = (line.split("\t") + ["", "", "", ""])[:4]
        if path or status:
            (sid,) = {int(s) for s in sids.split(",")}  # one HEADERS frame per segment
            if path:
                t_paths.add((int(num), sid, path))
            if status:
                t_status.add((int(num), sid, int(status)))
    conn = H2Conn()
    for d, num, b in fed:
        conn.feed(d, b, num * 1000, num)
    ev = conn.take()
    paths = {(e[3], e[1], e[4]["path"]) for e in kinds(ev, "open")}
    status = {(e[3], e[1], e[4]["status"]) for e in kinds(ev, "resp")}
    assert len(paths) == 4 and len(status) == 4
    assert paths == t_paths
    assert status == t_status
