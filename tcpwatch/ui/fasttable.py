"""A DataTable that paints its one-line text cells without Rich's general layout.

Textual's DataTable renders every cell through Rich's layout engine (Padding, Styled,
render_lines, wrapping): about 0.2 ms a cell, so a fresh screenful of a wide table took
~100 ms, most of a view switch. Our cells are one-line `Text`s in rows of height 1: for
those this module produces the very same segments directly (tests/test_fasttable.py renders
both ways and compares them), and measures their width as Rich does (the longest line's
cell length). Anything else (headers, markup strings, several lines, centred text) takes
DataTable's own path.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable, _data_table

_measure = _data_table.measure
_NULL = Style()
_NL = Text("\n")


def _fast_measure(console, renderable, default, *, container_width=None) -> int:
    """textual.render.measure for a one-line Text: its cell length (Text.__rich_measure__
    takes the longest of its lines; a printable string has one)."""
    if type(renderable) is Text and container_width is None:
        plain = renderable.plain
        if plain.isprintable():
            return cell_len(plain)
    return _measure(console, renderable, default, container_width=container_width)


# DataTable measures every cell of every added row with this module-level function
_data_table.measure = _fast_measure


def text_line(console, cell: Text, width: int, pad: int, pre: Style,
              post: Style) -> list[Segment] | None:
    """The segments of `cell` in a row of height 1, `width` columns wide with `pad` spaces each
    side, as console.render_lines(Styled(Padding(cell, (0, pad)), pre, post)) gives them; None
    when this fast path does not apply."""
    inner = width - 2 * pad
    justify = cell.justify or "default"
    if inner < 1 or justify not in ("default", "left", "right") or cell.tab_size \
            or not cell.plain.isprintable():
        return None
    overflow = cell.overflow or "fold"
    line = cell.copy()
    # Text.wrap with no_wrap (a height-1 row): justify, then truncate (rich.text.Text.wrap)
    if justify == "right":
        line.rstrip()
        line.truncate(inner, overflow=overflow)
        line.pad_left(inner - cell_len(line.plain))
    elif justify == "left":
        line.truncate(inner, overflow=overflow, pad=True)
    line.truncate(inner, overflow=overflow)
    # as Text.__rich_console__: joined, the text's own style becomes a span
    joined = _NL.join([line])
    segs = Segment.adjust_line_length([s for s in joined.render(console, end="") if s.text],
                                      inner, _NULL, pad=True)
    if pad:
        side = Segment(" " * pad, _NULL)
        segs = [side, *segs, side]
    return Segment.adjust_line_length(list(Segment.apply_style(segs, pre, post)), width,
                                      pad=True)


class FastTable(DataTable):
    """DataTable with text_line() for its body cells."""

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        if row_index < self.fixed_rows or column_index < self.fixed_columns:
            return super()._render_cell(row_index, column_index, base_style, width, cursor,
                                        hover)  # headers, labels, fixed cells
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor,
               self._update_count, self._pseudo_class_state)
        cache = self._cell_render_cache
        hit = cache.get(key)
        if hit is not None:
            return hit
        row = self.rows.get(row_key)
        cell = self._get_row_renderables(row_index)[1][column_index] if row is not None \
            else None
        if row is None or row.height != 1 or type(cell) is not Text:
            return super()._render_cell(row_index, column_index, base_style, width, cursor,
                                        hover)
        component, post = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) \
            + component
        line = text_line(self.app.console, cell, width, self.cell_padding, pre, post)
        if line is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor,
                                        hover)
        cache[key] = lines = [line]
        return lines
