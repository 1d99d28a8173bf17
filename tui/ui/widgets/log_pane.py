"""The logs pane: the selected model's server log, followed like ``tail -F``.

A thread worker polls :class:`tui.core.logfiles.Follower` (which reads from the end, never
the whole file, and survives rotation and truncation) and pushes lines into a
:class:`LogFeed` — a bounded buffer shared with the pane — then posts a replaceable
``LogsPending``. The pane drains the feed and writes one batch per message with
``Log.write_lines`` (per-line writes cost 10× more, textual-practice.md §6).

Following stops when the user scrolls up (keys, wheel or scrollbar): new lines then wait in
the feed, a badge says how many, and ``f``/``End`` (or scrolling back to the bottom) resumes.
The feed holds at most ``max_lines`` lines; older waiting lines are dropped and counted, and
a marker line in the log says how many were skipped. Memory stays bounded either way.

Errors and warnings are highlighted (``logfiles.ERROR_RE`` plus warning words).

Search (``/``): every occurrence of the text is highlighted as it is typed and the bottom row
counts the matching lines; ``enter`` jumps to the newest match (when paused: the newest at or
above the view's last line, like ``less``'s ``?``), ``n`` goes to the next older match and ``N`` to the next newer one, the
current match's line marked. Jumping pauses following, as scrolling up does. The search is
smart-case (case-insensitive unless the text has a capital) and literal (no regex). ``esc``
clears it. ``[`` / ``]`` switch to the previous / next model's log.

Wrapping (``w``, on by default): a long line continues on the next rows, broken after a space
near the edge (else at the edge: paths and hex strings fill their rows). Off, a line is cut
at the pane's edge and the view scrolls sideways (``←``/``→``), like ``less -S``. Wrapped rows
are counted per line (kept alongside the lines, so the cap on lines bounds them too) and the
rendered rows of a line are cached; a resize or a toggle re-counts and keeps the line at the
top of the view there (or the end, when following).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections import deque
from itertools import accumulate

from rich.cells import cell_len, get_character_cell_size
from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.strip import Strip
from textual.widgets import Input, Log, Static
from textual.worker import get_current_worker

from tui.ui import keys
from tui.ui.messages import LogsPending
from tui.ui.widgets.format import short_path


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


class LogFeed:
    """Lines read by the worker thread, waiting for the pane. Thread-safe and bounded."""

    def __init__(self, model: str, max_lines: int) -> None:
        self.model = model
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._lock = threading.Lock()
        self.dropped = 0
        self.total = 0  # lines ever pushed (for tests and benchmarks)
        self.dropped_total = 0  # lines ever dropped (the benchmark reports them)

    def push(self, lines: list[str]) -> None:
        with self._lock:
            over = len(self._lines) + len(lines) - (self._lines.maxlen or 0)
            if over > 0:
                n = min(over, len(self._lines) + len(lines))
                self.dropped += n
                self.dropped_total += n
            self._lines.extend(lines)
            self.total += len(lines)

    def drain(self) -> tuple[list[str], int]:
        with self._lock:
            lines = list(self._lines)
            self._lines.clear()
            dropped, self.dropped = self.dropped, 0
        return lines, dropped

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._lines) + self.dropped


class FollowLog(Log):
    """A Log that tells its pane when the user scrolls up (pause) or back to the end (resume),
    and wraps long lines (``wrap``; ``w`` toggles).

    Only user input counts (keys, wheel, scrollbar drag): a resize or pruning of old lines
    moves ``scroll_y`` too and must not pause following.

    Wrapped, ``scroll_y`` and the virtual height count screen rows, not lines:
    :meth:`row_of_line` and :meth:`line_at_row` convert (the identity when not wrapped).
    """

    BINDINGS = keys.bindings("logs")
    CURRENT = Style(bgcolor="grey30")

    def __init__(self, *args, wrap: bool = True, **kw) -> None:
        super().__init__(*args, **kw)
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
    def parent_pane(self) -> "LogPane | None":
        return _pane_of(self)

    def _user_up(self) -> None:
        pane = self.parent_pane
        if pane is not None and not pane.paused:
            pane.pause()

    def _user_down(self) -> None:
        """Resume when the user has scrolled (back) to the last line."""
        pane = self.parent_pane
        if pane is not None and pane.paused and self.scroll_target_y >= self.max_scroll_y:
            pane.resume()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.is_vertical_scrollbar_grabbed:
            if new < old:
                self._user_up()
            elif new >= self.max_scroll_y:
                self._user_down()

    def _on_mouse_scroll_up(self, event) -> None:
        self._user_up()
        super()._on_mouse_scroll_up(event)

    def _on_mouse_scroll_down(self, event) -> None:
        super()._on_mouse_scroll_down(event)
        self._user_down()

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


class SearchInput(Input):
    """The log search's text; ``esc`` clears the search and returns to the log."""

    BINDINGS = [Binding("escape", "close", "clear search")]

    def action_close(self) -> None:
        pane = _pane_of(self)
        if pane is not None:
            pane.close_search()


