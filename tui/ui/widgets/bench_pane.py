"""The bench pane (``b``): load the selected model, watch the run, read the seed's table, a
latency histogram and the model's last saved runs side by side.

The form takes the workloads (comma or space separated: ``burst``, ``concurrency=N``,
``rate=R``, or ``seed`` for the seed table's four), the requests per workload and the cap on
each reply's length (empty: the prompt's own length). ``enter`` in a field or ``ctrl+r`` runs;
``esc`` cancels a run (the workload in flight stops; workloads already finished are kept,
shown and saved, as the CLI does on Ctrl-C).

Threading: one thread worker builds the core :class:`~tui.core.bench.BenchSession` (through
``backend.bench_session``: the preflight blocks on HTTP), runs it and saves the report; it only
posts messages to this pane. Progress arrives at most every 0.1 s (``progress_interval_s``)
and a queued progress message is replaced by a newer one (``can_replace``), so a busy screen
never falls behind. ``cancel()`` of the core session is thread-safe.

Decisions where the issue is silent:

* Defaults ``concurrency=4``, 20 requests, 128 max tokens: a quick look (seconds on a big
  model at tens of tok/s) rather than the CLI's 100 requests at the prompts' full length.
* One run at a time for the whole app; the results table belongs to the run (its model is
  named above it) while the side-by-side table follows the selected model.
* The side-by-side table lists the last :data:`HISTORY_REPORTS` saved reports of the model,
  newest first, one row per workload; TTFT/E2E figures are p50 unless marked p99.
* The histogram shows the highlighted row of the results table (the last finished workload
  at first): 20 equal-width bins from the fastest to the slowest request, one block character
  per bin scaled to the fullest bin.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, Label, ProgressBar, Static

from tui.core.bench.results import SEED_HEADERS
from tui.ui import keys

DEFAULT_WORKLOAD = "concurrency=4"
DEFAULT_REQUESTS = 20
DEFAULT_MAX_TOKENS = 128
HISTORY_REPORTS = 5
PROGRESS_INTERVAL_S = 0.1  # ≤ 10 Hz
RESULT_HEADERS = [*SEED_HEADERS, "Req", "Err"]
HISTORY_HEADERS = ["When", "Workload", "tok/s", "TTFT p50", "TTFT p99", "E2E p50", "Err", "Settings"]
BLOCKS = "▁▂▃▄▅▆▇█"


# -- messages (posted by the worker to the pane) --------------------------------------------


class BenchStarted(Message):
    def __init__(self, model: str, report: Any) -> None:
        super().__init__()
        self.model = model
        self.report = report


class BenchProgress(Message):
    """The latest ``Progress`` of the run; a newer one replaces a queued older one."""

    def __init__(self, model: str, progress: Any) -> None:
        super().__init__()
        self.model = model
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BenchProgress) and message.model == self.model


class BenchResult(Message):
    """One workload finished (a ``WorkloadResult``)."""

    def __init__(self, model: str, result: Any) -> None:
        super().__init__()
        self.model = model
        self.result = result


class BenchDone(Message):
    """The run ended: ``error`` (one line) or ``cancelled``; ``path`` of the saved report."""

    def __init__(self, model: str, *, report: Any = None, path: Any = None, error: str | None = None,
                 cancelled: bool = False) -> None:
        super().__init__()
        self.model = model
        self.report = report
        self.path = path
        self.error = error
        self.cancelled = cancelled


class BenchHistory(Message):
    def __init__(self, model: str, reports: list) -> None:
        super().__init__()
        self.model = model
        self.reports = reports


# -- rendering --------------------------------------------------------------------------------


def histogram_line(label: str, hist: Any, bin_width: int = 2) -> Text:
    """``label  lo ▕bars▏ hi ms`` for one ``Histogram`` (empty: a dash)."""
    t = Text(f"{label:<5}", style="bold")
    if not hist.counts:
        t.append("-  (no successful request)", style="dim")
        return t
    top = max(hist.counts)
    t.append(f"{hist.edges[0]:>7.0f} ▕")
    for c in hist.counts:
        if c == 0:
            t.append(" " * bin_width)
        else:
            t.append(BLOCKS[min(len(BLOCKS) - 1, (c * len(BLOCKS) - 1) // top)] * bin_width, style="cyan")
    t.append(f"▏ {hist.edges[-1]:.0f} ms")
    return t


def history_rows(reports: list) -> list[list[str]]:
    """Newest first, one row per workload of each report."""
    rows = []
    for rep in reversed(reports):
        when = rep.started_at[5:16].replace("T", " ") if rep.started_at else "?"
        for r in rep.runs:
            tok = r.seed_row()[1]
            rows.append([when, r.title, tok, _ms(r.ttft_ms.p50), _ms(r.ttft_ms.p99), _ms(r.e2e_ms.p50),
                         str(r.errors), rep.settings_summary()])
    return rows


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def parse_form(workload: str, requests: str, max_tokens: str):
    """The form's values → (workloads, BenchOptions); raises ValueError with one line."""
    from tui.core.bench import BenchOptions, WorkloadError, parse_many

    specs = [s for s in re.split(r"[,\s]+", workload.strip()) if s]
    if not specs:
        raise ValueError("workload: give burst, concurrency=N, rate=R or seed")
    try:
        workloads = parse_many(specs)
    except WorkloadError as exc:
        raise ValueError(str(exc)) from None
    try:
        n = int(requests.strip())
    except ValueError:
        raise ValueError(f"requests: '{requests.strip()}' is not a whole number") from None
    if n < 1:
        raise ValueError("requests must be 1 or more")
    cap = None
    if max_tokens.strip():
        try:
            cap = int(max_tokens.strip())
        except ValueError:
            raise ValueError(f"max tokens: '{max_tokens.strip()}' is not a whole number") from None
        if cap < 1:
            raise ValueError("max tokens must be 1 or more (or empty: the prompt's own length)")
    return workloads, BenchOptions(requests=n, max_tokens=cap, progress_interval_s=PROGRESS_INTERVAL_S)


