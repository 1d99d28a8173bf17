"""The real NVML on a real NVIDIA GPU, against nvidia-smi. Skipped where there is no NVIDIA GPU.

CI has no GPU: these run in ``scripts/gpu-check.sh``'s machine (see its report); the
fake-NVML tests cover the same code paths everywhere.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tui.core.telemetry.nvml import NvmlSource
from tui.core.telemetry.procs import per_model_usage

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(120)]

MiB = 1 << 20


def smi(query: str) -> list[list[str]]:
    out = subprocess.run(["nvidia-smi", query, "--format=csv,noheader,nounits"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return [[c.strip() for c in line.split(",")] for line in out.strip().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reading():
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU here (no nvidia-smi)")
    src = NvmlSource()
    r = src.read()
    if not r.ok:
        pytest.skip(f"no NVIDIA GPU readable here: {r.message}")
    yield r
    src.close()


def test_gauges_match_nvidia_smi(reading):
    rows = smi("--query-gpu=index,name,uuid,memory.total,power.limit")
    assert len(rows) == len(reading.gpus)
    for g, (idx, name, uuid, total, limit) in zip(reading.gpus, rows):
        assert g.state == "ok" and g.index == int(idx)
        assert g.name == name and g.uuid == uuid
        assert abs(g.mem_total / MiB - float(total)) <= 1
        if g.power_limit_w is not None:
            assert abs(g.power_limit_w - float(limit)) <= 1


def test_process_memory_matches_nvidia_smi(reading):
    pytest.importorskip("torch", reason="torch allocates the GPU memory here; not installed")
    code = ("import torch, sys, time; x = torch.empty(768 << 20, dtype=torch.uint8, device='cuda'); "
            "torch.cuda.synchronize(); print('ok', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ok"
        time.sleep(0.5)
        apps = {int(pid): int(mib) for pid, mib in smi("--query-compute-apps=pid,used_memory")}
        u = per_model_usage([p.pid])[p.pid]
        assert p.pid in apps
        assert u.vram_bytes is not None and abs(u.vram_bytes / MiB - apps[p.pid]) <= 0.01 * apps[p.pid]
        assert u.vram_bytes >= 768 * MiB
    finally:
        p.kill()
        p.wait(10)
