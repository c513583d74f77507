"""The network lab: real kernel TCP between two namespaces over a link whose delay and loss the
test sets (tests/lab/link.py), captured with dumpcap, analysed by tcpwatch, compared with the
truth: what the link logged doing. Runs as root; every namespace and process is torn down.
First, the link's own rules and truth on hand-built packets (no root needed)."""

from __future__ import annotations

import json
import os
import struct
import textwrap

import pytest
from lab import link, scenarios
from lab.netlab import SERVER_IP, Lab, can_run, leftovers
from lab.truth import (
    exchanges,
    handshake_rtt,
    request_spreads,
    round_trips,
    visible,
    zero_window_probes,
)

from tcpwatch.analysis.diagnosis import diagnose_capture, diagnose_flow
from tcpwatch.analysis.exchange import breakdown
from tcpwatch.analysis.summary import flow_summary
from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.fast import iter_file
from tcpwatch.capture.record import CaptureStats

LAB = pytest.mark.skipif(can_run() is not None, reason=str(can_run()))
pytestmark = [pytest.mark.timeout(180)]

RTT = 0.040  # the link's configured round trip: 20 ms each way
CLOCK_SLACK = 0.002  # capture vs link timestamps of the same packet (a TUN device apart)
PORT = 8080

SERVER = textwrap.dedent("""
    import socket, sys, threading, time
    think = float(sys.argv[1])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 8080))
    srv.listen(64)
    def serve(c):
        buf = b""
        while True:
            d = c.recv(65536)
            if not d:
                return c.close()
            buf += d
            while b"\\r\\n\\r\\n" in buf:
                head, buf = buf.split(b"\\r\\n\\r\\n", 1)
                path = head.split(b" ")[1]
                if path == b"/think":
                    time.sleep(think)
                size = int(path.split(b"/")[-1]) if path.startswith(b"/bulk/") else 500
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % size
                          + b"x" * size)
    print("listening", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
""")

CLIENT = textwrap.dedent("""
    import json, socket, sys, time
    mode, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = {}
    def get(s, path, split=False):
        req = b"GET " + path.encode() + b" HTTP/1.1\\r\\nHost: lab\\r\\n\\r\\n"
        if split:  # write-write-read: two small writes, then wait for the answer
            s.sendall(req[:20]); s.sendall(req[20:])
        else:
            s.sendall(req)
        head = b""
        while b"\\r\\n\\r\\n" not in head:
            head += s.recv(65536)
        h, body = head.split(b"\\r\\n\\r\\n", 1)
        size = int(h.split(b"Content-Length: ")[1].split(b"\\r\\n")[0])
        while len(body) < size:
            if mode == "slowread" and "pause" not in out and len(body) > 0:
                out["pause"] = float(sys.argv[4])
                time.sleep(out["pause"])
            body += s.recv(65536)
    def conn():
        s = socket.socket()
        if mode == "slowread":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        if mode == "nodelay":
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect(("%s", 8080))
        return s
    def close(s):  # until the server's FIN: the capture then holds the whole connection
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        s.close()
    if mode == "refused":
        try:
            socket.create_connection(("%s", 8081), timeout=5)
        except ConnectionRefusedError:
            out["refused"] = True
    elif mode == "churn":
        for i in range(n):
            s = conn(); get(s, path); close(s); time.sleep(0.05)
    else:
        s = conn()
        for i in range(n):
            get(s, path, split=mode in ("nagle", "nodelay")); time.sleep(0.05)
        close(s)
    print(json.dumps(out))
""") % (SERVER_IP, SERVER_IP)


def analyse(lab: Lab) -> list:
    t = FlowTable()
    for r in iter_file(str(lab.pcap), CaptureStats()):
        t.feed(r)
    return list(t.flows.values())


def run(tmp_path, mode: str, n: int = 1, path: str = "/", think: float = 0.0,
        extra: tuple = (), **link) -> tuple[list, dict, Lab]:
    with Lab(tmp_path, **link) as lab:
        srv = lab.start("server", SERVER, str(think))
        assert srv.stdout.readline().strip() == "listening"
        out = json.loads(lab.run("client", CLIENT, mode, str(n), path, *extra).strip())
        lab.finish()
    return analyse(lab), out, lab


