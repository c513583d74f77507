"""Retransmission classification, reordering, zero-window probes, the path's RTT and Nagle on
either side, over hand-built conversations whose truth is worked out from the RFCs (times in
ms; each test says where the capture point is, because that decides what it can see).

Named differences from tshark, asserted here:
  * LATE_ORIGINAL: a segment that fills a hole after duplicate ACKs, sent with its burst (same
    or older TSval, or too soon after the report to be its repair), is reordering; tshark calls
    it a fast retransmission.
  * ZWP_LINUX: Linux probes a zero window with snd_una - 1 and no data; tshark calls that a
    keep-alive, tcpwatch a zero-window probe.
"""

import pytest
from builders import Conv

from tcpwatch.analysis import events as E
from tcpwatch.analysis.diagnosis import diagnose_flow
from tcpwatch.analysis.summary import flow_summary
from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.record import ACK, FIN, RST, SYN

LOSS_KINDS = {"rto_stall", "tail_loss_probe", "fast_retransmit", "high_retransmission_rate"}


def run(recs):
    t = FlowTable()
    masks = [t.feed(r)[2] for r in recs]
    fl = t.flows[0]
    return fl, flow_summary(fl), masks


def kinds(fl):
    return {f.kind: f for f in diagnose_flow(fl)}


def server_side_start(cv):
    """Handshake seen next to the server (SYN -> SYN-ACK 0.1 ms, SYN-ACK -> ACK 20 ms), SACK
    and timestamps on; a 100-byte request; a 3-segment response at 22 ms, TSval 522."""
    recs = [cv.c(0, 1000, 0, SYN, sack_perm=True, tsval=100, tsecr=0, mss=1460),
            cv.s(0.1, 5000, 1001, SYN | ACK, sack_perm=True, tsval=500, tsecr=100, mss=1460),
            cv.c(20.1, 1001, 5001, tsval=120, tsecr=500),
            cv.c(21, 1001, 5001, plen=100, tsval=121, tsecr=500)]
    recs += [cv.s(22 + i * 0.01, 5001 + 1000 * i, 1101, plen=1000, tsval=522, tsecr=121)
             for i in range(3)]
    return recs


def test_tail_loss_probe_answered_by_dsack_is_spurious_and_costs_nothing():
    """RFC 8985 7: the sender probes the highest segment about 2 SRTT after it, because the
    receiver delays its ACK of the last (odd) segment longer than that. The delayed ACK echoes
    the original's TSval (Eifel, RFC 3522), and the probe's duplicate is D-SACKed (RFC 2883)."""
    cv = Conv()
    recs = server_side_start(cv)
    recs += [cv.c(42.01, 1101, 7001, tsval=141, tsecr=522),  # ACK of two segments at once
             cv.s(64, 7001, 1101, plen=1000, tsval=564, tsecr=141),  # the probe
             cv.c(82, 1101, 8001, tsval=161, tsecr=522),  # the delayed ACK of the original
             cv.c(84, 1101, 8001, tsval=163, tsecr=564, sack=((7001, 8001),))]  # D-SACK
    fl, f, masks = run(recs)
    r = f["s2c"]["retransmissions"]
    assert masks[8] & E.RETRANSMISSION  # tshark: a retransmission
    assert masks[8] & E.TLP_RESEND
    assert (r["total"], r["tlp"], r["rto"], r["fast"]) == (1, 1, 0, 0)
    assert (r["spurious"], r["spurious_eifel"], r["lost"], r["unconfirmed"]) == (1, 1, 0, 0)
    assert masks[10] & E.DSACK and f["c2s"]["dsacks"] == 1
    assert r["stall_tlp"] == 0 and r["stall_rto"] == 0
    assert not LOSS_KINDS & set(kinds(fl))
    # one spurious probe costs a segment: counted, not a finding (SPURIOUS_TLP_MIN)
    assert "spurious_retransmission" not in kinds(fl)
    ev = {num: m for _ts, num, _d, m in fl.events.items()}
    assert ev[9] & E.SPURIOUS_RESEND  # the verdict reached the probe's timeline entry


