"""Display formatting: numbers in the units people read (humanize), and untrusted strings made
inert (no Rich markup, no terminal controls: rich.text.Text is never parsed as markup, and
tcpwatch.safe.inert escapes control characters)."""

from __future__ import annotations

import humanize
from rich.text import Text

from ..safe import inert

NONE = "—"


def dur(s: float | None) -> str:
    """A duration: 87µs, 12.3ms, 1.24s, 3m05s, 2h04m."""
    if s is None:
        return NONE
    if s < 0:
        s = 0.0
    if s < 1e-3:
        return f"{s * 1e6:.0f}µs"
    if s < 1:
        return f"{s * 1e3:.1f}ms" if s < 0.1 else f"{s * 1e3:.0f}ms"
    if s < 60:
        return f"{s:.2f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def clock(epoch: float) -> str:
    """A capture time of day, local: 14:03:07.250."""
    import time
    lt = time.localtime(epoch)
    return f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d}.{int(epoch % 1 * 1000):03d}"


def size(n: float | None) -> str:
    if n is None:
        return NONE
    if n < 1024:
        return f"{int(n)} B"
    return humanize.naturalsize(n, binary=True, format="%.1f")


def rate(bps: float | None) -> str:
    if not bps:
        return "0"
    return size(bps) + "/s"


def count(n: int | float) -> str:
    return humanize.intcomma(int(n))


def per_s(n: float) -> str:
    if n >= 10_000:
        return humanize.intword(int(n), format="%.1f").replace(" thousand", "k") \
            .replace(" million", "M")
    return f"{n:.0f}"


def untrusted(s: str | None, limit: int = 200, style: str = "") -> Text:
    """Text from the wire or another process, shown inert and bounded."""
    if s is None:
        return Text(NONE, style=style)
    s = inert(s)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return Text(s, style=style)