# ---- the link's rules and truth, on hand-built packets ---------------------------------------
A, B = "10.77.0.1", "10.77.0.2"
ISN_A, ISN_B = 1000, 5000


def segment(d: str, seq: int, size: int = 0, flags: int = link.TH_ACK, ack: int = 0) -> bytes:
    """An IPv4/TCP packet of the lab's one connection (A:40000 <-> B:8080), relative
    sequence numbers, with a timestamp option."""
    src, dst, sport, dport, isn = ((A, B, 40000, 8080, ISN_A) if d == "ab" else
                                   (B, A, 8080, 40000, ISN_B))
    opts = bytes([link.OPT_NOP, link.OPT_NOP, link.OPT_TIMESTAMP, 10]) + struct.pack("!II", 7, 0)
    tcp = struct.pack("!HHIIHHHH", sport, dport, (isn + seq) % link.SEQ_MOD, ack,
                      ((20 + len(opts)) // 4) << 12 | flags, 65535, 0, 0) + opts
    total = 20 + len(tcp) + size
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 6, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return ip + tcp + b"x" * size


class Wire:
    """A Link whose two sides are pipes, driven on a made-up clock (seconds)."""

    def __init__(self, *argv: str) -> None:
        self.link = link.Link(link.parser().parse_args(["a", "b", "--stats", "-", *argv]))
        self.pipes = [os.pipe(), os.pipe()]
        self.fa, self.fb = self.pipes[0][1], self.pipes[1][1]
        for d in ("ab", "ba"):
            self.send(0.0, d, 0, flags=link.TH_SYN)

    def run_until(self, t: float) -> None:
        """What the link's loop does: each packet written when it is due."""
        q = self.link.queue
        while q and q[0][0] <= t:
            self.link.deliver(q[0][0], self.fb)

    def send(self, t: float, d: str, seq: int, size: int = 0, flags: int = link.TH_ACK) -> None:
        self.run_until(t)
        self.link.receive(segment(d, seq, size, flags), d, self.fb if d == "ab" else self.fa, t)

    def result(self, t: float = 100.0) -> dict:
        self.run_until(t)
        for r, w in self.pipes:
            os.close(r)
            os.close(w)
        return self.link.result()

    @staticmethod
    def data(log: dict, d: str = "ba") -> list[dict]:
        return [p for p in log["packets"] if p["dir"] == d and p["len"]]


def test_link_drops_a_tail_and_its_probe_then_delivers_the_rto_copy():
    w = Wire("--delay-ms", "20", "--drop-ba", "byte:3000+1")
    for i in range(3):  # bytes 1..3000: the third segment carries byte 3000
        w.send(0.001 * i, "ba", 1 + 1000 * i, 1000)
    w.send(0.1, "ba", 2001, 1000)  # the tail loss probe: dropped too
    w.send(0.35, "ba", 2001, 1000)  # the RTO copy: delivered
    log = w.result()
    fates = [(p["rseq"], p["fate"], p["resend"], p["spurious"]) for p in Wire.data(log)]
    assert fates == [(1, "forwarded", False, False), (1001, "forwarded", False, False),
                     (2001, "dropped", False, False), (2001, "dropped", True, False),
                     (2001, "forwarded", True, False)]
    assert [p["silence"] for p in Wire.data(log)][3:] == [pytest.approx(0.098),
                                                         pytest.approx(0.25)]
    assert log["totals"]["ba"]["resends"] == 2 and log["totals"]["ba"]["spurious"] == 0
    # at the sender both resends are seen; at the receiver the RTO copy looks new
    assert visible(log, "server")[40000]["s2c"]["retransmissions"] == 2
    assert visible(log, "client")[40000]["s2c"]["retransmissions"] == 0


def test_link_hold_reorders_and_a_late_original_makes_its_resend_spurious():
    w = Wire("--delay-ms", "10", "--hold-ba", "seg:2@30")
    for i in range(4):
        w.send(0.001 * i, "ba", 1 + 100 * i, 100)
    w.send(0.02, "ba", 101, 100)  # a fast retransmit, delivered before the held original
    log = w.result()
    data = Wire.data(log)
    held = data[1]
    assert held["fate"] == "held" and held["held_ms"] == 30 and held["late"]
    assert held["out"] > data[4]["out"]  # the resend got there first...
    assert data[4]["resend"] and data[4]["spurious"]  # ...but the original arrived too
    assert log["totals"]["ba"]["late"] == 1
    v = visible(log, "client")[40000]["s2c"]
    assert v["out_of_order"] == 1 and v["retransmissions"] == 1 and v["spurious"] == 1


def test_link_freeze_holds_a_direction_from_the_trigger_and_keeps_its_order():
    w = Wire("--delay-ms", "10", "--freeze-ab", "byte:101@50")
    w.send(0.000, "ba", 1, 100)
    w.send(0.001, "ba", 101, 100)  # forwarded at 0.011: the freeze of A's packets starts
    w.send(0.005, "ab", 1, 0)  # before it: passes
    w.send(0.020, "ab", 1, 0)  # inside: held until 0.061, then the delay
    w.send(0.030, "ab", 1, 0)
    w.send(0.070, "ab", 1, 0)  # after: passes
    log = w.result()
    acks = [p for p in log["packets"] if p["dir"] == "ab" and "S" not in p["flags"]]
    assert [p["fate"] for p in acks] == ["forwarded", "held", "held", "forwarded"]
    outs = [p["out"] - log["packets"][0]["t"] for p in acks]
    assert outs == sorted(outs)
    assert outs[1] == pytest.approx(0.071, abs=1e-5) == outs[2]


def test_link_every_nth_and_syn_drops_still_work():
    w = Wire("--loss-ab", "2", "--syn-drop", "1")
    for i in range(4):
        w.send(0.01 * i, "ab", 1 + 10 * i, 10, flags=link.TH_ACK | link.TH_PSH)
    log = w.result()
    assert log["dropped_syn"] == 1 and log["dropped_ab"] == 2 and log["data_ab"] == 4
    assert log["dropped_frames_ab"] == [ISN_A + 11, ISN_A + 31]


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    assert leftovers() == [], "the lab left namespaces or devices behind"


def kinds(flows) -> set:
    return {f.kind for fl in flows for f in diagnose_flow(fl)} | {
        f.kind for f in diagnose_capture(flows)}


@LAB
def test_clean_run_rtt_matches_the_link_and_nothing_is_diagnosed(tmp_path):
    """The RTTs are compared with the round trips the link actually gave (its log), not only
    with the delay configured: a userspace link on a busy machine stretches some by a few ms."""
    flows, _, lab = run(tmp_path, "keepalive", n=5)
    assert len(flows) == 1
    fl = flows[0]
    assert fl.client[1] != PORT and fl.server[1] == PORT
    irtt = fl.handshake.irtt_ns / 1e9
    srtt = flow_summary(fl)["c2s"]["rtt"]["srtt"]  # client -> server data, ACKed by the server
    link_irtt = handshake_rtt(lab.stats, fl.client[1])
    link_rtts = round_trips(lab.stats, fl.client[1], "c2s")
    print(f"\nLAB clean: RTT {RTT * 1e3:.1f} ms configured, the link gave handshake "
          f"{link_irtt * 1e3:.2f} ms and data {[round(x * 1e3, 2) for x in link_rtts]} ms; "
          f"handshake RTT {irtt * 1e3:.2f} ms, SRTT {srtt * 1e3:.2f} ms; findings "
          f"{sorted(kinds(flows))}")
    assert RTT <= link_irtt and len(link_rtts) == 5
    assert abs(irtt - link_irtt) <= CLOCK_SLACK, (irtt, link_irtt)
    assert min(link_rtts) - CLOCK_SLACK <= srtt <= max(link_rtts) + CLOCK_SLACK, srtt
    assert abs(srtt - RTT) <= 0.25 * RTT, srtt
    assert len(fl.exchanges.items) == 5
    assert kinds(flows) == set(), [f.as_dict() for f in diagnose_flow(fl)]
    assert lab.stats["dropped_ab"] == lab.stats["dropped_ba"] == 0


@LAB
def test_server_think_time(tmp_path):
    """Think and network time per exchange against what the link timed: the server's own
    time (request delivered -> response handed to the link) and the link's delays."""
    flows, _, lab = run(tmp_path, "keepalive", n=3, path="/think", think=0.3)
    fl = flows[0]
    truth = exchanges(lab.stats, fl.client[1])
    found = [f for f in diagnose_flow(fl) if f.kind == "server_think"]
    parts = [breakdown(x, fl, fl.exchanges) for x in fl.exchanges.items]
    print(f"\nLAB think: 300 ms injected, the link timed think "
          f"{[round(t['think'] * 1e3, 2) for t in truth]} ms and network "
          f"{[round(t['network'] * 1e3, 2) for t in truth]} ms; tcpwatch think "
          f"{[round(b['think'] * 1e3, 2) for b in parts]} ms, network "
          f"{[round(b['network'] * 1e3, 2) for b in parts]} ms; server_think lost "
          f"{[round(f.lost * 1e3, 1) for f in found]} ms")
    assert len(parts) == len(truth) == 3
    for b, t in zip(parts, truth):
        assert t["think"] >= 0.3 and t["network"] >= RTT  # the lab did at least that
        # the wait itself is measured; its split is estimated from the connection's RTT,
        # while the link's delay varies by a few ms from one packet to the next
        wait, link_wait = b["think"] + b["network"], t["think"] + t["network"]
        assert abs(wait - link_wait) <= CLOCK_SLACK, (b, t)
        assert abs(b["network"] - t["network"]) <= 0.125 * RTT, (b, t)
    # each finding's time lost is its exchange's think time, as the link timed it (on a busy
    # machine the server itself may take longer than the 300 ms it sleeps)
    assert len(found) == 3
    for f, t in zip(sorted(found, key=lambda f: f.exchange), truth):
        assert abs(f.lost - t["think"]) <= 0.03 * t["think"], (f.lost, t)


@LAB
def test_receiver_that_stops_reading(tmp_path):
    flows, out, lab = run(tmp_path, "slowread", path="/bulk/400000", extra=("1.5",))
    zw = [f for f in diagnose_flow(flows[0]) if f.kind == "zero_window"]
    assert zw, kinds(flows)
    probes = zero_window_probes(lab.stats, flows[0].client[1], "s2c")
    counted = flow_summary(flows[0])["s2c"]["window"]["zero_window_probes"]
    print(f"\nLAB zero window: reader paused {out['pause']:.2f} s, the link carried {probes} "
          f"zero-window probes; zero_window lost {zw[0].lost:.3f} s, probes {counted}")
    # truth: the reader paused 1.5 s; the window closes once its small buffer is full. The
    # sender probes at RTO backoff, ~0.45 s and ~1 s into the stall; the window reopens at
    # ~1.6 s, well clear of the third probe (~2.1 s), so the count is not a race
    assert 0.9 * out["pause"] <= zw[0].lost <= 1.1 * out["pause"], zw[0].lost
    assert probes >= 1 and counted == probes


@LAB
def test_closed_port_is_refused(tmp_path):
    flows, out, _ = run(tmp_path, "refused")
    assert out["refused"]
    print(f"\nLAB refused: findings {[f.kind for f in diagnose_flow(flows[0])]}")
    assert [f.kind for f in diagnose_flow(flows[0])] == ["connection_refused"]
    assert flows[0].life.conn_state() == "REJ"


@LAB
def test_dropped_syn_costs_the_initial_rto(tmp_path):
    flows, _, lab = run(tmp_path, "keepalive", syn_drop=1)
    assert lab.stats["dropped_syn"] == 1
    found = [f for f in diagnose_flow(flows[0]) if f.kind == "syn_retransmitted"]
    print(f"\nLAB SYN drop: 1 SYN dropped (initial RTO 1 s); syn_retransmitted lost "
          f"{found[0].lost:.3f} s" if found else "")
    assert found and abs(found[0].lost - 1.0) <= 0.1, found  # Linux's initial RTO: 1 s


@LAB
def test_bulk_transfer_with_loss_counts_every_drop(tmp_path):
    """Every segment the link dropped is found resent, and every resend is counted once, as
    the link logged it (captured at the sender, which sees every copy). Named case OOO_RESEND:
    a resend sent within the iRTT of the highest segment, before the receiver reported the
    hole, is "out-of-order" for tshark; the link's log says it is a resend, and tcpwatch,
    reading it from first principles, counts it as one."""
    # capture on the sending side (the server), so every segment the link dropped was seen
    flows, _, lab = run(tmp_path, "keepalive", path="/bulk/3000000", loss_ba=150,
                        capture_in="server")
    drops = lab.stats["dropped_ba"]
    assert drops >= 5
    # the truth: every dropped original's first byte was sent again
    sent = [p for p in lab.stats["packets"] if p["dir"] == "ba" and p["len"]]
    lost = [p for p in sent if p["fate"] == "dropped" and not p["resend"]]
    assert all(any(r["resend"] and r["i"] > p["i"] and r["rseq"] <= p["rseq"] < r["rseq"]
                   + r["len"] for r in sent) for p in lost)
    (v,) = visible(lab.stats, "server").values()
    fl = flows[0]
    s = flow_summary(fl)
    r = s["s2c"]["retransmissions"]
    tshark = scenarios.tshark_counts(lab.pcap)
    print(f"\nLAB loss: link dropped {drops} of {lab.stats['data_ba']} data segments; truth "
          f"{v['s2c']['retransmissions']} resends ({v['s2c']['spurious']} spurious); tshark "
          f"{tshark}; tcpwatch {r['total']} (rto {r['rto']} tlp {r['tlp']} fast {r['fast']}; "
          f"lost {r['lost']} spurious {r['spurious']} unconfirmed {r['unconfirmed']}); "
          f"findings {sorted(kinds(flows))}")
    assert r["total"] == r["rto"] + r["tlp"] + r["fast"] == r["lost"] + r["spurious"] + \
        r["unconfirmed"], r
    assert r["total"] == v["s2c"]["retransmissions"], (r, v["s2c"]["resends"])
    assert r["spurious"] == v["s2c"]["spurious"], (r, v["s2c"]["resends"])
    assert s["s2c"]["out_of_order"] == 0  # the sender's own stream: nothing reordered here
    assert {"fast_retransmit"} <= kinds(flows) or {"rto_stall"} <= kinds(flows)


@LAB
def test_churn_against_keep_alive(tmp_path):
    flows, _, _ = run(tmp_path, "churn", n=10)
    assert len(flows) == 10
    churn = [f for f in diagnose_capture(flows) if f.kind == "connection_churn"]
    assert len(churn) == 1
    truth = 9 * RTT  # every connection after the first paid one handshake round trip
    print(f"\nLAB churn: 10 connections, truth {truth * 1e3:.0f} ms of extra handshakes; "
          f"connection_churn lost {churn[0].lost * 1e3:.1f} ms" if churn else "")
    assert abs(churn[0].lost - truth) <= 0.1 * truth, churn[0].lost
    tmp2 = tmp_path / "ka"
    tmp2.mkdir()
    flows, _, _ = run(tmp2, "keepalive", n=10)
    assert len(flows) == 1 and "connection_churn" not in kinds(flows)


@LAB
def test_nagle_meets_delayed_ack(tmp_path):
    """Truth from the link: how long each request's second write waited behind its first
    (Nagle holding it for the server's delayed ACK), less the same with TCP_NODELAY."""
    flows, _, lab = run(tmp_path, "nagle", n=8)
    found = [f for f in diagnose_flow(flows[0]) if f.kind == "nagle_delayed_ack"]
    assert found, kinds(flows)
    tmp2 = tmp_path / "nodelay"
    tmp2.mkdir()
    flows2, _, lab2 = run(tmp2, "nodelay", n=8)
    assert "nagle_delayed_ack" not in kinds(flows2)
    held = request_spreads(lab.stats, flows[0].client[1])
    cost = sum(held) - sum(request_spreads(lab2.stats, flows2[0].client[1]))

    def total(fls):  # tcpwatch's own request latencies, for the record
        fl = fls[0]
        return sum(breakdown(x, fl, fl.exchanges)["total"] for x in fl.exchanges.items)
    print(f"\nLAB nagle: the link saw each request's second write wait "
          f"{[round(x * 1e3, 1) for x in held]} ms: {cost * 1e3:.1f} ms more than with "
          f"TCP_NODELAY over 8 requests (tcpwatch's latencies differ by "
          f"{(total(flows) - total(flows2)) * 1e3:.1f} ms); nagle_delayed_ack "
          f"{found[0].side} lost {found[0].lost * 1e3:.1f} ms")
    assert len(held) == 8 and cost > 8 * RTT
    assert found[0].side == "client"
    # issue 13: within 20% of what the clients measured. The first request's wait is Nagle
    # alone (the server's first ACK is quick), one round trip: not a delayed ACK's doing
    assert abs(found[0].lost - cost) <= 0.2 * cost, (found[0].lost, cost)