def test_real_tail_loss_probe_then_rto():
    """The last segment and its probe are lost: the RTO (RFC 6298 5) resends it; the ACK
    echoes the RTO copy's TSval, so both resends were needed."""
    cv = Conv()
    recs = server_side_start(cv)
    recs += [cv.c(42.01, 1101, 7001, tsval=141, tsecr=522),
             cv.s(64, 7001, 1101, plen=1000, tsval=564, tsecr=141),  # probe, lost
             cv.s(284, 7001, 1101, plen=1000, tsval=784, tsecr=141),  # RTO, arrives
             cv.c(304, 1101, 8001, tsval=383, tsecr=784)]
    fl, f, masks = run(recs)
    r = f["s2c"]["retransmissions"]
    assert masks[8] & E.TLP_RESEND and masks[9] & E.RTO_RETRANSMISSION
    assert (r["total"], r["tlp"], r["rto"], r["lost"], r["spurious"]) == (2, 1, 1, 2, 0)
    k = kinds(fl)
    assert k["rto_stall"].lost == pytest.approx(0.220)  # the silence before the RTO
    assert k["tail_loss_probe"].lost == pytest.approx(0.064 - 0.04201)
    assert k["rto_stall"].side == "server"


def client_side_burst(cv, late_tsval):
    """Seen next to the client: SYN -> SYN-ACK 40 ms (the server is 40 ms away). The
    response's first segment (5001) is delayed in the network; the client SACKs the others."""
    recs = [cv.c(0, 1000, 0, SYN, sack_perm=True, tsval=100, tsecr=0),
            cv.s(40, 5000, 1001, SYN | ACK, sack_perm=True, tsval=500, tsecr=100),
            cv.c(40.1, 1001, 5001, tsval=140, tsecr=500),
            cv.c(41, 1001, 5001, plen=100, tsval=141, tsecr=500)]
    for i in range(1, 4):  # 6001, 7001, 8001 arrive; each answered by a duplicate ACK
        recs.append(cv.s(81 + i * 0.01, 5001 + 1000 * i, 1101, plen=1000, tsval=541,
                         tsecr=141))
        recs.append(cv.c(81.001 + i * 0.01, 1101, 5001, tsval=181, tsecr=500,
                         sack=((6001, 6001 + 1000 * i),)))
    return recs


def test_late_original_is_reordering_not_a_fast_retransmission():
    """Held 5 ms by the network: it fills the hole 5 ms after the first duplicate ACK, far
    sooner than the 40 ms a repair needs to come back from the server, with its burst's
    TSval. tshark: fast retransmission (LATE_ORIGINAL)."""
    cv = Conv()
    recs = client_side_burst(cv, 541)
    recs += [cv.s(86, 5001, 1101, plen=1000, tsval=541, tsecr=141),
             cv.c(86.01, 1101, 9001, tsval=186, tsecr=541)]
    fl, f, masks = run(recs)
    assert masks[10] & E.FAST_RETRANSMISSION  # what tshark says
    assert masks[10] & E.LATE_ORIGINAL and not masks[10] & E.RESENT
    assert f["s2c"]["out_of_order"] == 1 and f["s2c"]["retransmissions"]["total"] == 0
    assert f["s2c"]["out_of_order_max_late"] == pytest.approx(0.086 - 0.08101)
    assert set(kinds(fl)) == {"reordering"}


def test_late_original_proven_by_an_older_tsval_however_late():
    cv = Conv()
    recs = client_side_burst(cv, 541)
    recs += [cv.s(150, 5001, 1101, plen=1000, tsval=540, tsecr=141)]  # sent before 6001
    fl, f, masks = run(recs)
    assert masks[-1] & E.LATE_ORIGINAL
    assert f["s2c"]["out_of_order"] == 1 and f["s2c"]["retransmissions"]["total"] == 0


def test_reordering_that_fooled_the_sender_is_a_spurious_fast_retransmit():
    """The sender resends 5001 on the SACKs (newer TSval: a resend); then the original
    arrives (older TSval than one already seen: late), and the client D-SACKs it."""
    cv = Conv()
    recs = client_side_burst(cv, 541)
    recs += [cv.s(122, 5001, 1101, plen=1000, tsval=582, tsecr=181),  # the fast retransmit
             cv.c(122.01, 1101, 9001, tsval=222, tsecr=582),
             cv.s(150, 5001, 1101, plen=1000, tsval=540, tsecr=141),  # the original, late
             cv.c(150.01, 1101, 9001, tsval=250, tsecr=582, sack=((5001, 6001),))]
    fl, f, masks = run(recs)
    r = f["s2c"]["retransmissions"]
    assert masks[10] & E.FAST_RESEND
    assert masks[12] & E.LATE_ORIGINAL
    assert (r["total"], r["fast"], r["spurious"], r["spurious_dsack"], r["lost"]) == (
        1, 1, 1, 1, 0)
    assert f["s2c"]["out_of_order"] == 1
    k = kinds(fl)
    assert not LOSS_KINDS & set(k)
    assert {"spurious_retransmission", "reordering"} <= set(k)
    assert k["spurious_retransmission"].severity == "warn"  # it halved the window for nothing


