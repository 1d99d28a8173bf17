"""One eval of one model, from the registry to the saved report: what front ends call.

``EvalSession(registry, name, options)`` checks everything that can fail before a request is
sent and raises with a one-line message: ``UnknownModel``, :class:`EvalError` (model not
running or not answering), ``bfcl.BfclError`` (an unknown category, BFCL's package missing).
``run(on_progress, on_result)`` blocks (the TUI calls it from a worker thread) on a fresh event
loop; ``cancel()`` from any thread stops it and keeps the finished cases (the report is then
``partial``); Ctrl-C in the CLI does the same and re-raises. ``save()`` writes
``logs/eval/<model>-<timestamp>.json``.

Settings: the URL, key and served name are the benchmark's (``bench.target``: the supervisor's
port, else ``default_port``, or ``base_url`` of an external model); the chat target adds the
model's sampling ``params`` and its ``reasoning_parser`` / ``tool_call_parser``. Without a
``temperature`` (``temp``) in ``params`` BFCL's default temperature (0.001) is sent.
Concurrency: ``options.concurrency``, else the server's ``total_slots`` from ``/props``, else 4.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.cancellable import CancellableRun
from tui.core.eval import bfcl, results
from tui.core.eval.runner import EvalOptions, Progress, run_cases

if TYPE_CHECKING:
    from tui.core.registry import Registry

DEFAULT_CONCURRENCY = 4


class EvalError(Exception):
    """The model cannot be evaluated now (not running, not answering); one line."""


class EvalSession(CancellableRun):
    """``cancel()`` (any thread) stops the run; finished cases stay in the report."""

    def __init__(self, registry: "Registry", name: str, options: EvalOptions, progress=None) -> None:
        from tui.core.bench import target as bench_target
        from tui.core.bench.runner import BenchError
        from tui.core.chat.client import ChatTarget

        super().__init__()
        self.registry = registry
        self.options = options
        cats = [bfcl.parse_category(c) for c in options.categories] or bfcl.categories()
        self.categories = list(dict.fromkeys(cats))
        model = registry.get(name)
        bfcl.load(progress)  # BFCL's package first: fetched once, or one line saying what to do
        try:
            target, settings = bench_target.resolve(registry, name)
            bench_target.preflight(target, name)
        except BenchError as exc:
            raise EvalError(str(exc)) from None
        self.target = ChatTarget.from_registry(registry, model, url=target.base_url)
        server = bench_target.server_info(target)
        self.params = {} if "temperature" in self.target.defaults else {"temperature": bfcl.DEFAULT_TEMPERATURE}
        self.concurrency = options.concurrency or int(server.get("total_slots") or 0) or DEFAULT_CONCURRENCY
        self.cases: list[bfcl.Case] = []
        planned: dict[str, int] = {}
        for c in self.categories:
            got = bfcl.cases(c, options.limit)
            planned[c] = len(got)
            self.cases.extend(got)
        opts = options.to_dict() | {"categories": self.categories, "concurrency": self.concurrency,
                                    "sampling": dict(self.target.defaults) | self.params}
        self.report = results.EvalReport(model=name, base_url=self.target.base_url, started_at=results.now_iso(),
                                         settings=settings, server=server, options=opts, planned=planned)

    @property
    def total(self) -> int:
        return len(self.cases)

    def run(self, on_progress: Callable[[Progress], None] | None = None,
            on_result: Callable[[results.CaseResult], None] | None = None) -> results.EvalReport:
        rep = self.report
        t0 = time.perf_counter()
        coro = run_cases(self.target, self.cases, concurrency=self.concurrency, thinking=self.options.thinking,
                         params=self.params, max_tokens=self.options.max_tokens, timeout_s=self.options.timeout_s,
                         on_result=on_result, on_progress=on_progress, results=rep.cases)
        try:
            self.run_task(coro)
        except asyncio.CancelledError:
            pass
        finally:
            rep.duration_s = time.perf_counter() - t0
            rep.partial = self.cancelled or len(rep.cases) < len(self.cases)
            rep.bfcl_summary = _summary(rep)
        return rep

    def save(self) -> Path:
        return results.save(self.report, self.registry.logs_dir)


def _summary(rep: results.EvalReport) -> dict[str, float]:
    if rep.partial:
        return {}
    acc = {c.category: (c.correct / c.cases, c.cases) for c in rep.categories() if c.cases}
    try:
        return bfcl.summary(acc)
    except Exception:  # BFCL's summary is an extra; the table stands without it
        return {}
