"""The chat transcript: one scrolling widget that draws every block of a conversation as lines.

Blocks (a prompt, thoughts, a tool call, an answer, a stats line) render to Rich lines once
per width and are cached; the transcript keeps their line offsets and paints only the rows
on screen (Textual's line API, like its ``Log``). When a streaming block grows, only that
block is re-rendered — and for Markdown only its live tail (:class:`MarkdownBody`) — and
the widget's virtual height changes: no layout pass of the screen.

Decided where the issue is silent: one line-API widget rather than a widget per block
(Textual's ``Markdown`` + ``MarkdownStream``). The widget-per-block design mounted one
widget per paragraph; with a 100 KB reply every layout pass took 100-350 ms here and a
2,000 tok/s stream stalled the event loop by up to 0.7 s (``benchmarks/bench_tui.py`` (c)).
The look is Rich's Markdown (headings, lists, tables, quotes, fenced code in the terminal's
ANSI colours). Clicking the thoughts' label toggles them; ``hide_thoughts`` hides them all.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown as RichMarkdown
from rich.panel import Panel
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.ui.widgets.follow import UserScroll

# live Markdown tail length that triggers freezing (segments of SEGMENT/2 or more). Rendering the
# tail is the biggest cost of a flush and grows faster than its length: at 2,000 a flush took
# 40-80 ms on a loaded 2-core machine, at 1,000 about 12 ms (benchmarks/bench_tui.py (c)).
SEGMENT = 1000
FENCES = ("```", "~~~")
THOUGHTS_STREAM_LINES = 8  # thoughts show their last lines while they stream


# --- Markdown in segments ----------------------------------------------------------------------

def markdown(text: str) -> RichMarkdown:
    return RichMarkdown(text, code_theme="ansi_dark", hyperlinks=True)


def safe_cuts(text: str) -> list[int]:
    """Offsets just after a blank line that is outside any code fence and followed by a line
    that starts a new block (not indented): where the text can be split without changing
    how either part renders."""
    in_fence = False
    pos = 0
    out = []
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith(FENCES):
            in_fence = not in_fence
        pos += len(line)
        if in_fence or line.strip() or i + 1 >= len(lines):
            continue
        nxt = lines[i + 1]
        if nxt.strip() and not nxt[0].isspace():
            out.append(pos)
    return out


def segment_ends(text: str, min_len: int) -> list[int]:
    """Where to cut ``text`` into pieces of at least ``min_len`` characters, as far as the
    last safe cut (so the live tail left over is as short as possible)."""
    ends, start = [], 0
    for p in safe_cuts(text):
        if p - start >= min_len:
            ends.append(p)
            start = p
    return ends


def render_strips(console: Console, renderable: RenderableType, width: int, base: Style | None = None,
                  prefix: list[Segment] | None = None) -> list[Strip]:
    """``renderable`` as lines of ``width`` cells (after ``prefix``), on ``base`` style."""
    pw = sum(s.cell_length for s in prefix) if prefix else 0
    options = console.options.update_width(max(1, width - pw)).update(height=None, highlight=False)
    out = []
    for line in console.render_lines(renderable, options, pad=False):
        if prefix:
            line = prefix + line
        if base is not None:
            line = list(Segment.apply_style(line, base))
        out.append(Strip(line))
    return out


class MarkdownBody:
    """Markdown that grows: frozen segments (rendered once per width) and a live tail.

    Once the tail passes :data:`SEGMENT` characters it is cut at blank lines outside code
    fences into segments of at least half that; each update re-renders only the tail.
    """

    def __init__(self) -> None:
        self.source = ""
        self.frozen: list[str] = []
        self._frozen_len = 0
        self._seg_lines: list[list[Strip]] = []
        self._seg_key: Any = None
        self._tail_key: Any = None
        self._tail_lines: list[Strip] = []

    @property
    def segments(self) -> int:
        return len(self.frozen)

    @property
    def tail(self) -> str:
        return self.source[self._frozen_len:]

    def append(self, text: str) -> None:
        self.source += text
        tail = self.tail
        if len(tail) > SEGMENT:
            start = 0
            for end in segment_ends(tail, SEGMENT // 2):
                self.frozen.append(tail[start:end])
                start = end
            self._frozen_len += start

    def lines(self, console: Console, width: int, base: Style | None, prefix: list[Segment] | None = None
              ) -> list[Strip]:
        key = (width, base, tuple(prefix or ()))
        if self._seg_key != key:
            self._seg_key, self._seg_lines = key, []
        while len(self._seg_lines) < len(self.frozen):
            self._seg_lines.append(render_strips(console, markdown(self.frozen[len(self._seg_lines)]), width,
                                                 base, prefix))
        tkey = (key, len(self.source))
        if self._tail_key != tkey:
            self._tail_key = tkey
            tail = self.tail
            self._tail_lines = render_strips(console, markdown(tail), width, base, prefix) if tail.strip() else []
        out: list[Strip] = []
        for seg in self._seg_lines:
            out.extend(seg)
        out.extend(self._tail_lines)
        return out


# --- blocks -------------------------------------------------------------------------------------

class Block:
    """A piece of a transcript; ``lines`` are cached per width until :meth:`changed`.
    ``margin`` blank lines come before it."""

    clickable = False
    margin = 1

    def __init__(self) -> None:
        self._key: Any = None
        self._lines: list[Strip] = []
        self.transcript: "Transcript | None" = None

    def renderable(self) -> RenderableType:
        raise NotImplementedError

    def render(self, console: Console, width: int, base: Style | None) -> list[Strip]:
        return render_strips(console, self.renderable(), width, base, [Segment(" ")])

    def lines(self, console: Console, width: int, base: Style | None) -> list[Strip]:
        key = (width, base)
        if self._key != key:
            lines = self.render(console, width, base)
            if lines and self.margin:
                lines = [Strip.blank(width, base)] * self.margin + lines
            self._lines = lines
            self._key = key
        return self._lines

    def changed(self) -> None:
        self._key = None
        if self.transcript is not None:
            self.transcript.block_changed(self)

    def click(self) -> None:
        pass


class UserBlock(Block):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def renderable(self) -> RenderableType:
        return Text.assemble(("› ", "bold cyan"), self.text)


class ThinkingBlock(Block):
    """Thoughts: a label and a Markdown body. They stream live (their last lines), then
    ``collapse`` when the answer starts; ``toggle`` (ctrl+y, a click) shows them whole."""

    clickable = True

    def __init__(self) -> None:
        super().__init__()
        self.body = MarkdownBody()
        self.collapsed = False
        self.streaming = True
        self.hidden = False

    @property
    def reasoning(self) -> str:
        return self.body.source

    @property
    def words(self) -> int:
        return len(self.body.source.split())

    def append(self, text: str) -> None:
        self.body.append(text)
        self.changed()

    def label(self) -> str:
        if self.streaming and not self.collapsed:
            return "thinking…"
        if self.collapsed:
            return f"▸ thoughts ({self.words} words) · ctrl+y shows them"
        return f"▾ thoughts ({self.words} words) · ctrl+y hides them"

    def collapse(self) -> None:
        self.streaming = False
        self.collapsed = True
        self.changed()

    def toggle(self) -> None:
        self.streaming = False
        self.collapsed = not self.collapsed
        self.changed()

    click = toggle

    def render(self, console: Console, width: int, base: Style | None) -> list[Strip]:
        if self.hidden:
            return []
        bar = [Segment(" "), Segment("▌ ", Style(color="magenta"))]
        out = render_strips(console, Text(self.label(), style="italic magenta"), width, base, bar)
        if not self.collapsed:
            body = self.body.lines(console, width, (base or Style()) + Style(dim=True, italic=True), bar)
            if self.streaming:
                body = body[-THOUGHTS_STREAM_LINES:]
            out += body
        return out


class ToolCallBlock(Block):
    """One tool call: name, id and pretty-printed arguments; its result once given."""

    def __init__(self, call: Any) -> None:
        super().__init__()
        self.call = call
        self.result: str | None = None

    def renderable(self) -> RenderableType:
        c = self.call
        head = Text(f"⚙ tool call: {c.name}", style="bold")
        head.append(f"  ({c.id})", style="dim")
        if getattr(c, "ok", True):
            body = json.dumps(c.arguments, indent=2, ensure_ascii=False)
        else:
            body = f"(arguments are not valid JSON)\n{c.raw}"
        parts: list = [head, Syntax(body, "json", theme="ansi_dark", word_wrap=True, background_color="default")]
        if self.result is not None:
            parts.append(Text(f"→ result: {self.result}", style="green"))
        return Panel(Group(*parts), border_style="cyan", padding=(0, 1))

    def set_result(self, text: str) -> None:
        self.result = text
        self.changed()


class AnswerBlock(Block):
    """The answer, Markdown, streamed in (see :class:`MarkdownBody`)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = MarkdownBody()

    @property
    def source(self) -> str:
        return self.body.source

    def append(self, text: str) -> None:
        self.body.append(text)
        self.changed()

    def render(self, console: Console, width: int, base: Style | None) -> list[Strip]:
        return self.body.lines(console, width, base, [Segment(" ")])


