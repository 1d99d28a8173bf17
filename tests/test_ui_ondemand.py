"""The TUI shows the router's on-demand work (issue 16), read from the visible screen: a real
``llmdeck serve`` and a real SmolLM2 server; the TUI over the real backend."""

from __future__ import annotations

import time

import httpx
import pytest
from test_router_ondemand import _chat, _deck, router  # noqa: F401  (router: the fixture)
from ui_helpers import wait_until

from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend

pytestmark = [pytest.mark.server, pytest.mark.timeout(150)]


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_models_table_counts_down_and_router_actions_are_toasted(make_deck, router):  # noqa: F811
    reg = _deck(make_deck, {"w": {"on_demand": True, "ttl_s": 300}, "x": {}})
    r = router(reg)
    assert httpx.post(r.base + "/v1/chat/completions", json=_chat("w"), timeout=60).status_code == 200
    time.sleep(0.7)  # the router's run file is rewritten every 0.5 s
    app = LlmdeckApp(reg, backend=Backend(reg), status_interval=0.3, telemetry=False)
    async with app.run_test(size=(120, 32), notifications=True) as pilot:  # toasts drawn, as for a user
        await wait_until(pilot, lambda: "ready 4:5" in screen_text(app) or "ready 5:00" in screen_text(app),
                         timeout=20, what="the countdown in w's row")
        row = next(ln for ln in screen_text(app).splitlines() if " w " in ln and "ready" in ln)
        assert "ready 4:5" in row or "ready 5:00" in row, row
        await wait_until(pilot, lambda: "w: unloads in 4:5" in screen_text(app) or "w: unloads in 5:00"
                         in screen_text(app), timeout=10, what="the note line for the selected w")
        assert f"(router {r.base})" in screen_text(app)
        a = httpx.post(r.base + "/api/w/unload", timeout=30)
        assert a.status_code == 200, a.text
        await wait_until(pilot, lambda: "router unloaded w: unload by API" in screen_text(app), timeout=15,
                         what="the router's toast")
        await wait_until(pilot, lambda: any(" w " in ln and "stopped" in ln for ln in screen_text(app).splitlines()),
                         timeout=15, what="w stopped in the table")
