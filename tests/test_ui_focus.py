"""Focus you can see, one rule for esc, a visible filter, footers that fit (issue 12).

Every assertion about what the user sees reads the rendered screen: the lines the
compositor draws (``screen_lines``), not widget data. Widget state is only used to wait for
something to have happened (the pilot's clock is not the screen's).
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import ui_fakes as F
from ui_helpers import make_app, wait_until

from tui.core.telemetry.nvml import STATE_MESSAGES, GpuReading
from tui.core.telemetry.procs import Usage

pytestmark = pytest.mark.timeout(90)

NAMES = list(F.REGISTRY["models"])
PALETTE = "▏^p palette"


def screen_lines(app) -> list[str]:
    """The visible terminal: one string per row, as the compositor renders the top screen."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def footer_line(app) -> str:
    return screen_lines(app)[-1]


def rows_on_screen(lines: list[str]) -> set[str]:
    """Models whose table row is on screen (a row starts with the name, then the quant)."""
    return {n for n in NAMES for line in lines[1:14] if re.match(rf"^ {re.escape(n)} +\S", line)}


def filter_bar(lines: list[str]) -> str | None:
    return next((line for line in lines[1:4] if line.startswith(" filter:")), None)


def check_no_row_hidden_without_filter(lines: list[str]) -> None:
    """A model row never disappears without a visible filter bar and an 'N of M' header."""
    shown = rows_on_screen(lines)
    if len(shown) < len(NAMES):
        assert filter_bar(lines) is not None, "\n".join(lines)
        assert f"{len(shown)} of {len(NAMES)} models shown" in lines[0], lines[0]


async def settle(pilot, app):
    await wait_until(pilot, lambda: app.tabs is not None and len(app.states) == len(NAMES), what="states")
    await pilot.pause(0.1)


async def show(pilot, pred, what: str, app, timeout: float = 10.0) -> list[str]:
    """Wait until ``pred(lines)`` holds for the screen; returns the lines."""
    holder: list[list[str]] = [[]]

    def ok() -> bool:
        holder[0] = screen_lines(app)
        return pred(holder[0])

    try:
        await wait_until(pilot, ok, timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError(f"{what}; the screen:\n" + "\n".join(holder[0])) from None
    return holder[0]


# -- the user's sequence -------------------------------------------------------------------


async def test_l_4_palette_esc_q_never_types_into_an_invisible_filter(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), sampler=F.FakeSampler(F.snapshots(3)))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        for key in ("l", "4", "ctrl+p", "escape"):
            await pilot.press(key)
            await pilot.pause(0.2)
            if key == "ctrl+p":  # the palette covers the list
                continue
            lines = screen_lines(app)
            check_no_row_hidden_without_filter(lines)
            # the footer never says "typing" when no input is on screen
            assert "typing:" not in lines[-1] and "clear filter" not in lines[-1], lines[-1]
        await pilot.press("q")
        await pilot.pause(0.3)
        if app.is_running and not app._exit:  # did not quit: then the q is in a visible filter
            lines = screen_lines(app)
            bar = filter_bar(lines)
            assert bar is not None and "q" in bar, "\n".join(lines)
            check_no_row_hidden_without_filter(lines)
    assert app._exit  # q quit: the keys went to the models list, not into a hidden input


async def test_slash_before_the_bar_is_mounted_still_shows_one_filter_bar(tmp_path, monkeypatch):
    """The filter bar is mounted right after the first frame (mount_after_first_frame); a / that
    comes before that step mounts the bar itself, and the step then leaves one bar on screen."""
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    started = app._after_first_frame

    async def slash_first() -> None:  # the user's / wins the race with the after-first-frame step
        await app.action_filter()
        await started()

    app._after_first_frame = slash_first
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, lambda ls: ls[-1].startswith("typing: filter"), "the filter input has the keys", app)
        await pilot.press("q")
        lines = await show(pilot, lambda ls: "1 of 4 models shown" in ls[0], "filtered header", app)
        bar = filter_bar(lines)
        assert bar is not None and bar.startswith(" filter: q "), "\n".join(lines)
        assert len(app.screen.query("#filter-bar")) == 1
        assert sum(1 for line in lines if line.startswith(" filter:")) == 1, "\n".join(lines)
        check_no_row_hidden_without_filter(lines)


