"""The logs pane: the selected model's server log, followed like ``tail -F``.

A thread worker polls :class:`tui.core.logfiles.Follower` (which reads from the end, never
the whole file, and survives rotation and truncation) and pushes lines into a
:class:`LogFeed` — a bounded buffer shared with the pane — then posts a replaceable
``LogsPending``. The pane drains the feed and writes one batch per message with
``Log.write_lines`` (per-line writes cost 10× more, textual-practice.md §6) into its
:class:`~tui.ui.widgets.log_view.FollowLog` (the view: wrapping, highlighting, painting).

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

Wrapping (``w``, on by default): see :mod:`tui.ui.widgets.log_view`.
"""

from __future__ import annotations

import re
import threading
from collections import deque

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from tui.ui import keys
from tui.ui.door import CoreDoor
from tui.ui.messages import LogsPending
from tui.ui.widgets.format import short_path
from tui.ui.widgets.log_view import FollowLog, LogHighlighter, search_pattern

__all__ = ["FollowLog", "LogFeed", "LogHighlighter", "LogPane", "SearchInput", "search_pattern"]


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

    def __init__(self, backend: CoreDoor, *, max_lines: int = 10_000, poll_s: float = 0.1, idle_poll_s: float = 0.25,
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
        log = FollowLog(highlight=True, max_lines=self.max_lines, id="log", pane=self)
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
