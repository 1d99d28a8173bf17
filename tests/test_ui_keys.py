"""Pilot tests of every key binding of the main screen and the dialogs (fake backend).

Keys of the logs and chat panes are in test_ui_logs.py and test_ui_chat.py, downloads in
test_ui_downloads.py; ``test_every_binding_is_tested`` checks the union covers the registry.
"""

from __future__ import annotations

import pytest
import ui_fakes as F
from ui_helpers import make_app, row_text, wait_until

from tui.ui import keys
from tui.ui.screens.confirm import ConfirmScreen
from tui.ui.screens.detail import DetailScreen
from tui.ui.screens.help import HelpScreen
from tui.ui.widgets.log_pane import FollowLog

pytestmark = pytest.mark.timeout(60)

#: action id → the test that presses it
COVERAGE = {
    "help": "test_help_lists_every_binding", "palette": "test_palette_runs_actions",
    "quit": "test_quit_keeps_servers_running", "quit_stop_all": "test_stop_all_and_quit_asks_then_stops",
    "back": "test_filter_and_back", "filter": "test_filter_and_back",
    "pane_logs": "test_pane_keys", "pane_chat": "test_pane_keys", "pane_downloads": "test_pane_keys",
    "pane_gauges": "test_pane_keys", "focus_models": "test_pane_keys",
    "open": "test_enter_opens_details_with_exit_reason", "start": "test_start_stop_restart",
    "stop": "test_start_stop_restart", "restart": "test_start_stop_restart", "kill": "test_kill_asks_first",
    "download": "test_ui_downloads.py", "delete_files": "test_ui_downloads.py", "list_down": "test_list_moves", "list_up": "test_list_moves",
    "list_top": "test_list_moves", "list_bottom": "test_list_moves",
    "log_follow": "test_ui_logs.py", "log_top": "test_ui_logs.py", "log_down": "test_ui_logs.py",
    "log_up": "test_ui_logs.py", "log_search": "test_ui_logs.py", "log_older": "test_ui_logs.py",
    "log_newer": "test_ui_logs.py", "log_prev_model": "test_ui_logs.py", "log_next_model": "test_ui_logs.py",
    "log_wrap": "test_ui_logs_wrap.py", "zoom": "test_ui_logs_wrap.py",
    "chat_send": "test_ui_chat.py", "chat_cancel": "test_ui_chat.py", "chat_new": "test_ui_chat.py", "chat_regenerate": "test_ui_chat.py",
    "chat_thinking": "test_ui_chat.py", "chat_thoughts": "test_ui_chat.py", "chat_copy": "test_ui_chat.py",
    "chat_hide": "test_ui_chat.py", "chat_history": "test_ui_chat.py",
    "chat_page_up": "test_ui_chat_follow.py", "chat_page_down": "test_ui_chat_follow.py",
    "dl_cancel": "test_ui_downloads.py", "pane_bench": "test_ui_bench.py", "bench_run": "test_ui_bench.py",
    "bench_cancel": "test_ui_bench.py", "pane_eval": "test_ui_eval.py", "eval_run": "test_ui_eval.py",
    "eval_cancel": "test_ui_eval.py", "modal_yes": "test_kill_asks_first", "modal_no": "test_kill_asks_first",
    "detail_copy": "test_enter_opens_details_with_exit_reason", "detail_logs": "test_enter_opens_details_with_exit_reason",
    "detail_chat": "test_enter_opens_details_with_exit_reason", "detail_close": "test_enter_opens_details_with_exit_reason",
    "add_model": "test_ui_add.py", "add_back": "test_ui_add.py",
}


def test_every_binding_is_tested():
    assert set(COVERAGE) == set(keys.BY_ID), set(keys.BY_ID) ^ set(COVERAGE)


