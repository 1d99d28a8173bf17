"""Markdown that grows while a reply streams, at a cost that does not grow with the reply.

Once the live tail passes :data:`SEGMENT` characters it is cut, at blank lines outside code
fences (before a line that starts a new block), into segments of at least half that. A finished segment becomes one ``Static`` holding a Rich
``Markdown`` renderable, rendered once (Textual caches its lines and height); only the tail
is re-rendered on each update — at most ~2 KB, whatever the length of the reply. Updates
come coalesced by the caller (the chat pane flushes at 10 Hz), never per token.

Decided where the issue is silent: Rich's Markdown renderer rather than Textual's
``Markdown`` widget with ``MarkdownStream``. The widget mounts one widget per block, and a
100 KB reply (~600 widgets) made each layout pass take 100–350 ms here, so a 2,000 tok/s
stream stalled the event loop by up to 0.7 s (``benchmarks/bench_tui.py`` (c)); with
segments the widget count is ~1 per 2 KB and layouts stay cheap. The look is Rich's
Markdown (headings, lists, tables, quotes, fenced code highlighted with the terminal's ANSI
colours).
"""

from __future__ import annotations

from rich.markdown import Markdown as RichMarkdown
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

SEGMENT = 2000  # live tail length that triggers freezing (segments of SEGMENT/2 or more)
FENCES = ("```", "~~~")


def render(text: str) -> RichMarkdown:
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


class StreamingMarkdown(Vertical):
    """``append(text)`` as the reply arrives; ``source`` is the whole text so far."""

    DEFAULT_CSS = """
    StreamingMarkdown { height: auto; }
    StreamingMarkdown > Static { height: auto; }
    """

    def __init__(self, text: str = "", **kw) -> None:
        super().__init__(**kw)
        self.source = ""
        self._frozen = 0  # characters of source held by frozen segments
        self.segments = 0
        self._initial = text

    def compose(self) -> ComposeResult:
        yield Static("", classes="md-tail")

    async def on_mount(self) -> None:
        if self._initial:
            await self.append(self._initial)

    @property
    def tail(self) -> Static:
        return self.query_one(".md-tail", Static)

    async def append(self, text: str) -> None:
        if not text:
            return
        self.source += text
        tail = self.source[self._frozen:]
        if len(tail) > SEGMENT:
            start = 0
            for end in segment_ends(tail, SEGMENT // 2):
                # mounted before the tail shrinks, so no frame lacks that text
                await self.mount(Static(render(tail[start:end]), classes="md-seg"), before=self.tail)
                self.segments += 1
                start = end
            self._frozen += start
            tail = tail[start:]
        self.tail.update(render(tail))
