"""The dashboard: a header, a filter box, the flow table and the footer. A timer polls the
monitor's latest snapshot (at twice its publishing rate) and applies it by row key inside
batch_update; the cursor stays on the same connection across updates. SIGINT, SIGTERM and
SIGHUP are delivered by the event loop (loop.add_signal_handler) and quit as `q` does."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from typing import Protocol

from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ..monitor import (
    DEFAULT_SORT,
    VIEWS,
    WINDOW_CHOICES,
    FilterError,
    Monitor,
    Snapshot,
    ViewSpec,
    compile_filter,
)
from . import fmt
from .columns import CELLS, VIEW_COLUMNS, VIEW_TITLES, Column, fit, row_key
from .fasttable import FastTable
from .flow_screen import FlowScreen
from .help import HelpScreen

SIGNAL_EXIT_S = 25.0  # s after SIGINT/SIGTERM/SIGHUP by which the dashboard has ended
EXIT_ON_SIGNAL = 130  # as cli.EXIT_INTERRUPTED (ended by a signal)


def _exit_now() -> None:
    """The signal deadline: whatever hangs in the normal exit path is left as it is. With
    TCPWATCH_STACKS=FILE, every thread's stack is appended to FILE first (what hung)."""
    stacks = os.environ.get("TCPWATCH_STACKS")
    if stacks:
        import faulthandler
        try:
            with open(stacks, "a") as f:
                f.write(f"tcpwatch: the exit deadline ({SIGNAL_EXIT_S:.0f} s after the "
                        "signal) ended the process; its threads:\n")
                f.flush()
                faulthandler.dump_traceback(file=f, all_threads=True)
        except OSError:
            pass
    os._exit(EXIT_ON_SIGNAL)
UI_CHECK_S = 0.02  # s between looks for a new snapshot (one attribute read when none)
REBUILD_ROWS = 40  # rows coming and going past which the table is rebuilt, not edited
# sorted with the smallest first when chosen (names); every other column largest first
ASCENDING = {"id", "proc", "client", "server", "state", "name", "start", "proto", "request"}
VIEW_FIELDS = ("filter", "sort", "reverse", "problems", "limit", "view", "endpoints",
               "window", "group")


class Signals(Protocol):
    """The command line's signals that end the dashboard (cli.ExitSignals)."""

    handled: tuple[int, ...]  # the signals to deliver through the event loop
    received: int | None  # the one that came, if any (before the loop ran, too)


def same_cell(a, b) -> bool:
    """Cell equality that sees style: rich's Text == compares text and spans only, so a row
    turning dim (closed) would otherwise keep its old look."""
    if isinstance(a, Text) and isinstance(b, Text):
        return (a.plain == b.plain and a.style == b.style and a.spans == b.spans
                and a.justify == b.justify)
    return a == b


def _cells(by_key: dict, cols: list[str]) -> tuple:
    """A row's cells in column order; the first one an object of its own (a shared "—"
    would make rows indistinguishable to the sort by first cell)."""
    cells = [by_key[c] for c in cols]
    if cells and isinstance(cells[0], Text):
        cells[0] = cells[0].copy()
    return tuple(cells)


