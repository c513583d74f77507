"""Zeek-exact `conn_state` and `history` (lifecycle.py), rule by rule.

Hand-built segments with the result worked out from Zeek's source (github.com/zeek/zeek,
src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc unless named otherwise); segments
transcribed from three of Zeek's own test traces with the results in Zeek's test baselines
(testing/btest/Baseline/core.tcp.*); and golden tests over the shared captures that Zeek's
tests also read (Baseline: core.tcp.tcp-dups, core.tcp.truncated-header, the connection ids
in bifs.disable_analyzer*, file-analysis.http.partial-content, http-pending-state-growth and
the connection count in telemetry.conn-duration-histogram).

Where tcpwatch differs from Zeek, by design (lifecycle.py's docstring; README "Zeek states"):
  1. Roles. tcpwatch's client is the SYN sender, else the SYN-ACK's receiver, else a port
     heuristic (table.py); `^` means the client did not send the first packet, which is when
     Zeek writes it. Zeek's originator of a mid-stream connection is the first sender unless
     its port is in likely_server_ports (the ports of the analyzers loaded, so it depends on
     the scripts run); a connection that starts with a SYN-ACK it flips only at the first
     ACK or data packet, after running the SYN-ACK as the originator's (state OTH where
     tcpwatch says S1 or SF, history equal), and not at all if none comes ("H" where
     tcpwatch has "^h": test_synack_alone_roles_differ).
  2. Timers and reuse. Zeek ends a connection 5 s after an unanswered SYN, 5 s after a close
     or a RST, after 5 min idle, and takes any SYN after a close for a new connection; it
     logs what follows as another connection. tcpwatch keeps one (test_timers_do_not_split).
  3. Truncation. Zeek skips a segment whose TCP header the snaplen cut (truncated-header.pcap
     frame 1) and counts payload as unseen unless all of it was captured; tcpwatch keeps at
     most 256 payload bytes and counts a segment as unseen only when some but not all of
     those were captured, so a snaplen that cuts at the TCP header or past byte 256 loses G.
  4. RST validity. Zeek takes every RST; so do tcpwatch's state and history, but `closed`
     needs a RST the receiver would act on (RFC 9293 3.10.7.3 / 3.10.7.4, RFC 5961 3.2).
  5. C/c (bad checksum) never appears: tcpwatch does not verify checksums (as `zeek -C`);
     X (analysis limits) does not apply.
"""

from __future__ import annotations

import pytest
from builders import Conv
from conftest import NEED_SHARED
from oracle import SHARED

from tcpwatch.analysis.lifecycle import CLOSED, RESET, SYN_SENT, Lifecycle
from tcpwatch.analysis.summary import flow_summary
from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.fast import iter_file_batches
from tcpwatch.capture.record import ACK, FIN, PSH, RST, SYN, CaptureStats


def replay(cv: Conv, recs: list) -> Lifecycle:
    """Feed a Lifecycle directly: cv's client is the originator."""
    life = Lifecycle()
    for r in recs:
        life.on_packet(r, 0 if r.sport == cv.cport else 1)
    return life


def zeek(cv: Conv, recs: list) -> tuple[str, str]:
    life = replay(cv, recs)
    return life.conn_state(), "".join(life.history)


def hs(cv: Conv) -> list:
    return cv.handshake(rtt_ms=10)  # client ISN 1000, server ISN 5000


# ---- ^: the responder sent the first packet (Connection::FlipRoles adds it) -------------
def test_caret_marks_the_responder_speaking_first():
    cv = Conv()
    # a mid-stream connection whose client speaks first: no flip, no ^
    assert zeek(cv, [cv.c(0, 1001, 5001, plen=10), cv.s(1, 5001, 1011)]) == ("OTH", "Da")
    cv = Conv()
    assert zeek(cv, [cv.s(0, 5001, 1001, plen=10), cv.c(1, 1001, 5011)]) == ("OTH", "^dA")
    # a SYN-ACK first: UpdateInactiveState establishes the responder (unsolicited SYN
    # response), and the originator's ACK with its peer established (missed SYN)
    cv = Conv()
    assert zeek(cv, [cv.s(0, 5000, 1001, SYN | ACK), cv.c(1, 1001, 5001)]) == ("S1", "^hA")
    cv = Conv()
    assert zeek(cv, hs(cv)) == ("S1", "ShA")


