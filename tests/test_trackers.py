"""Every tracker mechanism over hand-built record sequences, with the expected numbers worked
out by hand from the RFCs."""

import pytest
from builders import Conv

from tcpwatch.analysis import events as E
from tcpwatch.analysis.rtt import RttEstimator
from tcpwatch.analysis.summary import flow_summary
from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.record import ACK, FIN, RST, SYN


def run(recs):
    t = FlowTable()
    masks = [t.feed(r)[2] for r in recs]
    return t, masks


def summary(recs, i=0):
    t, masks = run(recs)
    return flow_summary(t.flows[i]), masks, t


def test_handshake_irtt_halves_and_options():
    cv = Conv()
    recs = [cv.c(0, 1000, 0, SYN, mss=1460, wscale=7, sack_perm=True, tsval=1, tsecr=0),
            cv.s(30, 5000, 1001, SYN | ACK, mss=1400, wscale=2, sack_perm=True, tsval=9,
                 tsecr=1),
            cv.c(30.5, 1001, 5001)]
    f, _, _ = summary(recs)
    hs = f["handshake"]
    assert hs["irtt"] == pytest.approx(0.0305)
    assert hs["irtt_server_side"] == pytest.approx(0.030)
    assert hs["irtt_client_side"] == pytest.approx(0.0005)
    assert hs["client_options"] == {"mss": 1460, "window_scale": 7, "sack_permitted": True,
                                    "timestamps": True}
    assert hs["server_options"]["mss"] == 1400
    assert f["c2s"]["window"]["scale"] == 7 and f["s2c"]["window"]["scale"] == 2
    assert f["roles_from"] == "syn" and f["state"] == "S1"


def test_syn_retransmissions_and_irtt_from_last_syn():
    cv = Conv()
    recs = [cv.c(0, 1000, 0, SYN), cv.c(1000, 1000, 0, SYN), cv.c(3000, 1000, 0, SYN),
            cv.s(3010, 5000, 1001, SYN | ACK), cv.c(3010.2, 1001, 5001)]
    f, masks, t = summary(recs)
    assert len(t.flows) == 1  # same ISN: a retransmission, not port reuse
    assert f["handshake"]["syn_retransmissions"] == 2
    assert f["handshake"]["irtt"] == pytest.approx(0.0102)
    assert masks[1] & E.RETRANSMISSION and masks[2] & E.RETRANSMISSION


def test_rejected_connection_is_rej():
    cv = Conv()
    f, _, _ = summary([cv.c(0, 1000, 0, SYN), cv.s(0.1, 0, 1001, RST | ACK, win=0)])
    assert f["state"] == "REJ" and f["handshake"]["rejected"] is True
    assert f["history"] == "Sr"


@pytest.mark.parametrize("tail,state", [
    ([], "S0"),
    (["c_rst"], "RSTOS0"),
])
def test_unanswered_syn_states(tail, state):
    cv = Conv()
    recs = [cv.c(0, 1000, 0, SYN)]
    if "c_rst" in tail:
        recs.append(cv.c(5, 1001, 0, RST))
    assert summary(recs)[0]["state"] == state


def exchange(cv, close="fin"):
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(11, 1001, 5001, ACK, plen=100),
             cv.s(21, 5001, 1101, ACK, plen=300),
             cv.c(22, 1101, 5301)]
    if close == "fin":
        recs += [cv.c(30, 1101, 5301, FIN | ACK), cv.s(40, 5301, 1102, FIN | ACK),
                 cv.c(41, 1102, 5302)]
    elif close == "rst_server":
        recs += [cv.s(30, 5301, 1101, RST)]
    elif close == "rst_client":
        recs += [cv.c(30, 1101, 5301, RST)]
    elif close == "fin_client":
        recs += [cv.c(30, 1101, 5301, FIN | ACK)]
    elif close == "fin_server":
        recs += [cv.s(30, 5301, 1101, FIN | ACK)]
    return recs


