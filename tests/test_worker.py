"""The dashboard's capture and analysis in a process of their own (worker.py): the same
snapshots as the in-process monitor, the view and focus sent over, raw frames fetched for the
drill-down, and a child that never outlives its UI. Plus tcpwatch's own loss counter: a live
capture whose analysis falls behind lets batches go and counts them, it never waits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading

import pytest
from conftest import capturing
from conftest import wait_until as wait

from tcpwatch.capture.record import PacketRecord
from tcpwatch.capture.session import Capture
from tcpwatch.cli import demo_capture
from tcpwatch.monitor import Monitor, ViewSpec
from tcpwatch.worker import RemoteMonitor


def local_monitor(path: str) -> Monitor:
    m = Monitor(Capture("fast", file=path), mode="file")
    m.start()
    wait(lambda: m.latest is not None and m.latest.done)
    return m


def test_remote_snapshots_equal_the_in_process_ones():
    demo = demo_capture()
    rm = RemoteMonitor(dict(engine="fast", file=demo), mode="file", procmap=False, saved=demo)
    rm.start()
    lm = local_monitor(demo)
    try:
        s = wait(lambda: rm.latest if rm.latest is not None and rm.latest.done else None)
        ref = lm.latest
        assert (s.packets, s.tcp, s.flows_total, s.matched) == \
               (ref.packets, ref.tcp, ref.flows_total, ref.matched)
        assert [(r.id, r.state, r.up, r.down, r.retx, r.badges) for r in s.rows] == \
               [(r.id, r.state, r.up, r.down, r.retx, r.badges) for r in ref.rows]
        # a view change travels to the child and comes back applied
        rm.view = ViewSpec(problems=True, sort="retx")
        rm.poke()
        s2 = wait(lambda: rm.latest if rm.latest.view == rm.view else None, 10)
        lm.view = ViewSpec(problems=True, sort="retx")
        lm.poke()
        ref2 = wait(lambda: lm.latest if lm.latest.view == lm.view else None, 10)
        assert [r.id for r in s2.rows] == [r.id for r in ref2.rows] and s2.rows
        assert all(r.badges for r in s2.rows)
        # the drill-down: the flow in focus comes with its detail
        fid = s2.rows[0].id
        rm.focus = fid
        rm.poke()
        s3 = wait(lambda: rm.latest if rm.latest.detail is not None else None, 10)
        assert s3.detail.id == fid and s3.detail.packets
    finally:
        proc = rm._proc
        rm.stop()
        lm.stop()
    assert proc.returncode is not None  # reaped, not left behind


def test_child_ends_when_the_ui_process_goes_away():
    """The UI killed outright: the child sees its end of the socket close and exits."""
    demo = demo_capture()
    rm = RemoteMonitor(dict(engine="fast", file=demo), mode="file", procmap=False, saved=demo)
    rm.start()
    wait(lambda: rm.latest is not None)
    proc = rm._proc
    rm._conn.close()  # as if this process had died
    rm._conn = None
    proc.wait(timeout=15)
    assert proc.returncode is not None


def test_sigterm_ends_the_child_by_its_own_path():
    """SIGTERM (the parent-death signal when the UI is killed outright, or reap()) ends the
    child as "stop" does: the monitor stopped, a last snapshot, "ended", exit status 0."""
    demo = demo_capture()
    rm = RemoteMonitor(dict(engine="fast", file=demo), mode="file", procmap=False, saved=demo)
    rm.start()
    try:
        wait(lambda: rm.latest is not None)
        os.kill(rm._proc.pid, signal.SIGTERM)
        assert rm._ended.wait(15), "the child never said it ended"
        assert rm._proc.wait(15) == 0
        assert rm.latest.done and rm.failed is None
    finally:
        rm.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root here")
def test_remote_live_capture_serves_raw_frames_and_reaps_dumpcap():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = socket.create_server(("127.0.0.1", port))
    marker = f"tcp port {port}"
    rm = RemoteMonitor(dict(engine="fast", iface="lo", bpf=marker), mode="live",
                       procmap=True, saved=None)
    assert rm.capture.raw is not None  # live, no -w: frames are held in the child
    rm.start()
    try:
        wait(lambda: rm.latest is not None)
        wait(lambda: capturing(marker), 30)  # the child's dumpcap sees packets from now on

        def serve():
            c, _ = srv.accept()
            with c:
                c.recv(100)
                c.sendall(b"pong")
        t = threading.Thread(target=serve)
        t.start()
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"ping")
            c.recv(100)
        t.join()
        s = wait(lambda: rm.latest if any(r.sport == port for r in rm.latest.rows) else None)
        row = next(r for r in s.rows if r.sport == port)
        assert row.packets >= 6
        rm.focus = row.id
        rm.poke()
        d = wait(lambda: rm.latest.detail if rm.latest.detail is not None else None).packets
        num = d[0][0]  # the first packet's frame number
        held = rm.capture.raw.get(num)
        assert held is not None and held[3] >= 54  # (link, ts, data, wire length)
        assert rm.capture.raw.get(10**9) is None  # not held: None, not an error
    finally:
        rm.stop()
        srv.close()
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert out.strip() == "", "dumpcap outlived the dashboard"


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root here")
def test_a_live_capture_stopped_at_once_is_no_error():
    """Quit (or a signal) right after the start: dumpcap is stopped before it wrote its
    header, which is the stop asked for, not "dumpcap exited with an error"."""
    for _ in range(3):
        m = Monitor(Capture("fast", iface="lo", bpf="tcp port 1"), mode="live")
        m.start()
        m.stop()
        s = m.final_snapshot()
        assert s.error is None and s.done


def test_live_hand_over_never_waits_and_counts_what_it_let_go():
    """Analysis that falls behind a live capture: the capture thread never waits for it
    (waiting would move the loss into the kernel, unseen until dumpcap stops); what does not
    fit the queue is counted in stats.lost, exactly."""
    cap = Capture("fast", iface="lo")
    batch = [PacketRecord(1, 0, 4, b"\x7f\0\0\1", b"\x7f\0\0\1", 1, 2, 0, 0, 0x10, 0, 0, 54)
             for _ in range(10)]
    produced = 200

    def batches():
        for _ in range(produced):
            yield list(batch)
    cap._batches = batches  # a capture far faster than anyone reads it
    cap.start()
    room = cap._q.maxsize
    # nobody reads yet: the capture thread went through every batch without waiting
    wait(lambda: cap.stats.lost == (produced - room) * len(batch), 10)
    got = sum(len(b) for b in cap.batches(timeout=0.1) if b)  # then the end marker
    assert got == room * len(batch)
    assert cap.stats.lost == (produced - room) * len(batch)
    cap.stop()
