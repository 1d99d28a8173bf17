"""The sampler: thread, snapshots, subscribers, history; and with the supervisor and a real server."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import urllib.request

import pytest

from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml
from tui.core.telemetry.nvml import NvmlSource
from tui.core.telemetry.sampler import History, Sampler, ServerRef, supervisor_servers

MiB = 1 << 20


def test_history_is_bounded_and_aligned():
    h = History(5)
    for i in range(12):
        vals = {("a",): float(i)}
        if i >= 9:
            vals[("late",)] = i * 10.0
        h.record(vals, at=float(i))
    assert len(h) == 5 and h.times() == (7.0, 8.0, 9.0, 10.0, 11.0)
    assert h.series(("a",)) == (7.0, 8.0, 9.0, 10.0, 11.0)
    assert h.series(("late",)) == (None, None, 90.0, 100.0, 110.0)  # padded: aligned with times()
    assert h.series(("never",)) == ()


def test_history_drops_a_series_absent_for_a_whole_window():
    h = History(4)
    h.record({("m", "x"): 1.0, ("keep",): 0.0}, 0)
    for t in range(1, 4):
        h.record({("keep",): 0.0}, t)
    assert h.series(("m", "x")) == (1.0, None, None, None)
    h.record({("keep",): 0.0}, 4)
    assert ("m", "x") not in h.keys() and h.series(("m", "x")) == ()
    # coming back starts a fresh, aligned series
    h.record({("m", "x"): 2.0, ("keep",): 0.0}, 5)
    assert h.series(("m", "x")) == (None, None, None, 2.0)


def fake_source(*procs) -> NvmlSource:
    return NvmlSource(FakeNvml([FakeGpu(used=3 * 1024 * MiB, util=55, processes=list(procs))]))


@pytest.mark.timeout(30)
def test_thread_subscribers_snapshots_and_history():
    me = os.getpid()
    s = Sampler(lambda: [ServerRef("me", me, None), ("tuple-form", me, None)],
                gpu_source=fake_source((me, 100 * MiB)), interval=0.05, history_s=1.0)
    assert s.history.points == 20
    got: list = []
    done = threading.Event()

    def sub(snap):
        got.append(snap)
        if len(got) >= 6:
            done.set()

    unsub = s.subscribe(sub)
    s.start()
    assert done.wait(10)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 1.0 and not s.running
    seqs = [x.seq for x in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    snap = got[-1]
    assert s.latest is snap or s.latest.seq >= snap.seq
    assert snap.gpu.ok and snap.gpu.gpus[0].util_percent == 55
    assert snap.system.ram_total > 0 and snap.system.cpu_percent is not None
    me_sample = snap.model("me")
    assert me_sample.usage.vram_bytes == 100 * MiB and me_sample.usage.rss_bytes > 0
    assert me_sample.server is None  # no URL: not scraped
    assert snap.model("tuple-form").pid == me and snap.model("nope") is None
    assert dict(snap.cost).keys() == {"servers", "gpu", "system", "procs", "http", "snapshot", "total"}
    assert 0 < snap.cost_total < 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.seq = 0  # type: ignore[misc]
    assert set(s.history.series(("model", "me", "vram"))[-len(got):]) == {100 * MiB}
    assert s.history.series(("gpu", 0, "util"))[-1] == 55
    unsub()
    n = len(got)
    s.sample()
    assert len(got) == n  # unsubscribed
    s.close()


@pytest.mark.timeout(30)
def test_a_failing_subscriber_or_server_list_does_not_stop_sampling():
    calls = {"n": 0}

    def servers():
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("registry unreadable")
        return []

    s = Sampler(servers, gpu_source=fake_source(), interval=0.05)
    s.subscribe(lambda snap: 1 / 0)
    ok = []
    s.subscribe(ok.append)
    first = s.sample()
    assert any("ZeroDivisionError" in e for e in first.errors)
    assert [x.seq for x in ok] == [first.seq]  # the next subscriber still got it
    second = s.sample()
    assert "could not list running servers: registry unreadable" in second.errors
    assert second.models == ()
    s.start()
    deadline = time.monotonic() + 5
    while len(ok) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    s.stop()
    assert len(ok) >= 5


@pytest.mark.timeout(30)
def test_reading_never_waits_for_a_slow_sample_and_overruns_skip_ticks():
    gate = threading.Event()
    entered = threading.Event()

    def servers():
        entered.set()
        gate.wait(5)
        return []

    s = Sampler(servers, gpu_source=fake_source(), interval=0.05)
    gate.set()
    s.sample()  # a first snapshot exists
    gate.clear()
    entered.clear()
    s.start()
    assert entered.wait(5)
    t0 = time.perf_counter()
    latest = s.latest  # the sampler thread is stuck in servers(): reading must not block
    hist = s.history.series(("system", "cpu"))
    assert time.perf_counter() - t0 < 0.05 and latest is not None and len(hist) >= 1
    gate.set()
    s.stop()

    slow = Sampler(lambda: time.sleep(0.15) or [], gpu_source=fake_source(), interval=0.05)
    seen = []
    slow.subscribe(seen.append)
    slow.start()
    time.sleep(0.8)
    slow.stop()
    # each sample takes 0.15 s at a 0.05 s interval: missed ticks are skipped, not bunched
    assert 3 <= len(seen) <= 7


def test_bad_interval():
    with pytest.raises(ValueError):
        Sampler(interval=0)


@pytest.fixture
def deck(make_deck):
    return make_deck({"tiny": {"alias": "tiny", "params": {"ctx_size": 1024, "threads": 1, "parallel": 2}}},
                     stop_grace_s=5)


@pytest.mark.server
@pytest.mark.timeout(120)
def test_with_the_supervisor_and_a_real_server(deck, smollm_gguf):
    from tui.core import supervisor

    supervisor.start(deck, "tiny")
    st = supervisor.wait_ready(deck, "tiny", timeout=60)
    assert st.state == "ready"
    servers = supervisor_servers(deck, every=0.2)
    refs = servers()
    assert [(r.name, r.pid, r.base_url) for r in refs] == [("tiny", st.pid, st.url)]
    s = Sampler(servers, gpu_source=fake_source((st.pid, 1104 * MiB), (4_000_003, 50 * MiB)), interval=0.1)
    snaps = []
    s.subscribe(snaps.append)
    s.start()
    body = json.dumps({"messages": [{"role": "user", "content": "Say a long sentence."}], "max_tokens": 48,
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(st.url + "/chat/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert json.load(r)["usage"]["completion_tokens"] == 48
    time.sleep(0.3)
    s.stop()
    m = snaps[-1].model("tiny")
    assert m.pid == st.pid and m.usage.vram_bytes == 1104 * MiB
    assert m.usage.rss_bytes > 0.8 * smollm_gguf.stat().st_size
    assert (m.server.metrics, m.server.slots, m.server.total_slots) == ("ok", "ok", 2)
    assert snaps[-1].foreign_pids == (4_000_003,) and "1 GPU process has a PID" in snaps[-1].notes[0]
    assert any((x.model("tiny").server.tokens_per_s or 0) > 0 for x in snaps)
    assert any(x.model("tiny").usage.cpu_percent for x in snaps)
    # stopped: the model leaves the snapshots once the server list is re-read
    supervisor.stop(deck, "tiny")
    time.sleep(0.25)
    assert s.sample().models == ()
    s.close()
