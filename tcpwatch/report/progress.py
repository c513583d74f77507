"""Progress of a long read on stderr (only when stderr is a terminal): packets, bytes, rate
and, for a file, the share read and the time left. One line, rewritten in place, cleared at
the end so the report's own output is untouched."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from ..capture.record import CaptureStats

PERIOD_S = 0.5


def line(name: str, st: CaptureStats, elapsed: float) -> str:
    """The progress line: one definition, shared with the dashboard's header."""
    rate = st.packets / elapsed if elapsed > 0 else 0.0
    parts = [f"reading {name}"]
    frac = st.progress()
    if frac is not None:
        parts.append(f"{frac * 100:.0f}%")
    parts.append(f"{st.packets:,} packets")
    parts.append(f"{st.bytes / (1 << 20):,.1f} MiB")
    parts.append(f"{rate:,.0f} pkt/s")
    if frac is not None and 0 < frac < 1 and elapsed > 0:
        parts.append(f"ETA {eta(elapsed, frac)}")
    return " · ".join(parts)


def eta(elapsed: float, frac: float) -> str:
    left = elapsed * (1 - frac) / frac
    m, s = divmod(int(left + 0.5), 60)
    return f"{m}:{s:02d}" if m else f"{s}s"


class Progress:
    def __init__(self, name: str, stats: CaptureStats, out: TextIO) -> None:
        self.name, self.stats, self.out = name, stats, out
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="progress")
        self._width = 0
        self.lines = 0

    def start(self) -> Progress:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(PERIOD_S):
            text = line(self.name, self.stats, time.monotonic() - self._t0)
            self._write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.lines += 1

    def _write(self, s: str) -> None:
        try:
            self.out.write(s)
            self.out.flush()
        except (OSError, ValueError):
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        if self._width:
            self._write("\r" + " " * self._width + "\r")  # leave the terminal clean
