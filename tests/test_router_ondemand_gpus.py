"""Free VRAM per GPU in the router (issue 16), with real SmolLM2 llama-servers and a fake NVML
of two GPUs (no GPU here) that lists the servers' real PIDs as its processes: a model pinned to
GPU 1 that does not fit there stops the model on GPU 1, not the least recently used one on
GPU 0, and the event records the per-GPU figures the decision read."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import wait_http_ok
from inproc import inproc_router
from tui.core import supervisor
from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml
from tui.core.telemetry.nvml import NvmlSource
from tui.router.app import make_app
from tui.router.backends import RegistryBackends
from tui.router.ondemand import _estimate

pytestmark = [pytest.mark.server, pytest.mark.timeout(150)]


def _chat(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4, "temperature": 0}


def test_a_model_pinned_to_one_gpu_evicts_what_holds_that_gpu(make_deck):
    reg = make_deck({"a": {"on_demand": True, "env": {"CUDA_VISIBLE_DEVICES": "0"}},
                     "b": {"on_demand": True, "env": {"CUDA_VISIBLE_DEVICES": "1"}},
                     "c": {"on_demand": True, "env": {"CUDA_VISIBLE_DEVICES": "1"}}}, stop_grace_s=5)
    need = _estimate(reg, "a")
    total = 80 << 30
    gpus = [FakeGpu("NVIDIA H200", total=total, used=total - need * 3 // 2) for _ in range(2)]
    app = make_app(RegistryBackends(reg.path), on_demand=True, gpu_source=NvmlSource(FakeNvml(gpus)))
    with inproc_router(app) as base:
        wait_http_ok(base + "/health", 30)
        for name, gi in (("a", 0), ("b", 1)):
            r = httpx.post(base + "/v1/chat/completions", json=_chat(name), timeout=60)
            assert r.status_code == 200, (name, r.text)
            pid = supervisor.state_of(reg, name).pid
            gpus[gi].used = total - need // 2  # the server took its memory on its GPU
            gpus[gi].processes = [(pid, need)]
        # b fitted on GPU 1 with a running on GPU 0 (nothing stopped); together the GPUs now
        # have one model's need free (as one pool c would fit), but GPU 1 only half of it
        r = httpx.post(base + "/v1/chat/completions", json=_chat("c"), timeout=60)
        assert r.status_code == 200, r.text
        states = {n: supervisor.state_of(reg, n).state for n in "abc"}
        assert states == {"a": "ready", "b": "stopped", "c": "ready"}, states
        events = json.loads((reg.run_dir / "router.json").read_text())["events"]
        out = [e for e in events if e["action"] == "swapped out"]
        assert [e["model"] for e in out] == ["b"], events
        assert out[0]["reason"] == f"c needs {need / 2**30:.1f} GiB, {need / 2**31:.1f} GiB free on GPU 1", out
        mem = out[0]["memory"]
        assert mem["gpu_free_bytes"] == {"0": need // 2, "1": need // 2}, mem
        assert mem["used_by_bytes"] == {"a": {"0": need}, "b": {"1": need}} and mem["need_bytes"] == need
        assert mem["gpus"] == [1] and mem["rule"] == "sum"
        started = {e["model"]: e for e in events if e["action"] == "started"}
        assert started["c"]["memory"] == mem  # the start carries the figures it was decided on
        assert started["a"]["memory"]["gpu_free_bytes"] == {"0": need * 3 // 2, "1": need * 3 // 2}
