"""GPU gauges from NVML, behind one small interface that never raises.

:class:`GpuSource` is the boundary the sampler reads through: ``read() -> GpuReading``.
:class:`NvmlSource` implements it over the *pynvml function set* (``nvmlInit``,
``nvmlDeviceGetMemoryInfo``, …) of ``nvidia-ml-py``. The function set is passed in as ``lib``
(default: the real ``pynvml`` module, imported on first use), so tests substitute
:mod:`tui.core.telemetry.fakenvml` without patching pynvml internals.

Decisions where the issue is silent:

* Every failure is a *state* with one line of explanation, never an exception: the whole
  library (``no_library``, ``no_driver``, ``driver_mismatch``, ``no_permission``,
  ``no_devices``, ``error``), one device (``Gpu.state == "lost"`` / ``"error"``) or one
  field (``None`` and the field's name in ``Gpu.unsupported``). CPU and RAM gauges live
  elsewhere and are unaffected.
* A failed ``nvmlInit`` is retried at most every ``retry_s`` seconds (a driver may be loaded
  later), so a machine without NVIDIA pays the ~1 ms of a failed load once per 30 s. On
  Linux the library is probed with ``ctypes`` before ``pynvml`` is imported, so a machine
  without the driver never pays pynvml's import either (``llmdeck status`` stays fast).
* Memory "used" is NVML's v2 figure (excludes the driver's reserved memory, as
  ``nvidia-smi`` reports it) when the driver has ``nvmlDeviceGetMemoryInfo_v2``; else v1.
* Process lists merge compute and graphics processes per (GPU, PID); ``used_bytes`` is
  ``None`` when NVML does not report a process's memory (``usedGpuMemory`` N/A: WDDM,
  some MIG and container setups). ``processes`` is ``None`` when NVML refuses to list them.
* Static facts (name, UUID, total memory) are read once per device and cached.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

#: NVML return codes we name (same values as pynvml's NVML_ERROR_* constants)
ERR_UNINITIALIZED = 1
ERR_NOT_SUPPORTED = 3
ERR_NO_PERMISSION = 4
ERR_NOT_FOUND = 6
ERR_DRIVER_NOT_LOADED = 9
ERR_LIBRARY_NOT_FOUND = 12
ERR_FUNCTION_NOT_FOUND = 13
ERR_GPU_IS_LOST = 15
ERR_RESET_REQUIRED = 16
ERR_LIB_RM_VERSION_MISMATCH = 18

#: library-level states → the one line shown to the user
STATE_MESSAGES = {
    "no_library": "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver is installed here",
    "no_driver": "NVIDIA driver not loaded (NVML: Driver Not Loaded): load the nvidia kernel module "
                 "(nvidia-smi fails the same way)",
    "driver_mismatch": "NVIDIA driver/library version mismatch (driver updated without a reboot?): "
                       "reboot or reload the nvidia kernel module",
    "no_permission": "no permission to open the NVIDIA devices (/dev/nvidia*): add your user to the "
                     "group that owns them (often 'video')",
    "no_devices": "NVML found no NVIDIA GPU (driver loaded, zero devices visible; in a container, "
                  "was it started with --gpus?)",
}


@dataclass(frozen=True)
class GpuProcess:
    """One process holding memory on one GPU, as NVML reports it (host PID namespace)."""

    pid: int
    used_bytes: int | None  # None: NVML does not report this process's memory
    kind: str  # "compute", "graphics" or "compute+graphics"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str | None = None
    uuid: str | None = None
    state: str = "ok"  # "ok", "lost" (fallen off the bus) or "error"
    note: str | None = None  # one line when state != "ok" or something is missing
    mem_used: int | None = None  # bytes
    mem_total: int | None = None  # bytes
    mem_free: int | None = None  # bytes a new allocation can have (total − used − reserved)
    util_percent: int | None = None  # GPU (SM) utilisation over NVML's last sample period
    mem_util_percent: int | None = None  # memory-controller utilisation
    temp_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    mig: bool | None = None  # MIG mode on; None when the card has no MIG
    processes: tuple[GpuProcess, ...] | None = ()  # None: NVML would not list them
    unsupported: tuple[str, ...] = ()  # fields NVML reports as not supported on this card

    @property
    def mem_percent(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return 100.0 * self.mem_used / self.mem_total


@dataclass(frozen=True)
class GpuReading:
    """One read of every GPU. ``state`` is "ok" or a library-level state (see STATE_MESSAGES)."""

    state: str
    message: str | None = None
    driver: str | None = None
    nvml_version: str | None = None
    gpus: tuple[Gpu, ...] = ()
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def processes(self) -> list[tuple[int, GpuProcess]]:
        """Every (gpu index, process) pair."""
        return [(g.index, p) for g in self.gpus for p in (g.processes or ())]


class GpuSource(Protocol):
    """What the sampler reads GPUs through. ``read()`` never raises."""

    def read(self) -> GpuReading: ...

    def close(self) -> None: ...


class NoGpuSource:
    """A source for when GPU reading is switched off (``state == "off"``)."""

    def __init__(self, message: str = "GPU reading switched off") -> None:
        self.message = message

    def read(self) -> GpuReading:
        return GpuReading("off", self.message)

    def close(self) -> None:
        pass


def _nvml_loadable() -> bool:
    """Whether libnvidia-ml.so.1 loads (the name pynvml loads on Linux); ~0.3 ms when it does not."""
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def _code(exc: BaseException) -> int | None:
    return getattr(exc, "value", None)


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


@dataclass
class _Static:
    handle: Any
    name: str | None
    uuid: str | None
    mem_total: int | None
    mem_v2: bool = True
    # fields that answered NOT_SUPPORTED / FUNCTION_NOT_FOUND once: never asked again
    unsupported: set[str] = field(default_factory=set)


class NvmlSource:
    """GPU gauges through the pynvml function set ``lib`` (default: the real ``pynvml``)."""

    def __init__(self, lib: Any = None, retry_s: float = 30.0, clock=time.monotonic) -> None:
        self._lib = lib
        self._retry_s = retry_s
        self._clock = clock
        self._inited = False
        self._failed: GpuReading | None = None
        self._failed_at = 0.0
        self._driver: str | None = None
        self._nvml_version: str | None = None
        self._static: dict[int, _Static] = {}
        self._count = 0

    # -- library -----------------------------------------------------------------------

    @property
    def lib(self) -> Any:
        if self._lib is None:
            import pynvml  # nvidia-ml-py; ~20 ms to import, so only when GPUs are read

            self._lib = pynvml
        return self._lib

    def _init(self) -> GpuReading | None:
        """Initialise NVML; return a failed reading, or None when ready."""
        if self._inited:
            return None
        now = self._clock()
        if self._failed is not None and now - self._failed_at < self._retry_s:
            return self._failed
        if self._lib is None and sys.platform.startswith("linux") and not _nvml_loadable():
            return self._fail("no_library")  # without importing pynvml (~20 ms): status stays fast
        try:
            lib = self.lib
        except ImportError:  # nvidia-ml-py not installed (it is a dependency, but be safe)
            return self._fail("no_library", "the nvidia-ml-py package is not installed: "
                              "pip install nvidia-ml-py")
        try:
            lib.nvmlInit()
        except lib.NVMLError as exc:
            return self._fail_code(exc)
        except OSError as exc:  # a broken libnvidia-ml.so (wrong architecture, …)
            return self._fail("no_library", f"NVML library could not be loaded ({exc})")
        self._inited = True
        self._failed = None
        self._static.clear()
        try:
            self._count = int(lib.nvmlDeviceGetCount())
        except lib.NVMLError as exc:
            self._shutdown()
            return self._fail_code(exc)
        for getter, attr in ((lib.nvmlSystemGetDriverVersion, "_driver"),
                             (lib.nvmlSystemGetNVMLVersion, "_nvml_version")):
            try:
                setattr(self, attr, _text(getter()))
            except lib.NVMLError:
                setattr(self, attr, None)
        return None

    def _fail(self, state: str, message: str | None = None) -> GpuReading:
        self._failed = GpuReading(state, message or STATE_MESSAGES.get(state))
        self._failed_at = self._clock()
        return self._failed

    def _fail_code(self, exc: BaseException) -> GpuReading:
        code = _code(exc)
        state = {
            ERR_LIBRARY_NOT_FOUND: "no_library",
            ERR_DRIVER_NOT_LOADED: "no_driver",
            ERR_LIB_RM_VERSION_MISMATCH: "driver_mismatch",
            ERR_NO_PERMISSION: "no_permission",
        }.get(code)  # type: ignore[arg-type]
        if state:
            return self._fail(state)
        return self._fail("error", f"NVML failed to start: {exc} (code {code})")

    def _shutdown(self) -> None:
        if self._inited:
            try:
                self.lib.nvmlShutdown()
            except Exception:  # shutting down a broken library: nothing more to do
                pass
        self._inited = False

    def close(self) -> None:
        self._shutdown()

    # -- reading -----------------------------------------------------------------------

    def read(self) -> GpuReading:
        failed = self._init()
        if failed is not None:
            return GpuReading(failed.state, failed.message)
        if self._count == 0:
            return GpuReading("no_devices", STATE_MESSAGES["no_devices"], self._driver, self._nvml_version)
        gpus = []
        for i in range(self._count):
            try:
                gpus.append(self._read_gpu(i))
            except Exception as exc:  # noqa: BLE001 — one device's failure must not end the read
                if _code(exc) == ERR_UNINITIALIZED:  # the driver was reloaded under us
                    self._inited = False
                    self._static.clear()
                    return GpuReading("error", "NVML lost its initialisation (driver reloaded?); "
                                      "re-initialising on the next read")
                gpus.append(self._error_gpu(i, exc))
        return GpuReading("ok", None, self._driver, self._nvml_version, tuple(gpus))

    def _error_gpu(self, i: int, exc: BaseException) -> Gpu:
        st = self._static.pop(i, None)  # re-read the handle next time
        name = st.name if st else None
        code = _code(exc)
        if code == ERR_GPU_IS_LOST:
            return Gpu(i, name, st.uuid if st else None, state="lost",
                       note="GPU is lost (fallen off the bus, NVML: GPU is lost): reset or reboot",
                       processes=None)
        if code == ERR_RESET_REQUIRED:
            return Gpu(i, name, state="error", note="GPU needs a reset (NVML: Reset Required)",
                       processes=None)
        if code == ERR_NO_PERMISSION:
            return Gpu(i, name, state="error", note="no permission to read this GPU (NVML: No Permission)",
                       processes=None)
        return Gpu(i, name, state="error", note=f"NVML could not read this GPU: {exc}", processes=None)

    def _static_for(self, i: int) -> _Static:
        st = self._static.get(i)
        if st is not None:
            return st
        lib = self.lib
        handle = lib.nvmlDeviceGetHandleByIndex(i)  # GPU_IS_LOST etc. propagate to _error_gpu
        name = uuid = None
        try:
            name = _text(lib.nvmlDeviceGetName(handle))
        except lib.NVMLError as exc:
            if _code(exc) == ERR_GPU_IS_LOST:
                raise
        try:
            uuid = _text(lib.nvmlDeviceGetUUID(handle))
        except lib.NVMLError as exc:
            if _code(exc) == ERR_GPU_IS_LOST:
                raise
        st = _Static(handle, name, uuid, None)
        self._static[i] = st
        return st

    def _field(self, st: _Static, name: str, fn, *args):
        """Call one NVML getter; None when unsupported. Device-fatal errors propagate."""
        if name in st.unsupported:
            return None
        lib = self.lib
        try:
            return fn(st.handle, *args)
        except lib.NVMLError as exc:
            code = _code(exc)
            if code in (ERR_NOT_SUPPORTED, ERR_FUNCTION_NOT_FOUND):
                st.unsupported.add(name)
                return None
            if code in (ERR_GPU_IS_LOST, ERR_UNINITIALIZED, ERR_RESET_REQUIRED):
                raise
            return None  # NOT_FOUND, NO_PERMISSION, UNKNOWN … for this field only

    def _read_gpu(self, i: int) -> Gpu:
        lib = self.lib
        st = self._static_for(i)
        notes: list[str] = []

        mem = None
        if st.mem_v2:
            try:
                mem = lib.nvmlDeviceGetMemoryInfo(st.handle, version=lib.nvmlMemory_v2)
            except (lib.NVMLError, AttributeError, TypeError) as exc:
                if _code(exc) in (ERR_GPU_IS_LOST, ERR_UNINITIALIZED):
                    raise
                st.mem_v2 = False  # old driver or old nvidia-ml-py: use v1 from now on
        if mem is None:
            mem = self._field(st, "memory", lib.nvmlDeviceGetMemoryInfo)
        mem_used = int(mem.used) if mem is not None else None
        mem_total = int(mem.total) if mem is not None else None
        mem_free = int(mem.free) if mem is not None else None

        util = self._field(st, "utilization", lib.nvmlDeviceGetUtilizationRates)
        temp = self._field(st, "temperature", lib.nvmlDeviceGetTemperature, lib.NVML_TEMPERATURE_GPU)
        power = self._field(st, "power", lib.nvmlDeviceGetPowerUsage)
        limit = self._field(st, "power_limit", lib.nvmlDeviceGetEnforcedPowerLimit)
        mig_mode = self._field(st, "mig", lib.nvmlDeviceGetMigMode)
        mig = bool(mig_mode[0]) if mig_mode is not None else None

        procs = self._processes(st)
        if procs is None:
            notes.append("NVML would not list this GPU's processes (no permission?)")
        elif any(p.used_bytes is None for p in procs):
            notes.append("NVML does not report per-process memory here")
        if mig and util is None:
            notes.append("MIG is on: utilisation is not reported for the whole GPU")

        return Gpu(
            index=i, name=st.name, uuid=st.uuid, state="ok", note="; ".join(notes) or None,
            mem_used=mem_used, mem_total=mem_total, mem_free=mem_free,
            util_percent=int(util.gpu) if util is not None else None,
            mem_util_percent=int(util.memory) if util is not None else None,
            temp_c=int(temp) if temp is not None else None,
            power_w=power / 1000.0 if power is not None else None,
            power_limit_w=limit / 1000.0 if limit is not None else None,
            mig=mig, processes=procs,
            unsupported=tuple(sorted(st.unsupported - {"mig"})),
        )

    def _processes(self, st: _Static) -> tuple[GpuProcess, ...] | None:
        lib = self.lib
        merged: dict[int, GpuProcess] = {}
        answered = False
        for kind, fn in (("compute", lib.nvmlDeviceGetComputeRunningProcesses),
                         ("graphics", lib.nvmlDeviceGetGraphicsRunningProcesses)):
            if f"processes_{kind}" in st.unsupported:
                continue
            try:
                items = fn(st.handle)
            except lib.NVMLError as exc:
                code = _code(exc)
                if code in (ERR_GPU_IS_LOST, ERR_UNINITIALIZED, ERR_RESET_REQUIRED):
                    raise
                if code in (ERR_NOT_SUPPORTED, ERR_FUNCTION_NOT_FOUND):
                    st.unsupported.add(f"processes_{kind}")
                continue
            answered = True
            for p in items or ():
                pid = int(p.pid)
                used = p.usedGpuMemory
                used = int(used) if used is not None else None
                old = merged.get(pid)
                if old is None:
                    merged[pid] = GpuProcess(pid, used, kind)
                else:  # the same context is listed as both compute and graphics: count it once
                    best = max((u for u in (old.used_bytes, used) if u is not None), default=None)
                    merged[pid] = GpuProcess(pid, best, "compute+graphics")
        if not answered and not merged:
            return None
        return tuple(sorted(merged.values(), key=lambda p: p.pid))


_default: GpuSource | None = None


def default_source() -> GpuSource:
    """The process-wide GPU source (one nvmlInit per process) used by the CLI and status."""
    global _default
    if _default is None:
        _default = NvmlSource()
    return _default


def set_default_source(source: GpuSource | None) -> GpuSource | None:
    """Replace the process-wide source (tests, demos); returns the previous one."""
    global _default
    old, _default = _default, source
    return old