async def test_filter_bar_shows_the_filter_and_the_header_counts(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        lines = screen_lines(app)
        assert "4 models, 2 running" in lines[0] and filter_bar(lines) is None
        await pilot.press("slash", "q")
        lines = await show(pilot, lambda ls: "1 of 4 models shown" in ls[0], "filtered header", app)
        assert rows_on_screen(lines) == {"qwen3.5"}
        bar = filter_bar(lines)
        assert bar is not None and bar.startswith(" filter: q ")
        assert lines[-1].startswith("typing: filter · esc leaves"), lines[-1]
        # esc leaves the input: the filter stays, visible, and says how to clear it
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: "typing:" not in ls[-1], "left the filter input", app)
        bar = filter_bar(lines)
        assert bar is not None and bar.startswith(" filter: q ") and bar.rstrip().endswith("esc clears"), bar
        assert "1 of 4 models shown" in lines[0] and lines[-1].startswith("esc clear filter")
        check_no_row_hidden_without_filter(lines)
        # the footer's verbs are those of the row on screen (qwen3.5, loading: x, not s)
        assert "x stop" in lines[-1] and "s start" not in lines[-1], lines[-1]
        # esc again clears the filter: every row back, no bar, the header counts them all
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: filter_bar(ls) is None, "filter cleared", app)
        assert rows_on_screen(lines) == set(NAMES) and "4 models, 2 running" in lines[0]
        assert "esc clear filter" not in lines[-1]


async def test_one_model_is_singular_and_a_filter_hiding_it_shows(tmp_path, monkeypatch):
    import json

    from tui.core import registry

    F.write_registry(tmp_path)
    data = json.loads((tmp_path / "models.json").read_text())
    data["models"] = {"smollm2": data["models"]["smollm2"]}
    (tmp_path / "models.json").write_text(json.dumps(data))
    reg = registry.load(tmp_path / "models.json")
    monkeypatch.chdir(tmp_path)
    from tui.ui.app import LlmdeckApp

    be = F.FakeBackend(reg)
    app = LlmdeckApp(reg, backend=be, status_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "smollm2" in app.states and app.tabs is not None)
        await pilot.pause(0.1)
        assert "1 model, 0 running" in screen_lines(app)[0]
        await pilot.press("slash", "q")
        lines = await show(pilot, lambda ls: "0 of 1 model shown" in ls[0], "filtered header", app)
        assert filter_bar(lines).startswith(" filter: q")
        assert not any(line.startswith(" smollm2 ") for line in lines[1:6])
        await pilot.press("enter")  # keys to the (empty) list: no verb offered for the hidden row
        lines = await show(pilot, lambda ls: ls[-1].startswith("esc clear filter"), "filter kept", app)
        assert "s start" not in lines[-1] and "d download" not in lines[-1], lines[-1]
        await pilot.press("s")
        await pilot.pause(0.2)
        assert be.calls == []


# -- esc ---------------------------------------------------------------------------------


async def test_esc_order_in_the_chat_cancel_then_leave(tmp_path, monkeypatch):
    from tui.core.chat import events as ev

    session = F.FakeChatSession([[ev.Content("The beginning "), "wait", ev.Content("never"), ev.Done("stop")]])
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), chat={"glm-5": session})
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("c")
        await show(pilot, lambda ls: ls[-1].startswith("typing: message · esc leaves"), "typing: message", app)
        pane = app.chat_deck.panes["glm-5"]
        await wait_until(pilot, lambda: pane.ready)
        await pilot.press(*"hello", "enter")
        await wait_until(pilot, lambda: session.gate is not None, what="reply streaming")
        lines = await show(pilot, lambda ls: ls[-1].startswith("esc cancel reply"), "esc cancels", app)
        # 1. esc cancels the reply; the keyboard stays in the message box (the footer says so)
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: ls[-1].startswith("typing: message · esc leaves"),
                           "typing again after the cancel", app)
        assert any("cancelled" in line for line in lines), "\n".join(lines)
        await pilot.press("question_mark")  # text in the box, as the footer said
        await pilot.pause(0.1)
        assert any("?" in line and "message" not in line for line in screen_lines(app)[-3:-1])
        # 2. esc leaves the input: "typing:" goes; keys are commands again
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: "typing:" not in ls[-1], "left the message box", app)
        assert lines[-1].startswith("? help"), lines[-1]


