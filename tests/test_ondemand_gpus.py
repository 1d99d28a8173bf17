"""Free memory per GPU, not one pool (issue 16): the router's memory read (through a fake NVML
at 1, 2 and 4 GPUs) and the start decision over it (tui.core.ondemand.plan_start / placement)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tui.core import ondemand as od
from tui.core import registry
from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml
from tui.core.telemetry.nvml import NvmlSource
from tui.router.ondemand import OnDemand

G = od.GIB


class _Provider:
    def __init__(self, reg):
        self.reg = reg

    def registry(self):
        return self.reg


def _reg(tmp_path, models: dict):
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"settings": {}, "models": models}))
    return registry.load(p)


def _memory(tmp_path, free_gib: list[float]) -> od.Memory:
    """What the router reads through NVML (a fake one) for GPUs with these GiB free."""
    gpus = [FakeGpu("NVIDIA H200", total=140 * G, used=int((140 - f) * G)) for f in free_gib]
    ond = OnDemand(_Provider(_reg(tmp_path, {"x": {}})), None, gpu_source=NvmlSource(FakeNvml(gpus)))
    return ond._memory([])


def _plan(reg, target, mem, states, usage=None, need=None):
    pols = {n: od.policy(m, reg.settings) for n, m in reg.models.items()}
    places = {n: od.placement(m) for n, m in reg.models.items()}
    need = need or {n: 40 * G for n in reg.models}
    return od.plan_start(target, pols, states, usage or {}, need, mem, None, places)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_the_router_reads_free_memory_per_gpu_from_nvml(tmp_path, n):
    free = [10.0 * (i + 1) for i in range(n)]
    mem = _memory(tmp_path, free)
    assert mem.gpu_free == {i: int(f * G) for i, f in enumerate(free)}
    assert mem.ram_available and mem.ram_available > 0
    assert mem.to_json()["gpu_free_bytes"] == {str(i): int(f * G) for i, f in enumerate(free)}


def test_no_gpu_reading_judges_against_ram(tmp_path):
    ond = OnDemand(_Provider(_reg(tmp_path, {"x": {}})), None, gpu_source=NvmlSource(FakeNvml([])))
    mem = ond._memory([])
    assert mem.gpu_free is None and mem.ram_available > 0
    reg = _reg(tmp_path, {"a": {"on_demand": True}, "t": {"on_demand": True}})
    mem = dataclasses.replace(mem, ram_available=30 * G)
    plan = _plan(reg, "t", mem, {"a": ("ready", 1.0), "t": ("stopped", None)})
    assert plan.stop == ["a"] and plan.fits and "in RAM (no GPU reading)" in plan.reasons["a"]


def test_one_gpu_evicts_the_least_recently_used(tmp_path):
    reg = _reg(tmp_path, {n: {"on_demand": True} for n in ("a", "b", "t")})
    mem = dataclasses.replace(_memory(tmp_path, [30.0]), used_by={"a": {0: 40 * G}, "b": {0: 40 * G}})
    usage = {"a": od.Usage(last_request=20.0), "b": od.Usage(last_request=10.0)}
    plan = _plan(reg, "t", mem, {"a": ("ready", 1.0), "b": ("ready", 1.0), "t": ("stopped", None)}, usage)
    assert plan.stop == ["b"] and plan.fits
    assert plan.reasons["b"] == "t needs 40.0 GiB, 30.0 GiB free on GPU 0"
    assert plan.memory["gpu_free_bytes"] == {"0": 30 * G} and plan.memory["need_bytes"] == 40 * G


@pytest.mark.parametrize("n", [2, 4])
def test_a_single_gpu_model_must_fit_on_its_gpu_not_on_the_sum(tmp_path, n):
    """30 GiB free on every GPU (60 or 120 together): a 40 GiB model pinned to GPU 1 does not
    fit there, so the model on GPU 1 goes, not the least recently used one on GPU 0."""
    for pin in ({"env": {"CUDA_VISIBLE_DEVICES": "1"}}, {"params": {"split_mode": "none", "main_gpu": 1}}):
        reg = _reg(tmp_path, {"a": {"on_demand": True}, "b": {"on_demand": True},
                              "t": {"on_demand": True, **pin}})
        mem = dataclasses.replace(_memory(tmp_path, [30.0] * n), used_by={"a": {0: 40 * G}, "b": {1: 40 * G}})
        usage = {"a": od.Usage(last_request=10.0), "b": od.Usage(last_request=20.0)}  # a is the older
        plan = _plan(reg, "t", mem, {"a": ("ready", 1.0), "b": ("ready", 1.0), "t": ("stopped", None)}, usage)
        assert plan.stop == ["b"] and plan.fits, (pin, plan)
        assert "30.0 GiB free on GPU 1" in plan.reasons["b"]
        # as one pool it would have fitted with nothing stopped
        pool = od.plan_start("t", {k: od.Policy(on_demand=True) for k in "abt"},
                             {"a": ("ready", 1.0), "b": ("ready", 1.0), "t": ("stopped", None)}, usage,
                             {k: 40 * G for k in "abt"}, sum(mem.gpu_free.values()))
        assert pool.stop == []


def test_a_split_model_counts_the_sum_over_its_gpus(tmp_path):
    reg = _reg(tmp_path, {"a": {"on_demand": True}, "b": {"on_demand": True}, "big": {"on_demand": True},
                          "pair": {"on_demand": True, "env": {"CUDA_VISIBLE_DEVICES": "0,1"}}})
    mem = dataclasses.replace(_memory(tmp_path, [30.0] * 4), used_by={"a": {2: 40 * G}, "b": {1: 40 * G}})
    states = {"a": ("ready", 1.0), "b": ("ready", 1.0), "big": ("stopped", None), "pair": ("stopped", None)}
    usage = {"a": od.Usage(last_request=10.0), "b": od.Usage(last_request=20.0)}
    need = {"a": 40 * G, "b": 40 * G, "big": 100 * G, "pair": 80 * G}
    plan = _plan(reg, "big", mem, states, usage, need)  # 4 × 30 = 120 GiB free: fits as it is
    assert plan.stop == [] and plan.fits and plan.memory["rule"] == "sum" and plan.memory["gpus"] == [0, 1, 2, 3]
    plan = _plan(reg, "pair", mem, states, usage, need)  # 60 on GPUs 0 and 1: b (GPU 1) goes, a (GPU 2) stays
    assert plan.stop == ["b"] and plan.fits
    assert plan.reasons["b"] == ("pair needs 80.0 GiB, 60.0 GiB free on GPUs 0,1 (30.0 GiB + 30.0 GiB, "
                                 "its GPUs together)")


def test_tensor_split_needs_each_share_on_its_gpu(tmp_path):
    reg = _reg(tmp_path, {"a": {"on_demand": True}, "b": {"on_demand": True},
                          "t": {"on_demand": True, "params": {"tensor_split": "3,1"}}})
    mem = dataclasses.replace(_memory(tmp_path, [20.0, 30.0]), used_by={"a": {1: 10 * G}, "b": {0: 20 * G}})
    usage = {"a": od.Usage(last_request=10.0), "b": od.Usage(last_request=20.0)}
    states = {"a": ("ready", 1.0), "b": ("ready", 1.0), "t": ("stopped", None)}
    plan = _plan(reg, "t", mem, states, usage, {"a": 10 * G, "b": 20 * G, "t": 40 * G})
    # 30 GiB on GPU 0 (20 free), 10 on GPU 1 (30 free): b, on GPU 0, goes; a stays
    assert plan.stop == ["b"] and plan.fits and plan.memory["shares"] == {"0": 0.75, "1": 0.25}


def test_a_cpu_model_is_judged_against_ram_and_stops_no_gpu_model(tmp_path):
    reg = _reg(tmp_path, {"a": {"on_demand": True}, "c": {"on_demand": True, "params": {"n_gpu_layers": 0}},
                          "t": {"on_demand": True, "params": {"n_gpu_layers": 0}}})
    mem = dataclasses.replace(_memory(tmp_path, [1.0]), ram_available=30 * G, used_by={"a": {0: 40 * G}})
    usage = {"a": od.Usage(last_request=10.0), "c": od.Usage(last_request=20.0)}
    plan = _plan(reg, "t", mem, {"a": ("ready", 1.0), "c": ("ready", 1.0), "t": ("stopped", None)}, usage)
    assert plan.stop == ["c"] and plan.fits and "in RAM" in plan.reasons["c"]


def test_placement_reads_the_registry():
    M = registry.Model
    assert od.placement(M("m")) == od.Placement()
    assert od.placement(M("m", env={"CUDA_VISIBLE_DEVICES": "2,3"})) == od.Placement((2, 3))
    assert od.placement(M("m", env={"CUDA_VISIBLE_DEVICES": ""})).ram
    assert od.placement(M("m", params={"n_gpu_layers": 0})).ram
    p = od.placement(M("m", params={"split_mode": "none", "main_gpu": 2}))
    assert p.resolve([0, 1, 2, 3]) == ([2], {2: 1.0})
    p = od.placement(M("m", env={"CUDA_VISIBLE_DEVICES": "1,3"}, params={"tensor_split": "1,1"}))
    assert p.resolve([0, 1, 2, 3]) == ([1, 3], {1: 0.5, 3: 0.5})
    assert od.placement(M("m", env={"CUDA_VISIBLE_DEVICES": "7"})).resolve([0, 1]) == ([0, 1], None)


def test_a_model_with_experts_on_the_cpu_counts_vram_and_ram_together(tmp_path):
    """The seed's 240 GB MoE on a box with less VRAM (n_cpu_moe / cpu_moe / override_tensor to CPU):
    refused for VRAM alone before; now it fits when its GPUs' free memory plus the RAM hold it,
    and a model stops only when VRAM + RAM together are short."""
    for offload in ({"n_cpu_moe": 40}, {"cpu_moe": True}, {"override_tensor": r"\.ffn_.*_exps\.=CPU"}):
        reg = _reg(tmp_path, {"a": {"on_demand": True}, "glm": {"on_demand": True, "params": offload}})
        assert od.placement(reg.models["glm"]).offload, offload
        states = {"a": ("ready", 1.0), "glm": ("stopped", None)}
        need = {"a": 40 * G, "glm": 240 * G}
        mem = dataclasses.replace(_memory(tmp_path, [80.0, 80.0]), ram_available=200 * G, used_by={"a": {0: 40 * G}})
        plan = _plan(reg, "glm", mem, states, need=need)  # 160 GiB VRAM + 200 GiB RAM: fits, nothing stops
        assert plan.stop == [] and plan.fits and plan.memory["rule"] == "vram+ram", (offload, plan)
        mem = dataclasses.replace(mem, ram_available=100 * G)  # 160 + 100 = 260 ≥ 240 still
        assert _plan(reg, "glm", mem, states, need=need).stop == []
        mem = dataclasses.replace(mem, ram_available=50 * G)  # 210: a (40 GiB on GPU 0) must go
        plan = _plan(reg, "glm", mem, states, need=need)
        assert plan.stop == ["a"] and plan.fits, plan
        assert plan.reasons["a"] == ("glm needs 240.0 GiB, 210.0 GiB free on GPUs 0,1 (80.0 GiB + 80.0 GiB, "
                                     "its GPUs together) + 50.0 GiB RAM (parts on the CPU)")
        mem = dataclasses.replace(mem, ram_available=10 * G)  # 170 + 40 back: never fits
        assert not _plan(reg, "glm", mem, states, need=need).fits
    # without the offload keys the same model is judged against VRAM alone
    reg = _reg(tmp_path, {"a": {"on_demand": True}, "glm": {"on_demand": True}})
    mem = dataclasses.replace(_memory(tmp_path, [80.0, 80.0]), ram_available=200 * G, used_by={"a": {0: 40 * G}})
    plan = _plan(reg, "glm", mem, {"a": ("ready", 1.0), "glm": ("stopped", None)}, need={"a": 40 * G, "glm": 240 * G})
    assert not plan.fits and plan.memory["rule"] == "sum"