@pytest.mark.parametrize("close,state,history", [
    ("fin", "SF", "ShADdFf"), ("rst_server", "RSTR", "ShADdr"),
    ("rst_client", "RSTO", "ShADdR"), ("fin_client", "S2", "ShADdF"),
    ("fin_server", "S3", "ShADdf"), (None, "S1", "ShADd")])
def test_lifecycle_states_and_history(close, state, history):
    f, _, _ = summary(exchange(Conv(), close))
    assert (f["state"], f["history"]) == (state, history)
    assert f["closed"] == (close in ("fin", "rst_server", "rst_client"))


def test_bytes_packets_goodput_per_direction():
    f, _, _ = summary(exchange(Conv()))
    assert (f["c2s"]["packets"], f["s2c"]["packets"]) == (6, 3)
    assert f["c2s"]["payload_bytes"] == 100 and f["s2c"]["payload_bytes"] == 300
    assert f["c2s"]["bytes"] == 6 * 54 + 100
    assert f["duration"] == pytest.approx(0.041)
    assert f["s2c"]["goodput"] == pytest.approx(300 / 0.041)


def test_midstream_flow_uses_port_heuristic_and_oth():
    cv = Conv(cport=51000, sport=443)
    recs = [cv.s(0, 7000, 3000, ACK, plen=100), cv.c(1, 3000, 7100)]
    f, _, _ = summary(recs)
    assert f["server"]["port"] == 443 and f["roles_from"] == "well-known port"
    assert f["state"] == "OTH" and f["history"].startswith("^")
    assert f["c2s"]["window"]["scale"] is None  # no SYN: scale unknown, stated not guessed
    assert f["c2s"]["window"]["scale_known"] is False


def test_rfc6298_estimator_arithmetic():
    e = RttEstimator()
    e.sample(0.100, 0, False)
    assert (e.srtt, e.rttvar, e.rto) == (0.1, 0.05, 1.0)  # RTO floored at 1 s
    e.sample(0.200, 1, False)
    # RTTVAR = 3/4*0.05 + 1/4*|0.1-0.2| = 0.0625 ; SRTT = 7/8*0.1 + 1/8*0.2 = 0.1125
    assert e.rttvar == pytest.approx(0.0625) and e.srtt == pytest.approx(0.1125)
    for _ in range(50):
        e.sample(2.0, 2, False)
    assert e.rto == pytest.approx(e.srtt + 4 * e.rttvar)
    assert (e.min, e.max, e.n) == (0.1, 2.0, 52)


def test_rtt_samples_karn_rule_skips_retransmitted_segment():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1001, 5001, ACK, plen=100),  # sent
             cv.s(40, 5001, 1101),  # acked after 20 ms: a sample
             cv.c(50, 1101, 5001, ACK, plen=100),  # sent ...
             cv.c(300, 1101, 5001, ACK, plen=100),  # ... and resent (RTO)
             cv.s(310, 5001, 1201)]  # ambiguous: Karn says no sample
    f, masks, _ = summary(recs)
    rtt = f["c2s"]["rtt"]
    assert rtt["samples"] == 2  # the SYN->SYN-ACK, and the first data segment
    assert rtt["last"] == pytest.approx(0.020)
    assert masks[6] & E.RETRANSMISSION and masks[6] & E.RTO_RETRANSMISSION
    r = f["c2s"]["retransmissions"]
    # no timestamps, no SACK: whether the original had arrived is not known
    assert (r["total"], r["rto"], r["tlp"], r["fast"]) == (1, 1, 0, 0)
    assert (r["lost"], r["spurious"], r["unconfirmed"]) == (0, 0, 1)


def test_rtt_from_timestamp_echo_survives_retransmission():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(50, 1001, 5001, ACK, plen=100, tsval=10, tsecr=1),
             cv.c(300, 1001, 5001, ACK, plen=100, tsval=35, tsecr=1),
             cv.s(330, 5001, 1101, tsval=2, tsecr=35)]  # echoes the retransmission
    f, _, _ = summary(recs)
    rtt = f["c2s"]["rtt"]
    assert rtt["samples_timestamp"] == 1 and rtt["last"] == pytest.approx(0.030)


