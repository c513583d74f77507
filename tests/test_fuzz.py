"""Property tests (hypothesis): hostile bytes never crash the decoder, and any sequence of
segments never crashes the trackers nor gives a negative count or duration, across sequence
number wrap-around and timestamps that go backwards. (tests/bench/fuzz.py runs the same
checks over millions of mutated frames from real captures; not part of CI.)"""

from __future__ import annotations

import io

from builders import ether, ipv4, ipv6, pcap_file, pcapng_file, tcp_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpwatch.analysis.diagnosis import diagnose_capture
from tcpwatch.analysis.summary import flow_summary
from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.decode import NOT_TCP, SUPPORTED_LINKS, UNDECODABLE, decode
from tcpwatch.capture.fast import iter_stream
from tcpwatch.capture.record import CaptureStats, PacketRecord, parse_addr
from tcpwatch.errors import UserError

FAST = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
LINKS = sorted(SUPPORTED_LINKS) + [147, 65535]


@FAST
@given(st.sampled_from(LINKS), st.binary(max_size=200), st.integers(0, 70000))
def test_decode_any_bytes(link, data, wire):
    out = decode(link, data, wire, 0, 1)
    assert out in (NOT_TCP, UNDECODABLE) or isinstance(out, PacketRecord)
    if isinstance(out, PacketRecord):
        assert 0 <= out.plen and out.sport < 65536 and out.dport < 65536
        assert len(out.payload) <= 256


def _valid_frame(v6: bool, opts: bytes, payload: bytes) -> bytes:
    hdr = tcp_header(1234, 80, 7, 9, 0x18, options=opts) + payload
    return ether(ipv6(hdr), ethertype=0x86DD) if v6 else ether(ipv4(hdr))


@FAST
@given(st.booleans(), st.binary(max_size=40), st.binary(max_size=64),
       st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 120))
def test_decode_mutated_real_frames(v6, opts, payload, flips, cut):
    """A well-formed frame with bytes overwritten and its tail cut: still a record or a
    typed 'not TCP / undecodable', and never a payload longer than what was captured."""
    frame = bytearray(_valid_frame(v6, opts[: 40 - 40 % 4], payload))
    for pos, val in flips:
        if pos < len(frame):
            frame[pos] = val
    data = bytes(frame[: max(0, len(frame) - cut)])
    out = decode(1, data, len(frame), 0, 1)
    assert out in (NOT_TCP, UNDECODABLE) or isinstance(out, PacketRecord)
    if isinstance(out, PacketRecord):
        assert len(out.payload) <= len(data)


@FAST
@given(st.sampled_from(["pcap", "pcapng"]), st.integers(0, 400),
       st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=8))
def test_reader_any_damage_gives_a_typed_error(fmt, cut, flips):
    """A capture cut anywhere or with any bytes overwritten: records up to the damage, then
    a recorded stop (stats.error) or one UserError, never another exception."""
    frames = [ether(ipv4(tcp_header(seq=i) + b"x" * i)) for i in range(5)]
    blob = bytearray(pcap_file(frames) if fmt == "pcap" else pcapng_file(frames))
    for pos, val in flips:
        if pos < len(blob):
            blob[pos] = val
    blob = blob[: len(blob) - min(cut, len(blob))]
    stats = CaptureStats()
    try:
        n = sum(1 for _ in iter_stream(io.BytesIO(bytes(blob)), stats, "fuzz"))
    except UserError:
        return
    assert n == stats.tcp <= stats.packets
    assert stats.packets == stats.tcp + stats.non_tcp + stats.undecodable


A, B = parse_addr("10.0.0.1"), parse_addr("10.0.0.2")
M32 = 0xFFFFFFFF
segment = st.tuples(
    st.booleans(),  # from the client
    st.integers(-3_000_000_000, 3_000_000_000),  # time step, ns (may go backwards)
    st.integers(-70_000, 70_000),  # seq step (wraps mod 2^32)
    st.integers(-70_000, 70_000),  # ack step
    st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x19, 0x00, 0xFF]),
    st.sampled_from([0, 1, 512, 65535]),  # window
    st.sampled_from([0, 1, 100, 1448]),  # payload length
    st.one_of(st.none(), st.integers(0, 14)),  # window scale option
    st.one_of(st.none(), st.integers(0, M32)),  # TSval
    st.lists(st.tuples(st.integers(0, M32), st.integers(0, M32)), max_size=3),  # SACK
    st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"\x16\x03\x01",
                     b"*1\r\n$4\r\nPING\r\n", b"\x00"]),
)


def _numbers(v, path=""):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return
    if isinstance(v, (int, float)):
        yield path, v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from _numbers(x, f"{path}.{k}")
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            yield from _numbers(x, f"{path}[{i}]")


# numbers that are not counts or durations: sequence numbers, windows' raw fields, ids...
# (times relative to the connection's first packet go negative when the clock steps back)
SIGNED_OK = ("isn", "seq", "first", "last", "start", "t", "ts", "time", "at", "syn_time",
             "synack_time", "ack_time")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, M32), st.integers(0, M32), st.integers(0, 2**62),
       st.lists(segment, min_size=1, max_size=60))
def test_trackers_never_raise_nor_go_negative(seq0, ack0, t0, segs):
    t = FlowTable(max_flows=4)
    seq, ack, ts = [seq0, ack0], [ack0, seq0], t0
    for num, (c2s, dt, ds, da, flags, win, plen, ws, tsval, sack, pay) in enumerate(segs, 1):
        d = 0 if c2s else 1
        ts = max(0, ts + dt)
        seq[d] = (seq[d] + ds) & M32
        ack[d] = (ack[d] + da) & M32
        src, dst = (A, B) if c2s else (B, A)
        r = PacketRecord(num, ts, 4, src, dst, 40000 if c2s else 80, 80 if c2s else 40000,
                         seq[d], ack[d], flags, win, plen, 54 + plen, wscale=ws,
                         tsval=tsval, tsecr=tsval, sack=tuple(sack), payload=pay[:plen])
        t.feed(r)
    flows = list(t.flows.values())
    diagnose_capture(flows)
    for fl in flows:
        s = flow_summary(fl)
        for path, v in _numbers(s):
            leaf = path.rsplit(".", 1)[-1].split("[")[0]
            if leaf in SIGNED_OK:
                continue
            assert v >= 0, (path, v)
