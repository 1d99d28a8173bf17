"""The first frame shows real states (issue 12 A): a running model reads ``ready`` in the very
first frame the app renders, before its status worker has polled once.

The servers are real: llama-server with SmolLM2, started by llmdeck's supervisor. The screen is
read from what was rendered (the compositor's strips at the app's first ``_display``), and,
through the CLI, from the bytes ``llmdeck`` writes to a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tui.core import runfiles, supervisor
from tui.core.states import first_status, load_percent, probe_health
from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend

LLMDECK = str(Path(sys.executable).parent / "llmdeck")


class CountingBackend(Backend):
    """The real backend; counts the status worker's calls (``status``/``state_of``)."""

    polls = 0

    def status(self):
        type(self).polls += 1
        return super().status()

    def state_of(self, name):
        type(self).polls += 1
        return super().state_of(name)


class FirstFrameApp(LlmdeckApp):
    """Keeps the text of the first frame it renders and the poll count at that moment."""

    first_frame: list[str] | None = None
    polls_at_first_frame: int | None = None

    def _display(self, screen, renderable) -> None:
        if self.first_frame is None and renderable is not None:
            self.first_frame = [strip.text for strip in screen._compositor.render_strips()]
            self.polls_at_first_frame = CountingBackend.polls
        super()._display(screen, renderable)


def row_of(lines: list[str], name: str) -> str:
    rows = [ln for ln in lines if ln.strip().startswith(name)]
    assert rows, "\n".join(lines)
    return rows[0]


