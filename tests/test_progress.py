"""Loading a large file shows progress: on stderr for `report` when stderr is a terminal
(packets, bytes, rate, share read, ETA; the line is cleared at the end and nothing is printed
when stderr is not a terminal), and in the dashboard's header."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "bench"))
import shapes  # noqa: E402

from tcpwatch.capture.record import CaptureStats  # noqa: E402
from tcpwatch.report.progress import eta, line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "short-conns.pcap"
    shapes.write(open(path, "wb"), "short", 40_000)  # 320,000 packets
    return path


def test_progress_line_definition():
    st = CaptureStats()
    st.packets, st.bytes, st.size, st.read = 250_000, 50 << 20, 1000, 250
    assert line("x.pcap", st, 2.0) == ("reading x.pcap · 25% · 250,000 packets · 50.0 MiB · "
                                       "125,000 pkt/s · ETA 6s")
    assert eta(90.0, 0.5) == "1:30"
    st.size = None  # standard input: no share, no ETA
    assert line("-", st, 2.0) == "reading - · 250,000 packets · 50.0 MiB · 125,000 pkt/s"


def test_report_progress_on_a_terminal(big):
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "tcpwatch", "report", "-r", str(big),
                          "--limit", "1"], stdout=subprocess.PIPE, stderr=slave, cwd=ROOT)
    os.close(slave)
    err = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        err += chunk
    out = p.stdout.read().decode()
    assert p.wait(timeout=60) == 0
    os.close(master)
    text = err.decode()
    shown = [s for s in text.split("\r") if s.strip()]
    assert shown, text
    first = shown[0]
    assert re.fullmatch(r"reading short-conns\.pcap · \d+% · [\d,]+ packets · [\d.,]+ MiB · "
                        r"[\d,]+ pkt/s( · ETA [\d:]+s?)?\s*", first), first
    assert text.endswith("\r"), repr(text[-80:])  # the line is cleared at the end
    assert "320,000 packets = TCP 320,000" in out


def test_no_progress_when_stderr_is_not_a_terminal(big):
    p = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "-r", str(big), "--limit",
                        "1"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stderr == ""


def test_dashboard_header_shows_progress(big):
    from tcpwatch.capture.session import Capture
    from tcpwatch.monitor import Monitor
    from tcpwatch.ui.app import TcpwatchApp

    async def go():
        app = TcpwatchApp(Monitor(Capture("fast", file=str(big))))
        seen = []
        async with app.run_test(size=(200, 40)) as pilot:
            for _ in range(600):
                await pilot.pause(0.1)
                hdr = str(app.screen.query_one("#hdr").render())
                if "reading…" in hdr:
                    seen.append(hdr)
                if app.caught_up:
                    break
            assert app.caught_up
            final = str(app.screen.query_one("#hdr").render())
        assert seen, "no progress shown while loading"
        assert re.search(r"reading… \d+% at [\d.,]+k? pkt/s", seen[-1]), seen[-1]
        assert any("ETA" in h for h in seen)
        assert "reading…" not in final
    asyncio.run(go())
