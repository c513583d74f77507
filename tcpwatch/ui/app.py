"""The dashboard: a header, a filter box, the flow table and the footer. A timer polls the
monitor's latest snapshot (at twice its publishing rate) and applies it by row key inside
batch_update; the cursor stays on the same connection across updates. SIGINT, SIGTERM and
SIGHUP are delivered by the event loop (loop.add_signal_handler) and quit as `q` does."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from typing import Protocol

from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ..analysis.badges import BADGES, ERROR, WARN
from ..monitor import FilterError, Monitor, Snapshot, ViewSpec, compile_filter
from . import fmt
from .help import COLUMNS, HelpScreen

SORTABLE = [c[0] for c in COLUMNS]
UI_CHECK_S = 0.02  # s between looks for a new snapshot (one attribute read when none)
REBUILD_ROWS = 40  # rows coming and going past which the table is rebuilt, not edited
SEV_STYLE = {ERROR: "bold red", WARN: "yellow"}


class Signals(Protocol):
    """The command line's signals that end the dashboard (cli.ExitSignals)."""

    handled: tuple[int, ...]  # the signals to deliver through the event loop
    received: int | None  # the one that came, if any (before the loop ran, too)


def badge_text(badges: tuple[str, ...], dim: bool = False) -> Text:
    t = Text()
    for i, b in enumerate(badges):
        if i:
            t.append(" ")
        t.append(b, style=SEV_STYLE.get(BADGES[b][0], "dim"))
    if dim:
        t.stylize("dim")
    return t


def row_cells(r, now: float) -> tuple:
    """The displayed cells of a FlowRow, in COLUMNS order (all Text or int: never markup)."""
    dim = "dim" if r.closed else ""
    age = (r.last if r.closed else now) - r.start
    proc = NONE_T if r.proc is None else fmt.untrusted(
        r.proc.name if r.proc.pid is None else f"{r.proc.name} ({r.proc.pid})", 40, dim)

    def t(s: str, right: bool = False) -> Text:
        return Text(s, style=dim, justify="right" if right else "left")

    return (
        r.id, proc, fmt.untrusted(r.client, 60, dim), fmt.untrusted(r.server, 60, dim),
        t(r.state), t(fmt.dur(age), True), t(fmt.dur(r.irtt), True), t(fmt.dur(r.srtt), True),
        t(fmt.size(r.up), True), t(fmt.size(r.down), True), t(fmt.rate(r.rate), True),
        t(str(r.retx) if r.retx else "", True), t(fmt.dur(r.zwin) if r.zwin else "", True),
        badge_text(r.badges, r.closed),
    )


NONE_T = Text(fmt.NONE, style="dim")


def same_cell(a, b) -> bool:
    """Cell equality that sees style: rich's Text == compares text and spans only, so a row
    turning dim (closed) would otherwise keep its old look."""
    if isinstance(a, Text) and isinstance(b, Text):
        return (a.plain == b.plain and a.style == b.style and a.spans == b.spans
                and a.justify == b.justify)
    return a == b


