"""Shared helpers for the TUI tests (Pilot waits, app construction over the fakes)."""

from __future__ import annotations

import time

import ui_fakes as F

from tui.ui.app import LlmdeckApp


async def wait_until(pilot, pred, timeout: float = 10.0, what: str = "condition") -> None:
    """Pause the pilot until ``pred()`` is true (a single pause() is unreliable)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ok = pred()
        except AttributeError:  # a pane not mounted yet (they mount after the first frame)
            ok = False
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


def make_app(tmp_path, monkeypatch, *, states=None, sampler=None, chat=None, stable=True, **kw):
    """An app over the fake backend in ``tmp_path`` (cwd there, so paths show short)."""
    reg = F.write_registry(tmp_path)
    monkeypatch.chdir(tmp_path)
    be = F.FakeBackend(reg, states=states, sampler=sampler, chat=chat)
    if stable:
        be.ready_after_polls = 10**9  # loading stays loading
    kw.setdefault("status_interval", 0.1)
    app = LlmdeckApp(reg, backend=be, **kw)
    return app, be


def row_text(app, name: str) -> list[str]:
    return [c.plain.strip() for c in app.table._rows[name]]


def cell(app, name: str, column: str):
    """The displayed cell (a rich Text) of a model's row, as the DataTable holds it."""
    return app.table.get_cell(name, column)