class TextBlock(Block):
    """A line of text (the stats line, an error)."""

    margin = 0

    def __init__(self, text: Text | str = "") -> None:
        super().__init__()
        self.text = text if isinstance(text, Text) else Text(text)

    def renderable(self) -> RenderableType:
        return self.text

    def update(self, text: Text | str) -> None:
        self.text = text if isinstance(text, Text) else Text(text)
        self.changed()

    def plain(self) -> str:
        return self.text.plain


# --- the widget ---------------------------------------------------------------------------------

class Transcript(UserScroll, ScrollView, can_focus=True):
    """Blocks drawn as lines; follows the end until the user scrolls up (:class:`UserScroll`).

    ``following`` is explicit state that only the user's scrolling changes: scrolling up
    (keys, the wheel, dragging the scrollbar) pauses it, scrolling back to the last line (or
    ``End``, or :meth:`follow`) resumes it. While following, every re-measure and every resize
    puts the last line (the stats line of a reply) at the bottom of the view.

    Why not derive it from ``is_vertical_scroll_end`` before each re-measure: the scroll that
    should follow a re-measure can be refused (``allow_vertical_scroll`` is false until a
    layout pass shows the scrollbar, the first time the text outgrows the pane) or clamped to
    a stale height; the next re-measure then sees "not at the end" and following stopped for
    good while the model went on. The scroll here is forced and is repeated after the next
    refresh, when the layout has settled.

    While paused, :class:`Transcript.FollowChanged` tells the pane how many lines arrived below
    the view (its badge); it is posted when the state or the count changes.
    """

    DEFAULT_CSS = """
    Transcript {
        height: 1fr;
        scrollbar-gutter: stable;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    """

    # Priority, as the chat's PgUp/PgDn (see ``chat_page_up`` in tui/ui/keys.py): a binding that is
    # not priority runs only once its key has gone through the parents back to the app, after an
    # esc pressed later (a priority key); the cancel's return to the end was then undone by the
    # late scroll key. These run in the order pressed.
    BINDINGS = [Binding(key, action, show=False, priority=True) for key, action in (
        ("up", "scroll_up"), ("down", "scroll_down"), ("home", "scroll_home"), ("end", "scroll_end"),
        ("pageup", "page_up"), ("pagedown", "page_down"))]

    class FollowChanged(Message):
        """Following paused or resumed, or more lines arrived while paused."""

        def __init__(self, transcript: "Transcript", following: bool, new_lines: int) -> None:
            super().__init__()
            self.transcript = transcript
            self.following = following
            self.new_lines = new_lines

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.blocks: list[Block] = []
        self._offsets: list[int] = []
        self._measured: list[list[Strip]] = []  # each block's lines as last measured (painted from)
        self._measured_blocks: list[Block] = []
        self._style = Style()  # rich_style as last measured (walking the DOM for it per row is slow)
        self._total = 0
        self._width = 0
        self._dirty = False
        self.hide_thoughts = False
        self.following = True
        self._paused_total = 0  # line count when following paused (new lines = total - this)
        self._told: tuple[bool, int] = (True, 0)

    # -- building -----------------------------------------------------------------------

    def add(self, block: Block, before: Block | None = None) -> Block:
        block.transcript = self
        if isinstance(block, ThinkingBlock):
            block.hidden = self.hide_thoughts
        if before is not None and before in self.blocks:
            self.blocks.insert(self.blocks.index(before), block)
        else:
            self.blocks.append(block)
        self._schedule()
        return block

    def clear(self) -> None:
        for b in self.blocks:
            b.transcript = None
        self.blocks.clear()
        self.follow()

    def block_changed(self, block: Block) -> None:
        self._schedule()

    def set_hide_thoughts(self, hide: bool) -> None:
        self.hide_thoughts = hide
        for b in self.blocks:
            if isinstance(b, ThinkingBlock):
                b.hidden = hide
                b._key = None
        self._schedule()

    def _schedule(self) -> None:
        """Coalesce changes: one re-measure per refresh, however many blocks changed."""
        if not self._dirty:
            self._dirty = True
            self.call_later(self.update_lines)

    # -- measuring ----------------------------------------------------------------------

    @property
    def line_width(self) -> int:
        return max(10, self.scrollable_content_region.width or self.size.width or 80)

    def update_lines(self) -> None:
        self._dirty = False
        if not self.is_mounted:
            return
        width = self.line_width
        console, base = self.app.console, self.rich_style
        offsets, measured, total = [], [], 0
        for b in self.blocks:
            offsets.append(total)
            lines = b.lines(console, width, base)
            measured.append(lines)
            total += len(lines)
        if width != self._width and not self.following:
            self._paused_total += total - self._total  # a re-wrap is not new text
        self._offsets, self._measured, self._total, self._width = offsets, measured, total, width
        self._measured_blocks = list(self.blocks)
        self._style = base
        # The new height changes nothing outside this widget (its own size comes from CSS), so no
        # layout pass of the screen per flush, only when the scrollbar appears or goes. The
        # scrollbar's size and thumb are updated here: ScrollView does that only in a layout pass.
        shown = self.show_vertical_scrollbar
        self.set_reactive(Transcript.virtual_size, Size(width, total))
        self._scroll_update(self.virtual_size)
        self.refresh(layout=self.show_vertical_scrollbar != shown)
        if self.following:
            self._to_end()
        self._tell()

    def _to_end(self) -> None:
        """Put the last line at the bottom of the view, now and again once the layout settled."""
        self.scroll_to(y=self.max_scroll_y, animate=False, force=True, immediate=True)
        self.call_after_refresh(self._to_end_after_refresh)

    def _to_end_after_refresh(self) -> None:
        if self.following and self.scroll_y != self.max_scroll_y:
            self.scroll_to(y=self.max_scroll_y, animate=False, force=True, immediate=True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._schedule()  # a new theme: the blocks render on the new base style

    def on_resize(self) -> None:
        if self.line_width != self._width:
            self.update_lines()
        elif self.following:
            self._to_end()

    # -- following ----------------------------------------------------------------------

    @property
    def new_lines(self) -> int:
        """Lines that arrived since following paused (0 while following)."""
        return 0 if self.following else max(0, self._total - self._paused_total)

    def follow(self) -> None:
        """Resume following: scroll to the end and keep it in view."""
        self.following = True
        self._schedule()

    def pause(self) -> None:
        """Stop following (the user scrolled up); the view stays where it is."""
        if self.following:
            self.following = False
            self._paused_total = self._total
            self._tell()

    def _tell(self) -> None:
        state = (self.following, self.new_lines)
        if state != self._told:
            self._told = state
            self.post_message(self.FollowChanged(self, *state))

    def _user_up(self) -> None:
        if self.max_scroll_y > 0:  # something above to scroll to
            self.pause()

    def _user_down(self) -> None:
        """Resume when the user has scrolled (back) to the last line."""
        if not self.following and self.at_end_target:
            self.follow()

    def page_up(self) -> None:
        self._user_up()
        self.scroll_to(y=max(0, self.scroll_y - self.scrollable_content_region.height), animate=False,
                       force=True, immediate=True)

    def page_down(self) -> None:
        self.scroll_to(y=min(self.max_scroll_y, self.scroll_y + self.scrollable_content_region.height),
                       animate=False, force=True, immediate=True)
        self._user_down()

    def action_page_up(self) -> None:
        self.page_up()

    def action_page_down(self) -> None:
        self.page_down()

    def action_scroll_up(self) -> None:
        self._user_up()
        self.scroll_to(y=max(0, self.scroll_y - 1), animate=False, force=True, immediate=True)

    def action_scroll_down(self) -> None:
        self.scroll_to(y=min(self.max_scroll_y, self.scroll_y + 1), animate=False, force=True, immediate=True)
        self._user_down()

    def action_scroll_home(self) -> None:
        self._user_up()
        self.scroll_to(y=0, animate=False, force=True, immediate=True)

    def action_scroll_end(self) -> None:
        self.follow()

    @property
    def line_count(self) -> int:
        return self._total

    def text(self) -> str:
        """Everything drawn, as plain text (tests, copy)."""
        return "\n".join(s.text.rstrip() for b in self.blocks
                         for s in b.lines(self.app.console, self.line_width, self.rich_style))

    # -- painting -----------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """A row from the lines as last measured: painting never renders Markdown (a block that
        changed since is re-rendered once, by the next measure) and always matches the offsets."""
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        style = self._style
        if index >= self._total or not self._measured:
            return Strip.blank(width, style)
        bi = bisect_right(self._offsets, index) - 1
        lines = self._measured[bi]
        row = index - self._offsets[bi]
        if row >= len(lines):
            return Strip.blank(width, style)
        return lines[row].crop_extend(scroll_x, scroll_x + width, style)

    def block_at(self, y: int) -> Block | None:
        index = int(self.scroll_offset.y) + y
        if not self._measured_blocks or index >= self._total:
            return None
        return self._measured_blocks[bisect_right(self._offsets, index) - 1]

    def on_click(self, event) -> None:
        block = self.block_at(event.y)
        if block is not None and block.clickable:
            block.click()
