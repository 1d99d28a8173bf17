"""A fake of the pynvml function set, for tests and screenshots on machines without a GPU.

It implements exactly the functions :class:`tui.core.telemetry.nvml.NvmlSource` calls, with
pynvml's own signatures, return shapes and exception classes (``pynvml.NVMLError(code)``
builds the real ``NVMLError_NotSupported`` … subclasses), so the code under test takes the
same paths it takes over a real driver. Failures are injected by NVML return code:

    fake = FakeNvml([FakeGpu("NVIDIA H100 80GB HBM3", total=80 << 30, used=1 << 30,
                             processes=[(1234, 1 << 30)])])
    fake.fail("nvmlInit", NVML_ERROR_LIBRARY_NOT_FOUND)            # whole library
    fake.gpus[0].fail("nvmlDeviceGetUtilizationRates", NVML_ERROR_NOT_SUPPORTED)  # one field
    fake.gpus[0].lost = True                                        # GPU_IS_LOST everywhere

A process's used memory of ``None`` is what pynvml returns for NVML_VALUE_NOT_AVAILABLE.
``calls`` counts every function call (to check that static facts are cached).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml

NVMLError = pynvml.NVMLError
NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
nvmlMemory_v2 = pynvml.nvmlMemory_v2
NVML_ERROR_UNINITIALIZED = pynvml.NVML_ERROR_UNINITIALIZED
NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
NVML_ERROR_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
NVML_ERROR_DRIVER_NOT_LOADED = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
NVML_ERROR_FUNCTION_NOT_FOUND = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST
NVML_ERROR_LIB_RM_VERSION_MISMATCH = pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH
NVML_ERROR_UNKNOWN = pynvml.NVML_ERROR_UNKNOWN


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    total: int = 81559 << 20
    used: int = 0
    reserved: int = 0  # v1 "used" includes it, v2 "used" does not (as on a real driver)
    util: int = 0
    mem_util: int = 0
    temp: int = 35
    power_mw: int = 70_000
    limit_mw: int = 700_000
    mig: int | None = None  # None: card without MIG (NOT_SUPPORTED); 0/1: MIG mode
    #: (pid, used bytes or None) — compute processes; graphics processes separately
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    uuid: str = ""
    lost: bool = False
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, function: str, code: int | None) -> None:
        """Make ``function`` raise NVMLError(code) for this GPU (None: stop failing)."""
        if code is None:
            self.errors.pop(function, None)
        else:
            self.errors[function] = code


class FakeNvml:
    """Module-like object with the pynvml functions NvmlSource uses."""

    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    def __init__(self, gpus: list[FakeGpu] | None = None, driver: str = "580.159.04",
                 nvml_version: str = "13.580.159.04") -> None:
        self.gpus = list(gpus or [])
        for i, g in enumerate(self.gpus):
            if not g.uuid:
                g.uuid = f"GPU-fake-{i:04d}"
        self.driver = driver
        self.nvml_version = nvml_version
        self.errors: dict[str, int] = {}
        self.initialised = 0  # nesting count, like NVML's
        self.calls: Counter[str] = Counter()

    def fail(self, function: str, code: int | None) -> None:
        """Make a library-level ``function`` raise NVMLError(code) (None: stop failing)."""
        if code is None:
            self.errors.pop(function, None)
        else:
            self.errors[function] = code

    # -- helpers -----------------------------------------------------------------------

    def _enter(self, name: str, handle: FakeGpu | None = None) -> None:
        self.calls[name] += 1
        if name in self.errors:
            raise pynvml.NVMLError(self.errors[name])
        if name not in ("nvmlInit", "nvmlShutdown") and self.initialised <= 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        if handle is not None:
            if handle.lost:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            if name in handle.errors:
                raise pynvml.NVMLError(handle.errors[name])

    # -- library -----------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        if self.initialised <= 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._enter("nvmlSystemGetNVMLVersion")
        return self.nvml_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= i < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        g = self.gpus[i]
        if g.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if "nvmlDeviceGetHandleByIndex" in g.errors:
            raise pynvml.NVMLError(g.errors["nvmlDeviceGetHandleByIndex"])
        return g

    # -- device ------------------------------------------------------------------------

    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        self._enter("nvmlDeviceGetName", h)
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        self._enter("nvmlDeviceGetUUID", h)
        return h.uuid

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu, version=None):
        if version:
            self._enter("nvmlDeviceGetMemoryInfo_v2", h)
            return SimpleNamespace(version=version, total=h.total, reserved=h.reserved, used=h.used,
                                   free=h.total - h.used - h.reserved)
        self._enter("nvmlDeviceGetMemoryInfo", h)
        return SimpleNamespace(total=h.total, used=h.used + h.reserved, free=h.total - h.used - h.reserved)

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu):
        self._enter("nvmlDeviceGetUtilizationRates", h)
        return SimpleNamespace(gpu=h.util, memory=h.mem_util)

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", h)
        return h.temp

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        self._enter("nvmlDeviceGetPowerUsage", h)
        return h.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        self._enter("nvmlDeviceGetEnforcedPowerLimit", h)
        return h.limit_mw

    def nvmlDeviceGetMigMode(self, h: FakeGpu):
        self._enter("nvmlDeviceGetMigMode", h)
        if h.mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [h.mig, h.mig]

    @staticmethod
    def _procs(items):
        return [SimpleNamespace(pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF,
                                computeInstanceId=0xFFFFFFFF) for pid, used in items]

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeGpu):
        self._enter("nvmlDeviceGetComputeRunningProcesses", h)
        return self._procs(h.processes)

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: FakeGpu):
        self._enter("nvmlDeviceGetGraphicsRunningProcesses", h)
        return self._procs(h.graphics)