def test_dup_acks_then_fast_retransmission():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    seq = 1001
    for i in range(5):
        recs.append(cv.c(20 + i, seq + 100 * i, 5001, ACK, plen=100))
    # segment 1001 lost: receiver acks 1001 again for each later segment, with SACK
    recs.append(cv.s(31, 5001, 1001))
    for i in range(3):
        recs.append(cv.s(32 + i, 5001, 1001, sack=((1101, 1201 + 100 * i),)))
    recs.append(cv.c(35, 1001, 5001, ACK, plen=100))  # fast retransmit
    f, masks, _ = summary(recs)
    # the first ACK of 1001 repeats the SYN-ACK's ACK: a duplicate too, as tshark counts
    assert [bool(m & E.DUPLICATE_ACK) for m in masks[8:12]] == [True, True, True, True]
    assert masks[12] & E.FAST_RETRANSMISSION and masks[12] & E.FAST_RESEND
    assert f["s2c"]["duplicate_acks"] == 4
    r = f["c2s"]["retransmissions"]
    assert (r["total"], r["rto"], r["tlp"], r["fast"]) == (1, 0, 0, 1)


def test_sack_reported_hole_is_a_retransmission_not_reordering():
    """tshark calls this "out-of-order" (it arrives within the iRTT of the highest segment);
    the receiver's SACK block reported the segment missing and the resend carries bytes the
    capture point had seen: a retransmission (named case OOO_RESEND in the golden tests)."""
    cv = Conv()
    recs = cv.handshake(rtt_ms=50)
    recs += [cv.c(60, 1001, 5001, ACK, plen=100),
             cv.c(61, 1101, 5001, ACK, plen=100),
             cv.c(62, 1201, 5001, ACK, plen=100),
             cv.s(63, 5001, 1101, sack=((1201, 1301),)),  # 1101-1201 missing
             cv.c(64, 1101, 5001, ACK, plen=100)]
    f, masks, _ = summary(recs)
    assert masks[-1] & E.OUT_OF_ORDER  # what tshark says
    assert masks[-1] & E.FAST_RESEND  # what tcpwatch says
    assert f["c2s"]["retransmissions"]["total"] == 1
    assert f["c2s"]["retransmissions"]["fast"] == 1
    assert f["c2s"]["out_of_order"] == 0
    assert f["c2s"]["events"]["out_of_order"] == 1


def test_plain_reordering_stays_out_of_order():
    cv = Conv()
    recs = cv.handshake(rtt_ms=50)
    recs += [cv.c(60, 1101, 5001, ACK, plen=100),  # arrives before its predecessor
             cv.c(60.1, 1001, 5001, ACK, plen=100)]
    f, masks, _ = summary(recs)
    assert masks[3] & E.LOST_SEGMENT and masks[4] & E.OUT_OF_ORDER
    # no report, and sooner than any timer (two round trips): the original, late
    assert masks[4] & E.LATE_ORIGINAL and not masks[4] & E.RESENT
    assert f["c2s"]["out_of_order"] == 1 and f["c2s"]["retransmissions"]["total"] == 0


def test_spurious_retransmission_of_acked_data():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1001, 5001, ACK, plen=100), cv.s(30, 5001, 1101),
             cv.c(300, 1001, 5001, ACK, plen=100)]
    f, masks, _ = summary(recs)
    assert masks[-1] & E.SPURIOUS_RETRANSMISSION and masks[-1] & E.SPURIOUS_RESEND
    assert f["c2s"]["retransmissions"]["spurious"] == 1
    assert f["c2s"]["retransmissions"]["spurious_acked"] == 1


