"""What the CLI says when something is off (issue 12 B): every hint is a command that runs,
names the registry when it is not the default one, and nothing prints a web page.

Each test runs the real ``llmdeck`` in a subprocess; the servers are real (llama-server with
SmolLM2 for the context overflow, a small HTTP server that answers with an HTML page for the
"another program on the port" cases).
"""

from __future__ import annotations

import http.server
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
LLMDECK = str(Path(sys.executable).parent / "llmdeck")
PAGE = (b"<!DOCTYPE html><html><head><title>Jupyter Server</title></head><body><h1>Welcome</h1>"
        b"<p>not a model</p></body></html>")


def run(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([LLMDECK, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def write_registry(path: Path, models: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": {}, "models": models}))
    return path


class HtmlServer:
    """An unrelated web server on a loopback port: every request gets PAGE with ``status``."""

    def __init__(self, status: int = 200) -> None:
        posts = self.posts = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _page(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def do_GET(self) -> None:  # noqa: N802 — http.server's names
                self._page()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posts.append(self.path)
                self._page()

            def log_message(self, *a) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def html_server():
    made = []

    def make(status: int = 200) -> HtmlServer:
        s = HtmlServer(status)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def quoted_commands(line: str) -> list[list[str]]:
    """The 'llmdeck …' commands a message suggests (between single quotes), as argv lists."""
    return [shlex.split(part) for part in line.split("'")[1::2] if part.startswith("llmdeck")]


# --- the chat error hint ------------------------------------------------------------------------

def test_connect_hint_names_the_registry_and_its_commands_run(tmp_path):
    reg = write_registry(tmp_path / "elsewhere" / "deck.json",
                         {"remote": {"engine": "external", "base_url": f"http://127.0.0.1:{free_port()}/v1"}})
    cwd = tmp_path / "work"
    cwd.mkdir()
    p = run("--registry", str(reg), "chat", "remote", "hi", cwd=cwd)
    assert p.returncode == 1
    line = one_error_line(p.stderr)
    assert "connection refused" in line
    assert "status remote" not in line  # 'llmdeck status' takes no model
    cmds = quoted_commands(line)
    assert cmds and all(c[:3] == ["llmdeck", "--registry", str(reg)] for c in cmds), line
    assert ["status"] in [c[3:] for c in cmds] and ["start", "remote"] in [c[3:] for c in cmds]
    status = run(*cmds[[c[3:] for c in cmds].index(["status"])][1:], cwd=cwd)
    assert status.returncode == 0, status.stderr  # the suggestion is a command that works
    assert "remote" in status.stdout


def test_hint_leaves_out_the_default_registry(tmp_path):
    write_registry(tmp_path / "models.json",
                   {"remote": {"engine": "external", "base_url": f"http://127.0.0.1:{free_port()}/v1"}})
    p = run("chat", "remote", "hi", cwd=tmp_path)
    line = one_error_line(p.stderr)
    assert "'llmdeck status'" in line and "'llmdeck start remote'" in line, line


def test_loading_hint_is_a_valid_command(tmp_path):
    from tui.core.chat.errors import http_error, llmdeck_command

    reg = write_registry(tmp_path / "deck.json",
                         {"m": {"engine": "external", "base_url": f"http://127.0.0.1:{free_port()}/v1"}})
    cli = llmdeck_command(reg)
    assert cli == f"llmdeck --registry {reg}"
    err = http_error(503, b'{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}',
                     "http://127.0.0.1:1/v1/chat/completions", model="m", cli=cli)
    cmds = quoted_commands(err.message)
    assert cmds == [["llmdeck", "--registry", str(reg), "health", "m"]], err.message
    p = run(*cmds[0][1:], cwd=tmp_path)
    assert p.returncode in (0, 1) and "usage" not in p.stderr, p.stderr  # runs (nothing answers: 1)


# --- chat with a stopped model, and non-JSON answers ---------------------------------------------

def test_chat_refuses_a_stopped_model_without_sending(tmp_path, html_server):
    web = html_server(200)  # an unrelated program took the stopped model's port
    reg = write_registry(tmp_path / "deck" / "models.json",
                         {"smollm2": {"model_path": str(tmp_path / "smollm2.gguf"), "default_port": web.port}})
    p = run("--registry", str(reg), "chat", "smollm2", "hello", cwd=tmp_path)
    assert p.returncode == 1
    line = one_error_line(p.stderr)
    assert line.startswith("llmdeck: error: smollm2 is stopped: ")
    assert f"'llmdeck --registry {reg} start smollm2 --wait'" in line
    assert p.stdout == ""
    assert web.posts == []  # nothing was sent to that port


@pytest.mark.parametrize("status", [200, 404, 500])
def test_html_answer_is_one_line(tmp_path, html_server, status):
    web = html_server(status)
    reg = write_registry(tmp_path / "models.json",
                         {"web": {"engine": "external", "base_url": f"http://127.0.0.1:{web.port}/v1",
                                  "alias": "x"}})
    p = run("chat", "web", "hello", cwd=tmp_path)
    assert p.returncode == 1
    line = one_error_line(p.stderr)
    assert "<" not in line and "html>" not in line.lower() and "Welcome" not in line, line
    assert "HTML page titled 'Jupyter Server'" in line and "another program" in line, line
    assert p.stdout.strip() == ""


# --- prompt too long ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_ctx(module_llama_server):
    """One slot of 256 tokens, shared: each test sends its own conversation and only reads."""
    return module_llama_server(parallel=1, ctx=256)


def test_prompt_too_long_says_how_to_start_a_new_chat(tmp_path, small_ctx):
    srv = small_ctx
    reg = write_registry(tmp_path / "models.json",
                         {"smollm2": {"engine": "external", "base_url": srv.base_url, "alias": "smollm2"}})
    prompt = " ".join(f"word{i}" for i in range(600))
    p = run("chat", "smollm2", prompt, cwd=tmp_path, timeout=120)
    assert p.returncode == 1
    line = one_error_line(p.stderr)
    assert "prompt too long" in line, line
    assert "ctrl+n in the TUI" in line and "/reset in 'llmdeck chat'" in line, line


def test_repl_reset_is_what_the_hint_names(tmp_path, small_ctx):
    """The hint's '/reset' is a command of the chat REPL: after it, the next prompt fits again."""
    srv = small_ctx
    reg = write_registry(tmp_path / "models.json",
                         {"smollm2": {"engine": "external", "base_url": srv.base_url, "alias": "smollm2"}})
    long = " ".join(f"word{i}" for i in range(600))
    p = subprocess.run([LLMDECK, "--registry", str(reg), "chat", "smollm2", "--max-tokens", "4"],
                       input=f"{long}\n/reset\nSay hi.\n", capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert "prompt too long" in p.stderr
    assert "history cleared" in p.stderr
    assert p.returncode == 0, p.stderr  # the last turn (after /reset) worked


# --- start --dry-run on a taken port ----------------------------------------------------------------

def test_dry_run_warns_when_the_port_is_taken(tmp_path):
    reg = write_registry(tmp_path / "models.json",
                         {"m": {"model_path": str(tmp_path / "m.gguf"), "default_port": free_port()}})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run("--registry", str(reg), "start", "m", "--dry-run", "--port", str(port), cwd=tmp_path)
    assert p.returncode == 0
    assert f"--port {port}" in p.stdout  # the command is still printed
    taken = [ln for ln in p.stderr.splitlines() if "in use" in ln]
    assert len(taken) == 1 and f"port {port}" in taken[0] and "a start now would fail" in taken[0], p.stderr
    free = run("--registry", str(reg), "start", "m", "--dry-run", "--port", str(free_port()), cwd=tmp_path)
    assert free.returncode == 0 and "in use" not in free.stderr


# --- make clean-demo twice -------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_clean_demo_twice_is_quiet(tmp_path):
    (tmp_path / "Makefile").write_text((ROOT / "Makefile").read_text())
    write_registry(tmp_path / ".demo" / "models.json",
                   {"smollm2": {"model_path": str(tmp_path / "m.gguf"), "default_port": free_port()}})
    binary = str(Path(sys.executable).parent)
    # as a user types it: not a sub-make of `make test` (which would print "Entering directory")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    first = subprocess.run(["make", "clean-demo", f"BIN={binary}"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, env=env)
    assert first.returncode == 0, first.stderr
    assert not (tmp_path / ".demo").exists()
    second = subprocess.run(["make", "clean-demo", f"BIN={binary}"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env=env)
    assert second.returncode == 0
    assert second.stdout == "" and second.stderr == "", (second.stdout, second.stderr)
