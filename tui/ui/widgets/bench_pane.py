"""The bench pane (``b``): load the selected model, watch the run, read the seed's table, a
latency histogram and the model's last saved runs side by side.

The form takes the workloads (comma or space separated: ``burst``, ``concurrency=N``,
``rate=R``, or ``seed`` for the seed table's four), the requests per workload and the cap on
each reply's length (empty: the prompt's own length). ``enter`` in a field or ``ctrl+r`` runs;
``esc`` cancels a run (the workload in flight stops; workloads already finished are kept,
shown and saved, as the CLI does on Ctrl-C).

Threading (:mod:`tui.ui.widgets.run_pane`, shared with the eval pane): one thread worker builds
the core :class:`~tui.core.bench.BenchSession` (through ``backend.bench_session``: the preflight
blocks on HTTP), runs it and saves the report; it only posts messages to this pane. Progress arrives at most every 0.1 s (``progress_interval_s``)
and a queued progress message is replaced by a newer one (``can_replace``), so a busy screen
never falls behind. ``cancel()`` of the core session is thread-safe.

Decisions where the issue is silent:

* Defaults ``concurrency=4``, 20 requests, 128 max tokens: a quick look (seconds on a big
  model at tens of tok/s) rather than the CLI's 100 requests at the prompts' full length.
* One run at a time for the whole app; the results table belongs to the run (its model is
  named above it) while the side-by-side table follows the selected model.
* The side-by-side table lists the last :data:`~tui.ui.widgets.run_pane.HISTORY_REPORTS` saved reports of the model,
  newest first, one row per workload; TTFT/E2E figures are p50 unless marked p99.
* The histogram shows the highlighted row of the results table (the last finished workload
  at first): 20 equal-width bins from the fastest to the slowest request, one block character
  per bin scaled to the fullest bin.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Label, ProgressBar, Static

from tui.core.bench.results import SEED_HEADERS
from tui.ui import keys
from tui.ui.door import CoreDoor
from tui.ui.messages import event
from tui.ui.widgets.run_pane import RunDone, RunPane, RunProgress

DEFAULT_WORKLOAD = "concurrency=4"
DEFAULT_REQUESTS = 20
DEFAULT_MAX_TOKENS = 128
PROGRESS_INTERVAL_S = 0.1  # ≤ 10 Hz
RESULT_HEADERS = [*SEED_HEADERS, "Req", "Err"]
HISTORY_HEADERS = ["When", "Workload", "tok/s", "TTFT p50", "TTFT p99", "E2E p50", "Err", "Settings"]
BLOCKS = "▁▂▃▄▅▆▇█"


@event
class BenchResult(Message):
    """One workload finished (a ``WorkloadResult``)."""

    model: str
    result: Any


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


class BenchPane(RunPane):
    BINDINGS = keys.bindings("bench")
    KIND = "bench"
    DOING = "benchmarking"
    IDLE_HINT = "enter or ctrl+r runs · esc cancels a run"
    HISTORY_HEADERS = HISTORY_HEADERS

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

    def __init__(self, backend: CoreDoor, **kw) -> None:
        super().__init__(backend, **kw)
        self.runs: list = []  # WorkloadResult of the shown run, in order
        self.progress_updates = 0

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

    def _mount_tables(self) -> None:
        self.results_table.add_columns(*RESULT_HEADERS)

    def focus_form(self) -> None:
        self.query_one("#bench-workload", Input).focus()

    action_run_bench = RunPane.start_run
    action_cancel_bench = RunPane.cancel_run

    # -- the history ---------------------------------------------------------------------------

    def _reports(self, name: str, last: int) -> list:
        return self.backend.bench_reports(name, last)

    def _fill_history(self, title: Static, table: DataTable) -> None:
        title.update(Text.assemble(("last runs", "bold underline"),
                                   f" of {self.model} (newest first; ms; p50 unless p99)"))
        for row in history_rows(self.history):
            table.add_row(*row)

    # -- a run -----------------------------------------------------------------------------------

    def _form(self) -> tuple:
        return parse_form(self.query_one("#bench-workload", Input).value,
                          self.query_one("#bench-requests", Input).value,
                          self.query_one("#bench-max-tokens", Input).value)

    def _clear_run(self, workloads: list, options: Any) -> None:
        self.runs = []
        self.results_table.clear()
        self.query_one("#bench-hist", Static).update("")
        self.query_one("#bench-bar", ProgressBar).update(total=options.requests, progress=0)

    def _new_session(self, name: str, workloads: list, options: Any) -> Any:
        return self.backend.bench_session(name, workloads, options)

    def _run_session(self, name: str, session: Any) -> None:
        session.run(lambda p: self.post_message(RunProgress(name, p)),
                    lambda r: self.post_message(BenchResult(name, r)))

    def _kept(self, report: Any) -> bool:
        return bool(report.runs)

    def _started(self, session: Any, cancelling: bool) -> None:
        if not cancelling:
            extra = session.report.settings_summary()
            self._set_status(Text(f"running against {session.report.base_url}" + (f" ({extra})" if extra else ""),
                                  style="cyan"))

    def _show_progress(self, p: Any) -> None:
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

    def _done(self, message: RunDone) -> None:
        if message.report is not None:
            self.report = message.report
        where = self._saved_where(message.path)
        errors = sum(r.errors for r in self.runs)
        if message.error:
            self._failed(message)
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
