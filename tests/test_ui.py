"""The dashboard, piloted with Textual's App.run_test(): real captures (the bundled demo and
the shared public ones), the real monitor thread, tshark for the dissection."""

from __future__ import annotations

import asyncio
import os
import signal

import psutil
import pytest
from builders import client_hello, ether, ipv4, pcap_file, tcp_header
from conftest import NEED_SHARED, NEED_TSHARK, pilot_until, tree_labels
from oracle import SHARED
from rich.text import Text
from textual.widgets import DataTable, Input, Tree

from tcpwatch.capture.record import ACK, PSH, SYN
from tcpwatch.capture.session import Capture
from tcpwatch.cli import ExitSignals, demo_capture
from tcpwatch.monitor import Monitor
from tcpwatch.ui.app import MainScreen, TcpwatchApp
from tcpwatch.ui.flow_screen import FlowScreen
from tcpwatch.ui.help import HelpScreen

pytestmark = pytest.mark.timeout(120)


def make_app(path: str) -> TcpwatchApp:
    return TcpwatchApp(Monitor(Capture("fast", file=path)))


async def loaded(app: TcpwatchApp, pilot) -> None:
    """Wait until the file is read and its last snapshot is on screen (no sleeps to guess)."""
    await pilot_until(pilot, lambda: app.caught_up, 60)


async def settle(app: TcpwatchApp, pilot):
    """After a view change: wait until a snapshot built with the app's current view has been
    applied (also while paused: the header and status follow it, the rows do not); returns
    that snapshot."""
    def applied():
        s = app.monitor.latest
        return s if s is not None and s.view == app.monitor.view and app._applied == s.seq \
            else None
    return await pilot_until(pilot, applied, 30)


async def drilled(app: TcpwatchApp, pilot) -> FlowScreen:
    """The drill-down once it has shown its connection's detail."""
    await pilot_until(pilot, lambda: isinstance(app.screen, FlowScreen)
                      and app.screen.version >= 0)
    return app.screen