def test_guessed_roles_alone_write_no_caret():
    """Old tcpwatch wrote ^ whenever the roles came from the port heuristic."""
    cv = Conv(cport=51000, sport=443)
    t = FlowTable()
    for r in [cv.c(0, 3000, 7000, plen=100), cv.s(1, 7000, 3100)]:
        t.feed(r)
    f = flow_summary(t.flows[0])
    assert f["roles_from"] == "well-known port"
    assert (f["state"], f["history"]) == ("OTH", "Da")


# ---- T: payload that does not advance the sender's highest sequence number --------------
def t_cases():
    cv = Conv()
    yield "syn_repeated", cv, [cv.c(0, 1000, 0, SYN), cv.c(1000, 1000, 0, SYN),
                               cv.c(3000, 1000, 0, SYN)], ("S0", "S")
    cv = Conv()
    yield "synack_repeated", cv, [cv.c(0, 1000, 0, SYN), cv.s(10, 5000, 1001, SYN | ACK),
                                  cv.s(1010, 5000, 1001, SYN | ACK),
                                  cv.c(1011, 1001, 5001)], ("S1", "ShA")
    cv = Conv()
    yield "fin_repeated", cv, hs(cv) + [cv.c(20, 1001, 5001, FIN | ACK),
                                        cv.c(300, 1001, 5001, FIN | ACK)], ("S2", "ShAF")
    cv = Conv()
    yield "data_resent", cv, hs(cv) + [cv.c(20, 1001, 5001, plen=100),
                                       cv.c(300, 1001, 5001, plen=100)], ("S1", "ShADT")
    cv = Conv()
    yield "keep_alive_byte", cv, hs(cv) + [cv.c(20, 1001, 5001, plen=100), cv.s(30, 5001, 1101),
                                           cv.c(9000, 1100, 5001, plen=1)], ("S1", "ShADaT")
    cv = Conv()  # Zeek does not tell reordering from a resend
    yield "reordered", cv, hs(cv) + [cv.c(20, 1101, 5001, plen=100),
                                     cv.c(21, 1001, 5001, plen=100)], ("S1", "ShADT")
    cv = Conv()  # a SYN with data: init_endpoint puts last_seq past it, so it "repeats"
    yield "syn_with_data", cv, [cv.c(0, 1000, 0, SYN, plen=10)], ("S0", "ST")


@pytest.mark.parametrize("name,cv,recs,expected", list(t_cases()),
                         ids=[c[0] for c in t_cases()])
def test_t_is_resent_payload_not_a_repeated_syn_or_fin(name, cv, recs, expected):
    """update_last_seq() -> TCP_Endpoint::DidRxmit; old tcpwatch wrote T for SYN, SYN-ACK
    and FIN repeats (Wireshark's retransmission flag)."""
    assert zeek(cv, recs) == expected


# ---- G: acknowledged content the capture never saw (TCP_Reassembler::Undelivered) -------
def g_cases():
    cv = Conv()  # 1101-1200 missing, sent again before the ACK covers it: no gap
    yield "hole_filled_in_time", cv, hs(cv) + [
        cv.c(20, 1001, 5001, plen=100), cv.c(21, 1201, 5001, plen=100), cv.s(30, 5001, 1101),
        cv.c(31, 1101, 5001, plen=100), cv.s(40, 5001, 1301)], ("S1", "ShADaT")
    cv = Conv()  # never seen, acknowledged: the client's content gap
    yield "hole_acked", cv, hs(cv) + [
        cv.c(20, 1001, 5001, plen=100), cv.c(21, 1201, 5001, plen=100), cv.s(30, 5001, 1101),
        cv.s(40, 5001, 1301)], ("S1", "ShADaG")
    cv = Conv()  # the snaplen kept 20 of 100 bytes: TCP_Endpoint::DataSent needs all of it
    yield "payload_cut", cv, hs(cv) + [
        cv.c(20, 1001, 5001, plen=100, payload=b"x" * 20), cv.s(30, 5001, 1101)], \
        ("S1", "ShADaG")
    cv = Conv()  # no handshake: TCP_Reassembler::Gap reports only established connections
    yield "partial", cv, [cv.c(0, 2001, 7001, plen=100), cv.c(1, 2201, 7001, plen=100),
                          cv.s(2, 7001, 2301)], ("OTH", "Da")
    cv = Conv()  # the FIN's sequence number is no content (AckReceived)
    yield "fin_acked", cv, hs(cv) + [cv.c(20, 1001, 5001, FIN | ACK), cv.s(30, 5001, 1002)], \
        ("S2", "ShAFa")


