"""Per-model process trees: RSS, CPU and VRAM summed over a server's whole tree.

A model's server may be one process (llama-server) or many (vLLM/SGLang start an engine core
and one worker per GPU, and the workers hold the VRAM), so usage is summed over the tree
rooted at the PID the supervisor knows.

Finding a tree with ``psutil.Process.children(recursive=True)`` reads ``/proc/*/stat`` of
every process on the machine each time (about 3 ms for 90 processes on a 2-core box), which
alone would break the sampler's budget. :class:`ProcessTable` keeps a PID → parent map
instead and, on each refresh, lists ``/proc`` (one ``listdir``) and reads ``stat`` only for
PIDs it has not seen; vanished PIDs are dropped. A full rescan every ``rescan_every``
refreshes guards against a PID recycled between two refreshes. Where ``/proc`` does not
exist (not Linux) it falls back to psutil.

Decisions where the issue is silent:

* RSS is summed over the tree; pages shared between processes of one tree (vLLM workers)
  are counted once per process, as ``ps`` does. Model files mapped with mmap count as they
  are touched.
* CPU % is per model in "% of one core" as ``top`` shows it (800 % = eight busy cores); a
  process's first read gives no figure, so a tree's CPU is None until every member has one.
* VRAM is the sum of NVML's per-process memory over the PIDs of the tree, over all GPUs.
  It is None ("n/a") when NVML is unavailable, when a matched process's memory is not
  reported, or when no PID of the tree is on a GPU while some GPU PIDs do not exist here
  (a container with its own PID namespace sees the host's PIDs in NVML: we cannot tell
  whose they are, so we do not guess). It is 0 when every GPU PID is accounted for and none
  is the model's (the model runs on the CPU).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:  # only for annotations: status imports this module without the NVML layer
    from tui.core.telemetry.nvml import GpuReading

_PROC = "/proc"


def _read_stat(pid: int, proc_root: str = _PROC) -> tuple[int, int] | None:
    """(ppid, start time in clock ticks) of a PID from /proc/<pid>/stat, or None if gone."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # "pid (comm) state ppid … starttime(22nd field)"; comm may hold spaces and parentheses
    rest = data[data.rfind(b")") + 2:].split()
    try:
        return int(rest[1]), int(rest[19])
    except (IndexError, ValueError):
        return None


