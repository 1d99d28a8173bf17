"""NvmlSource over the fake pynvml function set: readings, error codes, not-supported fields.

No GPU is needed: :mod:`tui.core.telemetry.fakenvml` raises pynvml's own NVMLError subclasses
with real NVML return codes, so these are the paths a real driver takes.
"""

from __future__ import annotations

import pytest

from tui.core.telemetry import fakenvml as F
from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml
from tui.core.telemetry.nvml import STATE_MESSAGES, NvmlSource

pytestmark = pytest.mark.timeout(30)

GiB = 1 << 30


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def h100(**kw) -> FakeGpu:
    base = dict(total=81559 << 20, used=2 * GiB, reserved=512 << 20, util=41, mem_util=12, temp=38,
                power_mw=123_456, limit_mw=700_000)
    base.update(kw)
    return FakeGpu(**base)


def test_full_reading_of_two_gpus():
    fake = FakeNvml([h100(processes=[(100, GiB), (101, None)], graphics=[(100, GiB), (102, 64 << 20)]),
                     h100(name="NVIDIA H200", total=143771 << 20, used=0)])
    r = NvmlSource(fake).read()
    assert r.ok and r.state == "ok" and r.message is None
    assert r.driver == "580.159.04" and r.nvml_version == "13.580.159.04"
    g0, g1 = r.gpus
    assert (g0.index, g0.name, g0.uuid) == (0, "NVIDIA H100 80GB HBM3", "GPU-fake-0000")
    # v2 memory: "used" excludes the driver's reserved memory, as nvidia-smi shows it
    assert g0.mem_used == 2 * GiB and g0.mem_total == 81559 << 20
    assert g0.util_percent == 41 and g0.mem_util_percent == 12 and g0.temp_c == 38
    assert g0.power_w == pytest.approx(123.456) and g0.power_limit_w == pytest.approx(700.0)
    assert g0.mig is None and g0.unsupported == ()
    procs = {p.pid: p for p in g0.processes}
    # a context listed as compute and graphics is counted once
    assert procs[100].used_bytes == GiB and procs[100].kind == "compute+graphics"
    assert procs[101].used_bytes is None and procs[101].kind == "compute"
    assert procs[102].kind == "graphics" and procs[102].used_bytes == 64 << 20
    assert "does not report per-process memory" in g0.note
    assert g1.name == "NVIDIA H200" and g1.mem_used == 0 and g1.processes == ()
    assert g1.mem_percent == 0.0 and g0.mem_percent == pytest.approx(100 * 2 * GiB / (81559 << 20))
    assert [(gi, p.pid) for gi, p in r.processes()] == [(0, 100), (0, 101), (0, 102)]


def test_static_facts_are_read_once_and_init_once():
    fake = FakeNvml([h100()])
    src = NvmlSource(fake)
    for _ in range(5):
        assert src.read().ok
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetName"] == 1 and fake.calls["nvmlDeviceGetUUID"] == 1
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 1
    assert fake.calls["nvmlDeviceGetMemoryInfo_v2"] == 5
    src.close()
    assert fake.initialised == 0


@pytest.mark.parametrize("code,state,words", [
    (F.NVML_ERROR_LIBRARY_NOT_FOUND, "no_library", "libnvidia-ml.so.1"),
    (F.NVML_ERROR_DRIVER_NOT_LOADED, "no_driver", "driver not loaded"),
    (F.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "driver_mismatch", "version mismatch"),
    (F.NVML_ERROR_NO_PERMISSION, "no_permission", "/dev/nvidia"),
    (F.NVML_ERROR_UNKNOWN, "error", "NVML failed to start"),
])
def test_library_errors_are_states_with_one_line(code, state, words):
    fake = FakeNvml([h100()])
    fake.fail("nvmlInit", code)
    r = NvmlSource(fake).read()
    assert r.state == state and not r.ok and r.gpus == ()
    assert words.lower() in r.message.lower()
    assert "\n" not in r.message
    if state in STATE_MESSAGES:
        assert r.message == STATE_MESSAGES[state]


def test_failed_init_is_retried_only_after_retry_s_then_recovers():
    clock = Clock()
    fake = FakeNvml([h100()])
    fake.fail("nvmlInit", F.NVML_ERROR_DRIVER_NOT_LOADED)
    src = NvmlSource(fake, retry_s=30, clock=clock)
    assert src.read().state == "no_driver"
    clock.t += 10
    assert src.read().state == "no_driver"
    assert fake.calls["nvmlInit"] == 1  # not retried within 30 s
    fake.fail("nvmlInit", None)  # the module got loaded
    clock.t += 25
    r = src.read()
    assert r.ok and fake.calls["nvmlInit"] == 2 and r.gpus[0].mem_used == 2 * GiB


def test_no_devices():
    r = NvmlSource(FakeNvml([])).read()
    assert r.state == "no_devices" and "no NVIDIA GPU" in r.message and r.driver == "580.159.04"


def test_not_supported_fields_are_none_and_listed_and_not_asked_again():
    g = h100(mig=1)
    for fn in ("nvmlDeviceGetUtilizationRates", "nvmlDeviceGetTemperature", "nvmlDeviceGetPowerUsage",
               "nvmlDeviceGetEnforcedPowerLimit"):
        g.fail(fn, F.NVML_ERROR_NOT_SUPPORTED)
    fake = FakeNvml([g])
    src = NvmlSource(fake)
    r = src.read()
    gpu = r.gpus[0]
    assert r.ok and gpu.state == "ok"
    assert gpu.util_percent is None and gpu.temp_c is None and gpu.power_w is None and gpu.power_limit_w is None
    assert set(gpu.unsupported) == {"utilization", "temperature", "power", "power_limit"}
    assert gpu.mig is True and "MIG is on" in gpu.note
    assert gpu.mem_used == 2 * GiB  # what is supported still reads
    src.read()
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 1