@pytest.mark.parametrize("name,cv,recs,expected", list(g_cases()),
                         ids=[c[0] for c in g_cases()])
def test_g_is_content_never_seen(name, cv, recs, expected):
    """Old tcpwatch wrote G for every hole ("previous segment not captured"), also one a
    later retransmission filled."""
    assert zeek(cv, recs) == expected


# ---- FIN and RST ------------------------------------------------------------------------
def exchange(cv: Conv) -> list:
    return hs(cv) + [cv.c(11, 1001, 5001, plen=100), cv.s(21, 5001, 1101, plen=300),
                     cv.c(22, 1101, 5301)]


def test_rst_after_both_fins_stays_sf():
    """UpdateClosedState: after a FIN exchange a RST changes no state."""
    for rst in ("c", "s"):
        cv = Conv()
        recs = exchange(cv) + [cv.c(30, 1101, 5301, FIN | ACK), cv.s(40, 5301, 1102, FIN | ACK),
                               cv.c(41, 1102, 5302)]
        recs.append(cv.c(50, 1102, 0, RST) if rst == "c" else cv.s(50, 5302, 0, RST))
        assert zeek(cv, recs) == ("SF", "ShADdFf" + ("R" if rst == "c" else "r"))


def test_fin_then_rst_then_peer_fin_is_sf():
    """UpdateEstablishedState: the peer's FIN after a FIN-then-RST turns that RST back into
    CLOSED (a normal termination; tls.pcap's IPv6 connection)."""
    cv = Conv()
    recs = exchange(cv) + [cv.c(30, 1101, 5301, FIN | ACK), cv.c(31, 1102, 0, RST)]
    assert zeek(cv, recs) == ("RSTO", "ShADdFR")
    recs.append(cv.s(40, 5301, 1102, FIN | ACK))
    assert zeek(cv, recs) == ("SF", "ShADdFRf")


def test_f_again_only_at_a_new_sequence_number():
    """update_history: F (and S, H, R) again when the sequence number differs."""
    cv = Conv()
    recs = hs(cv) + [cv.c(20, 1001, 5001, FIN | ACK), cv.c(30, 1001, 5001, FIN | ACK, plen=10)]
    assert zeek(cv, recs) == ("S2", "ShAFF")