def in_pty(argv: list[str], cwd: Path, done, timeout: float = 30, **env) -> bytes:
    """Run ``argv`` on a 100x30 pseudo-terminal until ``done(output, proc)`` (or ``timeout``);
    the process group is killed after. Returns what it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30", **env)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    out = bytearray()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(out, proc):
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    out += os.read(master, 1 << 16)
                except OSError:
                    break
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
        os.close(master)
    return bytes(out)


@pytest.fixture
def running(make_deck):
    """A two-model registry; smollm2 is running (ready), idle is stopped."""
    reg = make_deck({"smollm2": {"alias": "smollm2"}, "idle": {}})
    supervisor.start(reg, "smollm2")
    st = supervisor.wait_ready(reg, "smollm2", timeout=120)
    assert st.state == "ready", st
    return reg


def test_first_rendered_frame_shows_ready_before_any_poll(running, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    CountingBackend.polls = 0

    async def go() -> FirstFrameApp:
        app = FirstFrameApp(running, backend=CountingBackend(running), telemetry=False)
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.pause()
            return app

    app = asyncio.run(go())
    assert app.first_frame is not None
    assert app.polls_at_first_frame == 0  # no status worker call before this frame
    ready_row = row_of(app.first_frame, "smollm2")
    assert " ready " in ready_row + " ", ready_row
    assert str(running.get("smollm2").default_port) in ready_row or "ready" in ready_row
    idle_row = row_of(app.first_frame, "idle")
    assert "stopped" in idle_row and "unknown" not in idle_row, idle_row
    assert "1 running" in app.first_frame[0], app.first_frame[0]  # the title counts it too


def test_cli_never_paints_an_unknown_state(running, tmp_path):
    """Through ``llmdeck`` itself (the state read runs beside Textual's import): the terminal
    shows ``ready`` and never ``unknown``, from the first byte until the model list is up."""
    out = in_pty([LLMDECK, "--registry", str(running.path)], tmp_path,
                 lambda out, proc: b"ready" in out and b"idle" in out and b"stopped" in out)
    assert b"ready" in out, bytes(out[-3000:])
    assert b"unknown" not in out, bytes(out[-3000:])


FIRST_FRAME_MODULES = """
import os, sys
import textual.app
shown = textual.app.App._display
def display(self, screen, renderable):
    shown(self, screen, renderable)
    if renderable is not None:  # the first frame written to the terminal: what was loaded for it
        with open(os.environ["MODULES_OUT"], "w") as fh:
            fh.write("\\n".join(sorted(sys.modules)))
        os._exit(0)
textual.app.App._display = display
from tui.cli.main import main
main(["--registry", sys.argv[1]])
"""

#: what the first screen must not pay for (issue 12): NVML, the Hub client, the router, the chat
#: stack and its HTTP client, psutil and the supervisor (the status worker loads those after it)
NOT_BEFORE_THE_FIRST_FRAME = ("pynvml", "huggingface_hub", "httpx", "psutil", "tui.router", "tui.core.chat",
                              "tui.core.supervisor", "tui.core.telemetry", "tui.core.downloads")


def test_the_first_frame_loads_no_nvml_hub_router_or_chat_stack(running, tmp_path):
    out = tmp_path / "modules.txt"
    in_pty([sys.executable, "-c", FIRST_FRAME_MODULES, str(running.path)], tmp_path,
           lambda _out, proc: proc.poll() is not None, MODULES_OUT=str(out))
    modules = out.read_text().split("\n")
    assert "tui.ui.app" in modules and "tui.core.states" in modules  # the hook saw the TUI's first frame
    loaded = [m for m in modules if any(m == p or m.startswith(p + ".") for p in NOT_BEFORE_THE_FIRST_FRAME)]
    assert loaded == [], f"loaded before the first frame: {loaded}"


def test_first_status_reads_without_side_effects(running):
    """The cheap read: the running model is ready (one /health), the stopped one stopped; a
    crashed one shows crashed; nothing it cannot tell is guessed; no file is written."""
    states = first_status(running)
    assert states["smollm2"].state == "ready" and states["smollm2"].pid
    assert states["idle"].state == "stopped"
    rd = runfiles.RunDir(running.run_dir, "smollm2")
    assert probe_health(f"http://127.0.0.1:{states['smollm2'].port}/health") == 200
    # a server that is gone: the cheap read leaves it to the full status, which records the exit
    pid = states["smollm2"].pid
    os.killpg(pid, signal.SIGKILL)
    for _ in range(100):
        if runfiles.process_start(pid)[0] is None or not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.05)
    time.sleep(1.0)  # the server's watcher records the exit
    before = sorted(p.name for p in running.run_dir.iterdir())
    after_kill = first_status(running)
    assert after_kill.get("smollm2") is None or after_kill["smollm2"].state == "crashed"
    assert sorted(p.name for p in running.run_dir.iterdir()) == before  # nothing written or removed
    full = supervisor.state_of(running, "smollm2")
    assert full.state == "crashed"
    assert first_status(running)["smollm2"].state == "crashed"
    assert not rd.pid.exists()


def test_loading_percent():
    assert load_percent("loading tensors", 5.0, 10.0) == 50.0
    assert load_percent("loading tensors", 30.0, 10.0) == 99.0  # a slower load than last time
    assert load_percent("loading tensors", 5.0, None) == 30.0  # no last load: the stage's place
    assert load_percent(None, 5.0, None) is None


def test_loading_row_shows_its_percent(tmp_path, monkeypatch):
    """A loading model's row reads "loading 45%" on screen when the core gives a percent (and
    its ETA when only that is known)."""
    import ui_fakes as F
    from ui_helpers import make_app, wait_until

    states = F.demo_states()
    states["glm-5"] = F.state("glm-5", "loading", pid=4242, port=8001, stage="loading tensors",
                              load_elapsed_s=9, last_load_s=20, load_eta_s=11, load_pct=45.0)
    app, _ = make_app(tmp_path, monkeypatch, states=states, telemetry=False)

    async def go() -> list[str]:
        async with app.run_test(size=(100, 24)) as pilot:
            await wait_until(pilot, lambda: "qwen3.5" in app.states, what="a poll")
            await pilot.pause()
            return [strip.text for strip in app.screen._compositor.render_strips()]

    lines = asyncio.run(go())
    assert "loading 45%" in row_of(lines, "glm-5")
    assert "loading 95s" in row_of(lines, "qwen3.5")  # no percent from the core: the ETA