def test_zero_window_episode_probe_and_durations():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1001, 5001, ACK, plen=1000),
             cv.s(30, 5001, 2001, win=0),  # receiver full: zero window for 1.5 s
             cv.c(530, 2001, 5001, ACK, plen=1),  # zero-window probe
             cv.s(531, 5001, 2001, win=0),  # probe answered, still zero
             cv.s(1530, 5001, 2001, win=1000)]  # window opens: update
    f, masks, _ = summary(recs)
    w = f["s2c"]["window"]
    assert masks[4] & E.ZERO_WINDOW
    assert masks[5] & E.ZERO_WINDOW_PROBE and masks[6] & E.ZERO_WINDOW_PROBE_ACK
    assert masks[7] & E.WINDOW_UPDATE
    assert w["zero_window_events"] == 1
    assert w["zero_window_time"] == pytest.approx(1.5)
    assert w["zero_window_probes"] == 0 and f["c2s"]["window"]["zero_window_probes"] == 1
    assert w["min"] == 0 and w["zero_window_open"] is False


def test_window_scaling_applied_and_not_in_syn():
    cv = Conv()
    recs = [cv.c(0, 1000, 0, SYN, win=65535, wscale=7),
            cv.s(10, 5000, 1001, SYN | ACK, win=65535, wscale=3),
            cv.c(10.1, 1001, 5001, win=512),
            cv.s(11, 5001, 1001, win=1000)]
    f, _, _ = summary(recs)
    assert f["c2s"]["window"]["last"] == 512 << 7
    assert f["c2s"]["window"]["max"] == 512 << 7  # the SYN's 65535 is never scaled
    assert f["c2s"]["window"]["min"] == 65535
    assert f["s2c"]["window"]["last"] == 1000 << 3


def test_window_scaling_off_unless_both_sides_offer_it():
    cv = Conv()
    recs = [cv.c(0, 1000, 0, SYN, wscale=7), cv.s(10, 5000, 1001, SYN | ACK),
            cv.c(10.1, 1001, 5001, win=512)]
    f, _, _ = summary(recs)
    assert f["c2s"]["window"]["scale"] == 0 and f["c2s"]["window"]["last"] == 512


def test_keep_alive_and_its_ack():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1001, 5001, ACK, plen=10), cv.s(30, 5001, 1011),
             cv.c(7_200_030, 1010, 5001, ACK, plen=1),  # keep-alive: snd.nxt - 1
             cv.s(7_200_040, 5001, 1011)]
    f, masks, _ = summary(recs)
    assert masks[5] & E.KEEP_ALIVE and not masks[5] & E.RETRANSMISSION
    assert masks[6] & E.KEEP_ALIVE_ACK
    assert f["c2s"]["keep_alives"] == 1


def test_lost_segment_and_acked_unseen():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1001, 5001, ACK, plen=100),
             cv.c(21, 1201, 5001, ACK, plen=100),  # 1101-1201 never captured
             cv.s(30, 5001, 1301)]
    f, masks, _ = summary(recs)
    assert masks[4] & E.LOST_SEGMENT
    assert masks[5] & E.ACKED_UNSEEN
    assert f["c2s"]["lost_segments"] == 1 and f["s2c"]["acked_unseen"] == 1


def test_bytes_in_flight():
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20 + i, 1001 + 100 * i, 5001, ACK, plen=100) for i in range(4)]
    recs += [cv.s(30, 5001, 1201), cv.c(31, 1401, 5001, ACK, plen=100)]
    f, _, _ = summary(recs)
    assert f["c2s"]["in_flight"] == {"last": 300, "max": 400}


def test_sequence_wraparound():
    cv = Conv()
    isn = 0xFFFFFF00
    recs = cv.handshake(isn_c=isn, rtt_ms=10)
    seq = isn + 1
    for i in range(4):  # 4 x 100 bytes cross 2**32
        recs.append(cv.c(20 + i, seq + 100 * i, 5001, ACK, plen=100))
        recs.append(cv.s(21 + i, 5001, seq + 100 * (i + 1)))
    f, masks, _ = summary(recs)
    assert not any(m & (E.RETRANSMISSION | E.LOST_SEGMENT | E.OUT_OF_ORDER) for m in masks)
    assert f["c2s"]["unique_payload_bytes"] == 400
    assert f["c2s"]["rtt"]["samples"] == 5