# ---- conn_state() (scripts/base/protocols/conn/main.zeek) -------------------------------
def state_cases():
    cv = Conv()
    yield "lone_R", cv, [cv.c(0, 1000, 0, RST)], ("OTH", "R")
    cv = Conv()
    yield "lone_r", cv, [cv.s(0, 5000, 0, RST)], ("RSTRH", "^r")
    cv = Conv()
    yield "SR", cv, [cv.c(0, 1000, 0, SYN), cv.c(5, 1001, 0, RST)], ("RSTOS0", "SR")
    cv = Conv()  # the responder's bare ACK leaves it INACTIVE ("eccentric TCP's")
    yield "SaR", cv, [cv.c(0, 1000, 0, SYN), cv.s(1, 5000, 1001),
                      cv.c(5, 1001, 0, RST)], ("RSTOS0", "SaR")
    cv = Conv()  # ... so a bare ACK does not complete a handshake
    yield "Sa", cv, [cv.c(0, 1000, 0, SYN), cv.s(1, 5000, 1001)], ("S0", "Sa")
    cv = Conv()
    yield "SaA", cv, [cv.c(0, 1000, 0, SYN), cv.s(1, 5000, 1001), cv.c(2, 1001, 5000)], \
        ("S0", "SaA")
    cv = Conv()
    yield "ShR", cv, [cv.c(0, 1000, 0, SYN), cv.s(10, 5000, 1001, SYN | ACK),
                      cv.c(11, 1001, 0, RST)], ("RSTO", "ShR")
    cv = Conv()
    yield "Sr", cv, [cv.c(0, 1000, 0, SYN), cv.s(1, 0, 1001, RST | ACK, win=0)], ("REJ", "Sr")
    cv = Conv()  # both reset, neither sent a byte (TCP_Endpoint::Size 0)
    yield "SRr", cv, [cv.c(0, 1000, 0, SYN), cv.c(1, 1001, 0, RST), cv.s(2, 5000, 0, RST)], \
        ("REJ", "SRr")
    cv = Conv()
    yield "SH", cv, [cv.c(0, 1000, 0, SYN), cv.c(1, 1001, 0, FIN)], ("SH", "SF")
    cv = Conv()
    yield "SHR", cv, [cv.s(0, 5000, 1001, SYN | ACK), cv.s(1, 5001, 1001, FIN | ACK)], \
        ("SHR", "^hf")
    cv = Conv()
    yield "RSTRH", cv, [cv.s(0, 5000, 1001, SYN | ACK), cv.s(1, 5001, 0, RST)], \
        ("RSTRH", "^hr")
    cv = Conv()
    yield "S0", cv, [cv.c(0, 1000, 0, SYN)], ("S0", "S")
    cv = Conv()  # SYN+FIN: Q only (update_history); SYN_SENT then CLOSED in one packet
    yield "Q", cv, [cv.c(0, 1000, 0, SYN | FIN)], ("SH", "Q")
    cv = Conv()  # FIN+RST: I only; UpdateEstablishedState takes the RST, not the FIN
    yield "I", cv, hs(cv) + [cv.c(20, 1001, 5001, FIN | RST | ACK)], ("RSTO", "ShAI")


@pytest.mark.parametrize("name,cv,recs,expected", list(state_cases()),
                         ids=[c[0] for c in state_cases()])
def test_conn_state(name, cv, recs, expected):
    assert zeek(cv, recs) == expected


def test_sequence_numbers_wrapping_around():
    """get_relative_seq / UpdateLastSeq count wraps: data across 2**32 is neither resent nor
    a gap."""
    cv = Conv()
    isn = 0xFFFFFF80
    recs = cv.handshake(isn_c=isn, rtt_ms=10)
    for i in range(4):
        recs += [cv.c(20 + i, isn + 1 + 100 * i, 5001, plen=100),
                 cv.s(20.5 + i, 5001, isn + 101 + 100 * i)]
    assert zeek(cv, recs) == ("S1", "ShADa")


# ---- logarithmic repeats (Session::ScaledHistoryEntry) ----------------------------------
@pytest.mark.parametrize("resends,history", [(1, "ShADT"), (9, "ShADT"), (10, "ShADTT"),
                                             (99, "ShADTT"), (100, "ShADTTT")])
def test_t_repeats_at_10_and_100(resends, history):
    cv = Conv()
    recs = hs(cv) + [cv.c(20, 1001, 5001, plen=100)]
    recs += [cv.c(30 + i, 1001, 5001, plen=100) for i in range(resends)]
    assert zeek(cv, recs) == ("S1", history)


def test_w_and_g_repeat_at_10():
    cv = Conv()
    recs = hs(cv) + [cv.s(20 + i, 5001, 1001, win=0) for i in range(10)]
    assert zeek(cv, recs) == ("S1", "ShAaww")
    cv = Conv()
    recs = hs(cv)
    for i in range(10):  # 100 bytes seen, the next 100 never, both acknowledged
        recs += [cv.c(20 + i, 1001 + 200 * i, 5001, plen=100), cv.s(20.5 + i, 5001, 1201 + 200 * i)]
    assert zeek(cv, recs) == ("S1", "ShADaGG")


