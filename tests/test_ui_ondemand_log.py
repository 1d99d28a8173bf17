"""Every start, swap and unload the router does is a line with its reason in the model's log,
which the TUI's log pane shows (issue 16: "the TUI logs a line and a toast"), read from the
visible screen: a real ``llmdeck serve``, real SmolLM2 servers, the TUI over the real backend."""

from __future__ import annotations

import httpx
import pytest
from test_router_ondemand import _chat, _deck, router  # noqa: F401  (router: the fixture)
from ui_helpers import wait_until

from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend

pytestmark = [pytest.mark.server, pytest.mark.timeout(150)]


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_router_actions_are_lines_in_the_log_pane(make_deck, router):  # noqa: F811
    reg = _deck(make_deck, {"v": {"on_demand": True, "swap_group": "g"}, "w": {"on_demand": True, "swap_group": "g"}})
    r = router(reg)
    assert httpx.post(r.base + "/v1/chat/completions", json=_chat("v"), timeout=60).status_code == 200
    app = LlmdeckApp(reg, backend=Backend(reg), status_interval=0.3, telemetry=False)
    async with app.run_test(size=(130, 36), notifications=True) as pilot:
        await wait_until(pilot, lambda: app.log_pane is not None, what="panes mounted")
        app.table.select("v")
        await pilot.press("l")
        await wait_until(pilot, lambda: "v: router started: request" in screen_text(app), timeout=20,
                         what="v's start in its log pane")
        # a request for w swaps v out: the reason is a line in v's log, on screen
        assert httpx.post(r.base + "/v1/chat/completions", json=_chat("w"), timeout=60).status_code == 200
        await wait_until(pilot, lambda: "v: router swapped out: swap_group g: w starts" in screen_text(app),
                         timeout=20, what="v's swap in its log pane")
        line = next(ln for ln in screen_text(app).splitlines() if "router swapped out" in ln)
        assert "----- llmdeck:" in line, line
        # w's own log says why it started; an unload by API ends it with a line
        app.table.select("w")
        await wait_until(pilot, lambda: "w: router started: request" in screen_text(app), timeout=20,
                         what="w's start in its log pane")
        assert httpx.post(r.base + "/api/w/unload", timeout=30).status_code == 200
        await wait_until(pilot, lambda: "w: router unloaded: unload by API" in screen_text(app), timeout=20,
                         what="w's unload in its log pane")
    assert "router unloaded: unload by API" in reg.log_file("w").read_text()
