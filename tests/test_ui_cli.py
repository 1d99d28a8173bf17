"""``llmdeck`` with no command (cmd_tui) and ``scripts/demo.py`` (the program of ``make demo``)."""

from __future__ import annotations

import fcntl
import json
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
from conftest import free_port

from tui.core import registry, supervisor

ROOT = Path(__file__).resolve().parent.parent
LLMDECK = str(Path(sys.executable).parent / "llmdeck")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("content, expect", [
    (None, "file not found"),
    ('{"models": {"m": {"default_port": "x"}}}', "models.m.default_port: must be an integer"),
    ('{"models": {', "invalid JSON"),
])
def test_a_bad_registry_is_one_line_per_problem_and_exit_2(tmp_path, content, expect):
    path = tmp_path / "models.json"
    if content is not None:
        path.write_text(content)
    p = subprocess.run([LLMDECK, "--registry", str(path)], capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert lines and all(x.startswith("llmdeck: error: ") for x in lines), p.stderr
    assert expect in p.stderr and str(path) in p.stderr


@pytest.mark.server
@pytest.mark.timeout(180)
def test_demo_writes_its_own_registry_and_starts_the_model(tmp_path, llama_server_bin, smollm_gguf):
    user_registry = ROOT / "models.json"
    before = user_registry.stat().st_mtime_ns if user_registry.exists() else None
    demo_dir = tmp_path / "demo"
    port = free_port()
    try:
        p = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--no-tui", "--dir", str(demo_dir),
                            "--port", str(port)], capture_output=True, text=True, timeout=150,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert p.returncode == 0, p.stdout + p.stderr
        assert "smollm2: ready" in p.stdout
        assert "your models.json is not touched" in p.stdout
        raw = json.loads((demo_dir / "models.json").read_text())
        entry = raw["models"]["smollm2"]
        assert entry["model_path"] == str(smollm_gguf) and entry["default_port"] == port
        assert raw["settings"]["llama_server"] == str(llama_server_bin)
        reg = registry.load(demo_dir / "models.json")
        assert supervisor.state_of(reg, "smollm2").state == "ready"
        assert (demo_dir / "logs" / "smollm2.log").exists() and (demo_dir / "run").is_dir()
        # a second run adopts the running server and keeps edits to the demo registry
        raw["models"]["smollm2"]["description"] = "edited by the user"
        (demo_dir / "models.json").write_text(json.dumps(raw))
        p2 = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--no-tui", "--dir", str(demo_dir)],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert p2.returncode == 0, p2.stdout + p2.stderr
        assert "already running" in p2.stdout and "adopting" in p2.stdout
        assert json.loads((demo_dir / "models.json").read_text())["models"]["smollm2"]["description"] == \
            "edited by the user"
    finally:
        if (demo_dir / "models.json").exists():
            supervisor.stop_all(registry.load(demo_dir / "models.json"), grace=2)
    after = user_registry.stat().st_mtime_ns if user_registry.exists() else None
    assert before == after


@pytest.mark.timeout(30)
def test_a_bad_tools_file_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "models.json").write_text('{"models": {}}')
    (tmp_path / "tools.json").write_text('[{"type": "function", "function": {}}]')
    p = subprocess.run([LLMDECK, "--registry", str(tmp_path / "models.json")], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, LLMDECK_TOOLS=str(tmp_path / "tools.json")))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == f"llmdeck: error: LLMDECK_TOOLS: {tmp_path / 'tools.json'}: tool #1 has no function.name"


def test_tools_from_the_environment_reach_the_chat_session(tmp_path):
    from tui.ui.backend import Backend

    (tmp_path / "models.json").write_text('{"models": {"m": {"model_path": "m.gguf", "default_port": 8123}}}')
    reg = registry.load(tmp_path / "models.json")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    session = Backend(reg, chat_options={"tools": tools, "max_tokens": 7}).chat_session("m")
    session.url = "http://127.0.0.1:9/v1"
    conv = session._conversation()
    assert conv.tools == tools and conv.max_tokens == 7
    body = conv.client.build_body(conv.request_messages(), tools=conv.tools, max_tokens=conv.max_tokens)
    assert body["tools"] == tools and body["max_tokens"] == 7


@pytest.mark.timeout(60)
def test_a_hung_up_terminal_without_sighup_quits_instead_of_spinning(tmp_path):
    """The terminal goes away and no SIGHUP arrives (ignored here, as under make or nohup): the
    TUI quits within seconds. Textual alone would read end-of-file from it in a busy loop."""
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": {"m": {"model_path": "/nonexistent.gguf", "default_port": free_port()}}}))
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    proc = subprocess.Popen([LLMDECK, "--registry", str(path)], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=tmp_path, start_new_session=True, close_fds=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    os.close(slave)
    try:
        out, deadline = bytearray(), time.monotonic() + 30
        while b"m " not in out and time.monotonic() < deadline:  # the model list is on screen
            if select.select([master], [], [], 0.05)[0]:
                out += os.read(master, 1 << 16)
        assert b"llmdeck" in out, bytes(out[-2000:])
        time.sleep(1.5)  # past the first frame: the check runs once a second from then on
        os.close(master)  # the terminal goes away
        master = None
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if master is not None:
            os.close(master)
