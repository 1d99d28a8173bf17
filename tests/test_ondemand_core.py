"""The on-demand decisions (tui.core.ondemand: pure functions) and the registry keys (issue 16)."""

from __future__ import annotations

import json

from tui.core import ondemand as od
from tui.core import registry

G = od.GIB


def _reg(tmp_path, models: dict, **settings):
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"settings": settings, "models": models}))
    return p


def test_new_keys_validate_with_did_you_mean_and_defaults(tmp_path):
    p = _reg(tmp_path, {"a": {"on_demnd": True, "ttl_s": -1, "keep_loaded": "yes"}, "b": {}},
             ttl_sec=3, preload=["c"], memory_limit_gib="lots")
    out = registry.check(p)
    assert any("models.a: unknown key 'on_demnd' (did you mean 'on_demand'?)" in x for x in out), out
    assert any("settings: unknown key 'ttl_sec' (did you mean 'ttl_s'?)" in x for x in out), out
    assert any("models.a.ttl_s: must be 0 or more" in x for x in out), out
    assert any("models.a.keep_loaded: must be true/false" in x for x in out), out
    assert any("settings.preload[0]: unknown model \"c\"" in x for x in out), out
    assert any("settings.memory_limit_gib: must be a number or null" in x for x in out), out
    p = _reg(tmp_path, {"a": {"swap_group": "g"}, "b": {"on_demand": False, "ttl_s": None}, "c": {"ttl_s": 5}},
             on_demand=True, ttl_s=300, preload=["a"], memory_limit_gib=40)
    reg = registry.load(p)
    pa, pb, pc = (od.policy(reg.models[n], reg.settings) for n in "abc")
    assert (pa.on_demand, pa.ttl_s, pa.swap_group, pa.keep_loaded) == (True, 300, "g", False)
    assert (pb.on_demand, pb.ttl_s) == (False, None)  # explicit null: never unloaded
    assert pc.ttl_s == 5 and reg.settings.preload == ["a"] and reg.settings.memory_limit_gib == 40


def test_ttl_counts_from_the_later_of_last_request_and_start_never_while_busy():
    pols = {"a": od.Policy(ttl_s=10), "b": od.Policy(ttl_s=10), "c": od.Policy(ttl_s=10, keep_loaded=True),
            "d": od.Policy()}
    states = {"a": ("ready", 100.0), "b": ("ready", 100.0), "c": ("ready", 0.0), "d": ("ready", 0.0)}
    usage = {"a": od.Usage(last_request=105.0), "b": od.Usage(last_request=50.0, in_flight=1)}
    assert od.idle_to_stop(pols, states, usage, 114.0) == []
    assert [n for n, _ in od.idle_to_stop(pols, states, usage, 115.0)] == ["a"]
    assert od.unload_in(pols["a"], "ready", usage["a"], 100.0, 112.5) == 2.5
    assert od.unload_in(pols["b"], "ready", usage["b"], 100.0, 999.0) is None  # in flight
    assert od.unload_in(pols["a"], "loading", usage["a"], 100.0, 999.0) is None
    assert od.clock(272) == "4:32" and od.clock(3723) == "1:02:03"


def test_swap_group_stops_idle_waits_for_busy_refuses_keep_loaded():
    pols = {"a": od.Policy(on_demand=True, swap_group="g"), "b": od.Policy(on_demand=True, swap_group="g"),
            "k": od.Policy(keep_loaded=True, swap_group="h"), "x": od.Policy(swap_group="h")}
    states = {"a": ("ready", 1.0), "b": ("stopped", None), "k": ("ready", 1.0), "x": ("stopped", None)}
    plan = od.plan_start("b", pols, states, {}, {}, None)
    assert plan.stop == ["a"] and plan.ok_now and "swap_group g" in plan.reasons["a"]
    plan = od.plan_start("b", pols, states, {"a": od.Usage(in_flight=2)}, {}, None)
    assert plan.stop == [] and plan.wait_for == ["a"] and not plan.ok_now
    plan = od.plan_start("x", pols, states, {}, {}, None)
    assert plan.blocked_by == ["k"] and plan.stop == []
    # a second run in one group (started by hand): the older one goes, keep_loaded never
    assert od.group_conflicts(pols, {"a": ("ready", 1.0), "b": ("loading", 2.0)}) == [
        ("a", "swap_group g: b was started")]


def test_memory_evicts_least_recently_used_idle_models_until_it_fits():
    pols = {n: od.Policy(on_demand=True) for n in "abcd"}
    pols["k"] = od.Policy(keep_loaded=True)
    pols["p"] = od.Policy()  # started by hand, no ttl: not evictable
    states = {n: ("ready", 0.0) for n in "abck"} | {"p": ("ready", 0.0), "d": ("stopped", None)}
    usage = {"a": od.Usage(last_request=30.0), "b": od.Usage(last_request=10.0), "c": od.Usage(last_request=20.0)}
    need = {n: 10 * G for n in "abckpd"}
    plan = od.plan_start("d", pols, states, usage, need, free=2 * G)
    assert plan.stop == ["b"] and plan.fits  # 2 + 10 freed >= 10
    plan = od.plan_start("d", pols, states, usage, need, free=None, limit=45 * G)  # 50 in use + 10
    assert plan.stop == ["b", "c"] and plan.fits and "memory_limit_gib" in plan.reasons["b"]
    usage["b"].in_flight = 1
    plan = od.plan_start("d", pols, states, usage, need, free=5 * G)
    assert plan.stop == ["c"] and plan.fits
    plan = od.plan_start("d", pols, states, usage, need, free=None, limit=15 * G)  # only k and p would be left
    assert not plan.fits and "d needs 10.0 GiB" in plan.note
    unknown = dict(need, d=None)
    plan = od.plan_start("d", pols, states, usage, unknown, free=1 * G)
    assert sorted(plan.stop) == ["a", "c"] and plan.wait_for == ["b"] and "not estimated" in plan.note


def test_status_fields_count_down_from_the_routers_write(tmp_path):
    reg = registry.load(_reg(tmp_path, {"a": {"on_demand": True, "ttl_s": 60}, "b": {}}))
    router = {"updated_at": 100.0, "models": {"a": {"last_request": 90.0, "in_flight": 0, "unload_in_s": 50.0}}}
    f = od.status_fields(reg, router, now=103.0)
    assert f["a"]["unload_in_s"] == 47.0 and f["a"]["last_request"] == 90.0 and f["b"]["unload_in_s"] is None
    assert od.note(f["a"], True) == "unloads in 0:47" and od.note(f["b"], True) == ""
    assert od.note(od.status_fields(reg, None)["a"], False) == "on demand (no router)"
    assert od.read_router(tmp_path) is None  # no file: no router
