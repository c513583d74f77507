"""Process mapping on real loopback sockets, and the monitor's filter / sort / snapshot rules."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import psutil
import pytest
from builders import Conv
from conftest import wait_until

from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture.session import Capture
from tcpwatch.cli import demo_capture
from tcpwatch.monitor import SORT_KEYS, FilterError, FlowRow, Monitor, ViewSpec, compile_filter
from tcpwatch.procmap import REFRESH_MIN_S, UNKNOWN, ProcInfo, ProcMap, norm_addr


@pytest.fixture
def pair():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = socket.create_connection(srv.getsockname())
    acc, _ = srv.accept()
    yield srv, cli, acc
    for s in (cli, acc, srv):
        s.close()


def test_maps_both_ends_of_a_loopback_connection_to_this_process(pair):
    srv, cli, _acc = pair
    pm = ProcMap()
    pm.refresh()
    me = psutil.Process()
    (ca, cp), (sa, sp) = cli.getsockname(), cli.getpeername()
    c = pm.lookup(ca, cp, sa, sp)
    s = pm.lookup(sa, sp, ca, cp)
    assert c is not None and s is not None
    assert c.pid == s.pid == os.getpid()
    assert c.create_time == me.create_time() and c.name == me.name()
    assert c.user == me.username() and "python" in c.cmdline
    # a port that only listens (a server between connections) maps through the listener
    assert pm.lookup("127.0.0.1", srv.getsockname()[1], "127.0.0.9", 1).pid == os.getpid()
    assert pm.lookup("127.0.0.1", 1, "127.0.0.1", 2) is None  # no such local socket


def test_pid_reuse_is_detected_by_create_time(pair):
    pm = ProcMap()
    stale = ProcInfo(os.getpid(), "old-process", "x", "old", create_time=1.0)
    pm._procs[os.getpid()] = stale
    pm.refresh()
    _srv, cli, _ = pair
    got = pm.lookup(*cli.getsockname(), *cli.getpeername())
    assert got is not stale and got.name == psutil.Process().name()


def test_addresses_have_one_spelling():
    assert norm_addr("::ffff:127.0.0.1") == "127.0.0.1"
    assert norm_addr("0.0.0.0") == norm_addr("::") == "*"
    assert norm_addr("2001:0db8:0000::0001") == "2001:db8::1"
    assert norm_addr("fe80::1%eth0") == "fe80::1"


def test_refresh_thread_is_rate_limited():
    """Poked every 10 ms, it still walks the socket table at most once per REFRESH_MIN_S,
    counted against the time that really passed (a loaded machine stretches every sleep),
    and a poke does bring the next refresh."""
    t0 = time.monotonic()
    pm = ProcMap().start()
    pokes = 0
    try:
        while time.monotonic() - t0 < 2.0 or pm.refreshes < 2:
            assert time.monotonic() - t0 < 30, "poked, never refreshed again"
            pm.poke()
            pokes += 1
            time.sleep(0.01)  # the pace of the pokes (the stimulus), not a wait
    finally:
        pm.stop()
    elapsed = time.monotonic() - t0
    assert 2 <= pm.refreshes <= elapsed / REFRESH_MIN_S + 1
    assert pokes > 10 * pm.refreshes


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_other_users_sockets_are_unknown_without_root(pair):
    _srv, cli, _ = pair
    (ca, cp), (sa, sp) = cli.getsockname(), cli.getpeername()
    code = (f"import sys; sys.path.insert(0, {os.getcwd()!r})\n"
            "from tcpwatch.procmap import ProcMap\n"
            "pm = ProcMap(); pm.refresh()\n"
            f"p = pm.lookup({ca!r}, {cp}, {sa!r}, {sp})\n"
            "print('GOT', p.pid, p.name)\n")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-c", code], capture_output=True, text=True,
                       cwd="/")
    if "Permission denied" in r.stderr or "No module named" in r.stderr:
        pytest.skip(f"nobody cannot run this checkout: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    assert f"GOT None {UNKNOWN.name}" in r.stdout


class FakeMap:
    def __init__(self):
        self.answer: ProcInfo | None = ProcInfo(42, "curl", "me", "curl x", 5.0)
        self.refreshes = 0

    def lookup(self, *_a):
        return self.answer

    def poke(self):
        pass


def test_a_flow_keeps_its_process_after_the_socket_is_gone():
    fake = FakeMap()
    mon = Monitor(Capture("fast", file=demo_capture()), procmap=fake)
    t = FlowTable()
    for r in Conv().handshake():
        fl, _, _ = t.feed(r)
    assert mon._procs_for(fl)[0].name == "curl"
    fake.answer = None  # the process exited, its socket vanished
    assert mon._procs_for(fl)[0].name == "curl"


def _row(i, **kw):
    base = dict(id=i, client=f"10.0.0.{i}:{1000 + i}", server="10.0.0.99:80",
                caddr=f"10.0.0.{i}", cport=1000 + i, saddr="10.0.0.99", sport=80, proc=None,
                proc_side="", state="S1", closed=False, start=0.0, last=float(i), irtt=None,
                srtt=None, up=0, down=0, rate=0.0, retx=0, zwin=0.0, badges=(), packets=1)
    base.update(kw)
    return FlowRow(**base)


def test_sorting_uses_raw_values_and_none_last():
    rows = [_row(0, down=900), _row(1, down=2048), _row(2, down=10 << 20),
            _row(3, srtt=0.002), _row(4, srtt=None), _row(5, srtt=0.0005)]
    by_down = sorted(rows, key=lambda r: SORT_KEYS["down"](r, 9), reverse=True)
    assert [r.id for r in by_down[:3]] == [2, 1, 0]
    by_srtt = sorted(rows, key=lambda r: SORT_KEYS["srtt"](r, 9))
    assert [r.id for r in by_srtt][:2] == [5, 3] and by_srtt[-1].srtt is None


def test_filter_terms():
    nginx = ProcInfo(7, "nginx", "www", "", 1.0)
    rows = [_row(0, proc=nginx, badges=("RTO",)), _row(1, state="SF", closed=True),
            _row(2, sport=443, saddr="192.168.1.5")]
    def ids(text):
        return [r.id for r in rows if compile_filter(text)(r)]
    assert ids("proc:ngi") == [0] and ids("pid:7") == [0] and ids("user:www") == [0]
    assert ids("badge:rto") == [0] and ids("state:sf") == [1] and ids("state:open") == [0, 2]
    assert ids("port:443") == [2] and ids("addr:192.168") == [2] and ids("!nginx") == [1, 2]
    assert ids("nginx rto") == [0] and ids("nginx sf") == []
    assert ids("10.0.0:443") == []  # an address with a port is a plain word, not a field
    for bad in ("bogus:x", "port:http", 'proc:"x'):  # said, not silently matched as text
        with pytest.raises(FilterError):
            compile_filter(bad)
    assert compile_filter("   ") is None


def test_snapshot_cut_to_limit_counts_hidden():
    mon = Monitor(Capture("fast", file=demo_capture()))
    mon.view = ViewSpec(limit=5, sort="id", reverse=False)
    mon.start()
    try:
        # the view was set before the start: every snapshot is cut by it; the first one
        # published after the end of the file counts every connection
        s = wait_until(lambda: mon.latest if mon.latest is not None and mon.latest.done
                       else None)
        assert [r.id for r in s.rows] == [0, 1, 2, 3, 4]
        assert s.matched == 12 and s.hidden == 7
        assert s.packets == 1693 and s.flows_total == 12
    finally:
        mon.stop()


def test_time_wait_sockets_do_not_hide_the_server_process():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = socket.create_connection(srv.getsockname())
    acc, _ = srv.accept()
    caddr = cli.getsockname()
    cli.close()  # the client closes first: its side goes to TIME_WAIT, owned by no process
    acc.close()
    wait_until(lambda: psutil.CONN_TIME_WAIT in {
        c.status for c in psutil.net_connections("tcp") if c.laddr == caddr})
    pm = ProcMap()
    pm.refresh()
    assert pm.lookup(*caddr, *srv.getsockname()) is None  # not "?": nobody owns it
    # the server side of that connection still maps, through the listener
    assert pm.lookup(*srv.getsockname(), *caddr).pid == os.getpid()
    srv.close()
