"""The chat pane follows a stream longer than the pane, read from the rendered screen.

A real chat client streams from ``tests/pacedstream.py`` — an OpenAI-compatible server in
another process that sends canned tokens at a fixed rate and ends in a marker word — into the
app over the real ``Backend`` (an ``external`` model). Every check reads the screen as the
compositor renders it (:func:`screen`), never the transcript's text: the bug these tests pin
had every token in the Markdown source while the view stayed on the first screenful.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from textual import events
from ui_helpers import wait_until

from tui.core import registry
from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend
from tui.ui.widgets.chat_pane import ChatPane, PromptInput

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
MARKER = "ZEBRAFINISH"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()


def tokens(n: int) -> list[str]:
    """``n`` tokens of prose in short paragraphs (many lines), the last one the marker."""
    out = []
    for i in range(n - 1):
        t = (" " if i % 12 else "") + WORDS[i % len(WORDS)]
        out.append(t + ("\n\n" if i % 12 == 11 else ""))
    return out + [" " + MARKER]


@contextmanager
def paced_server(tmp_path: Path, n: int, rate: float):
    """The paced stream server in its own process; yields an external model's registry."""
    tfile = tmp_path / "tokens.json"
    tfile.write_text(json.dumps(tokens(n)))
    proc = subprocess.Popen([sys.executable, str(HERE / "pacedstream.py"), "--tokens", str(tfile),
                             "--rate", str(rate)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        path = tmp_path / "models.json"
        path.write_text(json.dumps({"settings": {}, "models": {
            "paced": {"engine": "external", "base_url": f"http://127.0.0.1:{port}/v1"}}}))
        yield registry.load(path)
    finally:
        proc.kill()
        proc.wait(5)


def screen(app) -> list[str]:
    """The visible screen, one string per terminal row, as the compositor renders it."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def transcript_rows(app, pane: ChatPane) -> list[str]:
    """The rows of the screen where the transcript's text is shown (its scrollbar left out)."""
    r = pane.turns.region
    right = r.right - pane.turns.scrollbar_size_vertical
    return [row[r.x:right] for row in screen(app)[r.y:r.bottom]]


def row_of(rows: list[str], needle: str) -> int | None:
    return next((i for i, row in enumerate(rows) if needle in row), None)


STATS = " tok/s · "  # in the stats line of a reply (the models table's header says "tok/s" too)


def marker_then_stats(app, pane: ChatPane) -> bool:
    """The marker is on screen and the stats line of the reply on a row below it."""
    rows = transcript_rows(app, pane)
    m = row_of(rows, MARKER)
    s = row_of(rows, STATS)
    return m is not None and s is not None and s > m


async def open_chat(pilot, app) -> ChatPane:
    await wait_until(pilot, lambda: app.states.get("paced") is not None and app.states["paced"].state == "ready",
                     timeout=20, what="the model ready")
    await pilot.press("c")
    pane = app.chat_deck.panes["paced"]
    await wait_until(pilot, lambda: pane.ready and isinstance(app.focused, PromptInput), what="chat open")
    return pane


async def key(pilot, *names: str) -> None:
    """Press keys mid-stream. ``pilot.press`` waits until every widget's queue is idle, which a
    fast stream can hold off for seconds; a simulated key goes the same way (app bindings,
    then the focused widget and its parents) without that wait."""
    for name in names:
        pilot.app.post_message(events.Key(name, name if len(name) == 1 else None))
        await pilot.pause(0.02)


@asynccontextmanager
async def long_answer(tmp_path: Path, n: int, rate: float = 200):
    """The chat at 80x24 asked for an answer of ``n`` tokens at ``rate`` tok/s, once the answer
    has outgrown the pane twice over (still streaming): yields (app, pilot, pane)."""
    with paced_server(tmp_path, n, rate) as reg:
        app = LlmdeckApp(reg, backend=Backend(reg), telemetry=False)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await open_chat(pilot, app)
            await ask(pilot, pane)
            await wait_until(pilot, lambda: pane.turns.line_count > 2 * pane.turns.size.height,
                             timeout=30, what="the answer outgrew the pane")
            yield app, pilot, pane


async def cancelled_stats_in_view(pilot, app, pane: ChatPane) -> None:
    """After esc: the reply ends "cancelled", that stats line is the transcript's last row on
    screen, and the paused badge is gone (esc returned to the end)."""
    await wait_until(pilot, lambda: not pane.generating, what="cancelled")
    await wait_until(pilot, lambda: "cancelled" in transcript_rows(app, pane)[-1], timeout=5,
                     what="the cancelled stats line in view")
    await wait_until(pilot, lambda: "PageDown to the end follows" not in "\n".join(screen(app)),
                     timeout=5, what="the badge gone")


async def ask(pilot, pane: ChatPane) -> None:
    await pilot.press("g", "o")
    await key(pilot, "enter")
    await wait_until(pilot, lambda: pane.generating, what="generating")


@pytest.mark.parametrize("rate,n", [(200, 600), (2000, 4000)], ids=["200tok/s", "2000tok/s"])
@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
async def test_the_end_of_a_long_answer_and_its_stats_line_come_into_view(tmp_path, size, rate, n):
    with paced_server(tmp_path, n, rate) as reg:
        app = LlmdeckApp(reg, backend=Backend(reg), telemetry=False)
        async with app.run_test(size=size) as pilot:
            pane = await open_chat(pilot, app)
            await ask(pilot, pane)
            # while it streams, the newest text keeps coming into view (the view moves)
            await wait_until(pilot, lambda: pane.turns.line_count > pane.turns.size.height + 8,
                             timeout=30, what="the answer outgrew the pane")
            first = transcript_rows(app, pane)
            await wait_until(pilot, lambda: transcript_rows(app, pane) != first or not pane.generating,
                             timeout=5, what="the view moving on")
            assert pane.generating, "the view stood still while the reply streamed (or the stream ended too soon to tell)"
            await wait_until(pilot, lambda: not pane.generating, timeout=60, what="the reply done")
            await wait_until(pilot, lambda: marker_then_stats(app, pane), timeout=5,
                             what="the marker and then the stats line on screen")
            rows = transcript_rows(app, pane)
            stats = rows[row_of(rows, STATS)]
            assert f"{n} tokens" in stats
            # the stats line is the transcript's last row: the view is at the end
            assert transcript_rows(app, pane)[-1].strip() == stats.strip()


async def test_scrolling_up_holds_the_view_and_pagedown_to_the_end_follows_again(tmp_path):
    async with long_answer(tmp_path, 1600) as (app, pilot, pane):
        # the view has followed past a page (under load it trails the newest lines a moment): one
        # page up leaves lines above it, for the wheel below to scroll into
        await wait_until(pilot, lambda: pane.turns.scroll_y > pane.turns.size.height + 3,
                         what="the view followed past a page")
        # PageUp from the message box: it keeps the focus, the transcript scrolls up
        await key(pilot, "pageup")
        assert isinstance(app.focused, PromptInput)
        await wait_until(pilot, lambda: "PageDown to the end follows" in "\n".join(screen(app)),
                         what="the badge")
        held = transcript_rows(app, pane)
        badge = row_of(screen(app), "new line")
        count0 = int(screen(app)[badge].split("↓ ")[1].split()[0])
        lines0 = pane.turns.line_count
        await wait_until(pilot, lambda: pane.turns.line_count > lines0 + 6, what="more text below the view")
        await pilot.pause(0.1)
        assert transcript_rows(app, pane) == held  # the view stayed still while tokens arrived
        rows = screen(app)
        count1 = int(rows[row_of(rows, "new line")].split("↓ ")[1].split()[0])
        assert count1 >= count0 + 6  # the badge counts the lines that came in below
        assert MARKER not in "\n".join(rows)
        # the wheel pauses too: one notch up from here moves the view up, still paused
        pane.turns.post_message(events.MouseScrollUp(pane.turns, 1, 1, 0, 0, 0, False, False, False))
        await wait_until(pilot, lambda: transcript_rows(app, pane) != held, what="the wheel scrolled")
        assert not pane.turns.following
        # PageDown from the message box until the end: following resumes, the badge goes
        for _ in range(200):
            if pane.turns.following:
                break
            await key(pilot, "pagedown")
        assert isinstance(app.focused, PromptInput)
        await wait_until(pilot, lambda: "PageDown to the end follows" not in "\n".join(screen(app)),
                         what="the badge gone")
        await wait_until(pilot, lambda: not pane.generating, timeout=60, what="the reply done")
        await wait_until(pilot, lambda: marker_then_stats(app, pane), timeout=5,
                         what="the marker and the stats line on screen")


async def test_home_and_end_stay_in_the_message_box_and_esc_shows_the_cancelled_stats_line(tmp_path):
    async with long_answer(tmp_path, 4000) as (app, pilot, pane):
        await key(pilot, "x", "y", "z", "home")
        await wait_until(pilot, lambda: pane.prompt.value == "xyz" and pane.prompt.cursor_position == 0)
        assert pane.turns.following  # home moved the input's cursor, not the transcript
        await key(pilot, "end")
        await wait_until(pilot, lambda: pane.prompt.cursor_position == 3)
        assert pane.turns.following
        await key(pilot, "pageup", "pageup")
        await wait_until(pilot, lambda: "PageDown to the end follows" in "\n".join(screen(app)))
        await key(pilot, "escape")
        await cancelled_stats_in_view(pilot, app, pane)
        assert MARKER not in "\n".join(screen(app))


@pytest.mark.parametrize("focus,scroll", [("prompt", "pageup"), ("transcript", "up")])
async def test_scroll_keys_then_esc_in_one_burst_end_on_the_cancelled_stats_line(tmp_path, focus, scroll):
    """Keys typed faster than the app reads them arrive in one burst (a loaded machine, a fast
    typist). esc is a priority key and ran the cancel, to its end, before the scroll keys pressed
    earlier, which went through every parent first: they paused the chat after the cancel had
    returned to the end, and the badge stayed (the flaky `test_home_and_end_…` above)."""
    async with long_answer(tmp_path, 4000) as (app, pilot, pane):
        if focus == "transcript":
            pane.turns.focus()
            await wait_until(pilot, lambda: app.focused is pane.turns, what="the transcript focused")
        for name in (scroll, scroll, "escape"):  # no pause between them: one burst
            app.post_message(events.Key(name, None))
        await cancelled_stats_in_view(pilot, app, pane)
        await pilot.pause(0.3)  # nothing pressed before esc scrolls the view away afterwards
        assert "cancelled" in transcript_rows(app, pane)[-1]
        assert "PageDown to the end follows" not in "\n".join(screen(app))


async def test_end_in_the_focused_transcript_follows_again(tmp_path):
    with paced_server(tmp_path, 900, 200) as reg:
        app = LlmdeckApp(reg, backend=Backend(reg), telemetry=False)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await open_chat(pilot, app)
            await ask(pilot, pane)
            await wait_until(pilot, lambda: pane.turns.line_count > pane.turns.size.height + 8,
                             timeout=30, what="the answer outgrew the pane")
            pane.turns.focus()
            await key(pilot, "up", "up")  # the arrow keys scroll the focused transcript: paused
            await wait_until(pilot, lambda: "PageDown to the end follows" in "\n".join(screen(app)),
                             what="the badge")
            assert pane.generating
            await key(pilot, "end")
            await wait_until(pilot, lambda: "PageDown to the end follows" not in "\n".join(screen(app)),
                             what="the badge gone")
            await wait_until(pilot, lambda: not pane.generating, timeout=60, what="the reply done")
            await wait_until(pilot, lambda: marker_then_stats(app, pane), timeout=5,
                             what="the marker and the stats line on screen")