def test_w_not_after_the_peers_fin_nor_from_a_reset_side():
    """update_window: a zero window after the peer's FIN, in a RST or after one, is no W."""
    cv = Conv()
    recs = hs(cv) + [cv.c(20, 1001, 5001, FIN | ACK), cv.s(30, 5001, 1002, win=0)]
    assert zeek(cv, recs) == ("S2", "ShAFa")
    cv = Conv()
    recs = hs(cv) + [cv.s(20, 5001, 1001, RST, win=0), cv.s(30, 5001, 1001, win=0)]
    assert zeek(cv, recs) == ("RSTR", "ShAra")


# ---- RST validity: Zeek's states take any RST, tcpwatch's `closed` does not --------------
def test_injected_rst_acking_the_isn_does_not_end_the_connection():
    """Transcribed from Zeek's Traces/tcp/rst-inject-rae.pcap: a RST acking the ISN (not
    ISN + 1) answers the SYN, then the real SYN-ACK comes. Zeek's baseline
    (core.tcp.rst-after-syn): originator SYN_SENT with 175 bytes, responder RESET with 0,
    so conn_state() says REJ; the history is worked out from update_history (the later
    RSTs repeat the first one's relative sequence number: no second r). For tcpwatch the
    connection ends only at frame 7, a RST in the window (RFC 9293 3.10.7.3: in SYN-SENT a
    RST counts only if it acknowledges the SYN)."""
    cv = Conv(cport=2527, sport=6649)
    recs = [cv.c(0, 1569339004, 0, SYN, win=16384),
            cv.s(233, 0, 1569339004, RST | ACK, win=16384),
            cv.s(1266, 1616457233, 1569339005, SYN | ACK, win=65535),
            cv.c(1267, 1569339005, 1616457234, win=17232),
            cv.c(1268, 1569339005, 1616457234, ACK | PSH, win=17232, plen=25),
            cv.s(2851, 1616457234, 1569339030, win=64134)]
    life = replay(cv, recs)
    assert (life.orig.state, life.resp.state) == (SYN_SENT, RESET)
    assert not life.closed  # the injected RST did not end it
    recs += [cv.s(2853, 1616457234, 1569339030, ACK | RST, win=0),
             cv.c(2855, 1569339030, 1616457234, ACK | PSH, win=17232, plen=150),
             cv.s(4133, 1616457234, 1616457234, RST, win=0)]
    life = replay(cv, recs)
    assert (life.orig.state, life._size(life.orig)) == (SYN_SENT, 175)
    assert (life.resp.state, life._size(life.resp)) == (RESET, 0)
    assert (life.conn_state(), "".join(life.history)) == ("REJ", "SrhADa")
    assert life.closed and life.rst_ts == recs[6].ts


def test_injected_rst_does_not_split_the_flow():
    """Zeek's rst-inject-rae: a RST injected into the handshake (acking the ISN, not ISN+1)
    neither ends the connection nor makes the real SYN-ACK a new one (Zeek's IsReuse)."""
    cv = Conv(cport=2527, sport=6649)
    t = FlowTable()
    for r in [cv.c(0, 1569339004, 0, SYN), cv.s(233, 0, 1569339004, RST | ACK),
              cv.s(1266, 1616457233, 1569339005, SYN | ACK), cv.c(1267, 1569339005, 1616457234)]:
        t.feed(r)
    assert len(t.flows) == 1


def test_rst_out_of_the_window_is_no_close():
    """RFC 9293 3.10.7.4 / RFC 5961 3.2: a RST outside the receiver's window is dropped.
    Zeek's states take it (RSTR); the connection goes on and is not closed."""
    cv = Conv()
    recs = exchange(cv) + [cv.s(30, 5301 + 100_000, 0, RST)]
    life = replay(cv, recs)
    assert life.conn_state() == "RSTR" and not life.closed
    recs.append(cv.s(31, 5301, 1101, RST))  # at the server's snd_nxt: it ends
    assert replay(cv, recs).closed


