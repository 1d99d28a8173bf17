"""Snapshot tests of the main screens at 80×24 and 160×48 (sync tests: snap_compare runs
its own event loop). Fixed data: the fake backend's states, a fixed telemetry history with
two fake H100s (through the real NvmlSource over fakenvml), scripted chat events, log files
written by the test. Update after an intended change: ``pytest tests/test_ui_snapshots.py
--snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytest
import ui_fakes as F
from textual.widgets import Input
from ui_helpers import make_app, wait_until

from tui.core.chat import events as ev

pytestmark = pytest.mark.timeout(120)

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


@dataclass(frozen=True)
class Until:
    """A step: wait until ``pred(app)`` holds."""
    pred: object
    what: str = "condition"


@dataclass(frozen=True)
class Do:
    """A step: call ``fn(app, tmp_path)`` (awaited when it is a coroutine function)."""
    fn: object


@dataclass(frozen=True)
class Case:
    """A screen: on the settled main screen, ``steps`` in order (a str is a key pressed), then
    a short pause and the shot. ``chat``: glm-5's scripted replies; ``log``: lines appended
    to glm-5's log before the app starts."""
    steps: tuple = ()
    size: tuple = (80, 24)
    chat: tuple = ()
    log: str = ""


def glm_pane(app):
    return app.chat_deck.panes["glm-5"]


def ask(text: str, until) -> tuple:
    return ("c", Until(lambda app: glm_pane(app).ready, "chat pane ready"), *text, "enter", until)


def reply_done(app) -> bool:
    return glm_pane(app).turn is not None and not glm_pane(app).generating


def log_lines(fmt: str, n: int) -> str:
    return "".join(fmt.format(i=i, id=i % 4) + "\n" for i in range(n))


def append_errors(app, tmp_path) -> None:
    with open(tmp_path / "logs" / "glm-5.log", "a") as fh:
        fh.write(log_lines("0.03.{i:03d}.000 E srv  send_error: task {i}: error: request cancelled", 12))


async def show_a_download(app, tmp_path) -> None:
    from tui.ui.widgets.downloads import Job

    await app.downloads_pane.update_job(Job("glm-5", "UD-IQ2_XXS", total=241 * 10**9, done=int(65.5 * 2**30),
                                            speed=112 * 2**20, eta=2240.0, status="downloading"))


def detail_screen(app) -> bool:
    from tui.ui.screens.detail import DetailScreen

    return isinstance(app.screen, DetailScreen)


CHAT_AND_TOOL = (ask("capital of France?", Until(reply_done, "first reply"))
                 + ask("weather there?", Until(lambda app: not glm_pane(app).generating and glm_pane(app).pending_tools,
                                               "tool call"))[2:])  # the pane is open: no c, no wait for it
SLOTS = log_lines("0.02.{i:03d}.000 I slot update_slots: id 0 | task {i} | prompt done", 40)
CASES = {
    "main_screen-80x24": Case(),
    "main_screen-160x48": Case(size=(160, 48)),
    "chat_thinking_collapsed_and_tool_call-80x24": Case(CHAT_AND_TOOL, chat=(CHAT, TOOL)),
    "chat_thinking_collapsed_and_tool_call-160x48": Case(CHAT_AND_TOOL, size=(160, 48), chat=(CHAT, TOOL)),
    "thoughts_expanded": Case(ask("capital of France?", Until(reply_done, "reply")) + ("ctrl+y",), chat=(CHAT,)),
    "help_screen": Case(("question_mark",)),
    "crashed_model_details": Case((
        "j", "j", Until(lambda app: app.log_pane.model == "glm-4.7-flash" and app.log_pane.lines_written >= 5),
        "enter", Until(detail_screen, "the details screen"))),
    "gauges_pane": Case(("4",)),
    "logs_paused_with_badge": Case((
        Until(lambda app: app.log_pane.lines_written >= 47), "l", "k", "k", "k", Do(append_errors),
        Until(lambda app: app.log_pane.feed.waiting == 12, "waiting lines")), log=SLOTS),
    "logs_search_with_current_match": Case((
        Until(lambda app: app.log_pane.lines_written >= 47), "l", "slash", *"id 3", "enter", "n"),
        log=log_lines("0.02.{i:03d}.000 I slot update_slots: id {id} | task {i} | prompt done", 40)),
    "download_in_progress": Case(("3", Do(show_a_download))),
    "kill_confirmation": Case(("K",)),
    "filter": Case((
        "slash", "q", "w", Until(lambda app: app.table.shown == ["qwen3.5"]),
        Until(lambda app: app.log_pane.model == "qwen3.5" and app.log_pane.lines_written >= 5))),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_screen(snap_compare, tmp_path, monkeypatch, case):
    chat = {"glm-5": F.FakeChatSession([list(script) for script in case.chat])} if case.chat else None
    app, be = app_for(tmp_path, monkeypatch, chat=chat)
    if case.log:
        with open(tmp_path / "logs" / "glm-5.log", "a") as fh:
            fh.write(case.log)

    async def run_before(pilot):
        await settled(pilot, app)
        for step in case.steps:
            if isinstance(step, str):
                await pilot.press(step)
            elif isinstance(step, Until):
                await wait_until(pilot, lambda: step.pred(app), what=step.what)
            else:
                done = step.fn(app, tmp_path)
                if inspect.isawaitable(done):
                    await done
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=case.size, run_before=run_before)
