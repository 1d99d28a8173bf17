"""Telemetry: GPU gauges (NVML), host RAM/CPU, per-model process trees, server metrics.

Modules, one job each: :mod:`.nvml` (GPU reading behind ``GpuSource``), :mod:`.fakenvml`
(the pynvml fake for tests), :mod:`.system` (psutil host figures), :mod:`.procs` (process
trees, RSS/CPU/VRAM per model), :mod:`.metrics` (``/metrics`` and ``/slots``),
:mod:`.sampler` (the thread, snapshots, subscribers, history).

Importing this package is cheap; names below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Sampler": "sampler", "Snapshot": "sampler", "ServerRef": "sampler", "ModelSample": "sampler",
    "History": "sampler", "supervisor_servers": "sampler",
    "per_model_usage": "procs", "Usage": "procs",
    "NvmlSource": "nvml", "GpuReading": "nvml", "Gpu": "nvml", "GpuProcess": "nvml", "GpuSource": "nvml",
    "ServerStats": "metrics", "SystemInfo": "system",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