def test_abort_with_data_in_flight_closes():
    """A RST at the sender's own next sequence number ends the connection even when the
    receiver's acknowledgments lag a window behind (206_example_b.pcap's first connection:
    the server resets after its data, while the client still misses part of it)."""
    cv = Conv()
    recs = hs(cv) + [cv.c(20, 1001, 5001, plen=100), cv.s(30, 5001, 1101, plen=1000),
                     cv.s(31, 6001, 1101, plen=1000), cv.s(32, 7001, 1101, plen=1000),
                     cv.s(40, 8001, 1101, RST)]
    assert replay(cv, recs).closed


def test_closed_needs_both_fins():
    cv = Conv()
    recs = exchange(cv) + [cv.c(30, 1101, 5301, FIN | ACK)]
    assert not replay(cv, recs).closed
    recs.append(cv.s(40, 5301, 1102, FIN | ACK))
    assert replay(cv, recs).closed


# ---- transcribed from Zeek's traces, with Zeek's baselines ------------------------------
def test_fin_retransmit_trace():
    """Traces/tcp/fin_retransmission.pcap; Baseline core.tcp.fin-retransmit: originator
    CLOSED (5), responder RESET (6), both of size 0."""
    cv = Conv(cport=55344, sport=443)
    life = replay(cv, [cv.c(0, 2187051757, 0, SYN, win=65535),
                       cv.c(290, 2187051757, 0, FIN, win=65535),
                       cv.s(305, 1539553752, 2187051758, SYN | ACK, win=8190),
                       cv.c(307, 2187051757, 1539553753, FIN | ACK, win=16384),
                       cv.s(610, 1539553753, 2397663729, RST, win=8201)])
    assert (life.orig.state, life._size(life.orig)) == (CLOSED, 0)
    assert (life.resp.state, life._size(life.resp)) == (RESET, 0)
    assert life.conn_state() == "RSTR"


def test_miss_end_data_trace():
    """Traces/tcp/miss_end_data.pcap; Baseline core.tcp.miss-end-data/conn.log: SF,
    ShADafgF (the server's 2902 bytes were never captured; its FIN's ACK reveals them)."""
    cv = Conv(cport=60648, sport=80)
    recs = [cv.c(0, 3810936567, 0, SYN, win=8192),
            cv.s(5.5, 1268090424, 3810936568, SYN | ACK, win=5840),
            cv.c(5.7, 3810936568, 1268090425, win=16425),
            cv.c(7.2, 3810936568, 1268090425, ACK | PSH, win=16425, plen=538),
            cv.s(12.3, 1268090425, 3810937106, win=14),
            cv.s(10047.9, 1268093327, 3810937106, ACK | FIN, win=14),
            cv.c(10048.1, 3810937106, 1268093328, win=16425),
            cv.c(10048.4, 3810937106, 1268093328, ACK | FIN, win=16425),
            cv.s(10053.3, 1268093328, 3810937107, win=14)]
    life = replay(cv, recs)
    assert (life.conn_state(), "".join(life.history)) == ("SF", "ShADafgF")
    assert (life.orig.state, life.resp.state) == (CLOSED, CLOSED)
    assert (life._size(life.orig), life._size(life.resp)) == (538, 2902)  # orig/resp_bytes


# ---- named differences --------------------------------------------------------------------
def test_synack_alone_roles_differ():
    """Difference 1: a SYN-ACK with nothing after it. Zeek keeps its sender as originator
    (no flip: stealth scans; Baseline scripts.base.frameworks.logging.field-extension
    conn.log: OTH, H); tcpwatch makes it the server: OTH, ^h."""
    cv = Conv()
    t = FlowTable()
    t.feed(cv.s(0, 5000, 1001, SYN | ACK))
    f = flow_summary(t.flows[0])
    assert f["roles_from"] == "syn-ack" and (f["state"], f["history"]) == ("OTH", "^h")


