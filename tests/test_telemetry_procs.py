"""Process trees, RSS/CPU and VRAM attribution: real processes, a real llama-server, fake GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml
from tui.core.telemetry.nvml import GpuProcess, GpuReading, Gpu, NvmlSource
from tui.core.telemetry.procs import (FOREIGN_NOTE, ProcessTable, attribute_vram, foreign_gpu_pids,
                                      per_model_usage)

MiB = 1 << 20

def spawn_tree(tmp_path):
    """parent → child (holds 64 MiB, reaps) → grandchild (spins one core)."""
    script = tmp_path / "tree.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "role = sys.argv[1]\n"
        "if role == 'parent':\n"
        "    subprocess.Popen([sys.executable, __file__, 'child'])\n"
        "    time.sleep(60)\n"
        "elif role == 'child':\n"
        "    blob = bytearray(64 << 20)\n"
        "    for i in range(0, len(blob), 4096): blob[i] = 1\n"
        "    subprocess.Popen([sys.executable, __file__, 'spin']).wait()\n"
        "    time.sleep(60)\n"
        "else:\n"
        "    t = time.time()\n"
        "    while time.time() - t < 60: pass\n")
    proc = subprocess.Popen([sys.executable, str(script), "parent"], start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children(recursive=True)
        if len(kids) == 2:
            return proc, kids
        time.sleep(0.05)
    raise AssertionError("the process tree did not come up")


@pytest.fixture
def tree(tmp_path):
    proc, kids = spawn_tree(tmp_path)
    yield proc, kids
    os.killpg(proc.pid, 9)
    proc.wait(5)


@pytest.mark.timeout(60)
def test_tree_matches_psutil_and_follows_changes(tree, tmp_path):
    proc, kids = tree
    table = ProcessTable()
    table.refresh()
    assert sorted(table.tree(proc.pid)) == sorted([proc.pid] + [k.pid for k in kids])
    assert table.tree(2 ** 22 + 12345) == []
    # a new process under the tree is found by the incremental refresh
    late = subprocess.Popen(["sleep", "30"])  # our child, not the tree's
    table.refresh()
    assert late.pid in table.pids and late.pid not in table.tree(proc.pid)
    assert late.pid in table.tree(os.getpid())
    late.kill()
    late.wait()
    table.refresh()
    assert late.pid not in table.pids
    # the spinning grandchild dies: it leaves the tree
    spin = max(kids, key=lambda k: k.pid if "spin" in " ".join(k.cmdline()) else -1)
    spin.kill()
    spin.wait(5)
    table.refresh()
    assert spin.pid not in table.tree(proc.pid) and len(table.tree(proc.pid)) == 2


@pytest.mark.timeout(60)
def test_rss_and_cpu_summed_over_the_tree(tree):
    proc, kids = tree
    table = ProcessTable()
    table.refresh()
    pids = table.tree(proc.pid)
    rss, cpu, alive = table.usage(pids)
    assert sorted(alive) == sorted(pids)
    assert cpu is None  # the first read of a process has no CPU figure
    expected = sum(psutil.Process(p).memory_info().rss for p in pids)
    assert rss > 64 * MiB and abs(rss - expected) < 8 * MiB
    time.sleep(0.6)
    table.refresh()
    rss, cpu, alive = table.usage(table.tree(proc.pid))
    # the spinning grandchild keeps about one core busy (two cores here, shared with others)
    assert cpu is not None and 30.0 < cpu < 220.0


def h100_reading(*procs: tuple[int, int | None], listed: bool = True, state: str = "ok") -> GpuReading:
    gp = tuple(GpuProcess(pid, used, "compute") for pid, used in procs) if listed else None
    return GpuReading(state, None if state == "ok" else "why", gpus=(Gpu(0, "H100", processes=gp),))


def test_attribute_vram_rules():
    table = ProcessTable()
    table.refresh()
    me = os.getpid()
    # matched on two GPUs: summed, per GPU kept
    r = GpuReading("ok", gpus=(Gpu(0, processes=(GpuProcess(me, 100 * MiB, "compute"),)),
                               Gpu(1, processes=(GpuProcess(me, 50 * MiB, "compute"),))))
    assert attribute_vram([me], r, set()) == (150 * MiB, ((0, 100 * MiB), (1, 50 * MiB)), None)
    # the model runs on the CPU and every GPU PID is known: 0
    other = os.getppid()
    assert attribute_vram([me], h100_reading((other, MiB)), set()) == (0, (), None)
    # NVML does not say how much: n/a with the reason
    vram, _, note = attribute_vram([me], h100_reading((me, None)), set())
    assert vram is None and "usedGpuMemory N/A" in note
    # PIDs from another namespace: no guess
    r = h100_reading((4_000_000, 900 * MiB))
    foreign = foreign_gpu_pids(r, table)
    assert foreign == {4_000_000}
    assert attribute_vram([me], r, foreign) == (None, (), FOREIGN_NOTE)
    # but a match is still a match next to foreign PIDs
    r = h100_reading((4_000_000, 900 * MiB), (me, 7 * MiB))
    assert attribute_vram([me], r, foreign_gpu_pids(r, table))[0] == 7 * MiB
    # processes not listable: n/a
    assert attribute_vram([me], h100_reading(listed=False), set())[0] is None
    # no GPU reading: n/a and no per-model note (the GPU state is shown once)
    assert attribute_vram([me], h100_reading(state="no_library"), set()) == (None, (), None)


class Boom:
    def read(self):
        raise AssertionError("NVML must not be touched")

    def close(self):
        pass


def test_per_model_usage_without_pids_touches_nothing():
    assert per_model_usage([], source=Boom()) == {}
    assert per_model_usage([None, 0], source=Boom()) == {}


def test_per_model_usage_of_a_dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    u = per_model_usage([p.pid], source=NvmlSource(FakeNvml([FakeGpu()])))[p.pid]
    assert not u.alive and u.rss_bytes is None and "not running" in u.note


@pytest.mark.server
@pytest.mark.timeout(120)
def test_real_llama_server_rss_and_fake_gpu_vram(llama_server, smollm_gguf):
    srv = llama_server()
    pid = srv.proc.pid
    size = smollm_gguf.stat().st_size
    fake = FakeNvml([FakeGpu(used=1200 * MiB, processes=[(pid, 1104 * MiB)]),
                     FakeGpu(used=300 * MiB, processes=[(pid, 200 * MiB), (4_000_001, 100 * MiB)])])
    u = per_model_usage([pid], source=NvmlSource(fake))[pid]
    # the whole model is read at load (warm-up touches every weight): RSS covers it
    assert u.pids == (pid,) and u.rss_bytes > 0.8 * size
    assert u.rss_bytes == pytest.approx(psutil.Process(pid).memory_info().rss, rel=0.05)
    assert u.vram_bytes == 1304 * MiB and u.vram_by_gpu == ((0, 1104 * MiB), (1, 200 * MiB))
    assert u.note is None and u.cpu_percent is None  # one-shot: no CPU figure
    # only foreign PIDs on the GPU: n/a, with the reason
    fake2 = FakeNvml([FakeGpu(processes=[(4_000_002, 1104 * MiB)])])
    u2 = per_model_usage([pid], source=NvmlSource(fake2))[pid]
    assert u2.vram_bytes is None and u2.note == FOREIGN_NOTE and u2.rss_bytes > 0.8 * size
    # no NVIDIA library: RSS still there
    nolib = FakeNvml([FakeGpu()])
    nolib.fail("nvmlInit", 12)
    u3 = per_model_usage([pid], source=NvmlSource(nolib))[pid]
    assert u3.vram_bytes is None and u3.rss_bytes > 0.8 * size and u3.note is None


def test_full_rescan_refreshes_parents_and_forgets_the_dead():
    table = ProcessTable(rescan_every=2)
    table.refresh()
    p = subprocess.Popen(["sleep", "30"])
    table.refresh()  # the 2nd refresh is a full rescan: every stat is read again
    assert p.pid in table.tree(os.getpid())
    assert table.usage([p.pid])[2] == [p.pid]
    p.kill()
    p.wait()
    table.refresh()
    table.refresh()
    assert p.pid not in table.pids and p.pid not in table._procs