class MainScreen(Screen):
    """The four views (monitor.VIEWS) in one table: a view is the monitor's rows (built,
    filtered, sorted and cut off the UI thread) and its columns (columns.py); this screen
    applies any of them the same way, by row key."""

    filter_error: str | None = None  # the filter box holds text that is not a filter

    BINDINGS = [
        Binding("1", "view('connections')", "Conns"),
        Binding("2", "view('requests')", "Reqs"),
        Binding("3", "view('services')", "Svcs"),
        Binding("4", "view('processes')", "Procs"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("p", "problems", "Problems"),
        Binding("space", "pause", "Pause", show=False),
        Binding("s", "sort(1)", "Sort"),
        Binding("S", "sort(-1)", "Sort back", show=False),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("e", "endpoints", "Endpoints", show=False),
        Binding("w", "window", "Window", show=False),
        Binding("escape", "leave_filter", "Table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown_cols: list[tuple[Column, int]] = []  # the columns on screen, with widths
        self.shown_view = ""  # the view those columns belong to
        self._rest: tuple | None = None  # (snapshot, rows) still to add below the screen

    def compose(self) -> ComposeResult:
        yield Static(id="hdr")
        yield Static(id="status")
        yield Input(placeholder="filter: words, proc:NAME port:N addr:A state:SF badge:RTO "
                                "!word  (Enter/Esc: back to the table)", id="filter",
                    classes="hidden")
        yield FastTable(id="flows", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#flows", DataTable).focus()
        if self.app.monitor.view.filter:  # --filter on the command line
            box = self.query_one("#filter", Input)
            box.value = self.app.monitor.view.filter
            box.remove_class("hidden")
        self._columns(self.app.monitor.view.view)

    def on_resize(self, event) -> None:
        self._columns(self.shown_view or self.app.monitor.view.view)
        s = self.app.monitor.latest
        if s is not None:
            self._apply_rows(s)

    # ---- columns ------------------------------------------------------------------------
    def _columns(self, view: str) -> bool:
        """Put the view's columns that fit the screen's width on the table; True when they
        changed (the rows are then built afresh)."""
        width = self.size.width or self.app.size.width or 80
        want = fit(VIEW_COLUMNS.get(view, VIEW_COLUMNS["connections"]), width)
        if view == self.shown_view and want == self.shown_cols:
            return False
        table = self.query_one("#flows", DataTable)
        table.clear(columns=True)
        for c, w in want:
            table.add_column(c.label, key=c.key, width=w)
        self.shown_cols, self.shown_view = want, view
        self.app.row_cache.clear()
        self.app.row_order = []
        return True

    # ---- actions ----------------------------------------------------------------------
    def action_view(self, view: str) -> None:
        v = self.app.monitor.view
        if v.view == view:
            return
        sort, rev = DEFAULT_SORT[view]
        self.app.set_view(view=view, sort=sort, reverse=rev, group="")

    def action_endpoints(self) -> None:
        v = self.app.monitor.view
        if v.view == "services":
            self.app.set_view(endpoints=not v.endpoints)

    def action_window(self) -> None:
        v = self.app.monitor.view
        if v.view in ("services", "processes"):
            i = WINDOW_CHOICES.index(v.window) if v.window in WINDOW_CHOICES else 0
            self.app.set_view(window=WINDOW_CHOICES[(i + 1) % len(WINDOW_CHOICES)])

    def action_focus_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_leave_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.value:
            box.add_class("hidden")
        if self.app.monitor.view.group and not box.has_focus:
            self.app.set_view(group="")  # back from a service's requests
        self.query_one("#flows", DataTable).focus()

    def action_problems(self) -> None:
        self.app.set_view(problems=not self.app.monitor.view.problems)

    def action_pause(self) -> None:
        self.app.paused = not self.app.paused
        self.app.apply(force=True)

    def action_sort(self, step: int) -> None:
        v = self.app.monitor.view
        keys = [c.key for c, _w in self.shown_cols if c.key != "bar"]
        cur = keys.index(v.sort) if v.sort in keys else -1
        nxt = keys[(cur + step) % len(keys)]
        self.app.set_view(sort=nxt, reverse=nxt not in ASCENDING)

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
        if key == "bar":
            return
        v = self.app.monitor.view
        if v.sort == key:
            self.app.set_view(reverse=not v.reverse)
        else:
            self.app.set_view(sort=key, reverse=key not in ASCENDING)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "flows" or event.row_key.value is None:
            return
        key = event.row_key.value
        v = self.app.monitor.view
        row = next((r for r in self.app.row_cache.get(key, ())[:1]), None)
        if v.view == "connections":
            self.app.open_flow(int(key))
        elif v.view == "requests":
            fid, index = key.split(":")
            self.app.open_flow(int(fid), exchange=int(index))
        elif v.view == "services" and row is not None:
            self.app.set_view(view="requests", sort="total", reverse=True, group=key)
        elif v.view == "processes" and row is not None and row.proc is not None \
                and row.proc.pid is not None:
            box = self.query_one("#filter", Input)
            box.value = f"pid:{row.proc.pid}"
            box.remove_class("hidden")
            sort, rev = DEFAULT_SORT["connections"]
            self.app.set_view(view="connections", sort=sort, reverse=rev, filter=box.value)

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
        t.append(f" · requests {fmt.count(s.requests)}")
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
        st.append(f"{VIEWS.index(v.view) + 1 if v.view in VIEWS else 1} "
                  f"{VIEW_TITLES.get(v.view, v.view)}", style="bold reverse")
        if v.view == "services":
            st.append(" per endpoint" if v.endpoints else " per service")
        if v.view in ("services", "processes"):
            st.append(" · " + ("whole capture" if v.window is None else f"last {v.window} s"))
        if v.view == "processes" and not s.procmap:
            st.append(" · no local processes: a capture file has none (live only)",
                      style="yellow")
        if v.group:
            st.append(" · of ")
            st.append_text(fmt.untrusted(v.group, 60, "bold"))
            st.append(" (Esc: all)")
        arrow = "↓" if v.reverse else "↑"
        labels = {c.key: c.label for c in VIEW_COLUMNS.get(v.view, ())}
        st.append(f" · sort {labels.get(v.sort, v.sort)} {arrow}")
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
        view = s.view.view if s.view.view in VIEWS else "connections"
        table = self.query_one("#flows", DataTable)
        if self._columns(view):
            self._rebuild_rows(table, s, None)
            return
        self._add_rest()  # the previous rebuild's rows below the screen, if still to add
        cache: dict = self.app.row_cache
        keep_key = None
        if table.row_count:
            try:
                keep_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            except Exception:  # noqa: BLE001 - an empty or stale cursor
                keep_key = None
        wanted = {row_key(r): r for r in s.rows}
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
        cols = [c.key for c, _w in self.shown_cols]
        cells_of = CELLS[view]
        moved = False
        for key, r in wanted.items():
            old = cache.get(key)
            # an unchanged row (equal, field by field: rows arrive pickled from the worker,
            # never the same object) needs nothing, but an open connection's age
            age = None if view != "connections" or r.closed else int(s.now - r.start)
            if old is not None and old[1] == age and old[0] == r:
                continue
            cells = _cells(cells_of(r, s.now), cols)
            if old is None:
                table.add_row(*cells, key=key)
                moved = True
            else:
                # the cache holds the very cells the table holds (the sort below finds rows
                # by their first cell's identity)
                kept = list(old[2])
                for i, (a, b) in enumerate(zip(old[2], cells, strict=True)):
                    if not same_cell(a, b):
                        table.update_cell(key, cols[i], b)
                        kept[i] = b
                        moved = True
                cells = tuple(kept)
            cache[key] = (r, age, cells)
        order = [row_key(r) for r in s.rows]
        if moved or order != self.app.row_order:
            # DataTable sorts by cell values: rank each row by its first cell (one object
            # per row, kept in the cache)
            rank = {id(cache[k][2][0]): i for i, k in enumerate(order)}
            table.sort(cols[0], key=lambda cell: rank.get(id(cell), 1 << 30))
            self.app.row_order = order
        if keep_key is not None and keep_key.value in wanted:
            table.move_cursor(row=table.get_row_index(keep_key), animate=False)

    def _rebuild_rows(self, table: DataTable, s: Snapshot, keep_key) -> None:
        # clearing the table lets go of its render caches, tens of thousands of objects in
        # reference cycles (Textual's LRU caches): the cyclic collector would walk them before
        # the new rows are painted (30-130 ms). Collect after the paint instead.
        if gc.isenabled():
            gc.disable()
            self.call_after_refresh(self._collect)
        cache: dict = self.app.row_cache
        cache.clear()
        table.clear()
        self._rest = None
        rows = s.rows
        # the rows on screen first, the others right after the screen shows them: a new
        # view appears at the cost of one screenful (DataTable measures every added cell)
        first = max(table.size.height, 24) + 8
        if keep_key is not None:
            at = next((i for i, r in enumerate(rows) if row_key(r) == keep_key.value), -1)
            first = max(first, at + 8)
        self._add_rows(table, s, rows[:first])
        self.app.row_order = [row_key(r) for r in rows]
        if len(rows) > first:
            self._rest = (s, rows[first:])
            self.call_after_refresh(self._add_rest)
        if keep_key is not None and keep_key.value in cache:
            table.move_cursor(row=table.get_row_index(keep_key), animate=False)

    def _collect(self) -> None:
        gc.enable()
        gc.collect(1)  # the cleared table's cycles are young: generations 0 and 1

    def _add_rows(self, table: DataTable, s: Snapshot, rows) -> None:
        cache: dict = self.app.row_cache
        view = s.view.view if s.view.view in VIEWS else "connections"
        cols = [c.key for c, _w in self.shown_cols]
        cells_of = CELLS[view]
        for r in rows:
            key = row_key(r)
            cells = _cells(cells_of(r, s.now), cols)
            age = None if view != "connections" or r.closed else int(s.now - r.start)
            cache[key] = (r, age, cells)
            table.add_row(*cells, key=key)

    def _add_rest(self) -> None:
        """The rows below the screen of the last rebuild (none if a snapshot came since)."""
        rest, self._rest = self._rest, None
        if rest is None or not self.is_mounted:
            return
        try:
            self._add_rows(self.query_one("#flows", DataTable), *rest)
        except NoMatches:  # the app is closing: its widgets are already gone
            return


class TerminalOut:
    """The file Textual's output thread writes to (its driver's stderr), for a terminal that
    can go away: once a write or flush fails (EIO: hung up; EPIPE), the rest are dropped.
    Textual's thread died on that error, its queue (30 writes) then filled, and the next
    write blocked the event loop for good: no signal could end the dashboard any more."""

    def __init__(self, file) -> None:
        self._file = file
        self.gone = False

    def write(self, text: str) -> None:
        if not self.gone:
            try:
                self._file.write(text)
            except (OSError, ValueError):
                self.gone = True

    def flush(self) -> None:
        if not self.gone:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self.gone = True

    def fileno(self) -> int:
        return self._file.fileno()


class TcpwatchApp(App):
    TITLE = "tcpwatch"
    CSS = """
    #hdr { height: auto; background: $panel; }
    #status { height: auto; color: $text-muted; }
    #filter { height: 1; border: none; padding: 0 1; }
    #filter.hidden { display: none; }
    #flows { height: 1fr; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(self, monitor: Monitor, start: bool = True,
                 signals: Signals | None = None, exit_deadline: float | None = None) -> None:
        super().__init__()
        self.monitor = monitor
        # the command line's process only (never a test's): seconds after a signal by which
        # the process ends, whatever still hangs
        self.exit_deadline = exit_deadline
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
        # the normal path is bounded (the worker gets 17 s to reap its capture); should
        # anything in it still hang, the process ends anyway: a signal always works
        if self.exit_deadline is not None:
            deadline = threading.Timer(self.exit_deadline, _exit_now)
            deadline.daemon = True
            deadline.start()
        self.exit()

    def get_driver_class(self):
        """Textual's own driver, writing through TerminalOut where it drives a terminal."""
        base = super().get_driver_class()
        try:
            from textual.drivers.linux_driver import LinuxDriver
        except ImportError:  # (not on this platform)
            return base
        if not issubclass(base, LinuxDriver):
            return base

        class Driver(base):  # type: ignore[valid-type, misc]
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                self._file = TerminalOut(self._file)

        return Driver

    def on_mount(self) -> None:
        self._guard_resume()
        self.push_screen(MainScreen())
        quitting = self.signals is not None and self.signals.received is not None
        if self._start and not quitting:
            self.monitor.start()
        # the monitor publishes SNAPSHOT_HZ snapshots a second (more when poked by a key);
        # checking for a new one is one attribute read, so look often: keys feel immediate
        self.set_interval(UI_CHECK_S, self.apply)

    def _guard_resume(self) -> None:
        """Textual's terminal driver resumes on SIGCONT (after Ctrl+Z: fg). The kernel sends
        SIGCONT along with SIGHUP when the terminal goes away, and on a hung-up terminal
        Textual's own check (isatty, which then fails) let it start a second output thread,
        which died writing to it; the exit path then waited forever on that thread's full
        queue (one full test run in three under load, until the exit deadline). A SIGCONT
        resumes only with the terminal still there and no signal to quit received."""
        resume = signal.getsignal(signal.SIGCONT)
        if not callable(resume) or threading.current_thread() is not threading.main_thread():
            return  # (not a terminal driver's: headless, a test's pilot)
        try:
            fd = sys.__stdout__.fileno()
        except (AttributeError, ValueError, OSError):
            return

        def on_cont(signum, frame) -> None:
            if self.signals is not None and self.signals.received is not None:
                return  # quitting
            if not os.isatty(fd):  # hung up: SIGHUP is here or on its way
                return
            resume(signum, frame)

        signal.signal(signal.SIGCONT, on_cont)

    def on_unmount(self) -> None:
        self.monitor.stop()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Explain every column, badge and key", self.action_help)
        for i, view in enumerate(VIEWS, 1):
            yield SystemCommand(f"View: {VIEW_TITLES[view]} ({i})",
                                f"Show the {VIEW_TITLES[view]} view", self._cmd("view", view))
        yield SystemCommand("Services per endpoint / per service (e)",
                            "Services view: group by endpoint or by service",
                            self._cmd("endpoints"))
        yield SystemCommand("Percentile window (w)", "Whole capture, last 10 s, last 60 s",
                            self._cmd("window"))
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
        fields = {k: getattr(v, k) for k in VIEW_FIELDS}
        fields.update(changes)
        self.monitor.view = ViewSpec(**fields)
        self.monitor.poke()
        main = self._main()
        if main is not None and main.is_mounted:
            main.show_status(self.monitor.latest, self.paused)

    def open_flow(self, fid: int, exchange: int | None = None) -> None:
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
        self.push_screen(FlowScreen(fid, exchange))

    def apply(self, force: bool = False) -> None:
        s = self.monitor.latest
        if s is None or (s.seq == self._applied and not force):
            return
        self._applied = s.seq
        self.applied_snapshots += 1
        t0 = time.perf_counter()
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
