"""Decoder and file readers over literal bytes."""

import io
import struct

import pytest
from builders import ether, ipv4, ipv6, pcap_file, pcapng_file, tcp_header

from tcpwatch.capture import decode as D
from tcpwatch.capture.fast import iter_stream
from tcpwatch.capture.pcapio import CaptureFormatError, Reader
from tcpwatch.capture.record import ACK, SYN, CaptureStats, fmt_addr
from tcpwatch.errors import UserError

OPTS = (b"\x02\x04\x05\xb4"  # MSS 1460
        b"\x01\x03\x03\x07"  # NOP, window scale 7
        b"\x04\x02"  # SACK permitted
        b"\x08\x0a\x00\x00\x00\x64\x00\x00\x00\x32"  # timestamps 100 / 50
        b"\x05\x0a\x00\x00\x03\xe8\x00\x00\x07\xd0")  # SACK 1000-2000


def test_ethernet_ipv4_tcp_with_all_options():
    seg = tcp_header(1234, 80, seq=7, ack=9, flags=SYN | ACK, win=512, options=OPTS) + b"hi!"
    r = D.decode(D.LINK_ETHERNET, ether(ipv4(seg)), 200, 5, 1)
    assert (fmt_addr(r.src), r.sport, fmt_addr(r.dst), r.dport) == ("10.0.0.1", 1234,
                                                                    "10.0.0.2", 80)
    assert (r.seq, r.ack, r.flags, r.win, r.plen, r.flen) == (7, 9, SYN | ACK, 512, 3, 200)
    assert (r.mss, r.wscale, r.sack_perm, r.tsval, r.tsecr) == (1460, 7, True, 100, 50)
    assert r.sack == ((1000, 2000),)
    assert r.payload == b"hi!"


def test_vlan_qinq_and_pppoe():
    pkt = ipv4(tcp_header())
    assert D.decode(1, ether(pkt, vlans=[(0x8100, 5)]), 0, 0, 1).sport == 1234
    qinq = ether(pkt, vlans=[(0x88A8, 100), (0x8100, 5)])
    assert D.decode(1, qinq, 0, 0, 1).dport == 80
    pppoe = struct.pack("!BBHH", 0x11, 0, 1, len(pkt) + 2) + b"\x00\x21" + pkt
    assert D.decode(1, ether(pppoe, 0x8864, vlans=[(0x8100, 1)]), 0, 0, 1).dport == 80


def test_linux_cooked_null_and_raw_links():
    pkt = ipv4(tcp_header())
    sll = b"\x00\x00\x00\x01\x00\x06" + b"\x00" * 8 + b"\x08\x00"
    assert D.decode(D.LINK_LINUX_SLL, sll + pkt, 0, 0, 1).sport == 1234
    sll2 = b"\x08\x00\x00\x00" + b"\x00" * 16
    assert D.decode(D.LINK_LINUX_SLL2, sll2 + pkt, 0, 0, 1).sport == 1234
    assert D.decode(D.LINK_NULL, struct.pack("<I", 2) + pkt, 0, 0, 1).sport == 1234
    assert D.decode(D.LINK_NULL, struct.pack(">I", 2) + pkt, 0, 0, 1).sport == 1234
    v6 = ipv6(tcp_header())
    assert D.decode(D.LINK_NULL, struct.pack("<I", 30) + v6, 0, 0, 1).ipv == 6
    assert D.decode(D.LINK_LOOP, struct.pack(">I", 24) + v6, 0, 0, 1).ipv == 6
    for link in (D.LINK_RAW, D.LINK_RAW_12, D.LINK_IPV4):
        assert D.decode(link, pkt, 0, 0, 1).sport == 1234


