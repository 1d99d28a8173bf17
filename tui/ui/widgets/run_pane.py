"""What the bench pane and the eval pane share: a form that starts one run of a core session
on the selected model, its live status, cancel, the saved report and the model's last runs.

Threading: one thread worker builds the core session (through the backend's door: it checks
the model and its server, so it blocks), runs it and saves the report; it only posts the
messages below to its pane. ``cancel()`` of a core session is thread-safe, and a cancel that
comes before the session exists is kept (``_cancel``) and passed on once it does.

A subclass names its ``KIND`` (``bench``/``eval``: the widget ids ``#<kind>-…``, the worker
groups, the actions ``run_<kind>``/``cancel_<kind>``) and fills the hooks: the form
(:meth:`_form`), the session (:meth:`_new_session`, :meth:`_run_session`), the history
(:meth:`_reports`, :meth:`_fill_history`) and what each message shows. Textual calls a handler
of every class in the MRO, so the handlers (``on_mount``, ``on_run_*``) live here only and the
subclasses fill hooks.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from rich.text import Text
from textual import on
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from tui.ui.door import CoreDoor
from tui.ui.messages import event

HISTORY_REPORTS = 5


# -- messages (posted by the worker to its pane) -----------------------------------------------


@event
class RunStarted(Message):
    """The session passed its checks and runs."""

    model: str
    session: Any


@event
class RunProgress(Message):
    """The latest progress of the run; a newer one replaces a queued older one."""

    model: str
    progress: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgress) and message.model == self.model


@event
class RunDone(Message):
    """The run ended: ``error`` (one line) or ``cancelled``; ``path`` of the saved report."""

    model: str
    report: Any = None
    path: Any = None
    error: str | None = None
    cancelled: bool = False


@event
class RunHistory(Message):
    """The last saved reports of ``model``, oldest first."""

    model: str
    reports: list


class RunPane(VerticalScroll):
    KIND = ""  # "bench" / "eval"
    DOING = ""  # the head's word while another model runs: "benchmarking" / "evaluating"
    IDLE_HINT = ""  # the status line before the first run
    HISTORY_HEADERS: list[str] | None = None  # fixed columns of the history table (None: per history)

    def __init__(self, backend: CoreDoor, **kw) -> None:
        super().__init__(**kw)
        self.backend = backend
        self.model: str | None = None  # the selected model (history, head)
        self.run_model: str | None = None  # the model of the run shown in the results table
        self.running = False
        self.report = None
        self.saved_path = None
        self.history: list = []  # saved reports of self.model, oldest first
        self.progress = None  # the last progress shown
        self.status = Text("")
        self._lock = threading.Lock()
        self._session = None
        self._cancel = threading.Event()

    def on_mount(self) -> None:
        if self.HISTORY_HEADERS is not None:
            self.history_table.add_columns(*self.HISTORY_HEADERS)
        self._mount_tables()
        self._set_status(Text(self.IDLE_HINT, style="dim"))
        self._head()

    # -- parts ---------------------------------------------------------------------------

    def _part(self, name: str, kind: type = Static):
        return self.query_one(f"#{self.KIND}-{name}", kind)

    @property
    def results_table(self) -> DataTable:
        return self._part("results", DataTable)

    @property
    def history_table(self) -> DataTable:
        return self._part("history", DataTable)

    def _set_status(self, text: Text) -> None:
        self.status = text
        self._part("status").update(text)

    def _head(self) -> None:
        head = self._part("head")
        if self.model is None:
            head.update("no model selected")
            return
        st = getattr(self.app, "states", {}).get(self.model)
        t = Text.assemble((self.model, "bold"), f" · {st.state if st is not None else '…'}")
        if st is not None and st.url:
            t.append(f" · {st.url}", style="dim")
        if self.running and self.run_model and self.run_model != self.model:
            t.append(f" · {self.DOING} {self.run_model}", style="yellow")
        head.update(t)

    # -- the selected model ------------------------------------------------------------------

    def show_model(self, name: str | None) -> None:
        if name == self.model:
            return
        self.model = name
        self._head()
        self.history = []
        self._show_history()
        if name is not None:
            self._load_history(name)

    def _load_history(self, name: str) -> None:
        self.run_worker(partial(self._history_worker, name), thread=True, group=f"{self.KIND}-history",
                        exclusive=True, exit_on_error=False)

    def _history_worker(self, name: str) -> None:
        try:
            reports = self._reports(name, HISTORY_REPORTS)
        except Exception:  # noqa: BLE001 — no side-by-side table then; runs still work
            reports = []
        self.post_message(RunHistory(name, reports))

    def on_run_history(self, message: RunHistory) -> None:
        message.stop()
        if message.model == self.model:
            self.history = message.reports
            self._show_history()

    def _show_history(self) -> None:
        title = self._part("history-title")
        table = self.history_table
        table.clear(columns=self.HISTORY_HEADERS is None)
        if self.model is None:
            title.update("")
            return
        if not self.history:
            title.update(Text.assemble(("last runs", "bold underline"), f" of {self.model}: none saved yet"))
            return
        self._fill_history(title, table)

    # -- running -------------------------------------------------------------------------------

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start_run()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == f"cancel_{self.KIND}":
            return True if self.running else False  # esc falls through to "back" otherwise
        if action == f"run_{self.KIND}":
            return None if self.running else True
        return True

    def start_run(self) -> None:
        if self.running:
            self.app.bell()
            return
        if self.model is None:
            self._set_status(Text("no model selected", style="bold red"))
            return
        try:
            args = self._form()
        except ValueError as exc:
            self._set_status(Text(str(exc), style="bold red"))
            return
        self.run_model = self.model
        self.running = True
        self.add_class("-running")
        self.report, self.saved_path, self.progress = None, None, None
        self._clear_run(*args)
        self._cancel.clear()
        self._set_status(Text(f"checking {self.model}…", style="cyan"))
        self._head()
        self.refresh_bindings()
        self.run_worker(partial(self._run, self.model, args), thread=True, group=self.KIND, exit_on_error=False)

    def _run(self, name: str, args: tuple) -> None:
        from tui.ui.backend import one_line

        try:
            session = self._new_session(name, *args)
        except Exception as exc:  # noqa: BLE001 — UnknownModel, BenchError, EvalError, …: one line
            self.post_message(RunDone(name, error=one_line(exc)))
            return
        with self._lock:
            self._session = session
            cancelled = self._cancel.is_set()
        if cancelled:
            session.cancel()
        self.post_message(RunStarted(name, session))
        error = None
        try:
            self._run_session(name, session)
        except Exception as exc:  # noqa: BLE001
            error = one_line(exc)
        path = None
        if self._kept(session.report):
            try:
                path = session.save()
            except OSError as exc:
                error = error or f"the report could not be saved: {one_line(exc)}"
        with self._lock:
            self._session = None
        self.post_message(RunDone(name, report=session.report, path=path, error=error,
                                  cancelled=bool(session.cancelled)))

    def cancel_run(self) -> None:
        if not self.running:
            return
        self._stop_session()
        self._set_status(Text("cancelling…", style="yellow"))

    def _stop_session(self) -> None:
        with self._lock:
            self._cancel.set()
            session = self._session
        if session is not None:
            session.cancel()

    def on_unmount(self) -> None:
        self._stop_session()

    # -- messages from the worker ------------------------------------------------------------

    def on_run_started(self, message: RunStarted) -> None:
        message.stop()
        self.report = message.session.report
        self._started(message.session, cancelling=self._cancel.is_set())

    def on_run_progress(self, message: RunProgress) -> None:
        message.stop()
        if not self.running or self._cancel.is_set():
            return
        self.progress = message.progress
        self._show_progress(message.progress)

    def on_run_done(self, message: RunDone) -> None:
        message.stop()
        self.running = False
        self.remove_class("-running")
        self.saved_path = message.path
        self._done(message)
        self._head()
        self.refresh_bindings()
        if message.path is not None and message.model == self.model:
            self._load_history(message.model)

    def _failed(self, message: RunDone) -> None:
        """The run failed (before it started, or with nothing to show): red status and a notification."""
        self._set_status(Text(f"{message.model}: {message.error}", style="bold red"))
        self.app.notify(f"{self.KIND} {message.model}: {message.error}", severity="error", timeout=10)

    @staticmethod
    def _saved_where(path: Any) -> str:
        from tui.ui.widgets.format import short_path

        return f" · saved {short_path(path)}" if path else ""

    # -- hooks ---------------------------------------------------------------------------------

    def _mount_tables(self) -> None:
        """Columns and focus of the tables, on mount."""

    def _form(self) -> tuple:
        """The form's values as the arguments of :meth:`_new_session`; ValueError (one line) when wrong."""
        raise NotImplementedError

    def _clear_run(self, *args: Any) -> None:
        """Empty the run's parts for a new run."""

    def _new_session(self, name: str, *args: Any) -> Any:
        """The core session (in the worker thread: blocks; raises one-line errors)."""
        raise NotImplementedError

    def _run_session(self, name: str, session: Any) -> None:
        """Run the session in the worker thread, posting :class:`RunProgress` (and more)."""
        raise NotImplementedError

    def _kept(self, report: Any) -> bool:
        """The report has something to save."""
        raise NotImplementedError

    def _reports(self, name: str, last: int) -> list:
        """The last saved reports of ``name`` (in a worker thread)."""
        raise NotImplementedError

    def _fill_history(self, title: Static, table: DataTable) -> None:
        """The history's title and rows (``self.history`` is not empty)."""
        raise NotImplementedError

    def _started(self, session: Any, cancelling: bool) -> None:
        """The session runs (``cancelling``: a cancel is on its way)."""

    def _show_progress(self, progress: Any) -> None:
        """Show the latest progress."""

    def _done(self, message: RunDone) -> None:
        """Show how the run ended."""
