"""The log view: a line-API ``Log`` that follows, wraps and highlights (the logs pane's body).

:class:`FollowLog` draws the lines (Textual's ``Log``: only the rows on screen are painted),
tells its pane when the user scrolls up (pause) or back to the end (resume), wraps long lines
and marks the current search match; :class:`LogHighlighter` colours errors, warnings and the
search's matches. The pane around it (:mod:`tui.ui.widgets.log_pane`) feeds it lines, keeps
the following state and runs the search; the view reaches the pane only through
:class:`LogHost`.

Wrapping (``w``, on by default): a long line continues on the next rows, broken after a space
near the edge (else at the edge: paths and hex strings fill their rows). Off, a line is cut
at the pane's edge and the view scrolls sideways (``←``/``→``), like ``less -S``. Wrapped rows
are counted per line (kept alongside the lines, so the cap on lines bounds them too) and the
rendered rows of a line are cached; a resize or a toggle re-counts and keeps the line at the
top of the view there (or the end, when following).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate
from typing import Protocol

from rich.cells import cell_len, get_character_cell_size
from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.strip import Strip
from textual.widgets import Log

from tui.ui import keys
from tui.ui.widgets.follow import UserScroll


class LogHost(Protocol):
    """What the log view asks of its pane (:class:`tui.ui.widgets.log_pane.LogPane`)."""

    paused: bool

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def wrap_changed(self) -> None: ...

    def open_search(self) -> None: ...

    def jump(self, direction: int) -> None: ...


class LogHighlighter(Highlighter):
    """Errors red, warnings yellow, llmdeck's run banners and readiness lines in colour.

    Styles are concrete (not theme names): the Log renders with the app's console, whose
    theme has no ``log.*`` names.
    """

    RULES = (
        (re.compile(r"(?i)\b(?:error|errors|failed|fatal|exiting due to|out of memory|GGML_ASSERT|Traceback|"
                    r"crashed|killed|abort(?:ed)?)\b.*"), Style(color="red", bold=True)),
        (re.compile(r"(?i)\b(?:warn|warning|deprecated)\b.*|^\S+ W \S+.*"), Style(color="yellow")),
        (re.compile(r"^(?:=====|-----) llmdeck:.*"), Style(color="cyan", bold=True)),
        (re.compile(r"(?:server is listening|model loaded|all slots are idle).*"), Style(color="green")),
    )

    MATCH = Style(color="black", bgcolor="yellow", bold=True)

    def __init__(self) -> None:
        self.search: re.Pattern | None = None  # set by the pane's search

    def highlight(self, text: Text) -> None:
        plain = text.plain
        for rx, style in self.RULES:
            m = rx.search(plain)
            if m:
                text.stylize(style, m.start(), m.end())
                break
        if self.search is not None:
            for m in self.search.finditer(plain):
                text.stylize(self.MATCH, m.start(), m.end())


def search_pattern(query: str) -> re.Pattern | None:
    """Literal, smart-case: case-insensitive unless the query has a capital letter."""
    if not query:
        return None
    return re.compile(re.escape(query), 0 if any(c.isupper() for c in query) else re.IGNORECASE)




class FollowLog(UserScroll, Log):
    """A Log that tells its pane (``pane``, a :class:`LogHost`) when the user scrolls up
    (pause) or back to the end (resume), and wraps long lines (``wrap``; ``w`` toggles).

    Only user input counts (keys, wheel, scrollbar drag): a resize or pruning of old lines
    moves ``scroll_y`` too and must not pause following.

    Wrapped, ``scroll_y`` and the virtual height count screen rows, not lines:
    :meth:`row_of_line` and :meth:`line_at_row` convert (the identity when not wrapped).
    """

    BINDINGS = keys.bindings("logs")
    DEFAULT_CSS = "FollowLog { scrollbar-size-vertical: 1; }"
    CURRENT = Style(bgcolor="grey30")

    def __init__(self, *args, wrap: bool = True, pane: LogHost | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.pane = pane
        self.wrap = wrap
        self._current_line: int | None = None
        self._wrap_width = 0  # the width the row counts were made for (0: not counted yet)
        self._rows: list[int] = []  # rows of each line at _wrap_width (wrapped only)
        self._total_rows = 0
        self._starts: list[int] | None = None  # first row of each line (built when drawn)
        self._pruned = 0  # lines pruned since the last clear: cache keys survive pruning
        self._wrap_cache: LRUCache[int, tuple[int, list[Strip]]] = LRUCache(1024)
        self.set_class(wrap, "-wrap")

    @property
    def current_line(self) -> int | None:
        """The line of the current search match (marked)."""
        return self._current_line

    @current_line.setter
    def current_line(self, y: int | None) -> None:
        if y != self._current_line:
            self._current_line = y
            self._wrap_cache.clear()

    def _render_line_strip(self, y: int, rich_style: Style):
        if y == self.current_line:
            rich_style = rich_style + self.CURRENT
        return super()._render_line_strip(y, rich_style)

    def _cells(self, line: str) -> int:
        """The line's width in cells: ``len`` (C speed) for ASCII without tabs, else ``cell_len``."""
        return len(line) if line.isascii() and "\t" not in line else cell_len(self._process_line(line))

    def _update_size(self, updates: int, lines: list[str]) -> None:
        """The widest line of a batch, measured here rather than in a thread per batch.

        ``Log`` starts a thread worker per ``write_lines`` that hands its result back with a
        blocking ``call_from_thread``; under a flood (50,000 lines/s) those workers queued
        up holding their batches and memory grew with the flood.
        """
        if lines:
            self._update_maximum_width(updates, max(map(self._cells, lines)))

    def _update_maximum_width(self, updates: int, size: int) -> None:
        if not self.wrap:
            super()._update_maximum_width(updates, size)
        elif updates == self._updates:
            self._width = max(size, self._width)  # for when wrapping is turned off

    # -- wrapping --------------------------------------------------------------------------

    def _row_count(self, line: str) -> int:
        if line.isascii() and "\t" not in line and len(line) <= self._wrap_width:
            return 1
        return len(self._spans(line, self._wrap_width))

    def _spans(self, line: str, width: int) -> list[tuple[int, int]]:
        """The rows of ``line`` as (start, end) cells of the rendered line.

        ASCII: a row ends after a space in its last quarter (a word is not cut in two; a space
        right at the edge is left out), else at the edge (a long path or hex string fills
        rows). Other text is cut at the edge, a double-width character that would straddle it
        starting the next row. Each row is a few ``str.rfind`` calls: cheap at 50,000 lines/s.
        """
        if line.isascii() and "\t" not in line:
            n = len(line)
            spans: list[tuple[int, int]] = []
            start, slack = 0, max(1, width // 4)
            while n - start > width:
                end = start + width
                sp = line.rfind(" ", end - slack, end + 1)
                if sp > start:
                    spans.append((start, min(sp + 1, end)))
                    start = sp + 1
                else:
                    spans.append((start, end))
                    start = end
            spans.append((start, n))
            return spans
        spans = []
        start = pos = 0
        for ch in self._process_line(line):
            w = get_character_cell_size(ch)
            if pos + w > start + width and pos > start:
                spans.append((start, pos))
                start = pos
            pos += w
        spans.append((start, pos))
        return spans

    def _text_width(self, size: Size | None = None) -> int:
        """The columns a wrapped row has: the widget's width less the vertical scrollbar."""
        size = size or self.size
        return max(1, size.width - self.scrollbar_gutter.right)

    def row_of_line(self, line: int) -> int:
        """The first screen row of ``line`` (an index into ``lines``)."""
        if not self.wrap or not self._rows:
            return line
        starts = self._row_starts()
        return starts[max(0, min(line, len(starts) - 1))]

    def line_at_row(self, row: int) -> int:
        """The line shown on screen row ``row``."""
        if not self.wrap or not self._rows:
            return row
        return max(0, bisect_right(self._row_starts(), row) - 1)

    def _row_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0, *accumulate(self._rows)][:-1]
        return self._starts

    def _recount(self, width: int) -> None:
        """Count every line's rows at ``width`` (a resize or turning wrapping on)."""
        self._wrap_width = width
        self._rows = [self._row_count(line) for line in self._lines]
        self._total_rows = sum(self._rows)
        self._starts = None
        self._wrap_cache.clear()
        self.virtual_size = Size(width, self._total_rows)

    def _following(self) -> bool:
        pane = self.parent_pane
        return pane is not None and not pane.paused

    def _anchor(self, line: int) -> None:
        """After re-counting: the end when following, else ``line`` at the top of the view."""
        if self._following():
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.scroll_to(x=0, y=self.row_of_line(line), animate=False, immediate=True)

    def set_wrap(self, wrap: bool) -> None:
        """Turn wrapping on or off, keeping the line at the top of the view (or following)."""
        if wrap == self.wrap:
            return
        top = self.line_at_row(int(self.scroll_y))
        self.wrap = wrap
        self.set_class(wrap, "-wrap")
        if wrap and self.size.width:
            self._recount(self._text_width())
        elif wrap:  # not laid out yet (a hidden tab): counted when it gets its size
            self._rows, self._total_rows, self._starts, self._wrap_width = [], 0, None, 0
        else:
            self._rows, self._total_rows, self._starts, self._wrap_width = [], 0, None, 0
            self._wrap_cache.clear()
            self.virtual_size = Size(self._width, self.line_count)
        self.refresh()
        self.call_after_refresh(self._anchor, top)

    def action_toggle_wrap(self) -> None:
        self.set_wrap(not self.wrap)
        if self.parent_pane:
            self.parent_pane.wrap_changed()

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        if self.wrap and self._text_width(size) != self._wrap_width and size.width > 0:
            top = self.line_at_row(int(self.scroll_y))
            self._recount(self._text_width(size))
            self.call_after_refresh(self._anchor, top)
        return super()._size_updated(size, virtual_size, container_size, layout)

    def write_lines(self, lines, scroll_end: bool | None = None):
        if not self.wrap or not self._wrap_width:
            return super().write_lines(lines, scroll_end)
        # Log.write_lines with the rows counted as the lines come (the same single pass)
        is_vertical_scroll_end = self.is_vertical_scroll_end
        auto_scroll = self.auto_scroll if scroll_end is None else scroll_end
        new_lines: list[str] = []
        for line in lines:
            new_lines.extend(line.splitlines())
        if not new_lines:
            return self
        width = self._wrap_width
        cells = list(map(self._cells, new_lines))
        rows = [1 if c <= width and c == len(line) else len(self._spans(line, width))
                for c, line in zip(cells, new_lines)]
        self._lines.extend(new_lines)
        self._rows.extend(rows)
        self._total_rows += sum(rows)
        self._starts = None
        if self.max_lines is not None and len(self._lines) > self.max_lines:
            self._prune_max_lines()
        self._update_maximum_width(self._updates, max(cells))
        self.virtual_size = Size(width, self._total_rows)
        if auto_scroll and not self.is_vertical_scrollbar_grabbed and is_vertical_scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.refresh()
        return self

    def _prune_max_lines(self) -> None:
        if self.max_lines is not None and self._rows:
            remove = len(self._lines) - self.max_lines
            if remove > 0:
                self._total_rows -= sum(self._rows[:remove])
                del self._rows[:remove]
                self._starts = None
                self._pruned += remove
        super()._prune_max_lines()

    def clear(self):
        self._rows, self._total_rows, self._starts, self._pruned = [], 0, None, 0
        self._wrap_cache.clear()
        self._current_line = None
        return super().clear()

    def invalidate(self) -> None:
        """Forget the rendered rows (the search or the marks changed) and repaint."""
        self._wrap_cache.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._wrap_cache.clear()

    def selection_updated(self, selection) -> None:
        self._wrap_cache.clear()
        super().selection_updated(selection)

    def render_line(self, y: int) -> Strip:
        if not self.wrap or not self._wrap_width:
            return super().render_line(y)
        width = self.size.width
        rich_style = self.rich_style
        row = int(self.scroll_y) + y
        if row >= self._total_rows or not self._lines:
            return Strip.blank(width, rich_style)
        line = self.line_at_row(row)
        part = self._wrapped(line, rich_style)[row - self._row_starts()[line]]
        return part.extend_cell_length(width, rich_style)

    def _wrapped(self, line: int, rich_style: Style) -> list[Strip]:
        """The rows of one line at the wrap width (cached while no text is selected)."""
        width = self._wrap_width
        key = line + self._pruned
        hit = self._wrap_cache.get(key)
        if hit is not None and hit[0] == width:
            return hit[1]
        strip = self._render_line_strip(line, rich_style)
        rows = [strip.crop(start, end).extend_cell_length(width, rich_style).apply_offsets(start, line)
                for start, end in self._spans(self._lines[line], width)]
        while len(rows) < self._rows[line]:  # an empty line (or a count off by a character)
            rows.append(Strip.blank(width, rich_style))
        if self.text_selection is None:
            self._wrap_cache[key] = (width, rows)
        return rows

    @property
    def parent_pane(self) -> LogHost | None:
        return self.pane

    def _user_up(self) -> None:
        pane = self.parent_pane
        if pane is not None and not pane.paused:
            pane.pause()

    def _user_down(self) -> None:
        """Resume when the user has scrolled (back) to the last line."""
        pane = self.parent_pane
        if pane is not None and pane.paused and self.at_end_target:
            pane.resume()

    def action_scroll_up(self) -> None:
        self._user_up()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._user_up()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._user_up()
        self.scroll_home(animate=False)

    action_top = action_scroll_home

    def action_scroll_down(self) -> None:
        super().action_scroll_down()
        self._user_down()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._user_down()

    def action_follow(self) -> None:
        if self.parent_pane:
            self.parent_pane.resume()

    action_scroll_end = action_follow

    def action_search(self) -> None:
        if self.parent_pane:
            self.parent_pane.open_search()

    def action_search_older(self) -> None:
        if self.parent_pane:
            self.parent_pane.jump(-1)

    def action_search_newer(self) -> None:
        if self.parent_pane:
            self.parent_pane.jump(+1)

    def action_prev_model(self) -> None:
        self.app.step_model(-1)

    def action_next_model(self) -> None:
        self.app.step_model(+1)
