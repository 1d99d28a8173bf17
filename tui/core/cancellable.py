"""A run that blocks its thread and may be cancelled from any other: what a bench or an eval
session is while it runs.

:meth:`CancellableRun.run_task` runs one coroutine on a fresh event loop (uvloop when
installed, :func:`tui.core.bench.runner.new_event_loop`) in the calling thread (the CLI's
main thread, a TUI worker thread). :meth:`CancellableRun.cancel` from any thread sets
``cancelled`` and cancels the task in flight; a task started after that is cancelled before
its first step. Ctrl-C (``KeyboardInterrupt``) in the CLI cancels the task, lets it clean up
(close its streams) and is raised again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any


class CancellableRun:
    """Base of the sessions (:class:`tui.core.bench.BenchSession`, :class:`tui.core.eval.EvalSession`)."""

    def __init__(self) -> None:
        self.cancelled = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def run_task(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """The coroutine's result; raises ``asyncio.CancelledError`` when :meth:`cancel` stopped it."""
        from tui.core.bench.runner import new_event_loop

        loop = new_event_loop()
        try:
            with self._lock:
                self._loop = loop
                task = self._task = loop.create_task(coro)
                if self.cancelled:
                    task.cancel()
            try:
                return loop.run_until_complete(task)
            except KeyboardInterrupt:  # Ctrl-C in the CLI: let the task clean up, keep what finished
                self.cancelled = True
                task.cancel()
                try:
                    loop.run_until_complete(task)
                except BaseException:
                    pass
                raise
        finally:
            with self._lock:
                self._loop = self._task = None
            loop.close()

    def cancel(self) -> None:
        """Stop the task in flight and any later one (thread-safe)."""
        self.cancelled = True
        with self._lock:
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)
