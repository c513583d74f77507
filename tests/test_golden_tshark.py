"""Golden tests: tcpwatch against tshark's own TCP analysis, run in the test on the same
capture (../shared/pcaps). Frame by frame and flow by flow.

Every tcp.analysis flag tshark sets, tcpwatch sets on the same frame by the same rules
(events.py's first group). tcpwatch's own classification of those frames (retrans.py) is a
second reading, and differs by design where tshark's timing rules misread a real stack:

  * RESEND_CLASSES: every non-SYN frame tshark flags retransmission or out-of-order, and only
    those, is for tcpwatch a resend, a late original, ambiguous or a duplicated datagram; a
    resend of data already acknowledged (tshark: spurious) is a spurious resend, or a late
    original when its TSval proves it was sent before a segment already seen.
  * DUPLICATE_FRAME: the same datagram seen twice is a duplicate, not a retransmission:
    same sequence number and IPv4 id (hardware_dups.dmp records every segment twice, 5 ms
    apart), or an identical copy within 1 ms of the segment, the peer silent in between
    (ssh-dups.pcap has every frame four times, and IP id 0 on one side).
  * OOO_RESEND: a segment tshark calls "out-of-order" (it came within the iRTT of the highest
    segment) but which repeats bytes the capture saw, or fills a hole the receiver reported in
    time to be the repair, is a resend.
  * LATE_ORIGINAL: a segment tshark calls a (fast) retransmission that its TSval, or its
    timing against the duplicate ACKs, proves was sent with its burst is reordering.
  * SYN_RESEND: a SYN or SYN-ACK sent again is counted by the handshake (syn_retransmissions),
    not among the data resends.
  * ZWP_LINUX: Linux's zero-window probe (snd_una - 1, no data, peer's window zero) is a
    keep-alive for tshark and a zero-window probe for tcpwatch.
  * ZERO_IRTT: when the SYN and the handshake's ACK carry the same timestamp (zwnd.dmp, 10 ms
    clock), the iRTT is 0; tshark treats a zero iRTT as "not measured yet" and measures it
    again at a later ACK. tcpwatch keeps 0.
  * CONV_TAP: tshark's conv,tcp tap misses segments whose TCP options are cut by the snaplen
    (the dissector throws before tapping: truncated-header.pcap); the per-frame counts above
    include them, and tcpwatch counts them.
  * ACKED_UNSEEN: tcpwatch reports an "ACKed unseen segment" once until the other side sends
    again; tshark 4.0 sometimes stays silent longer (http.dmp frame 704: an ACK 2.9 kB beyond
    the data seen, after three in-order segments). Listed in ACKED_UNSEEN_EXTRA.
"""

from __future__ import annotations

import pytest
from conftest import NEED_SHARED, NEED_TSHARK
from oracle import FLAG_FIELDS, shared_captures, tshark_conv, tshark_frames

from tcpwatch.analysis import events as E
from tcpwatch.analysis.summary import flow_summary
from tcpwatch.analysis.table import FlowTable, endpoint_key
from tcpwatch.capture.fast import iter_file
from tcpwatch.capture.record import SYN, CaptureStats, fmt_addr

pytestmark = [NEED_SHARED, NEED_TSHARK]
BITS = {name: bit for bit, name in E.NAMES.items()}
ACKED_UNSEEN_EXTRA = {("http.dmp", 704)}

CAPTURES = shared_captures()


def analyse(path):
    table = FlowTable()
    per_frame = {}
    for r in iter_file(str(path), CaptureStats()):
        fl, _d, m = table.feed(r)
        per_frame[r.num] = (fl.id, m)
    return table, per_frame


@pytest.fixture(scope="module", params=CAPTURES, ids=[p.name for p in CAPTURES])
def both(request):
    path = request.param
    table, per_frame = analyse(path)
    return path, table, per_frame, tshark_frames(path)


def test_frame_by_frame_analysis_flags_equal_tshark(both):
    path, _table, ours, theirs = both
    assert set(theirs) <= set(ours), "frames tshark dissects as TCP that we did not"
    diffs = []
    for num, f in theirs.items():
        fid, m = ours[num]
        if fid != f["stream"]:
            diffs.append((num, "stream", fid, f["stream"]))
        for name in FLAG_FIELDS:
            mine, tsh = bool(m & BITS[name]), name in f["flags"]
            if mine != tsh and not (name == "ack_lost_segment"
                                    and (path.name, num) in ACKED_UNSEEN_EXTRA):
                diffs.append((num, name, mine, tsh))
    assert diffs == []


def test_flows_packets_bytes_irtt_equal_tshark(both):
    path, table, _ours, theirs = both
    streams: dict[int, dict] = {}
    for _num, f in sorted(theirs.items()):
        s = streams.setdefault(f["stream"], {"pkts": {}, "bytes": {}, "irtt": None})
        key = (f["src"], f["sport"])
        s["pkts"][key] = s["pkts"].get(key, 0) + 1
        s["bytes"][key] = s["bytes"].get(key, 0) + f["len"]
        if f["irtt"] is not None:
            s["irtt"] = f["irtt"]
    assert len(table.flows) == len(streams)
    for fl in table.flows.values():
        s = streams[fl.id]
        ckey = (fmt_addr(fl.client[0]), fl.client[1])
        skey = (fmt_addr(fl.server[0]), fl.server[1])
        c2s, s2c = fl.dirs
        assert (c2s.packets, s2c.packets) == (s["pkts"].get(ckey, 0), s["pkts"].get(skey, 0))
        assert (c2s.bytes, s2c.bytes) == (s["bytes"].get(ckey, 0), s["bytes"].get(skey, 0))
        irtt = fl.handshake.irtt_ns
        if irtt == 0:  # ZERO_IRTT
            continue
        if s["irtt"] is None:
            assert irtt is None
        else:  # to the microsecond
            assert round(irtt / 1e3) == round(s["irtt"] * 1e6), fl.id


