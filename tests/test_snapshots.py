"""SVG snapshots of the main screens on real captures (pytest-textual-snapshot; Textual and
plotext versions pinned in pyproject.toml). Update after a deliberate UI change with
`pytest tests/test_snapshots.py --snapshot-update`, and look at the report it writes."""

from __future__ import annotations

import pytest

from tcpwatch.capture.session import Capture
from tcpwatch.cli import demo_capture
from tcpwatch.monitor import Monitor
from tcpwatch.ui.app import TcpwatchApp

pytestmark = pytest.mark.timeout(120)
SIZE = (180, 42)


def app_for(path: str) -> TcpwatchApp:
    return TcpwatchApp(Monitor(Capture("fast", file=path)))


async def wait_loaded(pilot) -> None:
    app = pilot.app
    for _ in range(300):
        if app.caught_up:
            # the cursor follows whichever connection it was on while the file loaded (a
            # timing matter): put it on the first row for a deterministic picture
            app.screen.query_one("#flows").move_cursor(row=0, animate=False)
            await pilot.pause(0.1)
            return
        await pilot.pause(0.05)
    raise AssertionError("capture never finished loading")


def drill(fid: int, tab: str | None = None):
    async def run(pilot) -> None:
        await wait_loaded(pilot)
        pilot.app.open_flow(fid)
        for _ in range(200):
            await pilot.pause(0.05)
            scr = pilot.app.screen
            if getattr(scr, "version", -1) >= 0:
                break
        if tab:
            await pilot.press(tab)
        await pilot.pause(0.2)
    return run


def test_snapshot_demo_flow_table(snap_compare):
    assert snap_compare(app_for(demo_capture()), terminal_size=SIZE, run_before=wait_loaded)


def test_snapshot_demo_zero_window_overview(snap_compare):
    assert snap_compare(app_for(demo_capture()), terminal_size=SIZE, run_before=drill(9))


def test_snapshot_demo_loss_plots(snap_compare):
    assert snap_compare(app_for(demo_capture()), terminal_size=SIZE,
                        run_before=drill(10, "g"))


def test_snapshot_help(snap_compare):
    async def run(pilot):
        await wait_loaded(pilot)
        await pilot.press("f1")
        # the Markdown widget mounts its blocks over several frames: wait until it is whole
        await pilot.app.workers.wait_for_complete()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(1.0)
    assert snap_compare(app_for(demo_capture()), terminal_size=SIZE, run_before=run)


def test_snapshot_demo_requests_waterfall(snap_compare):
    assert snap_compare(app_for(demo_capture()), terminal_size=SIZE,
                        run_before=drill(0, "x"))


def view(keys: str):
    """The main screen after pressing `keys` (the views: 1-4, e, w), once its snapshot is in."""
    async def run(pilot) -> None:
        await wait_loaded(pilot)
        app = pilot.app
        for k in keys:
            await pilot.press(k)
            for _ in range(200):
                await pilot.pause(0.05)
                s = app.monitor.latest
                if s.view == app.monitor.view and app._applied == s.seq:
                    break
        app.screen.query_one("#flows").move_cursor(row=0, animate=False)
        await pilot.pause(0.2)
    return run


@pytest.fixture
def utc(monkeypatch):
    """The Requests view shows times of day: in UTC, so the picture is the same anywhere."""
    import time
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("keys", ["2", "3", "3e", "4"])
def test_snapshot_demo_views(snap_compare, utc, keys):
    assert snap_compare(app_for(demo_capture()), terminal_size=SIZE, run_before=view(keys))


@pytest.mark.parametrize("keys", ["1", "2", "3e"])
def test_snapshot_demo_views_80x24(snap_compare, utc, keys):
    assert snap_compare(app_for(demo_capture()), terminal_size=(80, 24), run_before=view(keys))
