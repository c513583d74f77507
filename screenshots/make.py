"""Regenerate the README's screenshots from the bundled capture (recorded from real loopback
traffic by tests/lab/record_demo.py): `python screenshots/make.py`. Drives the real app with
Textual's pilot and saves SVGs; nothing is drawn by hand."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tcpwatch.capture.session import Capture  # noqa: E402
from tcpwatch.cli import demo_capture  # noqa: E402
from tcpwatch.monitor import Monitor  # noqa: E402
from tcpwatch.ui.app import TcpwatchApp  # noqa: E402

SIZE = (180, 45)


async def loaded(app, pilot) -> None:
    for _ in range(300):
        if app.caught_up:
            app.screen.query_one("#flows").move_cursor(row=0, animate=False)
            await pilot.pause(0.1)
            return
        await pilot.pause(0.05)
    raise SystemExit("the demo capture did not load")


async def shoot() -> list[str]:
    app = TcpwatchApp(Monitor(Capture("fast", file=demo_capture())))
    saved = []

    def save(name: str) -> None:
        app.save_screenshot(filename=f"{name}.svg", path=str(HERE))
        saved.append(f"{name}.svg")

    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        save("dashboard")
        await pilot.press("f1")
        await pilot.pause(0.3)
        save("help")
        await pilot.press("escape")
        for fid, name, tab in ((0, "drilldown-requests", "x"),
                               (9, "drilldown-zero-window", None),
                               (10, "drilldown-loss-plots", "g"),
                               (10, "drilldown-packets-dissection", "k")):
            app.open_flow(fid)
            for _ in range(200):
                await pilot.pause(0.05)
                if getattr(app.screen, "version", -1) >= 0:
                    break
            if tab:
                await pilot.press(tab)
                await pilot.pause(0.3)
            if tab == "k":
                await pilot.press("down", "down", "down", "enter")
                await app.workers.wait_for_complete()
                await pilot.pause(0.3)
            save(name)
            await pilot.press("escape")
        await pilot.press("q")
    return saved


if __name__ == "__main__":
    for name in asyncio.run(shoot()):
        print(HERE / name)