def test_timers_do_not_split():
    """Difference 2. SYNs 6 s apart: Zeek's attempt timer (5 s) logs two connections, S0 and
    S; a SYN again after a REJ: Zeek (IsReuse after a close) logs two REJ "Sr"
    (nowebaccess2.pcapng: three). tcpwatch: one connection each."""
    cv = Conv()
    t = FlowTable()
    for r in [cv.c(0, 1000, 0, SYN), cv.c(6000, 1000, 0, SYN)]:
        t.feed(r)
    assert len(t.flows) == 1 and flow_summary(t.flows[0])["history"] == "S"
    cv = Conv()
    t = FlowTable()
    for r in [cv.c(0, 1000, 0, SYN), cv.s(1, 0, 1001, RST | ACK, win=0),
              cv.c(500, 1000, 0, SYN), cv.s(501, 0, 1001, RST | ACK, win=0)]:
        t.feed(r)
    f = flow_summary(t.flows[0])
    assert len(t.flows) == 1 and (f["state"], f["history"]) == ("REJ", "Sr")


# ---- golden: the shared captures Zeek's own tests read ----------------------------------
def flows_of(name: str) -> list[dict]:
    t = FlowTable()
    for b in iter_file_batches(str(SHARED / name), CaptureStats()):
        t.feed_all(b)
    return [flow_summary(f) for f in t.flows.values()]


def ends(f: dict) -> tuple[str, int, str, int]:
    c, s = f["client"], f["server"]
    return c["addr"], c["port"], s["addr"], s["port"]


@NEED_SHARED
def test_ssh_dups_history_is_zeeks():
    """Baseline core.tcp.tcp-dups (zeek -b -C): history ShADTadtTtFf; the originator's 10th
    retransmission came at ShADTadtT, the responder's at ShADTadtTt. Both sides closed: SF
    (conn_state() on CLOSED, CLOSED)."""
    (f,) = flows_of("ssh-dups.pcap")
    assert ends(f) == ("192.168.0.102", 53206, "192.168.0.112", 22)
    assert (f["state"], f["history"]) == ("SF", "ShADTadtTtFf")


@NEED_SHARED
@pytest.mark.parametrize("name,conns", [
    ("pipelined-requests.pcap", [("192.168.1.104", 1673, "63.245.209.11", 80)]),
    ("206_example_b.pcap", [("192.168.72.14", 3254, "65.54.95.206", 80),
                            ("192.168.72.14", 3257, "65.54.95.14", 80)]),
    ("1000-requests-one-dropped-response.pcap", [("::1", 44730, "::1", 80)]),
    ("truncated-header.pcap", [("201.186.157.67", 60827, "128.3.26.249", 25)]),
])
def test_connections_and_originators_are_zeeks(name, conns):
    """The connection ids Zeek's baselines print for these traces (bifs.disable_analyzer*,
    file-analysis.http.partial-content b.out, http-pending-state-growth weird.log,
    core.tcp.truncated-header after the flip)."""
    assert [ends(f) for f in flows_of(name)] == conns


@NEED_SHARED
def test_echo_connections_count_is_zeeks():
    """Baseline telemetry.conn-duration-histogram: Zeek logs 500 connections (each 1 s to
    10 s long): no timer split them. Each closes with both FINs: SF."""
    flows = flows_of("echo-connections.pcap")
    assert len(flows) == 500
    assert all(f["state"] == "SF" for f in flows)


@NEED_SHARED
def test_truncated_header_differs_by_its_first_frame():
    """Difference 3. Frame 1, the SYN, has its TCP options cut by the snaplen: Zeek skips it
    (Baseline core.tcp.truncated-header: its first event is the SYN-ACK, from the originator
    until the client's ACK flips the roles), so its history begins ^h; tcpwatch reads the
    SYN's fixed header. Payload is absent from every data frame (caplen 54): for Zeek unseen,
    for tcpwatch (nothing kept at all) taken as seen, so no G."""
    (f,) = flows_of("truncated-header.pcap")
    assert f["roles_from"] == "syn" and (f["state"], f["history"]) == ("SF", "ShAdDafF")
