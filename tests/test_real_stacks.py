"""Real backends, real kernel TCP, and the truth from what the link did (tests/lab/scenarios.py):
tcpwatch's retransmission classification, reordering, Nagle and think-time findings checked
against it. Each scenario runs once per session (about 30 s for all), as root; every namespace,
device and process is torn down. Each test prints one line "LAB <scenario>: truth ...;
tcpwatch ..." (README's table of real stacks is built from these lines)."""

from __future__ import annotations

import shutil

import pytest
from lab import scenarios
from lab.netlab import can_run, leftovers
from lab.truth import path_rtts

from tcpwatch.analysis.diagnosis import diagnose_capture
from tcpwatch.analysis.summary import flow_summary
from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.fast import iter_file
from tcpwatch.capture.record import CaptureStats


def _missing() -> str | None:
    why = can_run()
    if why:
        return why
    for tool in ("nginx", "redis-server", "redis-benchmark", "curl", "wrk", "ss"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (bash .ci/setup installs it)"
    return None


pytestmark = [pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
              pytest.mark.timeout(180)]

# findings that claim data was lost (RFC 8985 TLP repairs, RTOs, fast retransmits, loss rate)
LOSS_KINDS = {"rto_stall", "tail_loss_probe", "fast_retransmit", "high_retransmission_rate"}
NAGLE_TOLERANCE = 0.20  # nagle_delayed_ack's time lost vs the cost the client measured
CLOCK_SLACK = 0.005  # capture vs link timestamps of the same packets (userspace link)
SERVER_THINK_MIN = 0.100  # README: server_think needs >= 100 ms (and half the exchange)


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    assert leftovers() == [], "the lab left namespaces or devices behind"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """run(scenario) -> {run name: Run}, each scenario made once for the module."""
    made: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in made:
            tmp = tmp_path_factory.mktemp(name)
            made[name] = {r.name: r for r in scenarios.run(name, tmp)}
        return made[name]
    return get


class Analysed:
    """tcpwatch on one capture: every flow's summary, the capture-wide findings."""

    def __init__(self, pcap) -> None:
        table = FlowTable()
        for r in iter_file(str(pcap), CaptureStats()):
            table.feed(r)
        self.flows = list(table.flows.values())
        self.summaries = [flow_summary(fl) for fl in self.flows]
        self.capture_findings = [f.as_dict() for f in diagnose_capture(self.flows)]

    def flow(self, client_port: int) -> dict:
        found = [s for s in self.summaries if s["client"]["port"] == client_port]
        assert len(found) == 1, [s["client"] for s in self.summaries]
        return found[0]

    def findings(self) -> list[dict]:
        return [f for s in self.summaries for f in s["diagnosis"]] + self.capture_findings

    def kinds(self) -> list[str]:
        return sorted({f["kind"] for f in self.findings()})


def retx_text(r: dict) -> str:
    return (f"resent {r['total']} (rto {r['rto']} tlp {r['tlp']} fast {r['fast']}; lost "
            f"{r['lost']} spurious {r['spurious']} [dsack {r['spurious_dsack']} eifel "
            f"{r['spurious_eifel']} acked {r['spurious_acked']}] unconfirmed "
            f"{r['unconfirmed']})")


def check_retransmissions(name: str, summary: dict, visible: dict) -> None:
    """Done-when: per direction, resends and spurious resends as the link logged them (as
    visible at the capture point); out-of-order originals as the link reordered them; the
    two ways of splitting the resends each add up."""
    for d in ("c2s", "s2c"):
        r, v = summary[d]["retransmissions"], visible[d]
        assert r["total"] == r["rto"] + r["tlp"] + r["fast"], (name, d, r)
        assert r["total"] == r["lost"] + r["spurious"] + r["unconfirmed"], (name, d, r)
        assert r["total"] == v["retransmissions"], (name, d, r, v["resends"])
        assert r["spurious"] == v["spurious"], (name, d, r, v["resends"])
        assert summary[d]["out_of_order"] == v["out_of_order"], (name, d, v["late"])


def lab_line(name: str, truth: dict, summary: dict, a: Analysed, tshark: dict | None,
             extra: str = "") -> None:
    v = truth["visible"]
    t = "; ".join(f"{d} resent {v[d]['retransmissions']} spurious {v[d]['spurious']} late "
                  f"{v[d]['out_of_order']}" for d in ("c2s", "s2c"))
    w = "; ".join(f"{d} {retx_text(summary[d]['retransmissions'])} out_of_order "
                  f"{summary[d]['out_of_order']} ambiguous {summary[d]['ambiguous']}"
                  for d in ("c2s", "s2c"))
    srtt = "none" if summary["srtt"] is None else f"{summary['srtt'] * 1e3:.2f} ms"
    print(f"\nLAB {name}: truth ({truth['capture']} side) {t}{extra}; tshark {tshark}; "
          f"tcpwatch {w}; SRTT {srtt}; findings "
          f"{[(f['kind'], round(f['lost'], 3)) for f in a.findings()]}")


def lab_scenario(run, name: str) -> tuple[dict, dict, Analysed, dict | None]:
    r = run(name)[name]
    a = Analysed(r.pcap)
    return r.truth, a.flow(r.truth["client_port"]), a, scenarios.tshark_counts(r.pcap)


# ---- across the link: retransmissions from first principles ---------------------------------
def test_rto_tail_is_a_real_rto(run):
    truth, s, a, tshark = lab_scenario(run, "rto_tail")
    resends = truth["visible"]["s2c"]["resends"]
    # the truth itself: the tail and its probe were dropped, a timer resend repaired it
    assert len(resends) == 2 and [x["fate"] for x in resends] == ["dropped", "forwarded"]
    stall = sum(x["silence"] for x in resends)  # the tail's last copy -> the repair
    rto_silence = resends[-1]["silence"]
    assert rto_silence >= scenarios.MIN_RTO
    lab_line("rto_tail", truth, s, a, tshark,
             f" (silences {[round(x['silence'] * 1e3, 1) for x in resends]} ms)")
    if tshark:
        assert tshark["retransmission"] == 2
    check_retransmissions("rto_tail", s, truth["visible"])
    r = s["s2c"]["retransmissions"]
    assert r["rto"] >= 1 and r["fast"] == 0, r
    assert r["lost"] == 2, r  # both copies carried a byte the receiver never had
    rto = [f for f in s["diagnosis"] if f["kind"] == "rto_stall"]
    assert rto, a.kinds()
    assert scenarios.MIN_RTO <= rto[0]["lost"] <= stall + CLOCK_SLACK, (rto, stall)
    # captured at the sender: the SRTT is the path's, the round trips the link gave
    paths = [x["path"] for x in path_rtts(truth["link"], truth["client_port"], "s2c")]
    assert min(paths) - CLOCK_SLACK <= s["srtt"] <= max(paths) + CLOCK_SLACK, (s["srtt"], paths)


def test_rto_tail_seen_at_the_receiver_looks_new(run):
    """The same RTO captured at the client: the tail and its probe never reached it, the
    repair came where the tail belonged with nothing delivered above it. That is a new
    segment as far as this capture point can know, so the truth visible here is 0 resends
    (the link logged 2)."""
    truth, s, a, tshark = lab_scenario(run, "rto_tail_client")
    assert truth["link_totals"]["s2c"]["resends"] == 2
    assert truth["visible"]["s2c"]["retransmissions"] == 0
    lab_line("rto_tail_client", truth, s, a, tshark,
             f" (the link logged {truth['link_totals']['s2c']['resends']} resends)")
    check_retransmissions("rto_tail_client", s, truth["visible"])


def test_tlp_answered_by_dsack_loses_nothing(run):
    truth, s, a, tshark = lab_scenario(run, "tlp_dsack")
    resends = truth["visible"]["s2c"]["resends"]
    # the truth: one resend, sooner than any RTO could fire, and the original had arrived
    assert len(resends) == 1 and resends[0]["spurious"]
    assert resends[0]["silence"] < scenarios.MIN_RTO
    lab_line("tlp_dsack", truth, s, a, tshark)
    if tshark:
        assert tshark["retransmission"] == 1 and tshark["dsack"] == 1
    check_retransmissions("tlp_dsack", s, truth["visible"])
    r = s["s2c"]["retransmissions"]
    assert r["tlp"] == 1, r
    assert not LOSS_KINDS & set(a.kinds()), a.findings()


def test_frozen_acks_cause_spurious_tlp_and_rto(run):
    truth, s, a, tshark = lab_scenario(run, "spurious_rto")
    resends = truth["visible"]["s2c"]["resends"]
    # the truth: a probe (sooner than the minimum RTO) then a timer resend, both unneeded
    assert len(resends) == 2 and all(x["spurious"] for x in resends)
    assert resends[0]["silence"] < scenarios.MIN_RTO <= resends[1]["silence"]
    lab_line("spurious_rto", truth, s, a, tshark,
             f" (silences {[round(x['silence'] * 1e3, 1) for x in resends]} ms)")
    if tshark:
        assert tshark["retransmission"] == 2 and tshark["dsack"] == 2
    check_retransmissions("spurious_rto", s, truth["visible"])
    r = s["s2c"]["retransmissions"]
    assert r["tlp"] == 1 and r["rto"] == 1 and r["lost"] == 0, r
    assert not LOSS_KINDS & set(a.kinds()), a.findings()


def test_reordering_is_not_loss(run):
    truth, s, a, tshark = lab_scenario(run, "reorder")
    v = truth["visible"]["s2c"]
    assert v["out_of_order"] == 1 and v["retransmissions"] == 0  # the truth: held, not resent
    lab_line("reorder", truth, s, a, tshark)
    if tshark:
        assert tshark["out_of_order"] == 1 and tshark["retransmission"] == 0
    check_retransmissions("reorder", s, truth["visible"])
    assert s["s2c"]["ambiguous"] == 0, s["s2c"]
    assert not LOSS_KINDS & set(a.kinds()), a.findings()


def test_reordering_past_rack_window_gives_a_spurious_fast_retransmit(run):
    """Named case OOO_RESEND: at the receiver, the held original arrives after later
    segments, then its fast retransmit arrives as a duplicate. tshark calls the late original
    a retransmission (2 retransmissions, 0 out-of-order); the truth is 1 late original and 1
    spurious resend, which the TSvals show (the original's is older than its successors')."""
    truth, s, a, tshark = lab_scenario(run, "reorder_dsack")
    v = truth["visible"]["s2c"]
    assert v["out_of_order"] == 1 and v["retransmissions"] == v["spurious"] == 1
    lab_line("reorder_dsack", truth, s, a, tshark)
    check_retransmissions("reorder_dsack", s, truth["visible"])
    # what triggered it: the receiver's SACKs (this capture saw them leave) in the middle of
    # a transfer, the resend 6 ms after the sender's previous segment: RACK (RFC 8985 6.2),
    # a fast retransmit; no timer (RTO >= 200 ms; PTO = 2 SRTT = 80 ms) was near firing
    assert truth["visible"]["s2c"]["resends"][0]["silence"] < 2 * 2 * scenarios.LINK_DELAY_MS / 1e3
    assert s["s2c"]["retransmissions"]["fast"] == 1, s["s2c"]["retransmissions"]
    assert not LOSS_KINDS & set(a.kinds()), a.findings()


# ---- Nagle meets the delayed ACK, on either side ---------------------------------------------
@pytest.mark.parametrize("side", ["server", "client"])
def test_nagle_side_and_cost(run, side):
    name = f"nagle_{side}"
    runs = run(name)
    nagle, nodelay = Analysed(runs[name].pcap), Analysed(runs[name + "_nodelay"].pcap)
    cost = runs[name].truth["nagle_cost"]  # the client's own clock: Nagle run - TCP_NODELAY run
    found = [f for f in nagle.findings() if f["kind"] == "nagle_delayed_ack"]
    print(f"\nLAB {name}: truth {runs[name].truth['responses']} requests cost "
          f"{cost * 1e3:.1f} ms more than with TCP_NODELAY ({side}); tcpwatch "
          f"nagle_delayed_ack {[(f.get('side'), round(f['lost'] * 1e3, 1)) for f in found]} ms; "
          f"with TCP_NODELAY {nodelay.kinds()}; SRTT "
          f"{[s['srtt'] for s in nagle.summaries]} s")
    assert cost > 0.2  # the lab works: ~40 ms per response after the first
    assert len(found) == 1, nagle.kinds()
    assert found[0]["side"] == side, found[0]
    assert abs(found[0]["lost"] - cost) <= NAGLE_TOLERANCE * cost, (found[0]["lost"], cost)
    assert "nagle_delayed_ack" not in nodelay.kinds(), nodelay.findings()
    for s in nagle.summaries + nodelay.summaries:
        assert s["srtt"] is None or s["srtt"] < 0.001, s["srtt"]  # loopback: microseconds


# ---- clean real backends on loopback ----------------------------------------------------------
def clean_line(name: str, a: Analysed, measured: str) -> None:
    srtts = [round(s["srtt"] * 1e6, 1) for s in a.summaries if s["srtt"] is not None]
    retx = sum(s[d]["retransmissions"]["total"] for s in a.summaries for d in ("c2s", "s2c"))
    print(f"\nLAB {name}: truth {measured}, nothing wrong; tcpwatch {len(a.summaries)} "
          f"connections, {retx} retransmissions, SRTT {srtts} us, findings "
          f"{[(f['kind'], round(f['lost'], 4)) for f in a.findings()]}")


def check_nothing_lost(a: Analysed) -> None:
    """Loopback drops nothing: a resend the kernel made anyway (on a busy machine a receiver
    slow to ACK lets a probe or a timer fire) is spurious, and known to be: none lost, none
    unconfirmed."""
    for s in a.summaries:
        for d in ("c2s", "s2c"):
            r = s[d]["retransmissions"]
            assert r["lost"] == r["unconfirmed"] == 0, (s["client"], d, r)
            assert r["total"] == r["spurious"], (s["client"], d, r)


def check_loopback_srtt(a: Analysed) -> None:
    for s in a.summaries:
        assert s["srtt"] is None or s["srtt"] < 0.001, (s["client"], s["srtt"])


@pytest.mark.parametrize("name", ["nginx", "redis", "nagle_server_nodelay"])
def test_clean_backend_has_no_finding(run, name):
    """No finding, unless a client itself measured a response slow enough to be one (a
    busy machine can stall the server): then a server_think of no more than that."""
    r = run(name.removesuffix("_nodelay"))[name]
    a = Analysed(r.pcap)
    slowest = r.measured["max_latency"]  # the clients' own clocks
    what = {"nginx": "20 curl + 1,000 wrk keep-alive requests",
            "redis": "redis-benchmark 4,000 requests",
            "nagle_server_nodelay": "http.server with TCP_NODELAY, 12 requests"}[name]
    clean_line(name, a, f"{what}, slowest response {slowest * 1e3:.2f} ms by the client")
    unexplained = [f for f in a.findings() if f["kind"] != "server_think"
                   or f["lost"] > slowest + CLOCK_SLACK]
    assert unexplained == [], unexplained
    if slowest < SERVER_THINK_MIN:
        assert a.findings() == [], a.findings()
    check_nothing_lost(a)
    assert any(s["srtt"] is not None for s in a.summaries)
    check_loopback_srtt(a)


def test_curl_download_loses_nothing(run):
    r = run("curl_download")["curl_download"]
    a = Analysed(r.pcap)
    clean_line("curl_download", a, f"{r.measured['bytes']:,} bytes in "
                                   f"{r.measured['seconds'] * 1e3:.1f} ms")
    assert r.measured["bytes"] == 4_000_000
    assert not LOSS_KINDS & set(a.kinds()), a.findings()
    check_nothing_lost(a)
    check_loopback_srtt(a)


def test_slow_handler_is_server_think_only(run):
    r = run("slow_handler")["slow_handler"]
    a = Analysed(r.pcap)
    think = r.truth["expect"]["think"]
    found = [f for f in a.findings() if f["kind"] == "server_think"]
    clean_line("slow_handler", a, f"handler sleeps {think * 1e3:.0f} ms x3, client measured "
                                  f"{[round(x * 1e3, 1) for x in r.measured['latencies']]} ms")
    assert a.kinds() == ["server_think"], a.findings()
    # on loopback the wait the client measured is the server's time (on a busy machine it
    # may exceed the sleep): the truth for the time lost
    latencies = r.measured["latencies"]
    assert len(found) == 3 and min(latencies) >= think
    assert sum(f["lost"] for f in found) == pytest.approx(sum(latencies), rel=0.05)
    check_loopback_srtt(a)