def test_ipv4_options_and_fragments():
    opts = b"\x94\x04\x00\x00"  # router alert
    r = D.decode(D.LINK_RAW, ipv4(tcp_header() + b"abcd", options=opts), 0, 0, 1)
    assert (r.sport, r.plen, r.payload) == (1234, 4, b"abcd")
    assert D.decode(D.LINK_RAW, ipv4(b"x" * 20, frag=10), 0, 0, 1) == D.NOT_TCP
    assert D.decode(D.LINK_RAW, ipv4(b"x" * 8, proto=17), 0, 0, 1) == D.NOT_TCP


def test_ipv6_extension_headers():
    seg = tcp_header(443, 5555, flags=ACK) + b"data"
    hop = bytes([60, 0]) + b"\x00" * 6  # hop-by-hop -> destination options
    dst = bytes([43, 0]) + b"\x00" * 6  # destination options -> routing
    rt = bytes([44, 0, 0, 0]) + b"\x00" * 4  # routing -> fragment
    frag = bytes([6, 0, 0, 0]) + b"\x00" * 4  # first fragment -> TCP
    r = D.decode(D.LINK_RAW, ipv6(hop + dst + rt + frag + seg, nxt=0), 0, 0, 1)
    assert (r.ipv, r.sport, r.plen, r.payload) == (6, 443, 4, b"data")
    assert fmt_addr(r.src) == "2001:db8::1"


def test_truncated_and_garbage_frames_are_counted_not_raised():
    full = ether(ipv4(tcp_header()))
    assert D.decode(1, full[:30], 0, 0, 1) == D.UNDECODABLE
    assert D.decode(1, full[:14 + 20 + 10], 0, 0, 1) == D.UNDECODABLE
    assert D.decode(1, ether(b"\x00" * 40, 0x0806), 0, 0, 1) == D.NOT_TCP  # ARP
    assert D.decode(999, full, 0, 0, 1) == D.UNDECODABLE
    bad_opts = tcp_header(options=b"\x02\x09\x05")  # MSS option claims 9 bytes
    r = D.decode(D.LINK_RAW, ipv4(bad_opts), 0, 0, 1)
    assert r.sport == 1234 and r.mss is None


def test_snaplen_cut_payload_keeps_ip_length():
    frame = ether(ipv4(tcp_header(flags=ACK) + b"z" * 1000))
    r = D.decode(1, frame[:68], len(frame), 0, 1)
    assert r.plen == 1000 and r.flen == len(frame) and r.payload == b"z" * 14


@pytest.mark.parametrize("nanos", [False, True])
@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcap_reader_byte_orders_and_resolution(nanos, endian):
    data = pcap_file([ether(ipv4(tcp_header()))] * 3, nanos=nanos, endian=endian)
    st = CaptureStats()
    recs = list(iter_stream(io.BytesIO(data), st, "x"))
    assert len(recs) == 3 and st.packets == 3 and st.tcp == 3
    frac = 500 if nanos else 500_000
    assert recs[1].ts == (1_700_000_001) * 10**9 + frac


@pytest.mark.parametrize("tsresol,unit", [(None, 1000), (9, 1)])
def test_pcapng_reader_and_if_tsresol(tsresol, unit):
    data = pcapng_file([ether(ipv4(tcp_header()))] * 2, tsresol=tsresol)
    recs = list(iter_stream(io.BytesIO(data), CaptureStats(), "x"))
    assert len(recs) == 2
    assert recs[0].ts == (1_700_000_000 * (10**9 // unit) + 7) * unit


def test_truncated_file_reports_everything_before_the_damage():
    data = pcap_file([ether(ipv4(tcp_header()))] * 5)
    st = CaptureStats()
    recs = list(iter_stream(io.BytesIO(data[:-10]), st, "x"))
    assert len(recs) == 4
    assert st.error == "file ends in the middle of a packet"
    assert st.stopped_at.endswith("after frame 4")


def test_not_a_capture():
    with pytest.raises(CaptureFormatError):
        Reader(io.BytesIO(b"GET / HTTP/1.1\r\n"))
    with pytest.raises(UserError, match="not a pcap or pcapng"):
        list(iter_stream(io.BytesIO(b"hello world, not a capture"), CaptureStats(), "f"))