class BenchPane(VerticalScroll):
    BINDINGS = keys.bindings("bench")

    DEFAULT_CSS = """
    BenchPane { height: 1fr; scrollbar-size-vertical: 1; }
    BenchPane > Static { height: auto; padding: 0 1; }
    BenchPane #bench-status, BenchPane #bench-head { text-wrap: nowrap; text-overflow: ellipsis; }
    BenchPane #bench-form { height: 1; padding: 0 1; }
    BenchPane #bench-form Label { height: 1; color: $text-muted; }
    BenchPane #bench-form Input { height: 1; border: none; padding: 0 1; background: $boost; }
    BenchPane #bench-form Input:focus { background: $primary 25%; }
    BenchPane #bench-workload { width: 24; }
    BenchPane #bench-requests, BenchPane #bench-max-tokens { width: 8; }
    BenchPane #bench-bar { height: 1; padding: 0 1; display: none; }
    BenchPane.-running #bench-bar { display: block; }
    BenchPane DataTable { height: auto; max-height: 8; margin: 0 1; }
    BenchPane #bench-history-title { margin-top: 1; }
    """

    def __init__(self, backend: Any, **kw) -> None:
        super().__init__(**kw)
        self.backend = backend
        self.model: str | None = None  # the selected model (history, head)
        self.run_model: str | None = None  # the model of the run shown in the results table
        self.running = False
        self.runs: list = []  # WorkloadResult of the shown run, in order
        self.report = None
        self.saved_path = None
        self.history: list = []  # BenchReport of self.model, oldest first
        self.progress = None  # the last Progress shown
        self.progress_updates = 0
        self.status = Text("")
        self._lock = threading.Lock()
        self._session = None
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        yield Static("", id="bench-head")
        # select_on_focus off: a key typed into a field the pane just focused adds to its text
        # instead of replacing it (the footer says "typing: workload · esc leaves")
        with Horizontal(id="bench-form"):
            yield Label("workload")
            yield Input(DEFAULT_WORKLOAD, id="bench-workload", select_on_focus=False)
            yield Label(" requests")
            yield Input(str(DEFAULT_REQUESTS), id="bench-requests", select_on_focus=False)
            yield Label(" max tokens")
            yield Input(str(DEFAULT_MAX_TOKENS), id="bench-max-tokens", select_on_focus=False)
        yield Static("", id="bench-status")
        yield ProgressBar(id="bench-bar", show_eta=False)
        yield DataTable(id="bench-results", cursor_type="row")
        yield Static("", id="bench-hist")
        yield Static("", id="bench-history-title")
        yield DataTable(id="bench-history", cursor_type="none")

    def on_mount(self) -> None:
        self.results_table.add_columns(*RESULT_HEADERS)
        self.history_table.add_columns(*HISTORY_HEADERS)
        self._set_status(Text("enter or ctrl+r runs · esc cancels a run", style="dim"))
        self._head()

    # -- parts ---------------------------------------------------------------------------

    @property
    def results_table(self) -> DataTable:
        return self.query_one("#bench-results", DataTable)

    @property
    def history_table(self) -> DataTable:
        return self.query_one("#bench-history", DataTable)

    def focus_form(self) -> None:
        self.query_one("#bench-workload", Input).focus()

    def _set_status(self, text: Text) -> None:
        self.status = text
        self.query_one("#bench-status", Static).update(text)

    def _head(self) -> None:
        head = self.query_one("#bench-head", Static)
        if self.model is None:
            head.update("no model selected")
            return
        st = getattr(self.app, "states", {}).get(self.model)
        state = st.state if st is not None else "…"
        t = Text.assemble((self.model, "bold"), f" · {state}")
        if st is not None and st.url:
            t.append(f" · {st.url}", style="dim")
        if self.running and self.run_model and self.run_model != self.model:
            t.append(f" · benchmarking {self.run_model}", style="yellow")
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

    @work(thread=True, group="bench-history", exclusive=True, exit_on_error=False)
    def _load_history(self, name: str) -> None:
        try:
            reports = self.backend.bench_reports(name, HISTORY_REPORTS)
        except Exception:  # noqa: BLE001 — no side-by-side table then; runs still work
            reports = []
        self.post_message(BenchHistory(name, reports))

    def on_bench_history(self, message: BenchHistory) -> None:
        message.stop()
        if message.model != self.model:
            return
        self.history = message.reports
        self._show_history()

    def _show_history(self) -> None:
        title = self.query_one("#bench-history-title", Static)
        table = self.history_table
        table.clear()
        if self.model is None:
            title.update("")
            return
        if not self.history:
            title.update(Text.assemble(("last runs", "bold underline"), f" of {self.model}: none saved yet",
                                       style=""))
            return
        title.update(Text.assemble(("last runs", "bold underline"),
                                   f" of {self.model} (newest first; ms; p50 unless p99)"))
        for row in history_rows(self.history):
            table.add_row(*row)

    # -- running -------------------------------------------------------------------------------

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run_bench()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel_bench":
            return True if self.running else False  # esc falls through to "back" otherwise
        if action == "run_bench":
            return None if self.running else True
        return True

    def action_run_bench(self) -> None:
        if self.running:
            self.app.bell()
            return
        if self.model is None:
            self._set_status(Text("no model selected", style="bold red"))
            return
        try:
            workloads, options = parse_form(self.query_one("#bench-workload", Input).value,
                                            self.query_one("#bench-requests", Input).value,
                                            self.query_one("#bench-max-tokens", Input).value)
        except ValueError as exc:
            self._set_status(Text(str(exc), style="bold red"))
            return
        self.run_model = self.model
        self.running = True
        self.add_class("-running")
        self.runs, self.report, self.saved_path, self.progress = [], None, None, None
        self.results_table.clear()
        self.query_one("#bench-hist", Static).update("")
        self.query_one("#bench-bar", ProgressBar).update(total=options.requests, progress=0)
        self._cancel.clear()
        self._set_status(Text(f"checking {self.model}…", style="cyan"))
        self._head()
        self.refresh_bindings()
        self._run(self.model, workloads, options)

    @work(thread=True, group="bench", exit_on_error=False)
    def _run(self, name: str, workloads: list, options: Any) -> None:
        from tui.ui.backend import one_line

        try:
            session = self.backend.bench_session(name, workloads, options)
        except Exception as exc:  # noqa: BLE001 — UnknownModel, BenchError, PromptsError: one line
            self.post_message(BenchDone(name, error=one_line(exc)))
            return
        with self._lock:
            self._session = session
            cancelled = self._cancel.is_set()
        if cancelled:
            session.cancel()
        self.post_message(BenchStarted(name, session.report))
        error = None
        try:
            session.run(lambda p: self.post_message(BenchProgress(name, p)),
                        lambda r: self.post_message(BenchResult(name, r)))
        except Exception as exc:  # noqa: BLE001
            error = one_line(exc)
        path = None
        if session.report.runs:
            try:
                path = session.save()
            except OSError as exc:
                error = error or f"the report could not be saved: {one_line(exc)}"
        with self._lock:
            self._session = None
        self.post_message(BenchDone(name, report=session.report, path=path, error=error,
                                    cancelled=bool(session.cancelled)))

    def action_cancel_bench(self) -> None:
        if not self.running:
            return
        with self._lock:
            self._cancel.set()
            session = self._session
        if session is not None:
            session.cancel()
        self._set_status(Text("cancelling…", style="yellow"))

    def on_unmount(self) -> None:
        with self._lock:
            self._cancel.set()
            session = self._session
        if session is not None:
            session.cancel()

    # -- messages from the worker ------------------------------------------------------------

    def on_bench_started(self, message: BenchStarted) -> None:
        message.stop()
        self.report = message.report
        if not self._cancel.is_set():
            extra = message.report.settings_summary()
            self._set_status(Text(f"running against {message.report.base_url}" + (f" ({extra})" if extra else ""),
                                  style="cyan"))

    def on_bench_progress(self, message: BenchProgress) -> None:
        message.stop()
        if not self.running or self._cancel.is_set():
            return
        p = message.progress
        self.progress = p
        self.progress_updates += 1
        n_done = len(self.runs) + 1
        n_all = len(self.report.options.get("workloads", [])) if self.report is not None else 0
        which = f" [{n_done}/{n_all}]" if n_all > 1 else ""
        t = Text.assemble((f"{p.workload}{which}", "bold"),
                          f": {p.done}/{p.total} done · {p.in_flight} in flight · ",
                          (f"{p.tok_s:,.0f} tok/s", "bold cyan"), " · ",
                          (f"{p.errors} errors", "bold red" if p.errors else ""), f" · {p.elapsed_s:.0f}s")
        self._set_status(t)
        self.query_one("#bench-bar", ProgressBar).update(total=max(1, p.total), progress=p.done)

    def on_bench_result(self, message: BenchResult) -> None:
        message.stop()
        r = message.result
        self.runs.append(r)
        table = self.results_table
        table.add_row(*r.seed_row(), str(r.requests), str(r.errors))
        table.move_cursor(row=len(self.runs) - 1)
        self._show_hist(r)

    def on_bench_done(self, message: BenchDone) -> None:
        message.stop()
        self.running = False
        self.remove_class("-running")
        self.saved_path = message.path
        if message.report is not None:
            self.report = message.report
        where = f" · saved {_short(message.path)}" if message.path else ""
        errors = sum(r.errors for r in self.runs)
        if message.error:
            self._set_status(Text(f"{message.model}: {message.error}", style="bold red"))
            self.app.notify(f"bench {message.model}: {message.error}", severity="error", timeout=10)
        elif message.cancelled:
            kept = f"{len(self.runs)} workload(s) kept" if self.runs else "nothing kept"
            self._set_status(Text(f"cancelled · {kept}{where}", style="yellow"))
        else:
            total = sum(r.requests for r in self.runs)
            t = Text(f"done: {len(self.runs)} workload(s), {total} requests", style="green")
            if errors:
                t.append(f", {errors} failed", style="bold red")
                kinds = "; ".join(f"{k} (×{n})" for r in self.runs for k, n in r.error_kinds.items())
                t.append(f" ({kinds})" if kinds else "", style="red")
            t.append(where, style="dim")
            self._set_status(t)
        self._head()
        self.refresh_bindings()
        if message.path is not None and message.model == self.model:
            self._load_history(message.model)

    # -- the histogram -------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#bench-results")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        i = event.cursor_row
        if 0 <= i < len(self.runs):
            self._show_hist(self.runs[i])

    def _show_hist(self, r: Any) -> None:
        t = Text.assemble((r.title, "bold"), " latency (ms): ",
                          f"TTFT p50 {_ms(r.ttft_ms.p50)} p99 {_ms(r.ttft_ms.p99)} · "
                          f"E2E p50 {_ms(r.e2e_ms.p50)} p99 {_ms(r.e2e_ms.p99)}\n")
        t.append_text(histogram_line("TTFT", r.ttft_hist))
        t.append("\n")
        t.append_text(histogram_line("E2E", r.e2e_hist))
        self.query_one("#bench-hist", Static).update(t)


def _short(path: Any) -> str:
    from tui.ui.widgets.format import short_path

    return short_path(path)
