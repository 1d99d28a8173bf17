"""The eval pane (``e``): Pilot tests through the real backend and the real core ``EvalSession``
against the BFCL test server (its own process, tests/bfclserver.py), reading the rendered
screen: the seed's table with seed 004's column, failed cases with BFCL's error, the last
runs side by side, esc cancelling a run (kept, partial, saved), form errors, the 80-column
footer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import Input
from ui_helpers import wait_until

from tui.core import registry
from tui.core.eval import list_reports
from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend

ROOT = Path(__file__).resolve().parent.parent
MODEL = "glm-4.7-flash-q4"  # seed 004's model: the table gets the seed's column

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch):
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture(scope="module")
def bfcl_server():
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "bfclserver.py")], stdout=subprocess.PIPE,
                            text=True)
    try:
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}/v1"
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def reg(bfcl_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"settings": {}, "models": {
        MODEL: {"engine": "external", "base_url": bfcl_server, "alias": "rotate-spoil3"}}}))
    return registry.load(p)


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def open_eval(pilot, app):
    await wait_until(pilot, lambda: app.tabs is not None, what="panes mounted")
    await pilot.press("e")
    await wait_until(pilot, lambda: app.eval_pane is not None and app.tabs.active == "eval"
                     and app.focused is app.eval_pane.query_one("#eval-categories"), what="eval pane focused")
    return app.eval_pane


async def fill(pilot, *values: str) -> None:
    for i, v in enumerate(values):
        await pilot.press("ctrl+a", "ctrl+k", *v)
        if i < len(values) - 1:
            await pilot.press("tab")


async def test_a_run_shows_the_seed_table_failed_cases_and_last_runs(reg):
    app = LlmdeckApp(reg, backend=Backend(reg), status_interval=0.5, telemetry=False)
    async with app.run_test(size=(110, 70)) as pilot:
        pane = await open_eval(pilot, app)
        await wait_until(pilot, lambda: "none saved yet" in screen_text(app), what="empty history")
        await fill(pilot, "simple, parallel irrelevance", "9", "off")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "done: 27 cases" in screen_text(app), timeout=60, what="run done")
        text = screen_text(app)
        assert "Seed 004 (%)" in text
        row = next(ln for ln in text.splitlines() if "simple_python [simple]" in ln)
        assert "9" in row.split() and "62.50" in row  # the seed's simple figure beside ours
        assert any("rest" in ln and "not in BFCL v4" in ln for ln in text.splitlines())
        assert "overall (case-weighted)" in text and "BFCL 2026.3.23" in text
        assert "thinking off" in text or "27 cases" in text
        # every 3rd case spoiled: the failed cases are listed with BFCL's error, the first shown
        rep = pane.report
        failed = rep.failures()
        assert failed and len(failed) == len([r for r in rep.cases if not r.valid])
        assert f"failed cases ({len(failed)}" in text
        first = failed[0]
        assert first.id in text and "expected" in text and "got" in text
        assert first.error[:30] in " ".join(text.split())
        await pilot.press("tab")  # from the last field to the failures list
        await wait_until(pilot, lambda: app.focused is pane.failures_table, what="failures focused")
        if len(failed) > 1:
            await pilot.press("down")
            await wait_until(pilot, lambda: f"{failed[1].id} (" in screen_text(app), what="second failure shown")
        # saved, and the last runs table shows it
        saved = list_reports(reg.logs_dir, MODEL)
        assert len(saved) == 1 and saved[0].options["thinking"] is False
        await wait_until(pilot, lambda: "#1 20" in screen_text(app), what="history shows the run")
        text = screen_text(app)
        print(text)
        hist = text[text.index("last runs of"):]
        assert "thinking off" in hist and "limit 9" in hist
        assert any("parallel" in ln and "66.67" in ln for ln in hist.splitlines())


async def test_esc_cancels_a_run_and_keeps_what_finished(reg):
    app = LlmdeckApp(reg, backend=Backend(reg), status_interval=0.5, telemetry=False)
    async with app.run_test(size=(100, 40)) as pilot:
        pane = await open_eval(pilot, app)
        await fill(pilot, "all", "", "on")  # the whole suite: 3,641 cases
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: pane.progress is not None and pane.progress.done >= 20, timeout=60,
                         what="some cases done")
        await pilot.press("escape")
        await wait_until(pilot, lambda: "cancelled ·" in screen_text(app), timeout=30, what="cancelled")
        text = screen_text(app)
        assert "(partial)" in text and "saved" in text
        (saved,) = list_reports(reg.logs_dir, MODEL)
        assert saved.partial and 20 <= len(saved.cases) < 3641
        assert not pane.running


async def test_form_errors_are_one_line_and_the_footer_fits_80_columns(reg):
    app = LlmdeckApp(reg, backend=Backend(reg), status_interval=0.5, telemetry=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_eval(pilot, app)
        await fill(pilot, "paralel", "5", "on")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "did you mean 'parallel'?" in screen_text(app), what="category error")
        await pilot.press("shift+tab", "shift+tab")  # back to the first field
        await fill(pilot, "simple", "0")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "limit must be 1 or more" in screen_text(app), what="limit error")
        footer = screen_text(app).splitlines()[-1]
        assert len(footer.rstrip()) <= 80 and "esc" in footer
        await pilot.press("escape")  # leaves the field (no run): the list has the keys
        await wait_until(pilot, lambda: app.focused is app.table, what="back to the list")
        assert "eval" not in [r.options.get("categories") for r in list_reports(reg.logs_dir, MODEL)]
