"""``llmdeck serve`` end to end: the registry and the real supervisor feed the router.

One SmolLM2 llama-server is started by the supervisor (a registry model), another is
reached as an ``external`` model; ``llmdeck serve`` runs as a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_http_ok
from tui.cli.cmd_serve import exposure_warning
from tui.core import registry, supervisor

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


def _serve(reg_path: Path, port: int, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tui.cli.main", "--registry", str(reg_path), "serve",
                             "--port", str(port), *extra], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _chat(model: str, n: int = 3) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": n, "temperature": 0}


def _until(fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


@pytest.fixture
def deck(tmp_path, smollm_gguf, llama_server):
    ext = llama_server(alias="ext-smol")
    reg_path = tmp_path / "models.json"
    reg_path.write_text(json.dumps({"settings": {"stop_grace_s": 5}, "models": {
        "smol": {"model_path": str(smollm_gguf), "alias": "smol-chat", "default_port": free_port(),
                 "params": {"ctx_size": 2048, "threads": 1, "parallel": 2}},
        "ext": {"engine": "external", "base_url": ext.base_url},
        "idle": {"model_path": str(smollm_gguf), "default_port": free_port()},
    }}))
    reg = registry.load(reg_path)
    supervisor.start(reg, "smol")
    try:
        st = supervisor.wait_ready(reg, "smol", timeout=60)
        assert st.state == "ready", st
        yield reg_path, ext
    finally:
        supervisor.stop_all(registry.load(reg_path), grace=5)


def test_serve_routes_to_supervised_and_external_models(deck):
    reg_path, ext = deck
    port = free_port()
    proc = _serve(reg_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(base + "/health", 30, proc)
        models = {m["id"]: m for m in httpx.get(base + "/v1/models").json()["data"]}
        assert set(models) == {"smol", "ext"}  # "idle" is registered but stopped
        assert models["smol"]["aliases"] == ["smol-chat"] and models["smol"]["engine"] == "llama-server"
        for name in ("smol", "smol-chat", "ext"):
            r = httpx.post(base + "/v1/chat/completions", json=_chat(name), timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"]
        r = httpx.post(base + "/v1/chat/completions", json=_chat("idle"))
        assert r.status_code == 404 and "llmdeck start idle" in r.json()["error"]["message"]
        seed = {m["name"]: m for m in httpx.get(base + "/api/models").json()["models"]}
        assert seed["ext"]["url"] == ext.base_url and seed["smol"]["state"] == "ready"

        # a model stopped behind the router's back is noticed, a new entry in models.json too
        supervisor.stop(registry.load(reg_path), "smol", grace=5)
        r = _until(lambda: (x := httpx.post(base + "/v1/chat/completions", json=_chat("smol"))).status_code == 404
                   and x)
        assert r and "not running" in r.json()["error"]["message"]
        registry.add_model(reg_path, "ext2", {"engine": "external", "base_url": ext.base_url, "alias": "second"})
        assert _until(lambda: "ext2" in {m["id"] for m in httpx.get(base + "/v1/models").json()["data"]})
        r = httpx.post(base + "/v1/chat/completions", json=_chat("second"), timeout=60)
        assert r.status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "router listening on http://127.0.0.1:" in err
    assert "warning" not in err and "Traceback" not in err


def test_serve_with_api_key(deck):
    reg_path, _ = deck
    port = free_port()
    proc = _serve(reg_path, port, "--api-key-env", "DECK_KEY", env=dict(os.environ, DECK_KEY="s3cret"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(base + "/health", 30, proc)
        assert httpx.get(base + "/v1/models").status_code == 401
        r = httpx.post(base + "/v1/chat/completions", json=_chat("smol"), timeout=60,
                       headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert "s3cret" not in " ".join(proc.args)  # the key never travels on the command line


def test_serve_errors_are_one_line(tmp_path):
    reg_path = tmp_path / "models.json"
    reg_path.write_text(json.dumps({"settings": {}, "models": {}}))
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_KEY_VAR"}
    r = subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(reg_path), "serve",
                        "--api-key-env", "NO_SUCH_KEY_VAR"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "llmdeck: error: --api-key-env names $NO_SUCH_KEY_VAR, which is not set (or empty): export it first"]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(reg_path), "serve",
                            "--port", str(busy)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith(f"llmdeck: error: cannot listen on 127.0.0.1:{busy}: ") and "Traceback" not in r.stderr

    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"x": {"engine": "vllm"}}}')
    r = subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(bad), "serve"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "needs repo_id" in r.stderr and "Traceback" not in r.stderr


def test_exposure_warning():
    assert exposure_warning("127.0.0.1", 8888, None) is None
    assert exposure_warning("::1", 8888, None) is None
    assert exposure_warning("0.0.0.0", 8888, "k") is None
    w = exposure_warning("0.0.0.0", 8888, None)
    assert w and "0.0.0.0:8888 without an API key" in w and "--api-key-env" in w
    assert exposure_warning("192.168.1.5", 9000, None)
