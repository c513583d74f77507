"""The dashboard's four views (Connections, Requests, Services, Processes): switched by keys,
usable at 80x24 and 120x40 (the key columns on screen), Enter leading where it should, the
filter box out of the way until `/`, and rows left alone when a snapshot changes nothing."""

from __future__ import annotations

import asyncio

import pytest
from conftest import pilot_until
from textual.widgets import DataTable, Input

from tcpwatch.capture.session import Capture
from tcpwatch.cli import demo_capture
from tcpwatch.monitor import Monitor
from tcpwatch.ui.app import TcpwatchApp
from tcpwatch.ui.flow_screen import FlowScreen

pytestmark = pytest.mark.timeout(180)

# the columns a view is useless without, whatever the width
KEY_COLUMNS = {
    "1": ("connections", {"server", "state", "badges"}),
    "2": ("requests", {"request", "total", "think", "result", "badges"}),
    "3": ("services", {"name", "requests", "p99", "badges"}),
    "4": ("processes", {"name", "p99", "badges"}),
}


async def loaded(pilot) -> TcpwatchApp:
    app = pilot.app
    await pilot_until(pilot, lambda: app.caught_up, 60)
    return app


async def press_view(pilot, key: str) -> None:
    app = pilot.app
    await pilot.press(key)
    await pilot_until(pilot, lambda: app.monitor.latest.view == app.monitor.view
                      and app._applied == app.monitor.latest.seq)


def columns(app) -> set[str]:
    return {str(k.value) for k in app.screen.query_one("#flows", DataTable).columns}


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_every_view_is_usable(size):
    async def run():
        app = TcpwatchApp(Monitor(Capture("fast", file=demo_capture())))
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            box = app.screen.query_one("#filter", Input)
            assert not box.display  # no room taken until asked for
            for key, (view, needed) in KEY_COLUMNS.items():
                await press_view(pilot, key)
                assert app.monitor.view.view == view
                assert needed <= columns(app), (view, columns(app))
                table = app.screen.query_one("#flows", DataTable)
                # every column within the terminal: nothing needs a sideways scroll
                assert sum(c.get_render_width(table) for c in table.columns.values()) <= size[0]
                if view in ("connections", "requests", "services"):
                    assert table.row_count > 0
            await pilot.press("slash")
            assert box.display and box.has_focus
            await pilot.press("escape")
            assert not box.display
    asyncio.run(run())


def test_views_lead_where_enter_says():
    async def run():
        app = TcpwatchApp(Monitor(Capture("fast", file=demo_capture())))
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(pilot)
            await press_view(pilot, "2")
            rows = app.monitor.latest.rows
            assert rows[0].total == max(r.total for r in rows)  # slowest first
            assert rows[0].request == "GET /bulk"
            # Services per endpoint, slowest p99 first; Enter lists that endpoint's requests
            await press_view(pilot, "3")
            await press_view(pilot, "e")
            top = app.monitor.latest.rows[0]
            assert top.name == "GET /bulk" and top.p99 == pytest.approx(1.5247, rel=0.01)
            table = app.screen.query_one("#flows", DataTable)
            table.move_cursor(row=0)
            await pilot.press("enter")
            await pilot_until(pilot, lambda: app.monitor.latest.view.view == "requests"
                              and app._applied == app.monitor.latest.seq)
            assert app.monitor.view.group == top.key
            assert [r.request for r in app.monitor.latest.rows] == ["GET /bulk"]
            # Enter on a request: its connection, at that request
            table.move_cursor(row=0)
            await pilot.press("enter")
            await pilot_until(pilot, lambda: isinstance(app.screen, FlowScreen))
            scr = app.screen
            assert scr.fid == app.monitor.latest.rows[0].id
            reqs = scr.query_one("#reqs", DataTable)
            await pilot_until(pilot, lambda: reqs.row_count > 0 and reqs.has_focus)
    asyncio.run(run())


def test_unchanged_rows_are_not_rebuilt():
    """Rows arrive pickled from the worker: equal rows, never the same objects. A snapshot
    that changes nothing must leave the table's cells alone."""
    async def run():
        app = TcpwatchApp(Monitor(Capture("fast", file=demo_capture())))
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(pilot)
            import dataclasses
            s = app.monitor.latest
            before = {k: v[2] for k, v in app.row_cache.items()}
            copy = dataclasses.replace(s, seq=s.seq + 1000, rows=tuple(
                dataclasses.replace(r) for r in s.rows))
            assert all(a is not b for a, b in zip(copy.rows, s.rows, strict=True))
            app.monitor.latest = copy
            app.apply()
            after = {k: v[2] for k, v in app.row_cache.items()}
            assert before.keys() == after.keys()
            assert all(before[k] is after[k] for k in before)  # the same cells: untouched
    asyncio.run(run())