def test_fast_retransmit_of_a_real_loss():
    cv = Conv()
    recs = client_side_burst(cv, 541)
    recs += [cv.s(122, 5001, 1101, plen=1000, tsval=582, tsecr=181),
             cv.c(122.01, 1101, 9001, tsval=222, tsecr=582)]  # echoes the resend
    fl, f, _ = run(recs)
    r = f["s2c"]["retransmissions"]
    assert (r["fast"], r["lost"], r["spurious"]) == (1, 1, 0)
    assert "fast_retransmit" in kinds(fl) and "reordering" not in kinds(fl)


def test_resend_that_also_repairs_never_seen_bytes_is_a_loss():
    """The capture saw 1101-1201 but never 1001-1101; one resend carries both."""
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1101, 5001, plen=100),  # 1001-1101 never seen
             cv.s(30, 5001, 1001),
             cv.c(500, 1001, 5001, plen=200)]
    _fl, f, masks = run(recs)
    r = f["c2s"]["retransmissions"]
    assert (r["total"], r["lost"], r["unconfirmed"]) == (1, 1, 0)


def test_resent_fin_dsacked_is_spurious():
    cv = Conv()
    recs = [cv.c(0, 1000, 0, SYN, sack_perm=True), cv.s(10, 5000, 1001, SYN | ACK,
                                                          sack_perm=True),
            cv.c(10.1, 1001, 5001),
            cv.c(20, 1001, 5001, FIN | ACK),
            cv.c(400, 1001, 5001, FIN | ACK),  # resent: the first one's ACK was lost
            cv.s(410, 5001, 1002, sack=((1001, 1002),))]  # D-SACK of the FIN
    _fl, f, masks = run(recs)
    r = f["c2s"]["retransmissions"]
    assert masks[4] & E.RESENT
    assert (r["total"], r["spurious"], r["spurious_dsack"]) == (1, 1, 1)


def test_linux_zero_window_probe_is_a_probe_not_a_keep_alive():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1001, 5001, plen=1000),
             cv.s(30, 5001, 2001, win=0),  # zero window
             cv.c(230, 2000, 5001),  # snd_una - 1, no data: Linux's probe
             cv.s(240, 5001, 2001, win=0),
             cv.c(640, 2000, 5001),
             cv.s(650, 5001, 2001, win=0)]
    _fl, f, masks = run(recs)
    assert masks[5] & E.KEEP_ALIVE and masks[5] & E.WINDOW_PROBE  # ZWP_LINUX
    assert f["c2s"]["window"]["zero_window_probes"] == 2
    assert f["c2s"]["keep_alives"] == 0 and f["c2s"]["events"]["keep_alive"] == 2


def test_keep_alive_on_an_open_window_stays_a_keep_alive():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1001, 5001, plen=10), cv.s(30, 5001, 1011),
             cv.c(7200_000, 1010, 5001)]
    _fl, f, _ = run(recs)
    assert f["c2s"]["keep_alives"] == 1 and f["c2s"]["window"]["zero_window_probes"] == 0