def test_port_reuse_new_isn_starts_new_flow():
    cv = Conv()
    recs = exchange(cv)
    cv2 = Conv()
    cv2.num = cv.num
    later = [r for r in exchange(cv2)]
    for r in later:
        r.ts += 60 * 10**9
        r.seq = (r.seq + 777777) & 0xFFFFFFFF if r.sport == cv.cport else r.seq
        r.ack = (r.ack + 777777) & 0xFFFFFFFF if r.sport == cv.sport and r.ack else r.ack
    t, _ = run(recs + later)
    assert len(t.flows) == 2
    assert t.flows[1].reused and not t.flows[0].reused
    assert flow_summary(t.flows[0])["state"] == "SF"
    assert flow_summary(t.flows[1])["state"] == "SF"


def test_flow_key_is_direction_agnostic_and_collision_free():
    cv = Conv(cport=1000, sport=2000)
    t, _ = run([cv.c(0, 1, 0, SYN), cv.s(1, 9, 2, SYN | ACK)])
    assert len(t.flows) == 1
    other = Conv(cport=2000, sport=1000)  # same ports, swapped between hosts
    t2, _ = run([cv.c(0, 1, 0, SYN), other.c(1, 5, 0, SYN)])
    assert len(t2.flows) == 2


def test_retransmission_split_adds_up():
    """rto + tlp + fast == total == lost + spurious + unconfirmed, on a mixed sequence."""
    cv = Conv()
    recs = cv.handshake(rtt_ms=10)
    recs += [cv.c(20, 1001, 5001, ACK, plen=100), cv.c(2000, 1001, 5001, ACK, plen=100),
             cv.s(2010, 5001, 1101), cv.c(2020, 1001, 5001, ACK, plen=100)]
    f, _, _ = summary(recs)
    r = f["c2s"]["retransmissions"]
    assert r["total"] == r["rto"] + r["tlp"] + r["fast"] == 2
    assert r["total"] == r["lost"] + r["spurious"] + r["unconfirmed"]
    assert r["spurious"] == 1  # the second resend: the data was acknowledged already


def test_trackers_make_no_reference_cycles():
    """`report` pauses the cyclic GC while it analyses: that is only safe because flows,
    their trackers and evicted flows are freed by reference counting alone."""
    import gc

    from tcpwatch.capture.fast import iter_file
    from tcpwatch.capture.record import CaptureStats
    from tcpwatch.cli import demo_capture
    gc.collect()
    gc.disable()
    try:
        t = FlowTable(max_flows=3)  # most flows are evicted on the way
        for r in iter_file(demo_capture(), CaptureStats()):
            t.feed(r)
        assert t.evicted.flows > 0
        for fl in t.flows.values():
            flow_summary(fl)
        del t, fl
        assert gc.collect() == 0  # nothing was left for the cycle collector
    finally:
        gc.enable()


def _long_conversation(t: FlowTable, n: int = 20_000) -> None:
    """One long connection: n data segments with timestamps, a third sent twice, windows
    changing, ACKs that leave data outstanding at times, one zero window at n/3."""
    from tcpwatch.capture.record import PSH
    c = Conv()
    for r in c.handshake(rtt_ms=1.0):
        t.feed(r)
    seq, ack, at = 1001, 5001, 2.0
    for i in range(n):
        at += 0.01
        t.feed(c.c(at, seq, ack, ACK | PSH, plen=100, win=1000 + i % 7, tsval=i, tsecr=i))
        if i % 3 == 0:  # the same segment again: a retransmission event
            t.feed(c.c(at + 0.0005, seq, ack, ACK | PSH, plen=100, win=1000, tsval=i,
                       tsecr=i))
        seq += 100
        if i % 50 != 49:  # ACKs that leave data outstanding at times
            t.feed(c.s(at + 0.001, ack, seq, win=0 if i == n // 3 else 2000 + i % 5,
                       tsval=i, tsecr=i))


