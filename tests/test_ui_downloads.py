"""The downloads pane and ``d``/``X`` through the real backend and the real download core,
against the local Hub-protocol server (tests/hubserver.py: the Hub cannot be reached here).
"""

from __future__ import annotations

import json

import pytest
from hubserver import registry_json
from ui_helpers import row_text, wait_until

from tui.core import registry
from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend
from tui.ui.screens.confirm import ConfirmScreen

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def reg(tmp_path, monkeypatch, hub_env):  # the local Hub: conftest.py
    data = registry_json(tmp_path / "models")
    data["models"]["local"] = {"model_path": "local.gguf", "default_port": 8123}
    (tmp_path / "local.gguf").write_bytes(b"GGUF" + bytes(28))
    (tmp_path / "models.json").write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    return registry.load(tmp_path / "models.json")


def job_of(app, name: str):
    """The downloads pane's job for ``name`` (None until the job exists: AttributeError in wait_until)."""
    return app.downloads_pane.jobs.get(name)


def app_for(reg):
    return LlmdeckApp(reg, backend=Backend(reg), status_interval=0.5, telemetry=False)


async def test_d_plans_asks_downloads_with_progress_and_marks_on_disk(reg):
    app = app_for(reg)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.files.get("tiny") == "missing", what="files read")
        app.table.select("local")
        await pilot.pause(0.05)
        assert app.check_action("download", ()) is False  # a model_path model has nothing to download
        app.table.select("tiny")
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        q = app.screen.question
        assert "Download tiny Q4_K_M: 3 file(s)" in q and "free" in q
        assert "\nMemory: weights " in q and "RAM available" in q  # will it fit VRAM + RAM
        await pilot.press("y")
        await wait_until(pilot, lambda: job_of(app, "tiny").status == "done",
                         what="download done")
        job = app.downloads_pane.jobs["tiny"]
        assert job.done == job.total > 0
        await wait_until(pilot, lambda: row_text(app, "tiny")[2] == "on disk", what="files on disk")
        assert app.tabs.active == "downloads"
        assert any("download tiny: done" in n.message for n in app._notifications)
        assert len(list((reg.models_dir / "Tiny-GGUF" / "Q4_K_M").glob("*.gguf"))) == 3
        # a second d: already on disk
        await pilot.press("d")
        await wait_until(pilot, lambda: any("already on disk" in n.message for n in app._notifications))
        # D deletes the downloaded files, after asking
        assert app.check_action("delete_files", ()) is True
        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="delete confirm")
        assert "Delete 4 file(s) of tiny" in app.screen.question  # 3 shards + the download manifest
        await pilot.press("n")
        assert len(list((reg.models_dir / "Tiny-GGUF" / "Q4_K_M").glob("*.gguf"))) == 3
        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="delete confirm")
        await pilot.press("y")
        await wait_until(pilot, lambda: row_text(app, "tiny")[2] == "missing", what="files gone")
        assert not (reg.models_dir / "Tiny-GGUF").exists()
        app.table.select("local")
        await pilot.pause(0.05)
        assert app.check_action("delete_files", ()) is False  # model_path files are the user's


async def test_x_cancels_keeping_the_partial_and_d_resumes(reg, hub):
    hub.throttle_bps = 1 << 20  # 8 MiB at 1 MiB/s: time to cancel
    app = app_for(reg)
    part = reg.models_dir / "Big-GGUF" / "Q4_K_M" / "Big-Q4_K_M.gguf.part"
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: "big" in app.files)
        app.table.select("big")
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: job_of(app, "big").done > (1 << 20),
                         what="bytes arriving")
        await pilot.press("3")
        assert app.check_action("download", ()) is None  # greyed while running
        await pilot.press("X")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Partial files are kept" in app.screen.question
        await pilot.press("y")
        await wait_until(pilot, lambda: app.downloads_pane.jobs["big"].status == "cancelled", what="cancelled")
        assert part.exists() and part.stat().st_size > 0
        kept = part.stat().st_size
        assert row_text(app, "big")[2] == "partial" or app.files["big"] in ("partial", "incomplete")
        hub.throttle_bps = None
        await pilot.press("m", "d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "to fetch" in app.screen.question
        await pilot.press("y")
        await wait_until(pilot, lambda: app.downloads_pane.jobs["big"].status == "done", what="resumed to the end")
        assert not part.exists()
        ranges = [r for r in hub.requests("GET", "/cdn/") if r.range]
        assert any(r.range.startswith(f"bytes={kept}") for r in ranges), ranges