def _pane_of(widget) -> "LogPane | None":
    """The LogPane a widget sits in."""
    node = widget.parent
    while node is not None and not isinstance(node, LogPane):
        node = node.parent
    return node


class LogPane(Vertical):
    """Shows one model's log at a time; :meth:`follow_model` switches."""

    # the badge shares the head's line: pausing must not change the log's height (the view
    # would jump by a line under the user's eyes)
    DEFAULT_CSS = """
    LogPane { height: 1fr; }
    LogPane > #log-top { height: 1; }
    LogPane #log-head { width: 1fr; height: 1; color: $text-muted; }
    LogPane #log-badge { width: auto; height: 1; display: none; background: $warning 30%; color: $text; }
    LogPane #log-badge.-shown { display: block; }
    LogPane #log-keys { width: auto; height: 1; color: $text-muted; padding: 0 1; }
    LogPane #log-keys.-hidden { display: none; }
    LogPane > FollowLog { height: 1fr; }
    LogPane > FollowLog.-wrap { overflow-x: hidden; }
    LogPane > #log-search-row { height: 1; display: none; }
    LogPane > #log-search-row.-shown { display: block; }
    LogPane #log-search { width: 1fr; height: 1; border: none; padding: 0 1; }
    LogPane #log-search-info { width: auto; height: 1; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, backend, *, max_lines: int = 10_000, poll_s: float = 0.1, idle_poll_s: float = 0.25,
                 backlog: int = 200, **kw) -> None:
        super().__init__(**kw)
        self.backend = backend
        self.max_lines = max_lines
        self.poll_s = poll_s
        self.idle_poll_s = idle_poll_s
        self.backlog = backlog
        self.model: str | None = None
        self.feed: LogFeed | None = None
        self.paused = False
        self.lines_written = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-top"):
            yield Static("no model selected", id="log-head")
            yield Static("", id="log-badge")
            yield Static(self._keys_hint(True), id="log-keys")
        log = FollowLog(highlight=True, max_lines=self.max_lines, id="log")
        log.highlighter = LogHighlighter()
        log.can_focus = True
        yield log
        with Horizontal(id="log-search-row"):
            yield SearchInput(placeholder="search the log (enter: newest match, n/N older/newer, esc clears)",
                              id="log-search")
            yield Static("", id="log-search-info")

    @property
    def log(self) -> FollowLog:
        return self.query_one(FollowLog)

    @property
    def wrap(self) -> bool:
        """Long lines wrap (``w`` toggles; kept when the pane follows another model)."""
        return self.log.wrap

    def follow_model(self, name: str | None) -> None:
        if name == self.model:
            return
        self.model = name
        self.paused = False
        self.lines_written = 0
        self.log.current_line = None
        self.log.clear()
        self._badge()
        self._search_info()
        if name is None:
            self.query_one("#log-head", Static).update("no model selected")
            self.workers.cancel_group(self, "logs")
            return
        path = self.backend.log_path(name)
        self.query_one("#log-head", Static).update(f"{name} · {short_path(path)}")
        self.feed = LogFeed(name, self.max_lines)
        self._follow(name, self.feed)

    @work(thread=True, exclusive=True, group="logs", exit_on_error=False)
    def _follow(self, name: str, feed: LogFeed) -> None:
        """Poll every ``poll_s`` while lines come, slowing to ``idle_poll_s`` after a quiet
        second (each wake-up costs CPU: an idle TUI should cost next to nothing)."""
        import time

        worker = get_current_worker()
        follower = self.backend.follower(name, self.backlog)
        quiet = 0
        try:
            while not worker.is_cancelled:
                lines = follower.poll()
                if lines:
                    quiet = 0
                    feed.push(lines)
                    self.post_message(LogsPending(name))
                    # back-pressure: let the pane catch up rather than flooding the queue
                    if self.message_queue_size > 4:
                        time.sleep(self.poll_s)
                    continue
                quiet += 1
                time.sleep(self.poll_s if quiet * self.poll_s < 1.0 else self.idle_poll_s)
        finally:
            follower.close()

    def on_logs_pending(self, message: LogsPending) -> None:
        message.stop()
        if message.model != self.model or self.feed is None:
            return
        if self.paused:
            self._badge()
            return
        self._flush()

    def _flush(self) -> None:
        lines, dropped = self.feed.drain() if self.feed else ([], 0)
        if dropped:
            lines.insert(0, f"----- llmdeck: {dropped} lines skipped while paused "
                            f"(the whole log is {self.backend.log_path(self.model)}) -----")
        if lines:
            self.log.write_lines(lines, scroll_end=True)
            self.lines_written += len(lines)
            if self.search is not None:
                self._search_info()

    def pause(self) -> None:
        self.paused = True
        self._badge()

    def resume(self) -> None:
        self.paused = False
        self.log.current_line = None
        self._flush()
        self.log.scroll_end(animate=False, immediate=True, x_axis=False)
        self._badge()

    def _badge(self) -> None:
        badge = self.query_one("#log-badge", Static)
        if self.paused:
            n = self.feed.waiting if self.feed else 0
            badge.update(f" paused · {n} new line{'s' if n != 1 else ''} · f/End follows ")
            badge.add_class("-shown")
        else:
            badge.remove_class("-shown")
        # the badge needs the room; the footer has none for these two keys at 80 columns
        self.query_one("#log-keys").set_class(self.paused, "-hidden")

    def _keys_hint(self, wrap: bool) -> str:
        """``w wrap on · z zoom``, with the user's keys where settings.keymap moves them."""
        keymap = getattr(self.app, "user_keymap", None)
        w, z = (keys.display(keys.BY_ID[a], keymap) for a in ("log_wrap", "zoom"))
        return f"{w} wrap {'on' if wrap else 'off'} · {z} zoom"

    def wrap_changed(self) -> None:
        self.query_one("#log-keys", Static).update(self._keys_hint(self.wrap))

    # -- search ------------------------------------------------------------------------------

    def open_search(self) -> None:
        self.query_one("#log-search-row").add_class("-shown")
        self.query_one("#log-search", Input).focus()

    def close_search(self) -> None:
        """Clear the search (highlights and the current-match mark) and go back to the log."""
        inp = self.query_one("#log-search", Input)
        inp.value = ""
        self._set_search("")
        self.query_one("#log-search-row").remove_class("-shown")
        self.log.focus()

    @property
    def search(self) -> re.Pattern | None:
        """The search pattern (None: no search); the highlighter that draws the matches holds it."""
        return self.log.highlighter.search

    @property
    def searching(self) -> bool:
        return self.search is not None

    def _set_search(self, query: str) -> None:
        self.log.highlighter.search = search_pattern(query)
        self.log.current_line = None
        self.log.invalidate()
        self._search_info()

    def matching_lines(self) -> list[int]:
        """Indexes (into ``log.lines``) of the lines that match the search."""
        if self.search is None:
            return []
        rx = self.search.search
        return [i for i, line in enumerate(self.log.lines) if rx(line)]

    def _search_info(self) -> None:
        info = self.query_one("#log-search-info", Static)
        if self.search is None:
            info.update("")
            return
        hits = self.matching_lines()
        cur = self.log.current_line
        if not hits:
            info.update("no match in the loaded lines")
        elif cur in hits:
            info.update(f"match {hits.index(cur) + 1} of {len(hits)} · line {cur + 1}")
        else:
            info.update(f"{len(hits)} matching line{'s' if len(hits) != 1 else ''}")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-search":
            event.stop()
            self._set_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "log-search":
            return
        event.stop()
        if self.search is None:
            self.close_search()
            return
        self.log.focus()
        self.jump(0)

    def jump(self, direction: int) -> None:
        """Go to a match: 0 the newest (when paused: at or above the view's last line), -1 the next older
        than the current one, +1 the next newer. Pauses following; the line is centred."""
        if self.search is None:
            self.open_search()
            return
        hits = self.matching_lines()
        if not hits:
            self._search_info()
            self.app.bell()
            return
        log = self.log
        cur = log.current_line
        if direction == 0 or cur is None:
            if not self.paused:  # following: the newest match of all
                target = hits[-1]
            else:
                bottom = log.line_at_row(int(log.scroll_y) + log.scrollable_content_region.height - 1)
                above = [i for i in hits if i <= bottom]
                target = above[-1] if above else hits[-1]
        elif direction < 0:
            older = [i for i in hits if i < cur]
            if not older:
                self.app.bell()
                return
            target = older[-1]
        else:
            newer = [i for i in hits if i > cur]
            if not newer:
                self.app.bell()
                return
            target = newer[0]
        if not self.paused:
            self.pause()
        log.current_line = target
        log.scroll_to(y=max(0, log.row_of_line(target) - log.scrollable_content_region.height // 2),
                      animate=False, immediate=True)
        log.invalidate()
        self._search_info()
