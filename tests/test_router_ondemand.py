"""Models on demand through ``llmdeck serve`` (issue 16), with real SmolLM2 llama-servers.

The router runs as a subprocess (``llmdeck serve``) over a registry made by ``make_deck``;
what it did is read back from its answers, the servers' states (supervisor) and
``run/router.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_http_ok
from tui.core import registry, supervisor

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.server, pytest.mark.timeout(150)]


def _deck(make_deck, models: dict, **settings):
    reg = make_deck(models, stop_grace_s=5)
    p = reg.path
    raw = json.loads(p.read_text())
    raw["settings"].update(settings)
    p.write_text(json.dumps(raw, indent=2))
    return registry.load(p)


class Router:
    def __init__(self, reg, *extra: str, env: dict | None = None):
        self.reg, self.port = reg, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "tui.cli.main", "--registry", str(reg.path), "serve",
                                      "--port", str(self.port), *extra], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_http_ok(self.base + "/health", 30, self.proc)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()[1]

    def run_file(self) -> dict:
        p = self.reg.run_dir / "router.json"
        return json.loads(p.read_text()) if p.exists() else {"models": {}, "events": []}

    def events(self, action: str | None = None) -> list[dict]:
        return [e for e in self.run_file()["events"] if action is None or e["action"] == action]


@pytest.fixture
def router():
    made: list[Router] = []

    def make(reg, *extra, env=None) -> Router:
        r = Router(reg, *extra, env=env)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def _chat(model: str, n: int = 4, **kw) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": n,
            "temperature": 0, **kw}


def _state(reg, name: str) -> str:
    return supervisor.state_of(reg, name).state


def _until(fn, timeout: float):
    deadline = time.monotonic() + timeout
    while not (v := fn()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return v


def _stream(base: str, body: dict, lines: list[str], headers: dict | None = None) -> None:
    with httpx.stream("POST", base + "/v1/chat/completions", json={**body, "stream": True}, timeout=60,
                      headers=headers) as r:
        lines.append(f"status {r.status_code}")
        for ln in r.iter_lines():
            lines.append(ln)


def test_stopped_on_demand_model_answers_plain_and_streaming(make_deck, router):
    reg = _deck(make_deck, {"od": {"on_demand": True}})
    r = router(reg)
    assert _state(reg, "od") == "stopped"
    a = httpx.post(r.base + "/v1/chat/completions", json=_chat("od"), timeout=60)
    assert a.status_code == 200, a.text
    assert a.json()["choices"][0]["message"]["content"]
    supervisor.stop(reg, "od", grace=5)
    lines: list[str] = []
    _stream(r.base, _chat("od"), lines)
    assert lines[0] == "status 200"
    assert lines[1].startswith(": loading od"), lines[:3]  # an SSE comment while it loads
    data = [ln for ln in lines if ln.startswith("data: ")]
    assert data[-1] == "data: [DONE]" and len(data) > 2, lines
    assert [e["reason"] for e in r.events("started")] == ["request", "request"]


def test_sixteen_concurrent_requests_share_one_start(make_deck, router):
    reg = _deck(make_deck, {"od": {"on_demand": True}})
    r = router(reg)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: httpx.post(r.base + "/v1/chat/completions", json=_chat("od", 2),
                                                     timeout=90), range(16)))
    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers if a.status_code != 200]
    assert len(r.events("started")) == 1
    log = reg.log_file("od")
    assert log.read_text().count("starting (llama-server") == 1
    assert not Path(str(log) + ".1").exists()  # one run: no earlier log was rotated aside


def test_swap_group_waits_for_the_open_stream_then_swaps(make_deck, router):
    reg = _deck(make_deck, {"a": {"on_demand": True, "swap_group": "g"}, "b": {"on_demand": True, "swap_group": "g"}})
    r = router(reg)
    assert httpx.post(r.base + "/v1/chat/completions", json=_chat("a"), timeout=60).status_code == 200
    lines: list[str] = []
    t = threading.Thread(target=_stream, args=(r.base, _chat("a", 400, ignore_eos=True), lines))
    t.start()
    assert _until(lambda: sum(ln.startswith("data: {") for ln in lines) > 3, 30)
    b = httpx.post(r.base + "/v1/chat/completions", json=_chat("b"), timeout=90)
    t.join(30)
    assert b.status_code == 200, b.text
    data = [ln for ln in lines if ln.startswith("data: ")]
    assert data[-1] == "data: [DONE]", lines[-3:]  # a's stream finished whole, not cut
    assert sum('"content"' in ln for ln in data) >= 300
    assert _state(reg, "a") == "stopped" and _state(reg, "b") == "ready"
    swapped = _until(lambda: r.events("swapped out"), 5)
    assert swapped and swapped[0]["model"] == "a" and "swap_group g" in swapped[0]["reason"]


def test_ttl_stops_an_idle_model_never_during_a_stream(make_deck, router):
    reg = _deck(make_deck, {"t": {"on_demand": True, "ttl_s": 2}})
    r = router(reg)
    lines: list[str] = []
    t0 = time.monotonic()
    _stream(r.base, _chat("t", 300, ignore_eos=True), lines)
    took = time.monotonic() - t0
    assert lines[-1] == "data: [DONE]" or lines[-2] == "data: [DONE]", lines[-3:]
    assert _state(reg, "t") == "ready"  # right after the stream: not stopped during it
    stopped = _until(lambda: _state(reg, "t") == "stopped", 8)
    idle = time.monotonic() - t0 - took
    assert stopped and idle >= 2.0, (stopped, idle)
    ev = _until(lambda: r.events("unloaded"), 5)  # written once the stop has ended
    assert ev and ev[0]["model"] == "t" and "ttl_s 2" in ev[0]["reason"]


def test_model_that_crashes_on_load_answers_502_with_its_exit(make_deck, router):
    reg = _deck(make_deck, {"bad": {"on_demand": True, "extra_args": ["--no-such-flag-llmdeck"]}})
    r = router(reg)
    a = httpx.post(r.base + "/v1/chat/completions", json=_chat("bad"), timeout=60)
    assert a.status_code == 502, a.text
    msg = a.json()["error"]["message"]
    assert "failed to load" in msg and "exit" in msg, msg


def test_keep_loaded_model_is_never_swapped_out(make_deck, router):
    reg = _deck(make_deck, {"keep": {"keep_loaded": True, "swap_group": "g", "ttl_s": 0},
                            "other": {"on_demand": True, "swap_group": "g"}})
    supervisor.start(reg, "keep")
    assert supervisor.wait_ready(reg, "keep", timeout=60).state == "ready"
    r = router(reg)
    a = httpx.post(r.base + "/v1/chat/completions", json=_chat("other"), timeout=60)
    assert a.status_code == 503 and a.headers.get("Retry-After"), a.text
    assert "keep" in a.json()["error"]["message"] and "keep_loaded" in a.json()["error"]["message"]
    time.sleep(1.5)  # ttl_s 0 does not touch it either
    assert _state(reg, "keep") == "ready" and _state(reg, "other") == "stopped"


def test_memory_limit_evicts_the_least_recently_used(make_deck, router):
    from tui.router.ondemand import _estimate

    names = ("m1", "m2", "m3")
    reg = _deck(make_deck, {n: {"on_demand": True} for n in names})
    need = _estimate(reg, "m1")
    assert need and need > 0
    raw = json.loads(reg.path.read_text())
    raw["settings"]["memory_limit_gib"] = 2.5 * need / 2**30  # room for two of the three
    reg.path.write_text(json.dumps(raw))
    r = router(reg)
    for n in ("m1", "m2", "m1", "m3"):  # m2 is then the least recently used
        a = httpx.post(r.base + "/v1/chat/completions", json=_chat(n), timeout=60)
        assert a.status_code == 200, (n, a.text)
    assert [_state(reg, n) for n in names] == ["ready", "stopped", "ready"]
    ev = r.events("swapped out")
    assert [e["model"] for e in ev] == ["m2"] and "memory_limit_gib" in ev[0]["reason"], ev


def test_preload_and_load_unload_api_behind_the_key(make_deck, router):
    reg = _deck(make_deck, {"p": {}, "q": {}}, preload=["p"])
    r = router(reg, "--api-key-env", "ODKEY", env={**__import__("os").environ, "ODKEY": "sekrit"})
    assert _until(lambda: _state(reg, "p") == "ready", 30)
    assert _state(reg, "q") == "stopped"
    assert httpx.post(r.base + "/api/q/load", timeout=60).status_code == 401
    key = {"Authorization": "Bearer sekrit"}
    a = httpx.post(r.base + "/api/q/load", headers=key, timeout=60)
    assert a.status_code == 200 and a.json()["state"] == "ready", a.text
    assert _state(reg, "q") == "ready"
    assert httpx.post(r.base + "/api/p/unload", timeout=30).status_code == 401
    a = httpx.post(r.base + "/api/p/unload", headers=key, timeout=30)
    assert a.status_code == 200 and a.json()["stopped"] is True, a.text
    assert _state(reg, "p") == "stopped"
    # q is not on demand: a request for the stopped p is the ordinary 404
    assert httpx.post(r.base + "/v1/chat/completions", json=_chat("p"), headers=key, timeout=30).status_code == 404


def _status(reg, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(reg.path), "status", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_status_shows_the_routers_figures_and_says_when_none_runs(make_deck, router):
    reg = _deck(make_deck, {"w": {"on_demand": True, "ttl_s": 60, "swap_group": "g"}, "x": {}})
    r = router(reg)
    t0 = time.time()
    assert httpx.post(r.base + "/v1/chat/completions", json=_chat("w"), timeout=60).status_code == 200
    time.sleep(0.7)  # the router rewrites its run file every 0.5 s
    out = {d["name"]: d for d in json.loads(_status(reg, "--json").stdout)}
    w = out["w"]
    assert (w["state"], w["on_demand"], w["ttl_s"], w["swap_group"], w["in_flight"]) == ("ready", True, 60, "g", 0)
    assert t0 <= w["last_request"] <= time.time() and 50 < w["unload_in_s"] <= 60, w
    assert w["router"] == r.base and out["x"]["on_demand"] is False and out["x"]["unload_in_s"] is None
    text = _status(reg)
    row = next(ln for ln in text.stdout.splitlines() if ln.startswith("w "))
    assert "unloads in 0:5" in row or "unloads in 1:00" in row, row
    assert f"router: {r.base}" in text.stderr
    r.stop()
    text = _status(reg)
    assert "no router running" in text.stderr
    assert "unloads in" not in text.stdout and json.loads(_status(reg, "--json").stdout)[0]["router"] is None


def test_load_timeout_is_504_with_its_stage_and_reasoning_progress(make_deck, router):
    reg = _deck(make_deck, {"slow": {"on_demand": True, "load_timeout_s": 0.05}, "r": {"on_demand": True}},
                loading_in_reasoning=True)
    r = router(reg)
    a = httpx.post(r.base + "/v1/chat/completions", json=_chat("slow"), timeout=60)
    assert a.status_code == 504, a.text
    assert "stage" in a.json()["error"]["message"] and "left loading" in a.json()["error"]["message"]
    lines: list[str] = []
    _stream(r.base, _chat("r"), lines)
    first = json.loads(lines[1][len("data: "):])
    assert first["choices"][0]["delta"]["reasoning_content"].startswith("loading r"), lines[:3]
    assert lines[-1] == "data: [DONE]" or "data: [DONE]" in lines[-2:], lines[-3:]


def test_router_killed_mid_start_the_next_adopts_and_resumes_ttl(make_deck, router):
    import os
    import signal

    reg = _deck(make_deck, {"t": {"on_demand": True, "ttl_s": 300}})
    first = router(reg)
    cut: list[Exception] = []

    def ask() -> None:
        try:
            httpx.post(first.base + "/v1/chat/completions", json=_chat("t"), timeout=60)
        except httpx.HTTPError as exc:  # the router is killed under it
            cut.append(exc)

    t = threading.Thread(target=ask, daemon=True)
    t.start()
    assert _until(lambda: first.events("started"), 30)
    before = first.run_file()["models"]["t"]["last_request"]
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    t.join(10)
    assert cut  # the held request went with its router
    assert _until(lambda: _state(reg, "t") == "ready", 30)  # its watcher kept it loading
    second = router(reg)
    time.sleep(0.7)
    assert second.run_file()["models"]["t"]["last_request"] == before  # the TTL resumes from it
    assert 0 < second.run_file()["models"]["t"]["unload_in_s"] <= 300
    a = httpx.post(second.base + "/v1/chat/completions", json=_chat("t"), timeout=60)
    assert a.status_code == 200, a.text
    assert reg.log_file("t").read_text().count("starting (llama-server") == 1  # adopted, not started again


def test_free_vram_from_nvml_evicts_the_least_recently_used(make_deck):
    """The GPU path of the decision, on a fake NVML (no GPU here): 1.5 models' estimate free, then
    half of one once the first runs (as it took its share), so starting a second model must stop
    the first; the router runs in-process."""
    import asyncio

    from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml
    from tui.core.telemetry.nvml import NvmlSource
    from inproc import inproc_router
    from tui.router.app import make_app
    from tui.router.backends import RegistryBackends
    from tui.router.ondemand import _estimate

    reg = _deck(make_deck, {"g1": {"on_demand": True}, "g2": {"on_demand": True}})
    need = _estimate(reg, "g1")
    gpu = FakeGpu(total=80 << 30, used=(80 << 30) - need * 3 // 2)
    app = make_app(RegistryBackends(reg.path), on_demand=True, gpu_source=NvmlSource(FakeNvml([gpu])))
    with inproc_router(app) as base:
        wait_http_ok(base + "/health", 30)
        for n in ("g1", "g2"):
            a = httpx.post(base + "/v1/chat/completions", json=_chat(n), timeout=60)
            assert a.status_code == 200, (n, a.text)
            gpu.used = (80 << 30) - need // 2  # g1 took its memory
        assert _state(reg, "g1") == "stopped" and _state(reg, "g2") == "ready"
        events = [e for e in json.loads((reg.run_dir / "router.json").read_text())["events"]
                  if e["action"] == "swapped out"]
        assert [e["model"] for e in events] == ["g1"] and "g2 needs" in events[0]["reason"], events
        assert f"{need / 2**31:.1f} GiB free" in events[0]["reason"], events


def test_swap_group_applies_to_starts_by_hand(make_deck, router):
    reg = _deck(make_deck, {"h1": {"swap_group": "g"}, "h2": {"swap_group": "g"}})
    r = router(reg)
    for n in ("h1", "h2"):  # as 'llmdeck start' does
        supervisor.start(reg, n)
        assert supervisor.wait_ready(reg, n, timeout=60).state == "ready"
    assert _until(lambda: _state(reg, "h1") == "stopped", 10)
    ev = _until(lambda: r.events("swapped out"), 5)
    assert [e["model"] for e in ev] == ["h1"] and ev[0]["reason"] == "swap_group g: h2 was started", ev
    assert _state(reg, "h2") == "ready"


def test_cli_start_stops_the_others_of_its_swap_group_first(make_deck):
    reg = _deck(make_deck, {"c1": {"swap_group": "g"}, "c2": {"swap_group": "g"}, "k": {"swap_group": "h",
                                                                                        "keep_loaded": True},
                            "c3": {"swap_group": "h"}})

    def start(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(reg.path), "start", name,
                               "--wait"], cwd=ROOT, capture_output=True, text=True, timeout=90)

    assert start("c1").returncode == 0
    out = start("c2")
    assert out.returncode == 0, out.stderr
    assert "stopping c1: it shares swap_group g with c2" in out.stderr
    assert _state(reg, "c1") == "stopped" and _state(reg, "c2") == "ready"
    assert start("k").returncode == 0
    out = start("c3")  # k is keep_loaded: refused, k keeps running, c3 not started
    assert out.returncode != 0 and "keep_loaded" in out.stderr and "llmdeck stop k" in out.stderr, out.stderr
    assert _state(reg, "k") == "ready" and _state(reg, "c3") == "stopped"
