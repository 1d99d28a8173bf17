"""The telemetry sampler: one background thread, immutable snapshots, subscribers, history.

    sampler = Sampler(servers, interval=1.0)      # servers() -> [ServerRef | (name, pid, url)]
    unsubscribe = sampler.subscribe(on_snapshot)  # called in the sampler thread
    sampler.start()
    ...
    sampler.latest                                # the newest Snapshot (or None)
    sampler.history.series(("gpu", 0, "mem_used"))
    sampler.stop()

Decisions where the issue is silent:

* Subscribers run **in the sampler thread**, one after another, and must return quickly; a
  Textual app hands the snapshot over with ``app.call_from_thread`` or ``post_message``.
  A subscriber that raises is logged once on the snapshot's ``errors`` and kept.
* Snapshots are frozen dataclasses of tuples: safe to hand to any thread, never mutated.
* The thread keeps a fixed rate (next tick = last tick + interval); a sample that overruns
  skips the ticks it missed rather than bunching them up.
* ``servers`` is any callable listing running servers; :func:`supervisor_servers` adapts
  the supervisor. An exception from it yields a snapshot without models and a note.
* ``cost`` holds the CPU time of each part of the sample (thread CPU time, seconds), so the
  sampler's own overhead is visible (benchmarks/bench_sampler.py prints it).
* History keeps ``history_s / interval`` points per series (default 300 at 1 Hz, ~5
  minutes). Every series gets a point (None when absent) at every sample so series stay
  aligned with ``history.times()``; a model's series are dropped once the model has been
  absent for a whole window, so memory stays bounded. Series keys:
  ``("gpu", i, "mem_used" | "util" | "power" | "temp")``, ``("system", "cpu" | "ram_used" |
  "swap_used")``, ``("model", name, "vram" | "rss" | "cpu" | "tokens_per_s" |
  "prompt_tokens_per_s" | "busy_slots" | "kv_cache_usage")``.
* The sampler is the only scraper of the servers' ``/metrics`` (a scrape resets
  llama-server's averaged gauges): front ends read its snapshots instead of scraping.
* ``servers()`` items are :class:`ServerRef` or tuples ``(name, pid, base_url[, api_key])``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from tui.core.telemetry.metrics import ServerScraper, ServerStats
from tui.core.telemetry.nvml import GpuReading, GpuSource
from tui.core.telemetry.procs import ProcessTable, Usage, foreign_gpu_pids, foreign_note, usage_for
from tui.core.telemetry.system import SystemInfo, SystemReader


@dataclass(frozen=True)
class ServerRef:
    """A running server the sampler should watch."""

    name: str  # the model's name in the registry
    pid: int | None  # root of its process tree (None: not a local process, e.g. external)
    base_url: str | None = None  # OpenAI base (…/v1) or origin; None: do not scrape
    api_key: str | None = None


@dataclass(frozen=True)
class ModelSample:
    name: str
    pid: int | None
    usage: Usage | None  # None when the server is not a local process
    server: ServerStats | None  # None when not scraped


@dataclass(frozen=True)
class Snapshot:
    seq: int
    at: float  # wall-clock time (time.time())
    gpu: GpuReading
    system: SystemInfo
    models: tuple[ModelSample, ...] = ()
    foreign_pids: tuple[int, ...] = ()  # GPU PIDs that do not exist here (containers)
    notes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    cost: tuple[tuple[str, float], ...] = ()  # (part, CPU seconds)

    def model(self, name: str) -> ModelSample | None:
        return next((m for m in self.models if m.name == name), None)

    @property
    def cost_total(self) -> float:
        return dict(self.cost).get("total", 0.0)


def _as_ref(item: Any) -> ServerRef:
    if isinstance(item, ServerRef):
        return item
    name, pid, url, *rest = tuple(item)
    return ServerRef(name, pid, url, rest[0] if rest else None)


class History:
    """Bounded ring buffers of numbers per series key, aligned on sample times."""

    def __init__(self, points: int) -> None:
        self.points = max(2, int(points))
        self._lock = threading.Lock()
        self._times: deque[float] = deque(maxlen=self.points)
        self._series: dict[tuple, deque] = {}
        self._absent: dict[tuple, int] = {}  # model series key → samples absent in a row

    def record(self, values: dict[tuple, float | None], at: float) -> None:
        with self._lock:
            self._times.append(at)
            n = len(self._times)
            for key, v in values.items():
                d = self._series.get(key)
                if d is None:
                    d = self._series[key] = deque([None] * (n - 1), maxlen=self.points)
                d.append(v)
                self._absent.pop(key, None)
            for key in [k for k in self._series if k not in values]:
                self._series[key].append(None)
                gone = self._absent.get(key, 0) + 1
                if gone >= self.points:
                    del self._series[key]
                    self._absent.pop(key, None)
                else:
                    self._absent[key] = gone

    def series(self, key: tuple) -> tuple[float | None, ...]:
        with self._lock:
            d = self._series.get(key)
            return tuple(d) if d is not None else ()

    def times(self) -> tuple[float, ...]:
        with self._lock:
            return tuple(self._times)

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._series)

    def __len__(self) -> int:
        return len(self._times)


def history_values(snap: Snapshot) -> dict[tuple, float | None]:
    """The numbers of one snapshot that go into history, by series key."""
    v: dict[tuple, float | None] = {}
    for g in snap.gpu.gpus:
        v[("gpu", g.index, "mem_used")] = g.mem_used
        v[("gpu", g.index, "util")] = g.util_percent
        v[("gpu", g.index, "power")] = g.power_w
        v[("gpu", g.index, "temp")] = g.temp_c
    s = snap.system
    v[("system", "cpu")] = s.cpu_percent
    v[("system", "ram_used")] = s.ram_used
    v[("system", "swap_used")] = s.swap_used
    for m in snap.models:
        u, st = m.usage, m.server
        v[("model", m.name, "rss")] = u.rss_bytes if u else None
        v[("model", m.name, "cpu")] = u.cpu_percent if u else None
        v[("model", m.name, "vram")] = u.vram_bytes if u else None
        v[("model", m.name, "tokens_per_s")] = st.tokens_per_s if st else None
        v[("model", m.name, "prompt_tokens_per_s")] = st.prompt_tokens_per_s if st else None
        v[("model", m.name, "busy_slots")] = st.busy_slots if st else None
        v[("model", m.name, "kv_cache_usage")] = st.kv_cache_usage if st else None
    return v


class Sampler:
    """Samples GPUs, the host and each server's process tree and endpoints."""

    def __init__(self, servers: Callable[[], Iterable[Any]] | None = None, *, interval: float = 1.0,
                 history_s: float = 300.0, gpu_source: GpuSource | None = None,
                 scrape: bool = True, scrape_timeout: float = 0.5,
                 http_get: Callable | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.servers = servers or (lambda: [])
        self.interval = float(interval)
        self.scrape = scrape
        self.scrape_timeout = scrape_timeout
        self._http_get = http_get
        if gpu_source is None:
            from tui.core.telemetry.nvml import NvmlSource

            gpu_source = NvmlSource()
        self.gpu_source = gpu_source
        self.system = SystemReader()
        self.table = ProcessTable()
        self.history = History(round(history_s / self.interval))
        self._scrapers: dict[tuple[str, str], ServerScraper] = {}
        self._subs: list[Callable[[Snapshot], Any]] = []
        self._subs_lock = threading.Lock()
        self._latest: Snapshot | None = None
        self._seq = 0
        self._sample_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- subscribers -------------------------------------------------------------------

    def subscribe(self, fn: Callable[[Snapshot], Any]) -> Callable[[], None]:
        """Call ``fn(snapshot)`` after every sample (in the sampler thread); returns unsubscribe."""
        with self._subs_lock:
            self._subs.append(fn)

        def unsubscribe() -> None:
            with self._subs_lock:
                if fn in self._subs:
                    self._subs.remove(fn)

        return unsubscribe

    @property
    def latest(self) -> Snapshot | None:
        return self._latest

    # -- one sample --------------------------------------------------------------------

    def sample(self) -> Snapshot:
        """Take one sample now (in the caller's thread), record it and notify subscribers."""
        with self._sample_lock:
            snap = self._take()
            self._latest = snap
            self.history.record(history_values(snap), snap.at)
        errors = []
        with self._subs_lock:
            subs = list(self._subs)
        for fn in subs:
            try:
                fn(snap)
            except Exception as exc:  # noqa: BLE001 — a subscriber must not stop the sampler
                errors.append(f"subscriber {getattr(fn, '__qualname__', fn)!s} failed: {exc!r}")
        if errors:
            snap = replace(snap, errors=snap.errors + tuple(errors))
            self._latest = snap
        return snap

    def _take(self) -> Snapshot:
        clock = time.thread_time
        t0 = clock()
        notes: list[str] = []
        errors: list[str] = []
        try:
            refs = [_as_ref(x) for x in self.servers()]
        except Exception as exc:  # noqa: BLE001
            refs = []
            errors.append(f"could not list running servers: {exc}")
        t1 = clock()
        gpu = self.gpu_source.read()
        t2 = clock()
        system = self.system.read()
        t3 = clock()
        self.table.refresh()
        foreign = foreign_gpu_pids(gpu, self.table)
        if foreign:
            notes.append(foreign_note(foreign))
        usages = {r.name: usage_for(r.pid, self.table, gpu, foreign) if r.pid else None for r in refs}
        t4 = clock()
        stats: dict[str, ServerStats | None] = {}
        live = set()
        for r in refs:
            if not (self.scrape and r.base_url):
                stats[r.name] = None
                continue
            key = (r.name, r.base_url)
            live.add(key)
            sc = self._scrapers.get(key)
            if sc is None or sc.api_key != r.api_key:
                sc = self._scrapers[key] = ServerScraper(r.base_url, r.api_key, timeout=self.scrape_timeout,
                                                         get=self._http_get)
            try:
                stats[r.name] = sc.scrape()
            except Exception as exc:  # noqa: BLE001 — one server's oddity must not stop the sample
                stats[r.name] = ServerStats(metrics="error", slots="error", note=f"scrape failed: {exc}")
        for key in self._scrapers.keys() - live:
            del self._scrapers[key]
        t5 = clock()
        models = tuple(ModelSample(r.name, r.pid, usages[r.name], stats[r.name]) for r in refs)
        self._seq += 1
        snap = Snapshot(self._seq, time.time(), gpu, system, models, tuple(sorted(foreign)),
                        tuple(notes), tuple(errors))
        t6 = clock()
        cost = (("servers", t1 - t0), ("gpu", t2 - t1), ("system", t3 - t2), ("procs", t4 - t3),
                ("http", t5 - t4), ("snapshot", t6 - t5), ("total", t6 - t0))
        return replace(snap, cost=cost)

    # -- the thread --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="llmdeck-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._thread = None

    def close(self) -> None:
        self.stop()
        self.gpu_source.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 — never let the thread die; the next tick retries
                pass
            next_t += self.interval
            now = time.monotonic()
            if next_t < now:  # overran: skip the missed ticks
                next_t = now + self.interval - ((now - next_t) % self.interval)
            self._stop.wait(max(0.0, next_t - now))


def supervisor_servers(registry, *, every: float = 2.0) -> Callable[[], list[ServerRef]]:
    """A ``servers`` callable over the supervisor's view of ``registry``, re-read every ``every`` s.

    Local servers come from their pid files (``supervisor.status(registry, probe=False)``: no
    /health probe, so this stays cheap); ``external`` models are always listed (no PID, their
    endpoints are scraped and show ``unreachable`` when nothing answers).
    """
    from tui.core import supervisor

    cache: dict[str, Any] = {"at": -1e18, "refs": []}

    def servers() -> list[ServerRef]:
        now = time.monotonic()
        if now - cache["at"] >= every:
            refs = []
            for st in supervisor.status(registry, probe=False):
                if not (st.pid or st.engine == "external"):
                    continue
                key = None
                try:
                    key = registry.get(st.name).api_key()
                except Exception:  # noqa: BLE001 — a model removed from the registry meanwhile
                    pass
                refs.append(ServerRef(st.name, st.pid, st.url, key))
            cache.update(at=now, refs=refs)
        return cache["refs"]

    return servers
