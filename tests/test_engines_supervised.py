"""vLLM, SGLang and LightLLM under the supervisor, as llama-server is: start, readiness from the
engine's /health, the log, chat through the router, stop.

The engines need GPUs, so the faithful fakes of tests/fake_engines.py stand in for them: they
are started by the exact command llmdeck builds and pass generation to a real SmolLM2
llama-server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import pytest

from conftest import free_port
from fake_engines import READY_LINE, install
from tui.core import registry, supervisor
from tui.router.app import make_app, serve
from tui.router.backends import RegistryBackends

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


@pytest.fixture
def deck(tmp_path, llama_server, monkeypatch):
    upstream = llama_server(alias="smollm2")
    bindir, site = install(tmp_path / "fakes")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("FAKE_ENGINE_UPSTREAM", upstream.base_url)
    ckpt = tmp_path / "GLM-4.7-Flash"
    ckpt.mkdir()
    reg_path = tmp_path / "models.json"
    reg_path.write_text(json.dumps({"settings": {"stop_grace_s": 5}, "models": {
        "glm-5-fp8": {"engine": "vllm", "executable": str(bindir / "vllm"), "repo_id": "zai-org/GLM-5-FP8",
                      "host": "127.0.0.1", "default_port": free_port(), "tool_call_parser": "glm47",
                      "reasoning_parser": "glm45", "params": {
                          "tensor_parallel_size": 8, "speculative_config": {"method": "mtp", "num_speculative_tokens": 1},
                          "enable_auto_tool_choice": True, "gpu_memory_utilization": 0.85}},
        "glm-5-sgl": {"engine": "sglang", "executable": sys.executable, "repo_id": "zai-org/GLM-5-FP8",
                      "alias": "glm-5-fp8-sglang", "default_port": free_port(), "tool_call_parser": "glm47",
                      "reasoning_parser": "glm45", "params": {
                          "tp_size": 8, "speculative_algorithm": "EAGLE", "speculative_num_steps": 3,
                          "speculative_eagle_topk": 1, "speculative_num_draft_tokens": 4, "mem_fraction_static": 0.85}},
        "flash": {"engine": "lightllm", "executable": sys.executable, "model_path": str(ckpt) + "/",
                  "host": "127.0.0.1", "default_port": free_port(),
                  "env": {"LIGHTLLM_TRITON_AUTOTUNE_LEVEL": "1", "LOADWORKER": "18"},
                  "tool_call_parser": "glm47", "reasoning_parser": "glm45", "params": {
                      "tp": 1, "max_req_total_len": 202752, "mtp_step": 4, "mtp_mode": "eagle_with_att",
                      "mtp_draft_model_dir": str(ckpt) + "/"}},
    }}))
    yield reg_path
    supervisor.stop_all(registry.load(reg_path), grace=5)


@pytest.mark.parametrize("name,engine", [("glm-5-fp8", "vllm"), ("glm-5-sgl", "sglang"), ("flash", "lightllm")])
async def test_start_ready_chat_stop(deck, name, engine):
    reg = registry.load(deck)
    st = await asyncio.to_thread(supervisor.start, reg, name)
    assert st.engine == engine and st.pid
    st = await asyncio.to_thread(supervisor.wait_ready, reg, name, 60)
    assert st.state == "ready", (st.state, st.last_error, st.last_log_lines)
    assert st.url == f"http://127.0.0.1:{reg.get(name).default_port}/v1"
    log = reg.log_file(name).read_text()
    assert READY_LINE[engine] in log and f"fake {engine}: loading" in log
    # status from a fresh look (as another front end would) adopts the same server
    again = await asyncio.to_thread(supervisor.state_of, registry.load(deck), name)
    assert (again.state, again.pid) == ("ready", st.pid)

    stop = asyncio.Event()
    got = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(make_app(RegistryBackends(deck)), "127.0.0.1", 0, ready=got.set_result,
                                     stop=stop))
    port = (await asyncio.wait_for(got, 10))[0][1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            assert name in {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
            r = await c.post("/v1/chat/completions", json={
                "model": name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
            assert r.status_code == 200, r.text  # the router sent the served name the engine insists on
            assert r.json()["choices"][0]["message"]["content"]
    finally:
        stop.set()
        await task
    if engine != "lightllm":  # straight to the engine with the wrong name: its own 404
        r = httpx.post(st.url + "/chat/completions", json={"model": "nope", "messages": []})
        assert r.status_code == 404

    st = await asyncio.to_thread(supervisor.stop, reg, name, grace=5)
    assert st.state == "stopped"
    assert supervisor.state_of(reg, name).state == "stopped"


def test_missing_engine_stops_start_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    reg_path = tmp_path / "models.json"
    reg_path.write_text(json.dumps({"models": {"v": {"engine": "vllm", "repo_id": "a/b"}}}))
    reg = registry.load(reg_path)
    with pytest.raises(Exception) as ei:
        supervisor.start(reg, "v")
    assert str(ei.value).startswith("engine vllm is not installed: 'vllm' not found on PATH")
    assert not reg.pid_file("v").exists() and not os.path.exists(reg.log_file("v"))


def test_script_engines_keep_their_identity():
    """``vllm`` is a console script: /proc shows ``python /venv/bin/vllm serve …``, still the same
    command for adoption; anything else is not."""
    same = supervisor.same_command
    assert same(["/v/bin/python", "/v/bin/vllm", "serve", "m"], ["vllm", "serve", "m"])
    assert same(["/usr/bin/python3", "-u", "/v/bin/vllm", "serve", "m"], ["/v/bin/vllm", "serve", "m"])
    assert same(["python3", "-m", "sglang.launch_server"], ["python3", "-m", "sglang.launch_server"])
    assert not same(["/v/bin/python", "/v/bin/other", "serve", "m"], ["vllm", "serve", "m"])
    assert not same(["/v/bin/python", "/v/bin/vllm", "serve", "x"], ["vllm", "serve", "m"])
    assert not same(["sleep", "100"], ["vllm", "serve", "m"])