def table_ids(app: TcpwatchApp) -> list[int]:
    t = app.screen.query_one("#flows", DataTable)
    return [int(t.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(t.row_count)]


def tshark_children() -> list[str]:
    me = psutil.Process()
    return [p.name() for p in me.children(recursive=True)
            if p.name() in ("tshark", "dumpcap", "tcpdump")]


# ---- the bundled demo capture ---------------------------------------------------------------
def test_demo_table_shows_every_connection_with_its_problems():
    async def run():
        app = make_app(demo_capture())
        async with app.run_test(size=(180, 40)) as pilot:
            await loaded(app, pilot)
            t = app.screen.query_one("#flows", DataTable)
            assert t.row_count == 12
            rows = {r.id: r for r in app.monitor.latest.rows}
            # ground truth from tests/lab/record_demo.py: port 8084 refused, 8082 stalled
            # on a zero window of ~1.45 s, 8083 lost segments to an nftables drop rule
            assert rows[11].badges == ("REJ",) and rows[11].state == "REJ"
            assert "ZWIN" in rows[9].badges and 1.4 < rows[9].zwin < 1.5
            assert "RETX" in rows[10].badges and rows[10].retx == 8
            cell = t.get_cell("9", "badges")
            assert isinstance(cell, Text) and "ZWIN" in cell.plain
            # closed connections stay listed, dimmed
            assert "dim" in str(t.get_cell("0", "state").style)
    asyncio.run(run())


def test_demo_drill_down_plots_events_and_back():
    async def run():
        app = make_app(demo_capture())
        async with app.run_test(size=(180, 45)) as pilot:
            await loaded(app, pilot)
            await pilot.press("slash")
            await pilot.press(*"port:8082")
            await pilot.press("enter")
            await settle(app, pilot)
            assert table_ids(app) == [9]
            await pilot.press("enter")
            assert isinstance(app.screen, FlowScreen)
            screen = await drilled(app, pilot)
            ov = str(screen.query_one("#ov").render())
            assert "Handshake" in ov and "window scale" in ov and "zero windows 1" in ov
            await pilot.press("e")
            ev = app.screen.query_one("#ev", DataTable)
            kinds = " ".join(str(ev.get_row_at(i)[3]) for i in range(ev.row_count))
            assert "zero_window" in kinds and "syn" in kinds and "fin" in kinds
            await pilot.press("g")
            # what the plot of the stalled direction shows: the window the client advertised
            # against the server's bytes in flight, point for point, down to the zero window
            d = app.monitor.latest.detail
            assert d.id == 9
            plot = app.screen.query_one("#p_win_s")
            shown = plot.plt._active.monitor  # plotext's own record of what it plots
            assert shown.label == ["advertised window", "in flight"]
            assert shown.x[0] == [p[0] for p in d.window[0]]
            assert shown.y[0] == [p[1] / 1024 for p in d.window[0]] == [4, 2, 0, 4]  # KiB
            assert shown.x[1] == [p[0] for p in d.flight[1]] and len(shown.x[1]) > 100
            assert shown.y[1] == [p[1] / 1024 for p in d.flight[1]]
            # the window stays at zero ~1.45 s, and the server never has more in flight than
            # the client's largest window
            zero = shown.y[0].index(0)
            assert 1.4 < shown.x[0][zero + 1] - shown.x[0][zero] < 1.5
            assert 0 < max(shown.y[1]) <= max(shown.y[0])
            text = plot.plt.uncolorize(plot.plt.build())  # and on screen, the same words
            assert "server → client: receiver's window vs bytes in flight" in text
            assert "advertised window" in text and "in flight" in text
            assert "no samples" not in text
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            assert app.monitor.focus is None
            await pilot.press("q")
        assert not tshark_children()
    asyncio.run(run())


def test_help_explains_every_column_and_badge():
    from tcpwatch.analysis.badges import BADGES
    from tcpwatch.ui.columns import VIEW_COLUMNS
    from tcpwatch.ui.help import help_markdown
    md = help_markdown()
    for cols in VIEW_COLUMNS.values():
        for c in cols:
            assert f"**{c.label}**: {c.help}" in md and len(c.help) > 20
    for tag in BADGES:
        assert f"**{tag}**" in md

    async def run():
        app = make_app(demo_capture())
        async with app.run_test(size=(150, 40)) as pilot:
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for want in ("Help", "Filter", "Problems only", "Pause / resume", "Reverse sort"):
                assert want in titles
            await pilot.press("slash")
            await pilot.press("ctrl+c")  # quits, like q, even from the filter box
            await pilot_until(pilot, lambda: app.return_code is not None)
        assert app.return_code == 0 and not app.is_running
    asyncio.run(run())


@pytest.fixture
def own_signals():
    """The handlers of SIGINT, SIGTERM and SIGHUP as they were, put back after the test; the
    test starts from the defaults (a suite started by nohup or in a background job inherits
    SIGHUP or SIGINT ignored, and the dashboard rightly leaves an ignored signal ignored)."""
    saved = {sig: signal.getsignal(sig) for sig in ExitSignals.SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_is_delivered_by_the_event_loop_and_quits_like_q(sig, own_signals):
    """The dashboard's signals come through the event loop (never as an exception raised in
    whatever runs): the app quits by its normal path, which stops the monitor."""
    signals = ExitSignals().install()
    mon = Monitor(Capture("fast", file=demo_capture()))

    async def run():
        app = TcpwatchApp(mon, signals=signals)
        async with app.run_test(size=(150, 40)) as pilot:
            await loaded(app, pilot)
            # the loop's own handler (asyncio writes the signal to its wakeup pipe)
            assert signal.getsignal(sig) not in (signal.SIG_DFL, signals.note,
                                                 signal.default_int_handler)
            os.kill(os.getpid(), sig)
            await pilot_until(pilot, lambda: app.return_code is not None)
        assert not app.is_running
    asyncio.run(run())
    assert signals.received == sig
    assert mon._thread is None and mon.capture._thread is None  # stopped, by on_unmount


def test_a_signal_before_the_event_loop_quits_before_anything_starts(own_signals):
    """Noted until the loop runs; then the app quits at once: the screen never changes and
    the capture never starts."""
    signals = ExitSignals().install()
    os.kill(os.getpid(), signal.SIGTERM)  # noted, not raised
    assert signals.received == signal.SIGTERM
    mon = Monitor(Capture("fast", file=demo_capture()))
    app = TcpwatchApp(mon, signals=signals)
    asyncio.run(asyncio.wait_for(app.run_async(headless=True), 30))
    assert not app.is_running and app.applied_snapshots == 0
    assert mon.capture.started == 0.0 and mon.latest is None  # never started


def test_every_binding_is_described():
    for cls in (TcpwatchApp, MainScreen, FlowScreen, HelpScreen):
        for b in cls.BINDINGS:
            assert b.description, (cls.__name__, b.key)


# ---- the shared public captures ------------------------------------------------------
ECHO = os.path.join(SHARED, "echo-connections.pcap")


@NEED_SHARED
@NEED_TSHARK
def test_pilot_sort_filter_problems_drill_dissect_quit():
    async def run():
        app = make_app(ECHO)
        async with app.run_test(size=(180, 45)) as pilot:
            app.set_view(limit=1000)  # every connection (the default shows the top 200)
            await loaded(app, pilot)
            await settle(app, pilot)
            s = app.monitor.latest
            assert s.flows_total == 500 and len(s.rows) == 500 and s.hidden == 0
            # sort by retransmissions (click the header): raw counts, descending
            await pilot.click("#flows", offset=(150, 0))
            await settle(app, pilot)
            if app.monitor.view.sort != "retx":
                app.set_view(sort="retx", reverse=True)
                await settle(app, pilot)
            retx = [r.retx for r in app.monitor.latest.rows]
            assert retx == sorted(retx, reverse=True) and retx[0] > 0
            # sort by bytes: numeric order, not the displayed text ("9 KiB" < "10 B" as text)
            app.set_view(sort="down", reverse=True)
            await settle(app, pilot)
            down = [r.down for r in app.monitor.latest.rows]
            assert down == sorted(down, reverse=True)
            # problems only: exactly the connections with a badge
            await pilot.press("p")
            await settle(app, pilot)
            rows = app.monitor.latest.rows
            assert rows and all(r.badges for r in rows)
            assert len(rows) == sum(1 for r in s.rows if r.badges)
            await pilot.press("p")
            # the filter box: one port
            port = s.rows[0].cport
            await pilot.press("slash", *f"port:{port}", "enter")
            await settle(app, pilot)
            assert {r.id for r in app.monitor.latest.rows} == {
                r.id for r in s.rows if port in (r.cport, r.sport)}
            # pause: the table stops moving, the header does not. First a snapshot for the
            # new view must have been applied (else "unchanged" proves nothing), one that
            # would change the table
            await pilot.press("space")
            assert app.paused
            before = table_ids(app)
            app.set_view(filter="")
            s_all = await settle(app, pilot)
            assert len(s_all.rows) == 500 != len(before)
            assert "PAUSED" in str(app.screen.query_one("#status").render())
            assert table_ids(app) == before
            await pilot.press("space")
            await settle(app, pilot)
            assert len(table_ids(app)) == 500
            # the cursor stays on its connection across updates
            t = app.screen.query_one("#flows", DataTable)
            t.move_cursor(row=7)
            chosen = table_ids(app)[7]
            app.set_view(sort="id", reverse=False)
            await settle(app, pilot)
            assert table_ids(app)[t.cursor_row] == chosen
            # drill down, packets tab, dissect a packet
            await pilot.press("enter")
            assert isinstance(app.screen, FlowScreen) and app.screen.fid == chosen
            await pilot.press("k")
            pk = app.screen.query_one("#pkts", DataTable)
            await pilot_until(pilot, lambda: pk.row_count > 3)
            pk.focus()
            pk.move_cursor(row=2)
            frame = int(pk.coordinate_to_cell_key((2, 0)).row_key.value)
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot_until(pilot, lambda: app.screen.dissected == frame)
            tree = app.screen.query_one("#dissection", Tree)
            text = "\n".join(str(lb) for lb in tree_labels(tree.root))
            assert f"Frame Number: {frame}" in text
            assert "Transmission Control Protocol" in text and "Sequence Number" in text
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            await pilot.press("q")
        assert not tshark_children()
    asyncio.run(run())


@NEED_SHARED
def test_many_flows_are_cut_to_the_top_n_and_counted():
    async def run():
        mon = Monitor(Capture("fast", file=ECHO))
        app = TcpwatchApp(mon)
        async with app.run_test(size=(180, 40)) as pilot:
            app.set_view(limit=100)
            await loaded(app, pilot)
            await settle(app, pilot)
            s = mon.latest
            assert len(s.rows) == 100 and s.hidden == 400 and s.matched == 500
            # the screenful first, the rows below it right after its paint (app._add_rest)
            table = app.screen.query_one("#flows", DataTable)
            for _ in range(200):
                if table.row_count == 100:
                    break
                await pilot.pause(0.02)
            assert table.row_count == 100
            assert "400 more hidden" in str(app.screen.query_one("#status").render())
    asyncio.run(run())


# ---- terminal safety -----------------------------------------------------------------
EVIL_PATH = "/\x1b[31m[bold red]pwned[/bold red]\x1b]0;owned\x07[link=http://x]y[/link]"
EVIL_SNI = "\x1b[2J[blink]sni[/blink].example"


def evil_capture(path) -> None:
    frames = []
    for sport, dport, payload in ((40000, 80, f"GET {EVIL_PATH} HTTP/1.1\r\nHost: x\r\n\r\n"
                                   .encode("latin-1")), (40001, 443, client_hello(EVIL_SNI))):
        def seg(c2s, seq, ack, flags, data=b"", sport=sport, dport=dport):
            src, dst = ("10.0.0.1", "10.0.0.2") if c2s else ("10.0.0.2", "10.0.0.1")
            sp, dp = (sport, dport) if c2s else (dport, sport)
            return ether(ipv4(tcp_header(sp, dp, seq, ack, flags) + data, src, dst))
        frames += [seg(True, 100, 0, SYN), seg(False, 500, 101, SYN | ACK),
                   seg(True, 101, 501, ACK), seg(True, 101, 501, ACK | PSH, payload)]
    path.write_bytes(pcap_file(frames))


@NEED_TSHARK
def test_hostile_http_path_and_sni_are_shown_inert(tmp_path):
    cap = tmp_path / "evil.pcap"
    evil_capture(cap)

    async def run():
        app = make_app(str(cap))
        async with app.run_test(size=(200, 50)) as pilot:
            await loaded(app, pilot)
            seen = []
            for fid in (0, 1):
                app.open_flow(fid)
                await drilled(app, pilot)
                assert app.screen.fid == fid
                await pilot.press("k")
                pk = app.screen.query_one("#pkts", DataTable)
                info = pk.get_cell(str(4 + 4 * fid), "info")
                assert isinstance(info, Text)
                seen.append(info.plain)
                pk.move_cursor(row=3)
                frame = int(pk.coordinate_to_cell_key((3, 0)).row_key.value)
                await pilot.press("enter")
                await app.workers.wait_for_complete()
                await pilot_until(pilot, lambda f=frame: app.screen.dissected == f)
                tree = app.screen.query_one("#dissection", Tree)
                labels = tree_labels(tree.root)
                assert all(isinstance(lb, Text) for lb in labels)
                text = "\n".join(lb.plain for lb in labels)
                assert "\x1b" not in text and "\x07" not in text
                seen.append(text)
                svg = app.export_screenshot()
                assert "\x1b" not in svg
                await pilot.press("escape")
            http_info, http_tree, tls_info, tls_tree = seen
            # the escape bytes are shown as text, the markup as literal brackets
            assert "\\x1b[31m[bold red]pwned[/bold red]\\x1b]0;owned\\x07" in http_info
            assert "[link=http://x]y[/link]" in http_info
            assert "[bold red]pwned" in http_tree
            assert "\\x1b[2J[blink]sni[/blink].example" in tls_info
            assert "[blink]sni[/blink].example" in tls_tree
    asyncio.run(run())


def test_process_names_are_inert():
    from tcpwatch.monitor import FlowRow
    from tcpwatch.procmap import ProcInfo
    from tcpwatch.ui.columns import connection_cells
    evil = ProcInfo(66, "\x1b]0;x\x07[bold]nginx", "root", "nginx -g \x1b[2J", 1.0)
    row = FlowRow(id=1, client="a:1", server="b:2", caddr="a", cport=1, saddr="b", sport=2,
                  proc=evil, proc_side="client", state="S1", closed=False, start=0, last=1,
                  irtt=None, srtt=None, up=0, down=0, rate=0, retx=0, zwin=0, badges=(),
                  packets=1)
    cell = connection_cells(row, 2.0)["proc"]
    assert isinstance(cell, Text)
    assert cell.plain == "\\x1b]0;x\\x07[bold]nginx (66)"
    assert not cell.spans  # the brackets were not parsed as markup


def test_filter_box_accepts_markup_and_escapes_without_harm():
    async def run():
        app = make_app(demo_capture())
        async with app.run_test(size=(150, 40)) as pilot:
            await loaded(app, pilot)
            app.screen.query_one("#filter", Input).value = "[bold]x\x1b[2J"
            await pilot_until(pilot, lambda: app.monitor.view.filter == "[bold]x\x1b[2J")
            await settle(app, pilot)
            status = app.screen.query_one("#status").render()
            assert "[bold]x\\x1b[2J" in str(status)
            assert app.screen.query_one("#flows", DataTable).row_count == 0
    asyncio.run(run())


def test_a_row_that_closes_turns_dim():
    from tcpwatch.ui.app import same_cell
    assert not same_cell(Text("SF"), Text("SF", style="dim"))
    assert same_cell(Text("SF", style="dim"), Text("SF", style="dim"))
    assert same_cell(3, 3) and not same_cell(3, 4)


def test_the_drill_down_says_what_the_memory_budget_let_go():
    """A packet list budget of 20 KiB (about 40 packets) for the whole capture: the demo's
    connection 10 keeps only its newest packets, and its Packets tab says how many it saw
    and how many it kept (counts, not timing)."""
    async def run():
        mon = Monitor(Capture("fast", file=demo_capture()), packets_mib=0.02)
        app = TcpwatchApp(mon)
        async with app.run_test(size=(180, 45)) as pilot:
            await loaded(app, pilot)
            live = mon.live
            assert live.kept_bytes <= live.keep_bytes and len(live.packets) < live.seen
            fid = 10  # 105 packets, nearly the last of the capture
            app.open_flow(fid)
            screen = await drilled(app, pilot)
            await pilot.press("k")
            d = app.monitor.latest.detail
            fl = mon.table.flows[fid]
            seen = fl.dirs[0].packets + fl.dirs[1].packets
            assert d.packets_seen == seen and 0 < len(d.packets) < seen
            assert d.packets_dropped == seen - len(d.packets)
            # the newest: the last frame of the connection is there
            assert d.packets[-1][0] == fl.last_num
            note = str(screen.query_one("#pknote").render())
            assert f"packets {seen:,} seen, newest {len(d.packets):,} kept" in note
            await pilot.press("q")
    asyncio.run(run())
