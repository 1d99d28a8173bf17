"""The verb rules (tui.core.verbs): one pure function that the TUI's keys and the CLI share."""

from __future__ import annotations

import pytest

from tui.core.registry import Model
from tui.core.verbs import RUNNING, VERBS, Verdict, download_refusal, verdict

HUB = Model(name="glm", repo_id="unsloth/GLM-5-GGUF", default_quant="Q4")
LOCAL = Model(name="tiny", model_path="tiny.gguf")
BARE = Model(name="bare")
EXTERNAL = Model(name="far", engine="external", base_url="http://10.0.0.2:8000/v1", repo_id="x/y")


def test_verdict_is_truthy_only_when_allowed():
    assert bool(Verdict(True)) and not Verdict(None) and not Verdict(False)


@pytest.mark.parametrize("state,start,stop", [
    ("stopped", True, False), ("unknown", True, False), ("crashed", True, False),
    ("starting", False, True), ("loading", False, True), ("ready", False, True), ("unhealthy", False, True),
    ("stopping", False, False),
])
def test_server_verbs_follow_the_state(state, start, stop):
    assert verdict("start", HUB, state).allowed is start
    for verb in ("stop", "restart", "kill"):
        assert verdict(verb, HUB, state).allowed is stop, verb


def test_why_names_the_model_and_state():
    v = verdict("start", HUB, "ready")
    assert v.allowed is False and v.why == "model 'glm' is already ready"
    assert verdict("stop", HUB, "stopped").why == "model 'glm' is not running (stopped)"
    assert "start it once it stopped" in verdict("start", HUB, "stopping").why
    assert verdict("start", HUB, "stopped").why == ""


def test_a_pending_restart_of_a_crashed_server_can_be_stopped():
    assert verdict("stop", HUB, "crashed", restarting=True).allowed is True
    assert verdict("kill", HUB, "crashed", restarting=False).allowed is False


def test_a_verb_in_flight_greys_every_verb():
    for verb in VERBS:
        v = verdict(verb, HUB, "ready", busy="delete_files")
        assert v.allowed is None and v.why == "model 'glm' is busy: delete files is in progress"


def test_external_models_are_never_started_stopped_or_downloaded():
    for verb in VERBS:
        assert verdict(verb, EXTERNAL, "ready").allowed is False, verb
    assert "llmdeck does not start it" in verdict("start", EXTERNAL).why
    assert verdict("download", EXTERNAL).why == (
        "model 'far' is engine external (a server elsewhere): there is nothing to download")


def test_download_needs_a_repo_and_no_local_file():
    assert verdict("download", HUB, "ready").allowed is True  # a running server: more quants may come
    assert verdict("download", HUB, downloading=True) == Verdict(None, "a download of glm is already running")
    local = verdict("download", LOCAL)
    assert local.allowed is False and "uses model_path tiny.gguf" in local.why and "remove model_path" in local.why
    bare = verdict("download", BARE, where="/x/models.json")
    assert bare.allowed is False
    assert bare.why == "model 'bare' has no repo_id in /x/models.json: add one, e.g. llmdeck edit bare " \
                       "repo_id=unsloth/GLM-5-GGUF"
    assert download_refusal(HUB) == "" and download_refusal(BARE) == verdict("download", BARE).why


@pytest.mark.parametrize("state", RUNNING)
def test_files_in_use_are_not_deleted(state):
    v = verdict("delete_files", HUB, state)
    assert v.allowed is None and v.why == f"model 'glm' is {state}: stop it first"


def test_delete_files_rules():
    assert verdict("delete_files", HUB, "stopped").allowed is True
    assert verdict("delete_files", HUB, "stopped", downloading=True).allowed is None
    assert "those files are yours" in verdict("delete_files", LOCAL).why
    assert verdict("delete_files", BARE).allowed is False


def test_an_unknown_verb_is_an_error():
    with pytest.raises(ValueError, match="unknown verb 'explode'"):
        verdict("explode", HUB)


async def test_a_refused_verb_says_why_on_screen(tmp_path, monkeypatch):
    """The TUI asks the same function: a verb that does not apply (a download of a model_path
    model, run as the palette would run it) shows the core's reason as a toast and runs nothing."""
    from ui_helpers import make_app, wait_until

    app, be = make_app(tmp_path, monkeypatch, telemetry=False)
    async with app.run_test(size=(140, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: app.tabs is not None, what="panes mounted")
        app.table.select("smollm2")
        await pilot.pause()

        def screen() -> str:
            return "\n".join(strip.text for strip in app.screen._compositor.render_strips())

        assert app.check_action("download", ()) is False and "uses model_path" not in screen()
        await app.action_download()
        await wait_until(pilot, lambda: "uses model_path" in " ".join(screen().split()), what="the toast")
        text = " ".join(screen().split())
        assert "model 'smollm2'" in text and "planning the download" not in text
        assert app.downloads_pane is None and app.tabs.active == "logs"  # nothing planned, no pane switch