def test_delayed_ack_samples_are_kept_apart_from_the_path_rtt():
    """Loopback: the handshake's round trips are 30 us. Each request's ACK comes 40 ms later
    (the server's delayed ACK, RFC 1122 4.2.3.2); the response's two segments are ACKed at
    once. The path's SRTT stays in microseconds."""
    cv = Conv()
    recs = [cv.c(0, 1000, 0, SYN), cv.s(0.03, 5000, 1001, SYN | ACK), cv.c(0.06, 1001, 5001)]
    seq_c, seq_s, t = 1001, 5001, 1.0
    for _ in range(5):
        recs.append(cv.c(t, seq_c, seq_s, plen=100))
        recs.append(cv.s(t + 40, seq_s, seq_c + 100))  # delayed ACK of a lone segment
        recs.append(cv.s(t + 41, seq_s, seq_c + 100, plen=1000))
        recs.append(cv.s(t + 41.001, seq_s + 1000, seq_c + 100, plen=1000))
        recs.append(cv.c(t + 41.031, seq_c + 100, seq_s + 2000))  # two segments: at once
        seq_c, seq_s, t = seq_c + 100, seq_s + 2000, t + 100
    fl, f, _ = run(recs)
    c2s = f["c2s"]["rtt"]
    assert c2s["samples_delayed"] == 5 and c2s["delayed_share"] == pytest.approx(5 / 6)
    assert f["s2c"]["rtt"]["samples_delayed"] == 0
    assert f["srtt"] < 0.001  # the path's, from the response's samples
    assert f["s2c"]["rtt"]["srtt"] == pytest.approx(0.00003, rel=0.05)
    assert c2s["srtt_all"] > 0.01  # every sample, as the sender's estimator sees them


def nagle_response(cv, ack_at, body_at, body_len=300, win=65535):
    """On loopback: headers (150 bytes) then body, written separately by the server."""
    recs = [cv.c(0, 1000, 0, SYN, mss=65483), cv.s(0.02, 5000, 1001, SYN | ACK, mss=65483),
            cv.c(0.04, 1001, 5001, win=win),
            cv.c(1, 1001, 5001, plen=100, win=win),
            cv.s(1.2, 5001, 1101, plen=150),
            cv.c(ack_at, 1101, 5151, win=win),  # the client's ACK of the headers
            cv.s(body_at, 5151, 1101, plen=body_len)]
    return recs


def test_server_side_nagle_meets_the_clients_delayed_ack():
    cv = Conv()
    fl, f, _ = run(nagle_response(cv, ack_at=41.2, body_at=41.25))
    k = kinds(fl)
    assert k["nagle_delayed_ack"].side == "server"
    assert k["nagle_delayed_ack"].lost == pytest.approx(0.04005)
    assert "TCP_NODELAY on the server" in k["nagle_delayed_ack"].advice
    assert f["exchanges"][0]["breakdown"]["stalls"]["nagle"] == pytest.approx(0.04005)


@pytest.mark.parametrize("case,ack_at,body_at,body_len,win", [
    ("ACK not delayed: Nagle alone", 1.25, 1.3, 300, 65535),
    ("the body left long after the ACK: the application", 41.2, 60.0, 300, 65535),
    ("a full-sized body: Nagle never holds one", 41.2, 41.25, 65483, 65535),
    ("the window held it, not Nagle", 41.2, 41.25, 300, 200),
])
def test_no_nagle_where_something_else_explains_the_wait(case, ack_at, body_at, body_len,
                                                          win):
    cv = Conv()
    fl, _f, _ = run(nagle_response(cv, ack_at, body_at, body_len, win))
    assert "nagle_delayed_ack" not in kinds(fl), case


def rst_case(cv, tail):
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(11, 1001, 5001, plen=100), cv.s(21, 5001, 1101, plen=300),
             cv.c(22, 1101, 5301)]
    return recs + tail


@pytest.mark.parametrize("case,tail,kind_side", [
    ("server aborts", lambda cv: [cv.s(30, 5301, 1101, RST)], ("error", "server")),
    ("client gives up on an unanswered request",
     lambda cv: [cv.c(30, 1101, 5301, plen=100), cv.c(2030, 1201, 5301, RST | ACK)],
     ("warn", "client")),
    ("client closes by RST, every request answered",
     lambda cv: [cv.c(30, 1101, 5301, RST | ACK)], None),
    ("a RST after the FINs: data still arriving at a closed socket",
     lambda cv: [cv.c(30, 1101, 5301, FIN | ACK), cv.s(31, 5301, 1102, plen=31),
                 cv.c(32, 1102, 5301, RST)], None),
])
def test_rst_is_a_finding_only_when_it_cut_something(case, tail, kind_side):
    cv = Conv()
    fl, _f, _ = run(rst_case(cv, tail(cv)))
    found = kinds(fl).get("rst_midstream")
    if kind_side is None:
        assert found is None, case
    else:
        assert found is not None, case
        assert (found.severity, found.side) == kind_side
        if kind_side[1] == "client":
            assert "2.000 s after request #1" in found.explain