async def test_list_moves(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    names = list(be.registry.models)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.selected == names[0]
        await pilot.press("j")
        assert app.selected == names[1]
        await pilot.press("down")
        assert app.selected == names[2]
        await pilot.press("k")
        assert app.selected == names[1]
        await pilot.press("up")
        assert app.selected == names[0]
        await pilot.press("G")
        assert app.selected == names[-1]
        await pilot.press("g")
        assert app.selected == names[0]
        await pilot.press("end")
        assert app.selected == names[-1]
        await pilot.press("home")
        assert app.selected == names[0]
        # the logs pane follows the selection
        await pilot.press("G")
        await wait_until(pilot, lambda: app.log_pane.model == names[-1] and app.log_pane.lines_written >= 7,
                         what="log of the last model")
        assert "listening on http://127.0.0.1:8010" in "\n".join(app.log_pane.log.lines)


async def test_start_stop_restart(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, stable=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("G")  # smollm2, stopped
        await wait_until(pilot, lambda: "smollm2" in app.states, what="first poll")
        await pilot.press("x")  # stop does not apply to a stopped model: nothing happens
        await pilot.press("r")
        await pilot.pause(0.1)
        assert be.calls == []
        await pilot.press("s")
        await wait_until(pilot, lambda: ("start", "smollm2") in be.calls, what="start called")
        await wait_until(pilot, lambda: row_text(app, "smollm2")[3] == "ready", what="ready shown")
        assert app.check_action("start", ()) is False  # running: s no longer applies
        await pilot.press("s")
        await pilot.pause(0.1)
        assert be.calls.count(("start", "smollm2")) == 1
        await pilot.press("r")
        await wait_until(pilot, lambda: ("restart", "smollm2") in be.calls, what="restart called")
        await wait_until(pilot, lambda: row_text(app, "smollm2")[3] == "ready", what="ready after restart")
        await pilot.press("x")
        await wait_until(pilot, lambda: ("stop", "smollm2") in be.calls, what="stop called")
        await wait_until(pilot, lambda: row_text(app, "smollm2")[3] == "stopped", what="stopped shown")


async def test_verbs_show_pending_and_grey_out(tmp_path, monkeypatch):
    import threading

    app, be = make_app(tmp_path, monkeypatch, stable=False)
    be.verb_gate = threading.Event()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("G", "s")
        await wait_until(pilot, lambda: row_text(app, "smollm2")[3] == "starting…", what="pending shown")
        assert app.check_action("stop", ()) is None  # greyed while the verb runs
        be.verb_gate.set()
        await wait_until(pilot, lambda: row_text(app, "smollm2")[3] == "ready", what="ready")


async def test_kill_asks_first(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "glm-5" in app.states)
        assert app.selected == "glm-5"
        await pilot.press("K")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm dialog")
        assert "Kill glm-5 (pid 4242)" in app.screen.question
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert be.calls == []
        await pilot.press("K")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")  # esc is "no" too
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert be.calls == []
        await pilot.press("K")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: ("kill", "glm-5") in be.calls, what="kill called")
        await wait_until(pilot, lambda: row_text(app, "glm-5")[3] == "stopped")


async def test_enter_opens_details_with_exit_reason(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "glm-4.7-flash" in app.states)
        await pilot.press("j", "j")
        assert app.selected == "glm-4.7-flash"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), what="details")
        text = app.screen.text.plain
        assert "crashed" in text and "exited with code 1" in text
        assert "error loading model" in text  # the last log lines, one key away
        assert "llama-server -m models/glm-4.7-flash.gguf" in text
        # how to reach it: the tunnel for the laptop and a curl, copied by ctrl+o
        assert "ssh -N -L 8003:127.0.0.1:8003 me@gpu-box" in text and "curl -sS http://127.0.0.1:8003/v1" in text
        await pilot.press("ctrl+o")
        assert app.clipboard.splitlines() == app.screen.copy_lines and "ssh -N -L 8003" in app.clipboard
        assert any("copied" in n.message and "OSC 52" in n.message for n in app._notifications)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, DetailScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("q")  # q closes the details (it does not quit)
        await wait_until(pilot, lambda: not isinstance(app.screen, DetailScreen))
        assert app.is_running
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("c")  # to the chat
        await wait_until(pilot, lambda: app.tabs.active == "chat", what="chat from details")
        await pilot.press("escape", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("l")  # from the details straight to the live log
        await wait_until(pilot, lambda: app.tabs.active == "logs" and isinstance(app.focused, FollowLog))


async def test_crash_turns_row_red_and_notifies(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        # after the first full poll: a state that poll finds is how things were at start (no toast)
        await wait_until(pilot, lambda: app.table._polled_all and app.states["glm-5"].state == "ready")
        with be.lock:
            be.states["glm-5"] = F.state("glm-5", "crashed", exit={"code": None, "signal": 9,
                                                                  "reason": "killed by signal 9 (SIGKILL)"})
        await wait_until(pilot, lambda: row_text(app, "glm-5")[3] == "crashed", what="crashed row")
        row = app.table._rows["glm-5"]
        assert "red" in str(row.model.style) and "red" in str(row.port.style)  # the whole row
        msgs = [n.message for n in app._notifications]
        assert any("glm-5 crashed: killed by signal 9" in m for m in msgs), msgs


async def test_pane_keys(tmp_path, monkeypatch):
    from tui.ui.widgets.chat_pane import PromptInput
    from tui.ui.widgets.models_table import ModelsTable

    app, be = make_app(tmp_path, monkeypatch, sampler=F.FakeSampler(F.snapshots(5)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await wait_until(pilot, lambda: app.tabs.active == "chat" and isinstance(app.focused, PromptInput))
        await pilot.press("escape")  # back to the list (nothing to cancel)
        assert isinstance(app.focused, ModelsTable)
        await pilot.press("l")
        await wait_until(pilot, lambda: app.tabs.active == "logs" and isinstance(app.focused, FollowLog))
        await pilot.press("3")
        await wait_until(pilot, lambda: app.tabs.active == "downloads")
        assert "unsloth/GLM-5-GGUF" in str(app.downloads_pane.query_one("#dl-head").render())
        await pilot.press("m")
        assert isinstance(app.focused, ModelsTable)
        await pilot.press("4")
        await wait_until(pilot, lambda: app.tabs.active == "gauges")
        text = app.gauges_view.render_snapshot().plain
        assert "GPU0 NVIDIA H100 80GB HBM3" in text and "GPU1" in text and "CPU" in text and "RAM" in text
        assert "GPU0 36.0 GiB · GPU1 35.0 GiB" in text  # glm-5 split over both GPUs
        await pilot.press("m", "2")
        await wait_until(pilot, lambda: app.tabs.active == "chat")
        await pilot.press("escape", "1")
        await wait_until(pilot, lambda: app.tabs.active == "logs")


async def test_filter_and_back(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("slash")
        assert app.focused is app.filter_input
        await pilot.press("g", "l", "m")
        await wait_until(pilot, lambda: app.table.shown == ["glm-5", "glm-4.7-flash"], what="filtered")
        # typing in the filter never triggers verbs (s/x/q are text there)
        await pilot.press("enter")
        assert app.focused is app.table and app.filter_input.has_class("-shown")
        await pilot.press("j")
        assert app.selected == "glm-4.7-flash"
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(app.table.shown) == 4, what="filter cleared")
        assert not app.filter_input.has_class("-shown")
        assert app.selected == "glm-4.7-flash"  # the selection survives


async def test_help_lists_every_binding(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        from rich.console import Console

        from tui.ui.screens.help import help_table

        con = Console(width=100, record=True, file=open("/dev/null", "w"))
        con.print(help_table())
        text = con.export_text()
        for a in keys.ACTIONS:
            assert a.description in text, a.id
            assert a.display in text, a.id
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_quit_keeps_servers_running(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "glm-5" in app.states)
        await pilot.press("q")
        await wait_until(pilot, lambda: app._exit, what="exit")
    assert be.calls == []
    assert be.fake_sampler.closed


async def test_stop_all_and_quit_asks_then_stops(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "glm-5" in app.states)
        await pilot.press("Q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "glm-5" in app.screen.question and "qwen3.5" in app.screen.question
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert be.calls == [] and not app._exit
        await pilot.press("Q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: app._exit, what="exit after stop all")
    assert ("stop_all", "*") in be.calls
    assert ("stop", "glm-5") in be.calls and ("stop", "qwen3.5") in be.calls


async def test_palette_runs_actions(tmp_path, monkeypatch):
    from textual.command import CommandPalette

    app, be = make_app(tmp_path, monkeypatch, stable=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("G")
        await wait_until(pilot, lambda: "smollm2" in app.states)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"start the server")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: ("start", "smollm2") in be.calls, what="start from the palette")
        # "Stop all servers and quit" is offered once, as the registry's action (not a system
        # command too); the palette's order is read from the screen in test_ui_focus.py
        names = [c.title for c in app.get_system_commands(app.screen)]
        assert "Stop all servers and quit" not in names


async def test_usable_at_80x24_every_column_visible(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), sampler=F.FakeSampler(F.snapshots(3)))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: row_text(app, "glm-5")[-1] != "", what="tok/s")
        assert app.table.virtual_size.width <= 80
        assert row_text(app, "glm-5") == ["glm-5", "UD-IQ2_XXS", "partial", "ready", "8001", "71.0G", "12.5G",
                                          "40.5"]
        assert row_text(app, "qwen3.5")[3] == "loading 95s"


async def test_mouse_selects_rows_and_tabs_and_toggles_thoughts(tmp_path, monkeypatch):
    from tui.ui.widgets.models_table import ModelsTable
    from tui.ui.widgets.transcript import ThinkingBlock

    session = F.FakeChatSession([F.reply("I should answer briefly.", "Yes.")])
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), chat={"glm-5": session})
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.tabs is not None and "glm-5" in app.states)
        await pilot.click(ModelsTable, offset=(3, 3))  # row 0 is the header
        assert app.selected == "glm-4.7-flash"
        await pilot.click("#--content-tab-gauges")
        await wait_until(pilot, lambda: app.tabs.active == "gauges")
        await pilot.click(ModelsTable, offset=(3, 1))
        assert app.selected == "glm-5"
        await pilot.click("#--content-tab-chat")
        await wait_until(pilot, lambda: app.tabs.active == "chat" and app.chat_deck is not None
                         and "glm-5" in app.chat_deck.panes)
        pane = app.chat_deck.panes["glm-5"]
        await wait_until(pilot, lambda: pane.ready)
        await pilot.click(pane.prompt)
        await pilot.press(*"hi", "enter")
        await wait_until(pilot, lambda: pane.turn is not None and not pane.generating)
        transcript = pane.turns
        i = next(i for i, b in enumerate(transcript.blocks) if isinstance(b, ThinkingBlock))
        block = transcript.blocks[i]
        assert block.collapsed
        label_y = transcript._offsets[i] + block.margin - int(transcript.scroll_offset.y)
        await pilot.click(transcript, offset=(4, label_y))
        assert not block.collapsed and "answer briefly" in transcript.text()


def test_keymap_problems_one_line_each():
    good, problems = keys.keymap_problems({"start": "ctrl+s", "log_search": "ctrl+f,/", "stp": "y",
                                           "stop": "r", "palette": "ctrl+k", "filter": "ctrl f", "help": ""})
    assert good == {"start": "ctrl+s", "log_search": "ctrl+f,/"}
    assert problems == [
        "settings.keymap: unknown action 'stp' (did you mean 'stop'?)",
        "settings.keymap.palette: 'ctrl+p' is handled by Textual or a widget itself and cannot be remapped",
        "settings.keymap.filter: 'ctrl f' is not a key name (examples: x, X, ctrl+f, f5, slash, left_square_bracket)",
        'settings.keymap.help: must be a key name or comma-separated names, e.g. "ctrl+f"',
        "settings.keymap.stop: 'r' is already restart's key in the same place (selected model); pick another key",
    ]
    # a punctuation character is its Textual name when clashes are checked: '/' is log_search's 'slash'
    assert keys.keymap_problems({"log_older": "/"})[1] == [
        "settings.keymap.log_older: 'slash' is already log_search's key in the same place (logs pane); "
        "pick another key"]
    # moving a key away frees it: x to start and s to stop is fine
    assert keys.keymap_problems({"start": "x", "stop": "s"}) == ({"start": "x", "stop": "s"}, [])
    assert keys.keymap_problems(["stop"])[1] == [
        'settings.keymap: must be an object of action id -> keys, e.g. {"stop": "X"}']


def test_check_reports_keymap_problems(tmp_path, capsys):
    import json

    from tui.cli.main import main

    F.write_registry(tmp_path)
    path = tmp_path / "models.json"
    raw = json.loads(path.read_text())
    raw["settings"]["keymap"] = {"stp": "y"}
    path.write_text(json.dumps(raw))
    assert main(["--registry", str(path), "check"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"llmdeck: error: {path}: settings.keymap: unknown action 'stp' (did you mean 'stop'?)"]
    raw["settings"]["keymap"] = {"stop": "ctrl+x"}
    path.write_text(json.dumps(raw))
    assert main(["--registry", str(path), "check"]) == 0


async def test_user_keymap_remaps_keys_everywhere_and_reports_problems(tmp_path, monkeypatch):
    """settings.keymap: the new keys work (app and pane bindings), the old ones do not, help and
    the footer show them; a bad entry is one notification and is not applied."""
    import json

    from rich.console import Console

    from tui.core import registry
    from tui.ui.app import LlmdeckApp
    from tui.ui.screens.help import help_table
    from tui.ui.widgets.log_pane import SearchInput

    F.write_registry(tmp_path)
    path = tmp_path / "models.json"
    raw = json.loads(path.read_text())
    raw["settings"]["keymap"] = {"start": "ctrl+s", "log_search": "ctrl+f", "stp": "y", "stop": "r"}
    path.write_text(json.dumps(raw))
    monkeypatch.chdir(tmp_path)
    reg = registry.load(path)
    be = F.FakeBackend(reg)
    be.ready_after_polls = 10**9
    app = LlmdeckApp(reg, backend=be, status_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        notes = [n.message for n in app._notifications]
        assert "models.json: settings.keymap: unknown action 'stp' (did you mean 'stop'?)" in notes
        assert any("settings.keymap.stop: 'r' is already restart's key" in n for n in notes)
        assert app.user_keymap == {"start": "ctrl+s", "log_search": "ctrl+f"}
        await pilot.press("G")  # smollm2, stopped
        await wait_until(pilot, lambda: "smollm2" in app.states, what="first poll")
        await pilot.press("s")  # no longer start
        await pilot.pause(0.2)
        assert be.calls == []
        assert "ctrl+s" in app.screen.active_bindings and "s" not in app.screen.active_bindings
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: ("start", "smollm2") in be.calls, what="start by ctrl+s")
        # a pane's binding is remapped too; its old key falls through to the app's filter
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.focused, FollowLog))
        await pilot.press("ctrl+f")
        assert isinstance(app.focused, SearchInput)
        await pilot.press("escape")
        assert isinstance(app.focused, FollowLog)
        await pilot.press("slash")
        assert app.focused is app.filter_input
        con = Console(width=100, record=True, file=open("/dev/null", "w"))
        con.print(help_table(app.user_keymap))
        rows = [line.strip().split(None, 1) for line in con.export_text().splitlines() if line.strip()]
        assert ["ctrl+s", "Start the server"] in rows
        assert any(r[0] == "ctrl+f" and r[1].startswith("Search the log") for r in rows)