async def test_esc_in_a_zoomed_chat_cancels_first_then_leaves_then_unzooms(tmp_path, monkeypatch):
    """Zoom is the last step of the esc rule: a zoomed chat's reply is cancelled by the first
    esc (the zoom stays), the second leaves the box, the third leaves the zoom."""
    from tui.core.chat import events as ev

    session = F.FakeChatSession([[ev.Content("The beginning "), "wait", ev.Content("never"), ev.Done("stop")]])
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), chat={"glm-5": session})

    def zoomed(lines: list[str]) -> bool:  # the tab bar is the top row: title and models table are gone
        return lines[0].split()[:2] == ["Logs", "Chat"]

    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("c")
        pane = app.chat_deck.panes["glm-5"]
        await wait_until(pilot, lambda: pane.ready)
        await pilot.press(*"hello", "enter")
        await wait_until(pilot, lambda: session.gate is not None, what="reply streaming")
        app.call_later(app.action_zoom)  # z is text in the message box; the palette or this
        await show(pilot, lambda ls: zoomed(ls) and ls[-1].startswith("esc cancel reply"), "zoomed, streaming", app)
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: any("cancelled" in line for line in ls), "the reply cancelled", app)
        assert zoomed(lines), "\n".join(lines)
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: ls[-1].startswith("esc unzoom"), "left the box, still zoomed", app)
        assert zoomed(lines), "\n".join(lines)
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: not zoomed(ls), "the zoom left", app)
        assert lines[0].lstrip().startswith("llmdeck") and "glm-5" in rows_on_screen(lines)


async def test_z_in_the_logs_says_esc_unzoom_at_once(tmp_path, monkeypatch):
    """z from the logs: the footer's first entry becomes 'esc unzoom' with no other key (the zoom
    changes no binding, so the footer once kept its old keys until something else redrew it)."""
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        await pilot.press("l")
        await show(pilot, lambda ls: ls[-1].startswith("f follow"), "the log has the keys", app)
        await pilot.press("z")
        lines = await show(pilot, lambda ls: ls[0].split()[:2] == ["Logs", "Chat"], "zoomed", app)
        lines = await show(pilot, lambda ls: ls[-1].startswith("esc unzoom"), "esc unzoom in the footer", app)
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: ls[0].lstrip().startswith("llmdeck"), "the zoom left", app)
        assert not lines[-1].startswith("esc unzoom"), lines[-1]


async def test_esc_order_in_the_log_search_and_the_bench(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("l", "slash")
        await show(pilot, lambda ls: ls[-1].startswith("typing: log search · esc leaves"), "typing: search", app)
        await pilot.press(*"srv")
        await wait_until(pilot, lambda: app.log_pane.searching)
        # esc leaves the input, the search stays; the next esc clears it
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: ls[-1].startswith("esc clear search"), "search kept", app)
        assert any("matching line" in line or "match " in line for line in lines), "\n".join(lines)
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: "esc clear" not in ls[-1] and "typing" not in ls[-1],
                           "search cleared", app)
        assert not any("matching line" in line for line in lines)
        # the bench form: typing goes to the workload field until esc
        await pilot.press("b")
        await show(pilot, lambda ls: ls[-1].startswith("typing: workload · esc leaves"), "typing: workload", app)
        await pilot.press("escape")
        lines = await show(pilot, lambda ls: "typing:" not in ls[-1], "left the workload field", app)
        await pilot.press("m", "q")  # commands now: q quits instead of typing "mq"
        await wait_until(pilot, lambda: app._exit, what="q quits")


# -- footers fit 80 columns ----------------------------------------------------------------