def test_connection_count_and_frames_equal_conv_tcp(both):
    path, table, _ours, _theirs = both
    conv = tshark_conv(path)
    assert len(conv) == len(table.flows)
    if path.name == "truncated-header.pcap":  # CONV_TAP
        return
    ours = sorted(sorted([fl.dirs[0].packets, fl.dirs[1].packets]) + [
        fl.dirs[0].packets + fl.dirs[1].packets] for fl in table.flows.values())
    theirs = sorted(sorted([left, right]) + [total] for _a, _pa, _b, _pb, left, right, total
                    in conv)
    assert ours == theirs


def test_per_flow_counts_equal_tshark(both):
    path, table, _ours, theirs = both
    counts: dict[tuple, int] = {}
    for f in theirs.values():
        for name in f["flags"]:
            counts[(f["stream"], (f["src"], f["sport"]), name)] = counts.get(
                (f["stream"], (f["src"], f["sport"]), name), 0) + 1
    for fl in table.flows.values():
        summ = flow_summary(fl)
        for side, ep in (("c2s", fl.client), ("s2c", fl.server)):
            key = (fl.id, (fmt_addr(ep[0]), ep[1]))
            d = summ[side]
            tsh = {n: counts.get(key + (n,), 0) for n in FLAG_FIELDS}
            # Wireshark's counts, by its rules (ACKED_UNSEEN: compared frame by frame above)
            assert {k: v for k, v in d["events"].items() if k != "ack_lost_segment"} == {
                k: v for k, v in tsh.items() if k != "ack_lost_segment"}
            assert d["duplicate_acks"] == tsh["duplicate_ack"]
            assert d["window"]["zero_window_segments"] == tsh["zero_window"]
            # ZWP_LINUX: probes of either form; the keep-alives tshark counted are the rest
            w = d["window"]
            assert w["zero_window_probes"] >= tsh["zero_window_probe"]
            assert d["keep_alives"] + w["zero_window_probes"] == (
                tsh["keep_alive"] + tsh["zero_window_probe"])
            r = d["retransmissions"]
            assert r["total"] == r["rto"] + r["tlp"] + r["fast"]
            assert r["total"] == r["lost"] + r["spurious"] + r["unconfirmed"]
            assert r["spurious"] == r["spurious_dsack"] + r["spurious_eifel"] + r[
                "spurious_acked"]


def test_resend_classes_cover_the_frames_tshark_flags(both):
    """RESEND_CLASSES, frame by frame (see the module docstring)."""
    path, _table, ours, theirs = both
    table = FlowTable()
    diffs = []
    for r in iter_file(str(path), CaptureStats()):
        _fl, _d, m = table.feed(r)
        if r.flags & SYN:
            continue  # SYN_RESEND
        mine = bool(m & (E.RESENT | E.LATE_ORIGINAL | E.AMBIGUOUS | E.DUPLICATE_FRAME))
        tsh = bool(m & (E.RETRANSMISSION | E.OUT_OF_ORDER))
        if mine != tsh:
            diffs.append((r.num, E.names(m)))
        if m & E.SPURIOUS_RETRANSMISSION and not m & (E.SPURIOUS_RESEND | E.LATE_ORIGINAL
                                                      | E.DUPLICATE_FRAME):
            diffs.append((r.num, "spurious", E.names(m)))
    assert diffs == []


def test_rtt_samples_match_tshark_ack_rtt(both):
    """An RTT sample taken from data->ACK equals that ACK's tcp.analysis.ack_rtt.
    Named difference: tshark ignores Karn's rule (it times an ACK against a retransmitted
    copy), so directions with retransmissions are only checked for frames tshark did not
    time against a resent segment - i.e. they are skipped here."""
    path, _table, _ours, theirs = both
    table = FlowTable()
    checked = 0
    for r in iter_file(str(path), CaptureStats()):
        prev = table.active.get(endpoint_key(r))
        before = (prev.dirs[0].rtt.n, prev.dirs[1].rtt.n) if prev else (0, 0)
        fl, d, _m = table.feed(r)
        if fl is not prev:
            before = (0, 0)
        est = fl.dirs[1 - d].rtt  # this segment's ACK times data of the other direction
        took = est.n > before[1 - d]
        if took and est.n_ts == 0:
            sender = fl.dirs[1 - d]
            if sender.counts["retransmission"] or sender.counts["out_of_order"]:
                continue
            sample = est.last
            theirs_rtt = theirs[r.num]["ack_rtt"]
            if sample == 0 and theirs_rtt is None:
                continue  # tshark does not show a zero ack_rtt (10 ms clocks: zwnd.dmp)
            assert theirs_rtt is not None, r.num
            assert round(sample * 1e6) == round(theirs_rtt * 1e6), r.num
            checked += 1
    if any(f["ack_rtt"] for f in theirs.values()) and not any(
            fl.dirs[0].rtt.n_ts or fl.dirs[1].rtt.n_ts for fl in table.flows.values()):
        assert checked > 0
