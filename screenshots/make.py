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
        for keys, name in (("2", "view-requests"), ("3e", "view-services-endpoints"),
                           ("3", "view-services")):
            for k in keys:
                await pilot.press(k)
                for _ in range(200):
                    await pilot.pause(0.05)
                    s = app.monitor.latest
                    if s.view == app.monitor.view and app._applied == s.seq:
                        break
            app.screen.query_one("#flows").move_cursor(row=0, animate=False)
            await pilot.pause(0.2)
            save(name)
        await pilot.press("1")
        await pilot.pause(0.3)
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


SERVER = """
import ctypes, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
ctypes.CDLL(None).prctl(15, b"api-server", 0, 0, 0)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(0.3)
        body = b"x" * (1_000_000 if self.path == "/export" else 500)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""
CLIENT = """
import ctypes, http.client, sys, time
ctypes.CDLL(None).prctl(15, b"web-frontend", 0, 0, 0)
port, end, n = int(sys.argv[1]), time.time() + 60, 0
keep = http.client.HTTPConnection("127.0.0.1", port)
while time.time() < end:
    for path in ("/users/%d" % n, "/health", "/slow/report"):
        keep.request("GET", path)
        keep.getresponse().read()
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/export")
    c.getresponse().read()
    c.close()
    n += 1
"""


async def shoot_when(app, pilot, name: str, tries: int, ready) -> str:
    """Wait (tries x 50 ms at most) for a snapshot that satisfies ready(), let the table
    settle, put the cursor on the first row and save the screen as `name`."""
    for _ in range(tries):
        await pilot.pause(0.05)
        s = app.monitor.latest
        if s is not None and ready(s):
            break
    await pilot.pause(0.6)
    app.screen.query_one("#flows").move_cursor(row=0, animate=False)
    await pilot.pause(0.2)
    app.save_screenshot(filename=name, path=str(HERE))
    return name


async def shoot_live() -> list[str]:
    """The Processes view needs local processes: live on loopback, a server and a client
    started here (root and dumpcap needed; skipped otherwise)."""
    import os
    import shutil
    import socket
    import subprocess

    from tcpwatch.procmap import ProcMap
    if os.geteuid() != 0 or not shutil.which("dumpcap"):
        print("not root or no dumpcap: the Processes view's screenshot is left as it is")
        return []
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-c", SERVER, str(port)])]
    saved = []
    try:
        cap = Capture("fast", iface="lo", bpf=f"tcp port {port}")
        app = TcpwatchApp(Monitor(cap, mode="live", procmap=ProcMap()))
        async with app.run_test(size=SIZE) as pilot:
            procs.append(subprocess.Popen([sys.executable, "-c", CLIENT, str(port)]))
            await pilot.press("4")
            saved.append(await shoot_when(
                app, pilot, "view-processes.svg", 400,
                lambda s: s.view.view == "processes" and len(s.rows) >= 2
                and all(r.served or r.sent for r in s.rows) and s.requests > 40))
            await pilot.press("q")
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return saved


async def shoot_databases() -> list[str]:
    """PostgreSQL and MariaDB live (the lab's servers, tests/lab/backends.py): pgbench, a
    pg_sleep and a SLEEP, an error each; the Services view per endpoint and the Requests
    view. Root, dumpcap, PostgreSQL and MariaDB needed; skipped otherwise."""
    import os
    import shutil
    import threading

    sys.path.insert(0, str(HERE.parent / "tests"))
    from lab import backends as lab

    from tcpwatch.procmap import ProcMap
    if os.geteuid() != 0 or not shutil.which("dumpcap") or lab.pg_bindir() is None \
            or not shutil.which("mariadbd"):
        print("not root, or no dumpcap, PostgreSQL or MariaDB: database screenshots left")
        return []
    saved = []
    with lab.postgres(auth="md5") as pg, lab.mariadb() as my:
        pg.pgbench("-i", "-q")
        cap = Capture("fast", iface="lo", bpf=f"tcp port {pg.port} or tcp port {my.port}")
        app = TcpwatchApp(Monitor(cap, mode="live", procmap=ProcMap()))

        def load() -> None:
            # at a steady 300 transactions/s: the monitor shares this process with the pilot
            pg.pgbench("-n", "-T", "3", "-c", "2", "-R", "300")
            pg.psql(input="SELECT pg_sleep(0.3);\nSELECT * FROM missing_table;\n")
            my.client("SELECT SLEEP(0.2);\nSELECT 1;\nSELECT * FROM missing_table;\n")

        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(1.0)  # dumpcap listening
            worker = threading.Thread(target=load)
            worker.start()
            while worker.is_alive():
                await pilot.pause(0.1)
            await pilot.press("3")
            await pilot.press("e")
            saved.append(await shoot_when(
                app, pilot, "view-databases.svg", 200,
                lambda s: s.view.endpoints and any("SLEEP" in r.name for r in s.rows)))
            await pilot.press("q")
    return saved


if __name__ == "__main__":
    for name in asyncio.run(shoot()) + asyncio.run(shoot_live()) + asyncio.run(
            shoot_databases()):
        print(HERE / name)