def test_per_flow_state_is_bounded_by_counts():
    """A long connection keeps its series within its share of the budget (budget.py), over
    its whole life, extremes exact; events are the newest; unacknowledged segments and
    TSvals are capped."""
    from tcpwatch.analysis.budget import SERIES_MAX
    from tcpwatch.analysis.direction import TSVAL_MAX, UNACKED_MAX
    t = FlowTable()
    _long_conversation(t)
    fl = t.flows[0]
    b = t.budget
    assert b.series_cap == SERIES_MAX  # one connection: the largest share
    for d in fl.dirs:
        assert len(d.series) <= b.series_cap and len(d.flight) <= b.series_cap
        assert len(d.rtt.series) <= b.series_cap
        assert len(d.unacked) <= UNACKED_MAX and len(d.tsvals) <= TSVAL_MAX
    est = fl.dirs[0].rtt
    assert est.n > SERIES_MAX * 2  # many more samples seen than kept
    pts = est.series.points()
    # the whole life, not the newest: from the first sample to the last
    life = fl.last_ts - fl.first_ts
    assert pts[0][0] < fl.first_ts + life // 10 and pts[-1][0] > fl.last_ts - life // 10
    assert [p[0] for p in pts] == sorted(p[0] for p in pts)
    # (kept in whole nanoseconds)
    assert abs(max(p[1] for p in pts) - est.max) < 1e-9
    assert abs(min(p[1] for p in pts) - est.min) < 1e-9
    # the zero window (the server's, once) survives every decimation
    win = fl.dirs[1].series.points()
    assert min(w for _t, w in win) == 0 and fl.dirs[1].series.seen > len(win)
    assert fl.dirs[0].counts["retransmission"] > b.events_cap * 2
    assert len(fl.events) <= b.events_cap * 1.25 and fl.events.seen > len(fl.events)
    assert fl.events.items()[-1][1] >= t.records - 5  # the newest events are the ones kept


def test_budget_shares_shrink_as_connections_arrive():
    """Many long connections share the budget: each keeps less, the total stays within it,
    and the trims keep each connection's extremes (counts, not timing)."""
    from tcpwatch.analysis.budget import SERIES_PER_FLOW
    t = FlowTable(budget_mib=1)
    _long_conversation(t, 3000)
    first = t.flows[0]
    assert len(first.dirs[0].rtt.series) > 200
    for i in range(2000):  # 2,000 more connections: the shares fall, a trim follows
        c = Conv(cport=20000 + i, t0=Conv().t + 10**9 + i * 10**6)
        for r in c.handshake(rtt_ms=1.0):
            t.feed(r)
    b = t.budget
    assert b.trims >= 1 and b.flows == 2001
    kept = sum(len(s) for fl in t.flows.values() for d in fl.dirs
               for s in (d.series, d.flight, d.rtt.series))
    assert kept <= b.series_points + SERIES_PER_FLOW * 4 * b.flows
    assert len(first.dirs[0].rtt.series) <= b.series_cap
    pts = first.dirs[0].rtt.series.points()
    assert abs(max(p[1] for p in pts) - first.dirs[0].rtt.max) < 1e-9


def test_exchanges_let_go_keep_their_stall_time():
    """The request list keeps the budget's share, the newest; the stall time of those let go
    stays in the totals the diagnosis adds up."""
    from tcpwatch.analysis.budget import Budget
    from tcpwatch.analysis.exchange import Exchange, Exchanges
    b = Budget(1)
    b.set_flows(10**6)  # the smallest share
    exs = Exchanges(b)
    for i in range(50):
        ex = Exchange(i, "http", {})
        ex.stall("rto", 1000, i)
        exs.count += 1
        exs._keep(ex)
    assert len(exs.items) <= b.exchanges_cap * 1.25 + 1 and exs.dropped == 50 - len(exs.items)
    assert exs.stall_totals()["rto"] == 50 * 1000
    exs.unstall(exs.items[-1], "rto", 1000, 49)
    assert exs.stall_totals()["rto"] == 49 * 1000