class MainScreen(Screen):
    filter_error: str | None = None  # the filter box holds text that is not a filter

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("p", "problems", "Problems"),
        Binding("space", "pause", "Pause"),
        Binding("s", "sort(1)", "Sort"),
        Binding("S", "sort(-1)", "Sort back", show=False),
        Binding("r", "reverse", "Reverse"),
        Binding("escape", "leave_filter", "Table", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="hdr")
        yield Static(id="status")
        yield Input(placeholder="filter: words, proc:NAME port:N addr:A state:SF badge:RTO "
                                "!word  (Esc: back to the table)", id="filter")
        table: DataTable = DataTable(id="flows", cursor_type="row", zebra_stripes=True)
        for key, label, width, _help in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#flows", DataTable).focus()
        if self.app.monitor.view.filter:  # --filter on the command line
            self.query_one("#filter", Input).value = self.app.monitor.view.filter

    # ---- actions ----------------------------------------------------------------------
    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one("#flows", DataTable).focus()

    def action_problems(self) -> None:
        self.app.set_view(problems=not self.app.monitor.view.problems)

    def action_pause(self) -> None:
        self.app.paused = not self.app.paused
        self.app.apply(force=True)

    def action_sort(self, step: int) -> None:
        v = self.app.monitor.view
        cur = SORTABLE.index(v.sort) if v.sort in SORTABLE else -1
        nxt = SORTABLE[(cur + step) % len(SORTABLE)]
        self.app.set_view(sort=nxt, reverse=nxt not in ("id", "proc", "client", "server",
                                                         "state"))

    def action_reverse(self) -> None:
        self.app.set_view(reverse=not self.app.monitor.view.reverse)

    # ---- events -----------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            try:
                compile_filter(event.value)
            except FilterError as e:
                self.filter_error = str(e)  # shown in the status line; the view stays
                self.app.apply(force=True)
                return
            self.filter_error = None
            self.app.set_view(filter=event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_leave_filter()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        v = self.app.monitor.view
        if v.sort == key:
            self.app.set_view(reverse=not v.reverse)
        else:
            self.app.set_view(sort=key, reverse=key not in ("id", "proc", "client", "server",
                                                             "state"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "flows" and event.row_key.value is not None:
            self.app.open_flow(int(event.row_key.value))

    # ---- applying a snapshot ------------------------------------------------------------
    def show(self, s: Snapshot, paused: bool) -> None:
        hdr = self.query_one("#hdr", Static)
        src = {"live": "live", "file": "file", "replay": "replay"}[s.mode]
        t = Text()
        t.append("tcpwatch ", style="bold")
        t.append(f"{src} ")
        # a file by its name (the full path is what the user typed; the header stays short)
        name = os.path.basename(s.source) if s.mode != "live" else s.source
        t.append_text(fmt.untrusted(name, 60, "bold cyan"))
        # every frame is accounted for: packets = tcp + other + undecodable
        t.append(f" · {s.engine} · {fmt.count(s.packets)} pkts = {fmt.count(s.tcp)} tcp + "
                 f"{fmt.count(s.non_tcp)} other + {fmt.count(s.undecodable)} bad · "
                 f"{fmt.size(s.bytes)} · ")
        if s.mode != "file" or not s.done:
            # "now" is the last second of capture time: a file read to its end has no now
            t.append(f"now {fmt.per_s(s.pps)} pkt/s {fmt.rate(s.bps)} · ")
        t.append(f"flows {s.flows_active} active / {fmt.count(s.flows_total)}")
        if s.evicted:
            t.append(f" (+{fmt.count(s.evicted)} evicted)", style="yellow")
        t.append(" · dropped ")
        t.append(fmt.count(s.dropped), style="bold red" if s.dropped else "")
        if s.mode == "live":  # tcpwatch's own: its analysis fell behind the capture
            t.append(" + tcpwatch ")
            t.append(fmt.count(s.lost), style="bold red" if s.lost else "")
        t.append(f" · {fmt.dur(s.elapsed)}")
        if s.mode != "live" and not s.done:
            t.append(" · reading…", style="italic")
            if s.read is not None:
                t.append(f" {s.read * 100:.0f}% at {fmt.per_s(s.read_pps)} pkt/s", style="italic")
            if s.eta is not None:
                t.append(f", ETA {fmt.dur(s.eta)}", style="italic")
        hdr.update(t)
        hdr.refresh()
        self.show_status(s, paused)
        if not paused:
            self._apply_rows(s)

    def show_status(self, s: Snapshot | None, paused: bool) -> None:
        """The status line, from the view the user asked for: a key press shows here at
        once, and the table follows when the monitor's snapshot for that view arrives."""
        if s is None:
            return
        st = Text()
        v = self.app.monitor.view
        arrow = "↓" if v.reverse else "↑"
        label = dict((c[0], c[1]) for c in COLUMNS).get(v.sort, v.sort)
        st.append(f"sort {label} {arrow}")
        if v.filter:
            st.append(" · filter ")
            st.append_text(fmt.untrusted(v.filter, 60, "bold"))
        if self.filter_error:
            st.append(" · bad filter: ", style="bold red")
            st.append_text(fmt.untrusted(self.filter_error, 80, "bold red"))
        if v.problems:
            st.append(" · problems only", style="bold yellow")
        if paused:
            st.append(" · PAUSED (space resumes)", style="bold reverse")
        if s.view != v:
            st.append(" · updating…", style="italic")
        st.append(f" · {fmt.count(len(s.rows))} shown")
        if s.hidden:
            st.append(f", {fmt.count(s.hidden)} more hidden (filter to narrow)", style="yellow")
        if s.error:
            st.append(" · ")
            st.append_text(fmt.untrusted(s.error, 120, "bold red"))
        for note in s.notes:
            st.append(" · ")
            st.append_text(fmt.untrusted(note, 120, "bold yellow"))
        self.query_one("#status", Static).update(st)

    def _apply_rows(self, s: Snapshot) -> None:
        table = self.query_one("#flows", DataTable)
        cache: dict = self.app.row_cache
        keep_key = None
        if table.row_count:
            try:
                keep_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            except Exception:  # noqa: BLE001 - an empty or stale cursor
                keep_key = None
        wanted = {str(r.id): r for r in s.rows}
        gone = [k for k in cache if k not in wanted]
        new = sum(1 for k in wanted if k not in cache)
        if len(gone) + new > REBUILD_ROWS:
            # a new view (filter, problems only) or a burst of connections: DataTable removes
            # a row in time proportional to the table, so start afresh, already in order
            self._rebuild_rows(table, s, keep_key)
            return
        for key in gone:
            table.remove_row(key)
            del cache[key]
        cols = [c[0] for c in COLUMNS]
        moved = False
        for key, r in wanted.items():
            old = cache.get(key)
            # the monitor reuses a FlowRow object while the connection is unchanged: then only
            # the age of an open connection can differ
            age = None if r.closed else int(s.now - r.start)
            if old is not None and old[0] is r and old[1] == age:
                continue
            cells = row_cells(r, s.now)
            if old is None:
                table.add_row(*cells, key=key)
                moved = True
            else:
                for i, (a, b) in enumerate(zip(old[2], cells, strict=True)):
                    if not same_cell(a, b):
                        table.update_cell(key, cols[i], b)
                        moved = True
            cache[key] = (r, age, cells)
        order = [str(r.id) for r in s.rows]
        if moved or order != self.app.row_order:
            rank = {r.id: i for i, r in enumerate(s.rows)}
            table.sort("id", key=lambda fid: rank.get(fid, 1 << 30))
            self.app.row_order = order
        if keep_key is not None and keep_key.value in wanted:
            table.move_cursor(row=table.get_row_index(keep_key), animate=False)

    def _rebuild_rows(self, table: DataTable, s: Snapshot, keep_key) -> None:
        cache: dict = self.app.row_cache
        cache.clear()
        table.clear()
        for r in s.rows:
            key = str(r.id)
            cells = row_cells(r, s.now)
            cache[key] = (r, None if r.closed else int(s.now - r.start), cells)
            table.add_row(*cells, key=key)
        self.app.row_order = [str(r.id) for r in s.rows]
        if keep_key is not None and keep_key.value in cache:
            table.move_cursor(row=table.get_row_index(keep_key), animate=False)


class TcpwatchApp(App):
    TITLE = "tcpwatch"
    CSS = """
    #hdr { height: 1; background: $panel; }
    #status { height: 1; color: $text-muted; }
    #filter { height: 3; }
    #flows { height: 1fr; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(self, monitor: Monitor, start: bool = True,
                 signals: Signals | None = None) -> None:
        super().__init__()
        self.monitor = monitor
        self.signals = signals  # the command line's SIGINT/SIGTERM/SIGHUP: quit on one
        self.paused = False
        self.row_cache: dict[str, tuple] = {}  # row key -> (FlowRow, age s, cells)
        self.row_order: list[str] = []
        self._applied = -1
        self._start = start
        self.applied_snapshots = 0
        self.apply_seconds = 0.0  # time spent applying snapshots (measured by the benchmark)

    @property
    def caught_up(self) -> bool:
        """The capture ended and its last snapshot is on screen (tests and screenshots wait
        for this instead of sleeping)."""
        s = self.monitor.latest
        return s is not None and s.done and self._applied == s.seq

    def on_load(self) -> None:
        """Before the screen changes: from now on the event loop delivers the signals that
        end the dashboard, between two of its callbacks, never inside one."""
        if self.signals is None:
            return
        loop = asyncio.get_running_loop()
        for sig in self.signals.handled:
            loop.add_signal_handler(sig, self.quit_on_signal, sig)
        if self.signals.received is not None:  # it came before the loop ran
            self.quit_on_signal(self.signals.received)

    def quit_on_signal(self, signum: int) -> None:
        """As `q`: the app ends, on_unmount stops the capture (the worker reaps dumpcap or
        tshark), and the command line prints the totals."""
        if self.signals is not None:
            self.signals.received = signum
        self.exit()

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        quitting = self.signals is not None and self.signals.received is not None
        if self._start and not quitting:
            self.monitor.start()
        # the monitor publishes SNAPSHOT_HZ snapshots a second (more when poked by a key);
        # checking for a new one is one attribute read, so look often: keys feel immediate
        self.set_interval(UI_CHECK_S, self.apply)

    def on_unmount(self) -> None:
        self.monitor.stop()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Explain every column, badge and key", self.action_help)
        yield SystemCommand("Filter", "Focus the filter box", self._cmd("focus_filter"))
        yield SystemCommand("Problems only", "Show only connections with a badge",
                            self._cmd("problems"))
        yield SystemCommand("Pause / resume", "Freeze the table; the capture goes on",
                            self._cmd("pause"))
        yield SystemCommand("Sort by next column", "Cycle the sort column",
                            self._cmd("sort", 1))
        yield SystemCommand("Reverse sort", "Flip the sort order", self._cmd("reverse"))

    def _cmd(self, name: str, *args):
        def run() -> None:
            main = self._main()
            if main is not None:
                getattr(main, f"action_{name}")(*args)
        return run

    def _main(self) -> MainScreen | None:
        for s in self.screen_stack:
            if isinstance(s, MainScreen):
                return s
        return None

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def set_view(self, **changes) -> None:
        v = self.monitor.view
        fields = {k: getattr(v, k) for k in ("filter", "sort", "reverse", "problems", "limit")}
        fields.update(changes)
        self.monitor.view = ViewSpec(**fields)
        self.monitor.poke()
        main = self._main()
        if main is not None and main.is_mounted:
            main.show_status(self.monitor.latest, self.paused)

    def open_flow(self, fid: int) -> None:
        from .flow_screen import FlowScreen
        if fid < 0:  # a folded row of half-open attempts: list them instead
            s = self.monitor.latest
            row = next((r for r in s.rows if r.id == fid), None) if s is not None else None
            if row is not None:
                self.set_view(filter=f"state:S0 addr:{row.saddr} port:{row.sport}")
                main = self._main()
                if main is not None:
                    main.query_one("#filter", Input).value = self.monitor.view.filter
            return
        self.monitor.focus = fid
        self.monitor.poke()
        self.push_screen(FlowScreen(fid))

    def apply(self, force: bool = False) -> None:
        s = self.monitor.latest
        if s is None or (s.seq == self._applied and not force):
            return
        self._applied = s.seq
        self.applied_snapshots += 1
        t0 = time.perf_counter()
        from .flow_screen import FlowScreen
        try:
            with self.batch_update():
                main = self._main()
                if main is not None and main.is_mounted:
                    main.show(s, self.paused)
                if isinstance(self.screen, FlowScreen):
                    self.screen.show(s)
        except NoMatches:  # the app is closing: its screens' widgets are already gone
            return
        self.apply_seconds += time.perf_counter() - t0
