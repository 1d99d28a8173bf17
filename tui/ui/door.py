"""The UI's door to the core: every call the app and its widgets make on ``app.backend``.

:class:`CoreDoor` is a ``typing.Protocol``: the real :class:`tui.ui.backend.Backend` and the
tests' ``FakeBackend`` (``tests/ui_fakes.py``) both implement all of it, and
``tests/test_backend_protocol.py`` checks their method names and signatures against it, so a
caller never needs ``getattr(backend, "x", None)``. Methods may block (psutil, ``/health``
probes, HTTP, the disk): the UI calls them from thread workers.

The core types named here are imported for type checking only: the door costs nothing at
start-up, and widgets name core types (``ModelState``, ``BenchReport`` …) through it rather
than importing core modules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tui.core.bench import BenchOptions, BenchReport, BenchSession, Workload
    from tui.core.connect import Connect
    from tui.core.downloads.plan import Plan
    from tui.core.downloads.transfer import Result
    from tui.core.eval import EvalOptions, EvalReport, EvalSession
    from tui.core.logfiles import Follower
    from tui.core.registry import Registry
    from tui.core.memfit import Fit
    from tui.core.supervisor import ModelState
    from tui.core.telemetry.sampler import Sampler, ServerRef
    from tui.ui.backend import ChatSession


class CoreDoor(Protocol):
    """What the TUI asks of the core (see :class:`tui.ui.backend.Backend` for each method)."""

    registry: Registry  # replaced by the app when models.json is reloaded

    # -- servers -------------------------------------------------------------------------
    def first_status(self) -> dict[str, ModelState]: ...

    def status(self) -> list[ModelState]: ...

    def router_view(self) -> tuple[dict | None, dict[str, dict]]: ...

    def state_of(self, name: str) -> ModelState: ...

    def start(self, name: str) -> ModelState: ...

    def stop(self, name: str) -> ModelState: ...

    def kill(self, name: str) -> ModelState: ...

    def restart(self, name: str) -> ModelState: ...

    def stop_all(self) -> list[str]: ...

    def command_line(self, name: str) -> str: ...

    def connect(self, name: str) -> Connect | None: ...

    # -- files and downloads -------------------------------------------------------------
    def files(self) -> dict[str, str]: ...

    def deletable(self, name: str) -> tuple[list, int]: ...

    def delete_files(self, name: str) -> ModelState: ...

    def download_rows(self, name: str) -> dict[str, dict]: ...

    def download_plan(self, name: str) -> Plan: ...

    def memory_fit(self, name: str, plan: Plan) -> Fit | None: ...

    def download_run(self, plan: Plan, on_progress: Callable[[Any], None], cancel: threading.Event) -> Result: ...

    # -- logs ----------------------------------------------------------------------------
    def log_path(self, name: str) -> Path: ...

    def follower(self, name: str, backlog: int = 200) -> Follower: ...

    def last_log_lines(self, name: str, n: int = 15) -> list[str]: ...

    # -- telemetry -----------------------------------------------------------------------
    def sampler(self, servers: Callable[[], list[ServerRef]], interval: float = 1.0) -> Sampler: ...

    def server_ref(self, state: ModelState) -> ServerRef: ...

    # -- bench and eval --------------------------------------------------------------------
    def bench_session(self, name: str, workloads: list[Workload], options: BenchOptions) -> BenchSession: ...

    def bench_reports(self, name: str, last: int = 5) -> list[BenchReport]: ...

    def eval_session(self, name: str, options: EvalOptions) -> EvalSession: ...

    def eval_reports(self, name: str, last: int = 5) -> list[EvalReport]: ...

    # -- chat ------------------------------------------------------------------------------
    def chat_session(self, name: str) -> ChatSession: ...
