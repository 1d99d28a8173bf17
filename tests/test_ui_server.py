"""The TUI against a real llama-server and the real SmolLM2 model, through the real backend
(supervisor, log follower, chat client, telemetry sampler).

One test walks the issue's path: ``s`` → ready on screen → chat answer streamed → ``esc``
cancels a long reply → ``q`` quits leaving the server up → a new app adopts it → ``x`` →
stopped. The server is stopped in ``finally`` whatever happens.
"""

from __future__ import annotations

import json

import psutil
import pytest
from conftest import free_port
from ui_helpers import row_text, wait_until

from tui.core import registry, supervisor
from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend
from tui.ui.widgets.chat_pane import PromptInput

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]


@pytest.fixture
def real_registry(tmp_path, llama_server_bin, smollm_gguf, monkeypatch):
    port = free_port()
    (tmp_path / "models.json").write_text(json.dumps({
        "settings": {"llama_server": str(llama_server_bin), "stop_grace_s": 5},
        "models": {"smollm2": {"model_path": str(smollm_gguf), "alias": "smollm2", "default_port": port,
                               "params": {"ctx_size": 1024, "threads": 2, "parallel": 1, "temp": 0.0}}},
    }))
    monkeypatch.chdir(tmp_path)
    reg = registry.load(tmp_path / "models.json")
    yield reg
    supervisor.stop_all(reg, grace=2)


def new_app(reg, max_tokens):
    return LlmdeckApp(reg, backend=Backend(reg, chat_options={"max_tokens": max_tokens}), status_interval=0.5)


async def test_start_ready_chat_cancel_quit_adopt_stop(real_registry):
    reg = real_registry
    app = new_app(reg, 12)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: "smollm2" in app.states, what="first poll")
        assert row_text(app, "smollm2")[3] == "stopped"
        await pilot.press("s")
        await wait_until(pilot, lambda: row_text(app, "smollm2")[3] == "ready", timeout=120, what="ready on screen")
        st = app.states["smollm2"]
        pid = st.pid
        assert psutil.pid_exists(pid) and st.port == reg.get("smollm2").default_port
        # the live log shows the real server's lines
        await wait_until(pilot, lambda: any("listening on" in x for x in app.log_pane.log.lines),
                         what="server log followed")
        # chat: the answer streams in (several events), with a stats line
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.focused, PromptInput))
        pane = app.chat_deck.panes["smollm2"]
        await wait_until(pilot, lambda: pane.ready)
        await pilot.press(*"Say hello.", "enter")
        await wait_until(pilot, lambda: pane.turn is not None and not pane.generating, timeout=150,
                         what="answer")
        assert pane.turn.content.strip(), pane.turn.stats.plain()
        assert pane.events_seen >= 4  # content deltas one by one, then usage/done
        assert pane.turn.answer.source == pane.turn.content
        stats = pane.turn.stats.plain()
        assert "tok/s" in stats and "tokens" in stats, stats
        assert [m["role"] for m in pane.session.history] == ["user", "assistant"]
        # ctrl+r asks the same prompt again through the real client; the old answer is forgotten
        first = pane.turn
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: pane.turn is not first and not pane.generating, timeout=150,
                         what="regenerated answer")
        assert pane.turn.content.strip()
        assert [m["role"] for m in pane.session.history] == ["user", "assistant"]
        assert pane.session.history[-1]["content"] == pane.turn.content
        # esc cancels a long reply; what arrived is kept
        pane.session.max_tokens = None
        pane.session._conversation().max_tokens = 400
        await pilot.press(*"Write a long story about a cat.", "enter")
        await wait_until(pilot, lambda: pane.generating and pane.turn.content, timeout=120,
                         what="the second reply streaming")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not pane.generating, timeout=30, what="cancelled")
        assert "cancelled" in pane.turn.stats.plain()
        assert pane.turn.content
        # q: quit, the server keeps running
        await pilot.press("escape", "q")
        await wait_until(pilot, lambda: app._exit, what="exit")
    assert psutil.pid_exists(pid)

    app2 = new_app(reg, 12)
    async with app2.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: "smollm2" in app2.states)
        assert app2.states["smollm2"].state == "ready" and app2.states["smollm2"].pid == pid  # adopted
        assert row_text(app2, "smollm2")[3] == "ready"
        await pilot.press("x")
        await wait_until(pilot, lambda: row_text(app2, "smollm2")[3] == "stopped", timeout=30, what="stopped")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert supervisor.state_of(reg, "smollm2").state == "stopped"
