"""``llmdeck gpus`` and the VRAM/RSS columns of ``llmdeck status``."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys

import psutil
import pytest

from tui.cli.main import main
from tui.core.telemetry import nvml
from tui.core.telemetry.fakenvml import NVML_ERROR_NOT_SUPPORTED, FakeGpu, FakeNvml

MiB = 1 << 20
HAS_NVML = ctypes.util.find_library("nvidia-ml") is not None


@pytest.fixture
def gpus():
    """Install a fake GPU source for in-process CLI calls; yields the fake to configure."""
    fake = FakeNvml([FakeGpu(used=5 * 1024 * MiB, util=37, temp=51, power_mw=250_000)])
    old = nvml.set_default_source(nvml.NvmlSource(fake))
    yield fake
    nvml.set_default_source(old)


@pytest.mark.timeout(60)
def test_gpus_without_nvidia_is_one_clear_line_and_exit_1():
    r = subprocess.run([sys.executable, "-m", "tui", "gpus"], capture_output=True, text=True, timeout=30)
    if HAS_NVML:  # a GPU machine: the command works
        assert r.returncode in (0, 1) and "Traceback" not in r.stderr
        return
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == ["llmdeck: error: NVML library (libnvidia-ml.so.1) not found: "
                                     "no NVIDIA driver is installed here"]
    r = subprocess.run([sys.executable, "-m", "tui", "gpus", "--json"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["state"] == "no_library" and data["gpus"] == [] and "libnvidia-ml" in data["message"]


def test_gpus_table_with_unsupported_lost_and_foreign(gpus, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no models.json here: no MODEL attribution, no complaint
    gpus.gpus[0].processes = [(os.getpid(), 2 * 1024 * MiB), (4_000_004, 512 * MiB)]
    mig = FakeGpu(name="NVIDIA A100-SXM4-80GB", mig=1, used=0)
    mig.fail("nvmlDeviceGetUtilizationRates", NVML_ERROR_NOT_SUPPORTED)
    mig.fail("nvmlDeviceGetPowerUsage", NVML_ERROR_NOT_SUPPORTED)
    gpus.gpus += [mig, FakeGpu(lost=True)]
    assert main(["gpus"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["GPU", "NAME", "MEMORY", "UTIL", "TEMP", "POWER", "NOTE"]
    assert "NVIDIA H100 80GB HBM3" in lines[1] and "5.0 GiB / 79.6 GiB" in lines[1] and "37%" in lines[1]
    assert "51°C" in lines[1] and "250 W / 700 W" in lines[1]
    assert "NVIDIA A100-SXM4-80GB" in lines[2] and "n/a" in lines[2] and "MIG is on" in lines[2]
    assert "not supported: power, utilization" in lines[2]
    assert lines[3].split()[:3] == ["2", "?", "lost"]
    assert "GPU is lost" in lines[3]
    assert "driver 580.159.04, NVML 13.580.159.04" in out
    proc_rows = [ln for ln in lines if ln.startswith("0 ")]
    me = psutil.Process().name()
    assert any(ln.split() == ["0", str(os.getpid()), "2.0", "GiB", me] for ln in proc_rows)
    assert any("4000004" in ln and "(not visible here)" in ln for ln in proc_rows)
    assert "llmdeck: warning: 1 GPU process has a PID that does not exist here" in err

    assert main(["gpus", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    g0, g1, g2 = data["gpus"]
    assert g0["memory_used_bytes"] == 5 * 1024 * MiB and g0["power_w"] == 250.0
    assert g0["memory_free_bytes"] == g0["memory_total_bytes"] - 5 * 1024 * MiB
    assert {p["pid"]: p["visible"] for p in g0["processes"]} == {os.getpid(): True, 4_000_004: False}
    assert g1["utilization_percent"] is None and g1["mig"] is True and "power" in g1["unsupported"]
    assert g2["state"] == "lost" and g2["processes"] is None
    assert data["foreign_pids"] == [4_000_004]


def test_gpus_with_a_broken_registry_warns_and_still_shows_gpus(gpus, capsys, tmp_path):
    bad = tmp_path / "models.json"
    bad.write_text("{ not json")
    gpus.gpus[0].processes = [(os.getpid(), MiB)]  # the registry is read only when processes need owners
    assert main(["--registry", str(bad), "gpus"]) == 0
    out, err = capsys.readouterr()
    assert "NVIDIA H100" in out and "llmdeck: warning: models are not shown:" in err


def test_gpus_no_devices_and_driver_errors(gpus, capsys):
    gpus.gpus.clear()
    assert main(["gpus"]) == 1
    assert "NVML found no NVIDIA GPU" in capsys.readouterr().err
    nvml.set_default_source(nvml.NvmlSource(FakeNvml([FakeGpu()])))
    src = nvml.default_source()
    src.lib.fail("nvmlInit", 18)
    assert main(["gpus"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "version mismatch" in err[0]


@pytest.fixture
def deck(make_deck):
    return make_deck({"tiny": {"alias": "tiny"}, "idle": {"params": {}}}, stop_grace_s=5)


@pytest.mark.server
@pytest.mark.timeout(120)
def test_status_and_gpus_attribute_a_real_server(deck, gpus, capsys, smollm_gguf):
    from tui.core import supervisor

    supervisor.start(deck, "tiny")
    st = supervisor.wait_ready(deck, "tiny", timeout=60)
    gpus.gpus[0].processes = [(st.pid, 1104 * MiB)]

    assert main(["--registry", str(deck.path), "status", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny"]["vram_bytes"] == 1104 * MiB and rows["tiny"]["vram_by_gpu"] == {"0": 1104 * MiB}
    assert main(["--registry", str(deck.path), "status"]) == 0
    assert "GPU" not in capsys.readouterr().out.splitlines()[0]  # one GPU: no GPU column
    assert rows["tiny"]["rss_bytes"] > 0.8 * smollm_gguf.stat().st_size
    assert rows["idle"]["vram_bytes"] is None and rows["idle"]["rss_bytes"] is None

    assert main(["--registry", str(deck.path), "gpus", "--json"]) == 0
    procs = json.loads(capsys.readouterr().out)["gpus"][0]["processes"]
    assert procs == [{"pid": st.pid, "used_bytes": 1104 * MiB, "kind": "compute", "model": "tiny",
                      "name": "llama-server", "visible": True}]
    assert main(["--registry", str(deck.path), "gpus"]) == 0
    row = [ln for ln in capsys.readouterr().out.splitlines() if str(st.pid) in ln][0]
    assert row.split() == ["0", str(st.pid), "1.1", "GiB", "tiny", "llama-server"]

    # the same server split over two GPUs (tensor split): per-GPU bytes, and a GPU column
    gpus.gpus.append(FakeGpu(used=300 * MiB, processes=[(st.pid, 200 * MiB)]))
    nvml.set_default_source(nvml.NvmlSource(gpus))
    assert main(["--registry", str(deck.path), "status", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny"]["vram_bytes"] == 1304 * MiB
    assert rows["tiny"]["vram_by_gpu"] == {"0": 1104 * MiB, "1": 200 * MiB}
    assert rows["idle"]["vram_by_gpu"] == {}
    assert main(["--registry", str(deck.path), "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = lines[0].split()
    row = [ln for ln in lines if ln.startswith("tiny")][0].split()
    assert head[7] == "GPU" and "0,1" in row
