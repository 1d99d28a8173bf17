"""Snapshot tests of the main screens at 80×24 and 160×48 (sync tests: snap_compare runs
its own event loop). Fixed data: the fake backend's states, a fixed telemetry history with
two fake H100s (through the real NvmlSource over fakenvml), scripted chat events, log files
written by the test. Update after an intended change: ``pytest tests/test_ui_snapshots.py
--snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import pytest
import ui_fakes as F
from textual.widgets import Input
from ui_helpers import make_app, wait_until

from tui.core.chat import events as ev

pytestmark = pytest.mark.timeout(120)

SIZES = [(80, 24), (160, 48)]


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch):
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


def app_for(tmp_path, monkeypatch, **kw):
    kw.setdefault("states", F.demo_states())
    kw.setdefault("sampler", F.FakeSampler(F.snapshots(30)))
    app, be = make_app(tmp_path, monkeypatch, **kw)
    app.animation_level = "none"  # the tab underline slides otherwise: screenshots mid-way differ
    return app, be


async def settled(pilot, app, name="glm-5"):
    """Wait until states, files and the selected model's log are on screen."""
    await wait_until(pilot, lambda: len(app.states) == 4 and app.files.get("glm-5") == "partial",
                     what="states and files")
    await wait_until(pilot, lambda: app.log_pane is not None and app.log_pane.model == app.selected
                     and app.log_pane.lines_written >= 5, what="log backlog")
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare, tmp_path, monkeypatch, size):
    app, be = app_for(tmp_path, monkeypatch)

    async def run_before(pilot):
        await settled(pilot, app)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


CHAT = [
    ev.Reasoning("The user asks for the capital of France. "), ev.Reasoning("That is Paris; answer briefly."),
    ev.Content("The capital of France is **Paris**.\n\n"),
    ev.Content("```python\nprint('Paris')\n```\n"),
    ev.Done("stop", stats=ev.Stats(ttft_s=0.21, elapsed_s=2.4, prompt_tokens=31, completion_tokens=58,
                                   tokens_per_s=41.7)),
]
TOOL = [
    ev.ToolCall(0, "call_7", "get_weather", {"city": "Paris", "unit": "celsius"},
                '{"city": "Paris", "unit": "celsius"}', True),
    ev.Done("tool_calls", stats=ev.Stats(ttft_s=0.18, completion_tokens=22, tokens_per_s=40.3)),
]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_chat_thinking_collapsed_and_tool_call(snap_compare, tmp_path, monkeypatch, size):
    session = F.FakeChatSession([list(CHAT), list(TOOL)])
    app, be = app_for(tmp_path, monkeypatch, chat={"glm-5": session})

    async def run_before(pilot):
        await settled(pilot, app)
        await pilot.press("c")
        pane = app.chat_deck.panes["glm-5"]
        await wait_until(pilot, lambda: pane.ready)
        await pilot.press(*"capital of France?", "enter")
        await wait_until(pilot, lambda: pane.turn is not None and not pane.generating, what="first reply")
        await pilot.press(*"weather there?", "enter")
        await wait_until(pilot, lambda: not pane.generating and pane.pending_tools, what="tool call")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_thoughts_expanded(snap_compare, tmp_path, monkeypatch):
    session = F.FakeChatSession([list(CHAT)])
    app, be = app_for(tmp_path, monkeypatch, chat={"glm-5": session})

    async def run_before(pilot):
        await settled(pilot, app)
        await pilot.press("c")
        pane = app.chat_deck.panes["glm-5"]
        await wait_until(pilot, lambda: pane.ready)
        await pilot.press(*"capital of France?", "enter")
        await wait_until(pilot, lambda: pane.turn is not None and not pane.generating, what="reply")
        await pilot.press("ctrl+y")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_help_screen(snap_compare, tmp_path, monkeypatch):
    app, be = app_for(tmp_path, monkeypatch)

    async def run_before(pilot):
        await settled(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_crashed_model_details(snap_compare, tmp_path, monkeypatch):
    from tui.ui.screens.detail import DetailScreen

    app, be = app_for(tmp_path, monkeypatch)

    async def run_before(pilot):
        await settled(pilot, app)
        await pilot.press("j", "j")
        await wait_until(pilot, lambda: app.log_pane.model == "glm-4.7-flash" and app.log_pane.lines_written >= 5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_gauges_pane(snap_compare, tmp_path, monkeypatch):
    app, be = app_for(tmp_path, monkeypatch)

    async def run_before(pilot):
        await settled(pilot, app)
        await pilot.press("4")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_logs_paused_with_badge(snap_compare, tmp_path, monkeypatch):
    app, be = app_for(tmp_path, monkeypatch)
    log = tmp_path / "logs" / "glm-5.log"
    with open(log, "a") as fh:
        fh.write("".join(f"0.02.{i:03d}.000 I slot update_slots: id 0 | task {i} | prompt done\n" for i in range(40)))

    async def run_before(pilot):
        await settled(pilot, app)
        await wait_until(pilot, lambda: app.log_pane.lines_written >= 47)
        await pilot.press("l", "k", "k", "k")
        with open(log, "a") as fh:
            fh.write("".join(f"0.03.{i:03d}.000 E srv  send_error: task {i}: error: request cancelled\n"
                             for i in range(12)))
        await wait_until(pilot, lambda: app.log_pane.feed.waiting == 12, what="waiting lines")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_logs_search_with_current_match(snap_compare, tmp_path, monkeypatch):
    app, be = app_for(tmp_path, monkeypatch)
    log = tmp_path / "logs" / "glm-5.log"
    with open(log, "a") as fh:
        fh.write("".join(f"0.02.{i:03d}.000 I slot update_slots: id {i % 4} | task {i} | prompt done\n"
                         for i in range(40)))

    async def run_before(pilot):
        await settled(pilot, app)
        await wait_until(pilot, lambda: app.log_pane.lines_written >= 47)
        await pilot.press("l", "slash", *"id 3", "enter", "n")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_download_in_progress(snap_compare, tmp_path, monkeypatch):
    from tui.ui.widgets.downloads import Job

    app, be = app_for(tmp_path, monkeypatch)

    async def run_before(pilot):
        await settled(pilot, app)
        await pilot.press("3")
        job = Job("glm-5", "UD-IQ2_XXS", total=241 * 10**9, done=int(65.5 * 2**30), speed=112 * 2**20,
                  eta=2240.0, status="downloading")
        await app.downloads_pane.update_job(job)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_kill_confirmation(snap_compare, tmp_path, monkeypatch):
    app, be = app_for(tmp_path, monkeypatch)

    async def run_before(pilot):
        await settled(pilot, app)
        await pilot.press("K")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_filter(snap_compare, tmp_path, monkeypatch):
    app, be = app_for(tmp_path, monkeypatch)

    async def run_before(pilot):
        await settled(pilot, app)
        await pilot.press("slash", "q", "w")
        await wait_until(pilot, lambda: app.table.shown == ["qwen3.5"])
        await wait_until(pilot, lambda: app.log_pane.model == "qwen3.5" and app.log_pane.lines_written >= 5)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