def check_footer(app, where: str) -> None:
    """The visible bottom row holds every footer entry whole: nothing cut at the edge."""
    from textual.widgets._footer import FooterKey

    from tui.ui.widgets.footer import EscEntry

    line = footer_line(app)
    assert len(line) <= 80
    body = line.rstrip()
    if body.endswith(PALETTE):
        body = body[: -len(PALETTE)].rstrip()
    assert "▏" not in body and "▍" not in body, f"{where}: {line!r}"
    footer = app.screen.query_one("FitFooter")
    entries = [str(e.render()) for e in footer.query(EscEntry)]
    entries += [f"{k.key_display} {k.description}".strip() for k in footer.query(FooterKey)
                if not k.has_class("-command-palette")]
    assert entries, where
    # the row is exactly those entries, one space apart: the last one is whole
    assert body == " ".join(entries), f"{where}: {body!r} vs {entries}"


async def test_every_footer_fits_80_columns(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), sampler=F.FakeSampler(F.snapshots(3)))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        for keys_, where in ((("m",), "models list, glm-5 ready"), (("G",), "models list, smollm2 stopped"),
                             (("g", "l"), "logs"), (("l", "slash"), "typing a log search"),
                             (("escape", "escape", "c"), "chat (typing)"), (("escape", "3"), "downloads"),
                             (("4",), "gauges"), (("b",), "bench (typing)"),
                             (("escape", "slash", "g"), "typing the filter"), (("enter",), "filter active")):
            await pilot.press(*keys_)
            await pilot.pause(0.3)
            check_footer(app, where)
        # nothing downloads: the downloads pane does not offer X
        await pilot.press("escape", "3")
        await pilot.pause(0.2)
        lines = screen_lines(app)
        assert "unsloth/" in "\n".join(lines)  # the pane is on screen
        assert not any("X cancel" in line for line in lines), "\n".join(lines)


# -- toasts, palette, m, VRAM n/a ---------------------------------------------------------


async def test_stopping_a_server_says_so(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24), notifications=True) as pilot:  # toasts drawn, as for a user
        await settle(pilot, app)
        await pilot.press("x")  # glm-5, ready
        await show(pilot, lambda ls: any("glm-5 stopped" in line for line in ls), "stop toast", app)


async def test_palette_lists_stop_all_once_and_stop_the_server_first(tmp_path, monkeypatch):
    from textual.command import CommandPalette

    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"stop")
        lines = await show(pilot, lambda ls: any("Stop the server" in line for line in ls), "hits", app)
        await pilot.pause(0.3)
        lines = screen_lines(app)
        first = next(i for i, line in enumerate(lines) if "Stop the server" in line)
        alls = [i for i, line in enumerate(lines) if "Stop all servers and quit" in line]
        assert len(alls) == 1, "\n".join(lines)
        assert first < alls[0], "\n".join(lines)


async def test_m_lights_up_the_models_list(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)

        def header_style():
            strip = app.screen._compositor.render_strips()[1]  # the table's header row
            return next(seg.style for seg in strip if "model" in seg.text)

        focused_style = header_style()
        await pilot.press("l")
        await pilot.pause(0.2)
        assert header_style() != focused_style  # the list is not lit while the log has the keys
        await pilot.press("m")
        await pilot.pause(0.2)
        assert header_style() == focused_style


async def test_vram_na_says_why_under_the_table(tmp_path, monkeypatch):
    snaps = F.snapshots(2)
    no_gpu = GpuReading("no_library", STATE_MESSAGES["no_library"])
    snaps = [dataclasses.replace(s, gpu=no_gpu, models=tuple(
        dataclasses.replace(m, usage=Usage(m.pid, (m.pid,), rss_bytes=m.usage.rss_bytes)) for m in s.models))
        for s in snaps]
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), sampler=F.FakeSampler(snaps))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        lines = await show(pilot, lambda ls: any(line.startswith(" VRAM n/a: NVML library") for line in ls),
                           "VRAM reason", app)
        row = next(line for line in lines if line.startswith(" glm-5 "))
        assert " n/a " in row