async def test_starting_a_server_open_to_the_network_without_a_key_warns(tmp_path, monkeypatch):
    import json

    from tui.core import registry
    from tui.ui.app import LlmdeckApp

    F.write_registry(tmp_path)
    path = tmp_path / "models.json"
    raw = json.loads(path.read_text())
    raw["models"]["smollm2"]["host"] = "0.0.0.0"
    path.write_text(json.dumps(raw))
    monkeypatch.chdir(tmp_path)
    reg = registry.load(path)
    be = F.FakeBackend(reg)
    app = LlmdeckApp(reg, backend=be, status_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("G")
        await wait_until(pilot, lambda: "smollm2" in app.states, what="first poll")
        assert not any("no API key" in n.message for n in app._notifications)
        await pilot.press("s")
        await wait_until(pilot, lambda: any("smollm2' listens on 0.0.0.0:8010 with no API key" in n.message
                                            for n in app._notifications), what="the warning")
        assert ("start", "smollm2") in be.calls


async def test_models_json_edited_while_running_is_reloaded(tmp_path, monkeypatch):
    """Edits of models.json show up (added, removed, changed models); a broken edit is one
    notification and the last good registry stays in use."""
    import json

    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    path = tmp_path / "models.json"
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: "glm-5" in app.states, what="first poll")
        raw = json.loads(path.read_text())
        raw["models"]["tiny-new"] = {"model_path": "smollm2.gguf", "default_port": 8123}
        raw["models"]["smollm2"]["default_port"] = 8124
        path.write_text(json.dumps(raw))
        await wait_until(pilot, lambda: "tiny-new" in app.table._rows, what="new row")
        assert "tiny-new" in app.registry.models and be.registry is app.registry
        assert row_text(app, "smollm2")[4] == "8124"
        notes = [n.message for n in app._notifications]
        assert any("models.json reloaded: added tiny-new; changed smollm2" in n for n in notes), notes
        assert "5 models" in str(app.title_bar.render())
        # a broken edit: one line, the last good registry stays
        path.write_text("{ broken")
        await wait_until(pilot, lambda: any("still using the last good models.json" in n.message
                                            for n in app._notifications), what="error notified")
        assert "tiny-new" in app.table._rows and "tiny-new" in app.registry.models
        # removing a running model: it leaves the table, and the user is told its server still runs
        del raw["models"]["glm-5"]
        path.write_text(json.dumps(raw))
        await wait_until(pilot, lambda: "glm-5" not in app.table._rows, what="row removed")
        notes = [n.message for n in app._notifications]
        assert any("glm-5 was removed from models.json but its server still runs" in n for n in notes), notes