def test_transient_field_error_is_none_but_asked_again():
    g = h100()
    g.fail("nvmlDeviceGetTemperature", F.NVML_ERROR_UNKNOWN)
    fake = FakeNvml([g])
    src = NvmlSource(fake)
    assert src.read().gpus[0].temp_c is None
    g.fail("nvmlDeviceGetTemperature", None)
    gpu = src.read().gpus[0]
    assert gpu.temp_c == 38 and gpu.unsupported == ()


def test_old_driver_without_memory_v2_falls_back_to_v1():
    g = h100()
    g.fail("nvmlDeviceGetMemoryInfo_v2", F.NVML_ERROR_FUNCTION_NOT_FOUND)
    fake = FakeNvml([g])
    src = NvmlSource(fake)
    gpu = src.read().gpus[0]
    assert gpu.mem_used == 2 * GiB + (512 << 20)  # v1 "used" includes reserved memory
    src.read()
    assert fake.calls["nvmlDeviceGetMemoryInfo_v2"] == 1 and fake.calls["nvmlDeviceGetMemoryInfo"] == 2


def test_gpu_lost_is_a_device_state_and_others_still_read():
    lost = h100()
    fake = FakeNvml([h100(), lost, h100()])
    src = NvmlSource(fake)
    assert all(g.state == "ok" for g in src.read().gpus)
    lost.lost = True
    r = src.read()
    assert r.ok
    states = [g.state for g in r.gpus]
    assert states == ["ok", "lost", "ok"]
    g1 = r.gpus[1]
    assert g1.name == "NVIDIA H100 80GB HBM3" and g1.mem_used is None and g1.processes is None
    assert "GPU is lost" in g1.note
    lost.lost = False  # reset: the handle is fetched again
    assert [g.state for g in src.read().gpus] == ["ok", "ok", "ok"]


def test_lost_at_handle_time_too():
    fake = FakeNvml([h100(lost=True)])
    r = NvmlSource(fake).read()
    assert r.ok and r.gpus[0].state == "lost" and r.gpus[0].name is None


def test_process_listing_refused_is_none_with_note():
    g = h100()
    g.fail("nvmlDeviceGetComputeRunningProcesses", F.NVML_ERROR_NO_PERMISSION)
    g.fail("nvmlDeviceGetGraphicsRunningProcesses", F.NVML_ERROR_NO_PERMISSION)
    gpu = NvmlSource(FakeNvml([g])).read().gpus[0]
    assert gpu.processes is None and "would not list" in gpu.note and gpu.mem_used == 2 * GiB


def test_graphics_not_supported_compute_still_listed():
    g = h100(processes=[(7, GiB)])
    g.fail("nvmlDeviceGetGraphicsRunningProcesses", F.NVML_ERROR_NOT_SUPPORTED)
    gpu = NvmlSource(FakeNvml([g])).read().gpus[0]
    assert [(p.pid, p.used_bytes) for p in gpu.processes] == [(7, GiB)]
    assert gpu.unsupported == ("processes_graphics",)


def test_uninitialized_mid_run_reinitialises():
    fake = FakeNvml([h100()])
    src = NvmlSource(fake)
    assert src.read().ok
    fake.initialised = 0  # the driver was reloaded: every call answers UNINITIALIZED
    r = src.read()
    assert r.state == "error" and "re-initialising" in r.message
    r = src.read()
    assert r.ok and fake.calls["nvmlInit"] == 2


def test_bytes_names_from_old_pynvml_are_decoded():
    class OldNames(FakeNvml):
        def nvmlDeviceGetName(self, h):
            return super().nvmlDeviceGetName(h).encode()

        def nvmlSystemGetDriverVersion(self):
            return b"535.54.03"

    r = NvmlSource(OldNames([h100()])).read()
    assert r.gpus[0].name == "NVIDIA H100 80GB HBM3" and r.driver == "535.54.03"


def test_real_pynvml_gives_a_state_never_an_exception():
    """The real module: without the NVIDIA library a clean state; with it, a reading."""
    import ctypes.util

    src = NvmlSource()
    r = src.read()
    src.close()
    if ctypes.util.find_library("nvidia-ml") is None:
        assert r.state == "no_library" and r.message == STATE_MESSAGES["no_library"] and r.gpus == ()
    else:  # a machine with the driver (the GPU check runs these tests there too)
        assert r.state in ("ok", "no_devices", "no_driver", "driver_mismatch", "no_permission"), r
        assert r.ok == (r.state == "ok") and (r.message is None) == r.ok


def test_without_the_library_pynvml_is_not_even_imported():
    """``llmdeck status`` reads VRAM through this path: it must fail fast where there is no driver."""
    import ctypes.util
    import subprocess
    import sys

    if ctypes.util.find_library("nvidia-ml") is not None:
        code = "from tui.core.telemetry.nvml import NvmlSource; print(NvmlSource().read().state)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
        assert out.strip() in ("ok", "no_devices", "no_driver", "driver_mismatch", "no_permission")
        return
    code = ("import sys, time; from tui.core.telemetry.nvml import NvmlSource; t = time.perf_counter(); "
            "r = NvmlSource().read(); print(r.state, 'pynvml' in sys.modules, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.split()
    assert out[:2] == ["no_library", "False"]
    assert float(out[2]) < 0.1  # about a millisecond; generous for a loaded CI machine
