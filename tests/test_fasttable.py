"""ui/fasttable.py paints one-line text cells itself: the segments must be exactly those of
Rich's own layout (what DataTable would have drawn), and the widths those Rich measures."""

from __future__ import annotations

import dataclasses

from conftest import wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.padding import Padding
from rich.style import Style
from rich.text import Text
from textual.render import measure
from textual.renderables.styled import Styled

from tcpwatch.capture.session import Capture
from tcpwatch.cli import demo_capture
from tcpwatch.monitor import VIEWS, Monitor
from tcpwatch.ui import fasttable
from tcpwatch.ui.columns import CELLS

CONSOLE = Console(width=200, color_system="truecolor", force_terminal=True)
STYLES = ["", "dim", "bold red", "yellow on blue", "italic", "reverse", "bold #ff8800"]


def rich_line(cell: Text, width: int, pad: int, pre: Style, post: Style) -> list:
    options = CONSOLE.options.update_dimensions(width, 1).update(no_wrap=True)
    return [visible(line) for line in CONSOLE.render_lines(
        Styled(Padding(cell, (0, pad)), pre_style=pre, post_style=post), options)]


def visible(line: list) -> list:
    """A line's segments without the empty ones (Rich leaves some, which draw nothing)."""
    return [s for s in line if s.text]


@st.composite
def cells(draw) -> Text:
    t = Text(justify=draw(st.sampled_from([None, "left", "right"])),
             overflow=draw(st.sampled_from([None, "fold", "crop", "ellipsis"])),
             style=draw(st.sampled_from(STYLES)))
    for _ in range(draw(st.integers(0, 4))):
        t.append(draw(st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S",
                                                                        "Zs"]),
                              max_size=12)), style=draw(st.sampled_from(STYLES)))
    return t


@settings(max_examples=400, deadline=None)
@given(cells(), st.integers(0, 30), st.integers(0, 2), st.sampled_from(STYLES),
       st.sampled_from(STYLES))
def test_text_line_is_richs_own(cell: Text, width: int, pad: int, pre: str, post: str) -> None:
    pre_s, post_s = Style.parse(pre) if pre else Style(), Style.parse(post) if post else Style()
    got = fasttable.text_line(CONSOLE, cell, width, pad, pre_s, post_s)
    if got is None:  # not for the fast path: DataTable's own renders it
        assert width <= 2 * pad or not cell.plain.isprintable()
        return
    assert visible(got) == rich_line(cell, width, pad, pre_s, post_s)[0]


@settings(max_examples=200, deadline=None)
@given(cells())
def test_width_is_richs_own(cell: Text) -> None:
    assert fasttable._fast_measure(CONSOLE, cell, 1) == fasttable._measure(CONSOLE, cell, 1)
    assert measure(CONSOLE, cell, 1) == fasttable._fast_measure(CONSOLE, cell, 1)


def test_our_cells_take_the_fast_path() -> None:
    """Every cell the views make (columns.py, on the demo's rows) is drawn by the fast path,
    identically."""
    mon = Monitor(Capture("fast", file=demo_capture())).start()
    try:
        wait_until(lambda: mon.latest is not None and mon.latest.done, timeout=30)
    finally:
        mon.stop()
    n = 0
    for view in VIEWS:
        mon.view = dataclasses.replace(mon.view, view=view)
        mon._publish()
        for r in mon.latest.rows:
            for c in CELLS[view](r, mon.latest.now).values():
                if not isinstance(c, Text):
                    continue
                for width in (4, 9, 30):
                    got = fasttable.text_line(CONSOLE, c, width, 1, Style(bold=True), Style())
                    assert got is not None, c
                    assert visible(got) == rich_line(c, width, 1, Style(bold=True), Style())[0]
                    n += 1
    assert n > 100
