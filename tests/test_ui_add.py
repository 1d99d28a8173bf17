"""``a``: the add screen at 80×24, through the real backend and the real core, against the local
Hub test server (tests/hubsearch.py). Every assertion about what the user sees reads the rendered
screen (the compositor's lines), not widget data."""

from __future__ import annotations

import json

import pytest
from hubsearch import SearchHubServer, populate_glm
from hubserver import HubSpec
from rich.color import Color
from ui_helpers import wait_until

from tui.core import registry
from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend
from tui.ui.screens.add import AddScreen
from tui.ui.screens.confirm import ConfirmScreen

pytestmark = pytest.mark.timeout(120)


def screen_lines(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def screen_text(app) -> str:
    return "\n".join(screen_lines(app))


def styles_of(app, needle: str) -> list[str]:
    """The styles of the rendered segments whose text contains ``needle``."""
    out = []
    for strip in app.screen._compositor.render_strips():
        for seg in strip:
            if needle in seg.text and seg.style is not None:
                out.append(str(seg.style))
    return out


@pytest.fixture(scope="module")
def hub_spec():
    return HubSpec(populate_glm, SearchHubServer)


@pytest.fixture
def reg(tmp_path, monkeypatch, hub_env):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = {"settings": {"models_dir": str(tmp_path / "models")},
            "models": {"glm-5": {"repo_id": "unsloth/GLM-5-GGUF", "default_port": 8001,
                                 "quants": {"UD-IQ2_XXS": {"pattern": "UD-IQ2_XXS/*.gguf", "size_gb": 241}},
                                 "default_quant": "UD-IQ2_XXS"}}}
    (tmp_path / "models.json").write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    return registry.load(tmp_path / "models.json")


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch)


async def test_a_searches_shows_the_quant_table_and_adds_then_asks_to_download(reg, tmp_path):
    app = LlmdeckApp(reg, backend=Backend(reg), status_interval=0.5, telemetry=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, AddScreen), what="add screen")
        await pilot.pause(0.1)
        assert "Add a model from the Hugging Face Hub" in screen_lines(app)[0]
        # search text: GGUF repos, most downloaded first
        await type_text(pilot, "glm")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "GGUF repos match 'glm'" in screen_text(app), what="results")
        lines = screen_lines(app)
        assert max(len(x.rstrip()) for x in lines) <= 80
        i5 = next(i for i, x in enumerate(lines) if "unsloth/GLM-5-GGUF" in x)
        i47 = next(i for i, x in enumerate(lines) if "unsloth/GLM-4.7-Flash-GGUF" in x)
        assert i5 < i47 and "91.2k" in lines[i5] and "744.0B" in lines[i5]
        # enter on GLM-5: its quant table, every quant with size, files, ctx, type and a coloured verdict
        await pilot.press("enter")
        await wait_until(pilot, lambda: "unsloth/GLM-5-GGUF @ " in screen_text(app), what="quant table")
        await pilot.pause(0.1)
        text = screen_text(app)
        for q, files, ftype in (("UD-IQ2_XXS", "3", "IQ2_XXS"), ("UD-TQ1_0", "2", "TQ1_0"),
                                ("Q2_K", "2", "Q2_K"), ("Q4_K_M", "1", "Q4_K_M")):
            line = next(x for x in screen_lines(app) if x.lstrip().startswith(q + " "))
            assert f" {files} " in line and "202.8k" in line and ftype in line.split(q, 1)[1], line
            assert line.rstrip().endswith(("VRAM", "VRAM + RAM", "RAM (CPU)", "does not fit")), line
        assert "4 quants, 1 mmproj" in text
        assert max(len(x.rstrip()) for x in screen_lines(app)) <= 80
        verdict = next(w for w in ("VRAM + RAM", "RAM (CPU)", "VRAM", "does not fit") if w in text)
        colour = {"VRAM + RAM": "yellow", "RAM (CPU)": "yellow", "VRAM": "green", "does not fit": "red"}[verdict]
        rendered = Color.parse(colour).get_truecolor(app.ansi_theme).hex  # as the terminal draws it
        assert any(s.startswith(rendered) for s in styles_of(app, verdict)), styles_of(app, verdict)
        # the highlighted quant's header facts and memory line
        assert "glm4moe" in text and "6 layers" in text and "16 experts (4 active)" in text
        assert "memory: weights" in text
        # glm-5 is already in models.json: refused by name, one line, nothing written
        before = (tmp_path / "models.json").read_text()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "already exists" in screen_text(app), what="clash line")
        assert "model 'glm-5' already exists" in screen_text(app)
        assert (tmp_path / "models.json").read_text() == before
        # esc: back to the results, then to the input; a repo id opens its quants directly
        await pilot.press("escape")
        await wait_until(pilot, lambda: "GGUF repos match 'glm'" in screen_text(app), what="back to results")
        await pilot.press("escape")
        inp = app.screen.query_one("#add-input")
        await wait_until(pilot, lambda: app.screen.focused is inp, what="input focused")
        inp.value = ""
        await type_text(pilot, "hf.co/Qwen/Qwen3-8B-GGUF")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Qwen/Qwen3-8B-GGUF @ " in screen_text(app), what="qwen quants")
        assert "qwen3" in screen_text(app)
        await pilot.press("enter")
        # added: the screen closes, the new model is in the table at once, and the download question follows
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=30, what="download question")
        assert "Download qwen3-8b Q4_K_M: 1 file(s)" in screen_text(app)
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="question closed")
        await pilot.pause(0.2)
        lines = screen_lines(app)
        assert any(x.startswith(" qwen3-8b ") and "Q4_K_M" in x for x in lines), "\n".join(lines)
        entry = json.loads((tmp_path / "models.json").read_text())["models"]["qwen3-8b"]
        assert entry["repo_id"] == "Qwen/Qwen3-8B-GGUF" and entry["tool_call_parser"] == "hermes"
        assert entry["default_port"] == 8002 or entry["default_port"] > 8002
        assert registry.check(tmp_path / "models.json") == []


async def test_add_screen_errors_are_one_line_and_esc_closes(reg, hub):
    app = LlmdeckApp(reg, backend=Backend(reg), status_interval=0.5, telemetry=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, AddScreen), what="add screen")
        for repo, needle in (("nobody/Nothing-GGUF", "no such model repo"),
                             ("acme/Safetensors-Only", "no GGUF model files"),
                             ("gated/Gated-GGUF", "is gated")):
            inp = app.screen.query_one("#add-input")
            inp.focus()
            inp.value = repo
            await pilot.press("enter")
            await wait_until(pilot, lambda: needle in screen_text(app), what=needle)
            assert "Traceback" not in screen_text(app)
        hub.rate_limit = 1
        inp.value = "glm"
        await pilot.press("enter")
        await wait_until(pilot, lambda: "(429)" in screen_text(app), what="429")
        assert "retry in 7 s" in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, AddScreen), what="closed")
