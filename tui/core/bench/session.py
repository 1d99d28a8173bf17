"""One benchmark of one model, from the registry to the saved report: what front ends call.

``BenchSession(registry, name, workloads=..., options=..., prompts_file=...)`` checks everything
that can fail before load is sent (the model, its server, the prompts file) and raises
``UnknownModel``, ``BenchError`` or ``PromptsError`` with a one-line message. ``run()`` then
runs the workloads in order over the same prompts, each on a fresh event loop (uvloop when
installed), calling ``on_progress(Progress)`` during a workload and ``on_result(WorkloadResult)``
after each; it blocks, so the TUI calls it from a worker thread and may call ``cancel()`` from
any thread (the workload in flight stops, finished ones stay in the report). ``save()`` writes
the report to ``logs/bench/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.bench import prompts as _prompts
from tui.core.bench import results, target
from tui.core.bench.runner import BenchOptions, Progress, run_workload
from tui.core.bench.workload import Workload
from tui.core.cancellable import CancellableRun

if TYPE_CHECKING:
    from tui.core.registry import Registry


class BenchSession(CancellableRun):
    """``cancel()`` (any thread) stops the workload in flight and skips the rest."""

    def __init__(self, registry: "Registry", name: str, *, workloads: Sequence[Workload],
                 options: BenchOptions = BenchOptions(), prompts_file: str | None = None):
        super().__init__()
        self.registry = registry
        self.workloads = list(workloads)
        self.options = options
        if prompts_file:
            self.prompts = _prompts.load_sharegpt(prompts_file, options.requests, options.seed)
            source = str(prompts_file)
        else:
            self.prompts = _prompts.synthetic(options.requests, options.seed)
            source = "synthetic"
        self.target, settings = target.resolve(registry, name)
        target.preflight(self.target, name)
        self.report = results.BenchReport(
            model=name, base_url=self.target.base_url, started_at=results.now_iso(), settings=settings,
            server=target.server_info(self.target),
            prompts=_prompts.prompts_info(self.prompts, source, options.seed),
            options={"requests": options.requests, "max_tokens": options.max_tokens, "seed": options.seed,
                     "ignore_eos": options.ignore_eos, "timeout_s": options.timeout_s,
                     "workloads": [w.label for w in self.workloads]})

    def run(self, on_progress: Callable[[Progress], None] | None = None,
            on_result: Callable[[results.WorkloadResult], None] | None = None) -> results.BenchReport:
        for w in self.workloads:
            if self.cancelled:
                break
            try:
                result = self.run_task(run_workload(self.target, w, self.prompts, self.options, on_progress))
            except asyncio.CancelledError:
                break
            self.report.runs.append(result)
            if on_result is not None:
                on_result(result)
        return self.report

    def save(self) -> Path:
        return results.save(self.report, self.registry.logs_dir)