class ProcessTable:
    """Incremental PID → parent map plus cached ``psutil.Process`` objects for CPU deltas."""

    def __init__(self, proc_root: str = _PROC, rescan_every: int = 60) -> None:
        self.proc_root = proc_root
        self.linux = os.path.isdir(os.path.join(proc_root, "self"))
        self.rescan_every = rescan_every
        self._ppid: dict[int, int] = {}
        self._start: dict[int, int] = {}
        self._children: dict[int, list[int]] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._cpu_seen: set[int] = set()
        self._refreshes = 0

    @property
    def pids(self) -> set[int]:
        return set(self._ppid)

    def exists(self, pid: int) -> bool:
        return pid in self._ppid

    def refresh(self) -> None:
        self._refreshes += 1
        full = bool(self.rescan_every) and self._refreshes % self.rescan_every == 0
        if self.linux:
            try:
                now = {int(n) for n in os.listdir(self.proc_root) if n.isdigit()}
            except OSError:
                now = set()
            for pid in self._ppid.keys() - now:
                self._forget(pid)
            for pid in (now if full else now - self._ppid.keys()):
                st = _read_stat(pid, self.proc_root)
                if st is None:
                    self._forget(pid)
                    continue
                if pid in self._start and self._start[pid] != st[1]:
                    self._forget(pid)  # the PID was recycled between two refreshes
                self._ppid[pid], self._start[pid] = st
        else:  # pragma: no cover — macOS/BSD: psutil does the scan
            now_map = {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"])}
            for pid in self._ppid.keys() - now_map.keys():
                self._forget(pid)
            self._ppid.update({k: v or 0 for k, v in now_map.items()})
        children: dict[int, list[int]] = {}
        for pid, ppid in self._ppid.items():
            children.setdefault(ppid, []).append(pid)
        self._children = children

    def _forget(self, pid: int) -> None:
        self._ppid.pop(pid, None)
        self._start.pop(pid, None)
        self._procs.pop(pid, None)
        self._cpu_seen.discard(pid)

    def tree(self, root: int) -> list[int]:
        """``root`` and all its descendants (empty if ``root`` does not exist)."""
        if root not in self._ppid:
            return []
        out, todo = [], [root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(self._children.get(pid, ()))
        return out

    def _proc(self, pid: int) -> psutil.Process | None:
        p = self._procs.get(pid)
        if p is None:
            try:
                p = psutil.Process(pid)
            except psutil.Error:
                return None
            self._procs[pid] = p
        return p

    def usage(self, pids: Iterable[int], cpu: bool = True) -> tuple[int | None, float | None, list[int]]:
        """(RSS bytes summed, CPU % of one core summed or None, the PIDs that answered)."""
        rss: int | None = 0
        cpu_total: float | None = 0.0 if cpu else None
        alive: list[int] = []
        for pid in pids:
            p = self._proc(pid)
            if p is None:
                continue
            try:
                with p.oneshot():
                    mem = p.memory_info().rss
                    c = p.cpu_percent(None) if cpu else 0.0
            except psutil.AccessDenied:  # it exists but we may not read it: figures unknown
                alive.append(pid)
                rss = cpu_total = None
                continue
            except psutil.Error:
                self._procs.pop(pid, None)
                continue
            alive.append(pid)
            if rss is not None:
                rss += mem
            if cpu:
                if pid not in self._cpu_seen:  # psutil's first cpu_percent(None) is a meaningless 0.0
                    self._cpu_seen.add(pid)
                    cpu_total = None
                elif cpu_total is not None:
                    cpu_total += c
        if not alive:
            return None, None, []
        return rss, cpu_total, alive


@dataclass(frozen=True)
class Usage:
    """What one model's server tree uses. None means n/a; ``note`` says why."""

    pid: int  # the root PID (as the supervisor knows it)
    pids: tuple[int, ...] = ()  # the live tree
    rss_bytes: int | None = None
    cpu_percent: float | None = None  # % of one core, summed over the tree
    vram_bytes: int | None = None
    vram_by_gpu: tuple[tuple[int, int], ...] = ()  # (gpu index, bytes)
    note: str | None = None

    @property
    def alive(self) -> bool:
        return bool(self.pids)


FOREIGN_NOTE = ("GPU processes have PIDs that do not exist here (container PID namespace?): "
                "per-model VRAM is n/a")


def foreign_note(foreign: set[int]) -> str:
    n = len(foreign)
    which = "1 GPU process has a PID that does" if n == 1 else f"{n} GPU processes have PIDs that do"
    return (f"{which} not exist here (a container with its own PID namespace?): "
            "that memory is not attributed to any model")


def foreign_gpu_pids(reading: GpuReading, table: ProcessTable) -> set[int]:
    """NVML PIDs that do not exist in this PID namespace."""
    if not reading.ok:
        return set()
    return {p.pid for _, p in reading.processes() if not table.exists(p.pid)}


def attribute_vram(tree: Iterable[int], reading: GpuReading, foreign: set[int]
                   ) -> tuple[int | None, tuple[tuple[int, int], ...], str | None]:
    """(VRAM bytes, per-GPU bytes, note) for the PIDs of one tree; see the module docstring."""
    if not reading.ok:  # the GPU state is shown once, globally; no note per model
        return None, (), None
    members = set(tree)
    by_gpu: dict[int, int] = {}
    unknown = False
    for gi, p in reading.processes():
        if p.pid in members:
            if p.used_bytes is None:
                unknown = True
            else:
                by_gpu[gi] = by_gpu.get(gi, 0) + p.used_bytes
    listed = all(g.processes is not None for g in reading.gpus if g.state == "ok")
    if unknown:
        return None, (), "NVML does not report this process's GPU memory (usedGpuMemory N/A)"
    if by_gpu:
        return sum(by_gpu.values()), tuple(sorted(by_gpu.items())), None
    if foreign:
        return None, (), FOREIGN_NOTE
    if not listed:
        return None, (), "NVML would not list GPU processes (no permission?)"
    return 0, (), None


def usage_for(root: int, table: ProcessTable, reading: GpuReading | None, foreign: set[int],
              cpu: bool = True) -> Usage:
    tree = table.tree(root)
    if not tree:
        return Usage(root, note=f"process {root} is not running")
    rss, cpu_pct, alive = table.usage(tree, cpu=cpu)
    note = None
    if alive and rss is None:
        note = f"no permission to read process {root}'s memory (started by another user?)"
    if reading is None:
        return Usage(root, tuple(alive), rss, cpu_pct, None, (), note)
    vram, by_gpu, vnote = attribute_vram(alive or tree, reading, foreign)
    return Usage(root, tuple(alive), rss, cpu_pct, vram, by_gpu, note or vnote)


def per_model_usage(pids: Iterable[int], *, gpu: bool = True, source=None) -> dict[int, Usage]:
    """One-shot RSS and VRAM for each server PID (for ``llmdeck status``); no CPU %.

    With no PIDs nothing is read and NVML is not touched. NVML is read once for all PIDs;
    on a machine without the library that fails in about a millisecond.
    """
    roots = [int(p) for p in pids if p]
    if not roots:
        return {}
    table = ProcessTable(rescan_every=0)
    table.refresh()
    reading = None
    if gpu:
        if source is None:
            from tui.core.telemetry.nvml import default_source

            source = default_source()
        reading = source.read()
    foreign = foreign_gpu_pids(reading, table) if reading is not None else set()
    return {r: usage_for(r, table, reading, foreign, cpu=False) for r in roots}
