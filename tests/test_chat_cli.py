"""``llmdeck chat`` as a user runs it (a subprocess): against the real llama-server for a model
llmdeck runs (``engine: llama-server``) and an ``engine: "external"`` entry, and against a
local server replaying the recorded real tool-call stream for rendering, the REPL's tool-result
loop, the request it sends and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chatstreams import sse, vllm
from conftest import free_port
from streamserver import Reply, StreamServer, json_reply
from test_chat_live import gbnf

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).parent / "fixtures" / "chat"
CHAT = "/v1/chat/completions"
pytestmark = pytest.mark.timeout(120)


def llmdeck(registry: Path, *args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("LLMDECK_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "tui", "--registry", str(registry), "chat", *args],
                          cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


def registry(tmp_path: Path, models: dict) -> Path:
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"models": models}))
    return p


@pytest.fixture(scope="module")
def live(module_llama_server):
    """GLM-4.7-Flash template and a server-wide grammar: every reply is 'Hmm.' thinking, 'Hi!'."""
    return module_llama_server("--grammar", gbnf("Hmm.</think>Hi!"), ctx=1024, parallel=1,
                               template="GLM-4.7-Flash.jinja")


@pytest.fixture
def replay():
    with StreamServer() as s:
        yield s


# --- live --------------------------------------------------------------------------------------------

def test_one_shot_plain_against_a_model_llmdeck_runs(live, tmp_path, smollm_gguf):
    reg = registry(tmp_path, {"smol": {"engine": "llama-server", "model_path": str(smollm_gguf),
                                       "default_port": live.port, "params": {"temp": 0.0}}})
    # llmdeck chats only with a server it knows runs (a stopped model is refused): the live
    # server gets the two-line pid file of the seed's scripts, which llmdeck adopts
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "smol.pid").write_text(f"{live.proc.pid}\n{live.port}\n")
    r = llmdeck(reg, "smol", "Hello", "--max-tokens", "20")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[thinking]\nHmm.\n[/thinking]\n\nHi!\n"
    stats = r.stderr.strip().splitlines()[-1]
    # the stats line the TUI shows too (tui.core.chat.events.stats_line); a reply that simply stopped has no "finish:"
    assert stats.startswith("llmdeck: first token ") and " tok/s · " in stats and "finish:" not in stats


def test_json_lines_against_an_external_entry(live, tmp_path):
    reg = registry(tmp_path, {"remote": {"engine": "external", "base_url": live.base_url}})
    r = llmdeck(reg, "remote", "Hello", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert {x["type"] for x in lines} == {"reasoning", "content", "done"}
    assert "".join(x["text"] for x in lines if x["type"] == "reasoning") == "Hmm."
    assert "".join(x["text"] for x in lines if x["type"] == "content") == "Hi!"
    done = lines[-1]
    assert set(done) == {"type", "finish_reason", "usage", "timings"} and done["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] > 0 and done["timings"]["predicted_n"] > 0
    assert r.stderr == ""


def test_repl_keeps_history_over_stdin(live, tmp_path):
    reg = registry(tmp_path, {"remote": {"engine": "external", "base_url": live.base_url}})
    r = llmdeck(reg, "remote", "--json", stdin="Hello\n/reset\nAgain\n/exit\n")
    assert r.returncode == 0, r.stderr
    dones = [json.loads(x) for x in r.stdout.splitlines() if json.loads(x)["type"] == "done"]
    assert len(dones) == 2 and "history cleared" in r.stderr


# --- replayed recorded streams ------------------------------------------------------------------------

def recorded(name: str) -> Reply:
    return Reply(body=(FIX / f"llamacpp_{name}.sse").read_bytes())


def test_tool_call_rendering_plain_and_json(replay, tmp_path):
    reg = registry(tmp_path, {"r": {"engine": "external", "base_url": replay.base_url}})
    replay.queue(CHAT, recorded("tool_call"), recorded("tool_call"))
    r = llmdeck(reg, "r", "Weather?")
    assert r.returncode == 0, r.stderr
    head, _, rest = r.stdout.partition("\n")
    assert head.startswith("[tool call] get_weather (") and head.endswith(")")
    args = json.loads(rest)
    assert set(args) == {"days", "metric"} and rest.startswith("{\n  ")      # pretty-printed
    r = llmdeck(reg, "r", "Weather?", "--json")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["type"] for x in lines] == ["tool_call", "done"]
    call = lines[0]
    assert set(call) == {"type", "index", "id", "name", "arguments"} and call["name"] == "get_weather"
    assert call["arguments"] == args and call["index"] == 0 and lines[1]["finish_reason"] == "tool_calls"


def test_incomplete_tool_call_is_shown_with_its_raw_text(replay, tmp_path):
    reg = registry(tmp_path, {"r": {"engine": "external", "base_url": replay.base_url}})
    replay.queue(CHAT, recorded("parallel_tool_calls"))
    r = llmdeck(reg, "r", "Weather?")
    assert r.returncode == 0
    assert r.stdout.count("[tool call] get_weather") >= 2
    if r.stdout.count("[tool call]") > 2:
        assert "(incomplete: the arguments are not valid JSON)" in r.stdout
    assert "finish: length" in r.stderr


def test_request_flags_tools_file_and_tool_result_loop(replay, tmp_path):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"days": {"type": "integer"}}}}}]))
    reg = registry(tmp_path, {"r": {"engine": "external", "base_url": replay.base_url, "alias": "GLM-5"}})
    replay.queue(CHAT, recorded("tool_call"),
                 Reply(body=sse(vllm({"content": "It will be sunny."}), vllm(finish="stop"))))
    r = llmdeck(reg, "r", "--no-think", "--system", "Be brief.", "--max-tokens", "64", "--tools", str(tools),
                stdin="Weather in Tokyo?\nsunny, 25 C\n")
    assert r.returncode == 0, r.stderr
    assert "[tool call] get_weather" in r.stdout and r.stdout.rstrip().endswith("It will be sunny.")
    first, second = [q["json"] for q in replay.chat_requests()]
    assert first["model"] == "GLM-5" and first["max_tokens"] == 64
    assert first["chat_template_kwargs"] == {"enable_thinking": False}
    assert first["messages"] == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Weather in Tokyo?"}]
    assert first["tools"][0]["function"]["name"] == "get_weather"
    call_id = second["messages"][2]["tool_calls"][0]["id"]
    assert second["messages"][3] == {"role": "tool", "tool_call_id": call_id, "content": "sunny, 25 C"}


def test_ctrl_c_cancels_and_reports_the_slot(replay, tmp_path):
    reg = registry(tmp_path, {"r": {"engine": "external", "base_url": replay.base_url}})
    replay.queue(CHAT, Reply(body=[sse(vllm({"content": f"w{i} "}), done=False) for i in range(300)], delay=0.05))
    replay.default("/slots", json_reply([{"id": 0, "is_processing": False}]))
    env = dict(os.environ, NO_COLOR="1")
    p = subprocess.Popen([sys.executable, "-m", "tui", "--registry", str(reg), "chat", "r", "Go", "--json"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert json.loads(first)["type"] == "content"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130
    done = json.loads(out.splitlines()[-1])
    assert done["type"] == "done" and done["finish_reason"] == "cancelled"
    assert "the server stopped generating" in err and "Traceback" not in err


# --- errors: one line, right exit status --------------------------------------------------------------

def test_errors_are_one_line(tmp_path):
    port = free_port()
    reg = registry(tmp_path, {"down": {"engine": "external", "base_url": f"http://127.0.0.1:{port}/v1"}})
    r = llmdeck(reg, "down", "hi")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("llmdeck: error: cannot connect to") and r.stderr.count("\n") == 1
    assert "connection refused" in r.stderr and f"'llmdeck --registry {reg} start down'" in r.stderr
    r = llmdeck(reg, "down", "hi", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["type"] == "error"
    r = llmdeck(reg, "dwn", "hi")
    assert r.returncode == 2 and "did you mean 'down'" in r.stderr and r.stderr.count("\n") == 1
    bad = tmp_path / "t.json"
    bad.write_text("[{")
    r = llmdeck(reg, "down", "hi", "--tools", str(bad))
    assert r.returncode == 2 and str(bad) in r.stderr and "invalid JSON" in r.stderr
    r = llmdeck(reg, "down", "hi", "--max-tokens", "0")
    assert r.returncode == 2 and "--max-tokens" in r.stderr


def test_context_overflow_and_missing_key(replay, tmp_path):
    rec = json.loads((FIX / "llamacpp_overflow.json").read_text())
    replay.queue(CHAT, Reply(status=400, body=rec["body"].encode(), content_type="application/json", chunked=False))
    reg = registry(tmp_path, {"r": {"engine": "external", "base_url": replay.base_url, "api_key_env": "NO_SUCH_KEY_X"}})
    r = llmdeck(reg, "r", "long text")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[0] == "llmdeck: warning: $NO_SUCH_KEY_X (api_key_env of 'r') is not set: sending no API key"
    assert lines[1].startswith("llmdeck: error: prompt too long: 396 tokens, but the context holds 256 tokens")
