"""Host RAM, swap and CPU through psutil.

CPU % is the busy share of all cores (0–100) between two reads of this reader, computed from
our own previous ``cpu_times`` rather than psutil's module-global state (which any other
caller of ``psutil.cpu_percent`` would disturb). The first read has no CPU figure (None).
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class SystemInfo:
    ram_used: int
    ram_total: int
    ram_available: int
    swap_used: int
    swap_total: int
    cpu_percent: float | None  # of all cores, 0–100; None on the first read
    cpu_count: int

    @property
    def ram_percent(self) -> float:
        return 100.0 * self.ram_used / self.ram_total if self.ram_total else 0.0


def _busy_total(t) -> tuple[float, float]:
    total = sum(t)
    idle = t.idle + getattr(t, "iowait", 0.0)
    return total - idle, total


class SystemReader:
    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None
        self._cpus = psutil.cpu_count() or 1

    def read(self) -> SystemInfo:
        vm = psutil.virtual_memory()
        sw = psutil.swap_memory()
        busy, total = _busy_total(psutil.cpu_times())
        pct = None
        if self._last is not None:
            db, dt = busy - self._last[0], total - self._last[1]
            pct = max(0.0, min(100.0, 100.0 * db / dt)) if dt > 0 else None
        self._last = (busy, total)
        # "used" as free(1) and htop show it: total minus available (page cache is not "used")
        return SystemInfo(ram_used=int(vm.total - vm.available), ram_total=int(vm.total),
                          ram_available=int(vm.available), swap_used=int(sw.used),
                          swap_total=int(sw.total), cpu_percent=pct, cpu_count=self._cpus)
