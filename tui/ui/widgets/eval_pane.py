"""The eval pane (``e``): BFCL function-calling accuracy of the selected model, live per
category, the seed's table, a browser of the failed cases and the last runs side by side.

The form takes the categories (comma or space separated BFCL v4 names or the seed's v3 names;
``all``), the cases per category (``--limit``; empty: all) and thinking (``on``/``off``).
``enter`` in a field or ``ctrl+r`` runs; ``esc`` cancels a run (finished cases are kept,
shown and saved, marked partial, as the CLI does on Ctrl-C).

Threading (:mod:`tui.ui.widgets.run_pane`, shared with the bench pane): one thread worker
builds the core :class:`~tui.core.eval.EvalSession` through ``backend.eval_session`` (it checks
the model and its server, and fetches BFCL's package the first time), runs it and saves the
report; it only posts messages to this pane, progress at most every 0.1 s (a queued progress
message is replaced by a newer one).

Decisions where the issue is silent:

* Default 5 cases per category (65 requests): a quick look; empty runs the whole suite.
* The results table belongs to the run (its model is named above it); the side-by-side table
  follows the selected model (its last :data:`~tui.ui.widgets.run_pane.HISTORY_REPORTS` saved
  runs, one column each).
* The failed cases list shows the run's failures in the order they finished; the highlighted
  one's question, expected answer, what the model called and BFCL's error are shown under it.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, ProgressBar, Static

from tui.ui import keys
from tui.ui.door import CoreDoor
from tui.ui.widgets.run_pane import RunDone, RunPane, RunProgress

DEFAULT_LIMIT = 5
PROGRESS_INTERVAL_S = 0.1
FAILURE_HEADERS = ["Case", "Reason", "BFCL's error"]


def parse_form(categories: str, limit: str, think: str):
    """The form's values → ``EvalOptions``; raises ValueError with one line."""
    from tui.core.eval import BfclError, EvalOptions, parse_category

    names = [s for s in re.split(r"[,\s]+", categories.strip()) if s and s.lower() != "all"]
    try:
        cats = [parse_category(n) for n in names]
    except BfclError as exc:
        raise ValueError(str(exc)) from None
    n = None
    if limit.strip():
        try:
            n = int(limit.strip())
        except ValueError:
            raise ValueError(f"limit: '{limit.strip()}' is not a whole number (empty: every case)") from None
        if n < 1:
            raise ValueError("limit must be 1 or more (empty: every case)")
    t = think.strip().lower()
    if t not in ("on", "off", "yes", "no", "true", "false", ""):
        raise ValueError(f"thinking: '{think.strip()}' is not on or off")
    return EvalOptions(categories=cats, limit=n, thinking=False if t in ("off", "no", "false") else None)


def _short(v: Any, n: int) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n - 1] + "…"


class EvalPane(RunPane):
    BINDINGS = keys.bindings("eval")
    KIND = "eval"
    DOING = "evaluating"
    IDLE_HINT = "enter or ctrl+r runs BFCL · esc cancels a run"

    DEFAULT_CSS = """
    EvalPane { height: 1fr; scrollbar-size-vertical: 1; }
    EvalPane > Static { height: auto; padding: 0 1; }
    EvalPane #eval-status, EvalPane #eval-head { text-wrap: nowrap; text-overflow: ellipsis; }
    EvalPane #eval-form { height: 1; padding: 0 1; }
    EvalPane #eval-form Label { height: 1; color: $text-muted; }
    EvalPane #eval-form Input { height: 1; border: none; padding: 0 1; background: $boost; }
    EvalPane #eval-form Input:focus { background: $primary 25%; }
    EvalPane #eval-categories { width: 28; }
    EvalPane #eval-limit, EvalPane #eval-think { width: 7; }
    EvalPane #eval-bar { height: 1; padding: 0 1; display: none; }
    EvalPane.-running #eval-bar { display: block; }
    EvalPane DataTable { height: auto; max-height: 18; margin: 0 1; }
    EvalPane #eval-failures { max-height: 8; }
    EvalPane #eval-failures-title, EvalPane #eval-history-title { margin-top: 1; }
    """

    def __init__(self, backend: CoreDoor, **kw) -> None:
        super().__init__(backend, **kw)
        self.failures: list = []
        self._planned: dict[str, int] = {}
        self._seed = False

    def compose(self) -> ComposeResult:
        yield Static("", id="eval-head")
        with Horizontal(id="eval-form"):
            yield Label("categories")
            yield Input("all", id="eval-categories", select_on_focus=False)
            yield Label(" limit")
            yield Input(str(DEFAULT_LIMIT), id="eval-limit", select_on_focus=False)
            yield Label(" thinking")
            yield Input("on", id="eval-think", select_on_focus=False)
        yield Static("", id="eval-status")
        yield ProgressBar(id="eval-bar", show_eta=False)
        yield DataTable(id="eval-results", cursor_type="none")
        yield Static("", id="eval-summary")
        yield Static("", id="eval-failures-title")
        yield DataTable(id="eval-failures", cursor_type="row")
        yield Static("", id="eval-case")
        yield Static("", id="eval-history-title")
        yield DataTable(id="eval-history", cursor_type="none")

    def _mount_tables(self) -> None:
        self.failures_table.add_columns(*FAILURE_HEADERS)
        # tab goes from the form to the failed cases: the other tables have nothing to select
        self.results_table.can_focus = False
        self.history_table.can_focus = False

    @property
    def failures_table(self) -> DataTable:
        return self.query_one("#eval-failures", DataTable)

    def focus_form(self) -> None:
        self.query_one("#eval-categories", Input).focus()

    action_run_eval = RunPane.start_run
    action_cancel_eval = RunPane.cancel_run

    # -- the history ---------------------------------------------------------------------------

    def _reports(self, name: str, last: int) -> list:
        return self.backend.eval_reports(name, last)

    def _fill_history(self, title: Static, table: DataTable) -> None:
        from tui.core.eval import history_legend, history_table

        headers, rows = history_table(self.history)
        title.update(Text.assemble(("last runs", "bold underline"), f" of {self.model} (accuracy %)\n",
                                   ("\n".join(history_legend(self.history)), "dim")))
        table.add_columns(*headers)
        for row in rows:
            table.add_row(*_cells(row))

    # -- a run -----------------------------------------------------------------------------------

    def _form(self) -> tuple:
        return (parse_form(self.query_one("#eval-categories", Input).value,
                           self.query_one("#eval-limit", Input).value,
                           self.query_one("#eval-think", Input).value),)

    def _clear_run(self, options: Any) -> None:
        self.failures = []
        self.results_table.clear(columns=True)
        self.failures_table.clear()
        for w in ("#eval-summary", "#eval-failures-title", "#eval-case"):
            self.query_one(w, Static).update("")

    def _new_session(self, name: str, options: Any) -> Any:
        return self.backend.eval_session(name, options)

    def _run_session(self, name: str, session: Any) -> None:
        last = [0.0]

        def progress(p) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or p.done == p.total:
                last[0] = now
                self.post_message(RunProgress(name, p))

        session.run(progress)

    def _kept(self, report: Any) -> bool:
        return bool(report.cases)

    def _started(self, s: Any, cancelling: bool) -> None:
        self._planned = dict(s.report.planned)
        self._seed = s.report.seed
        table = self.results_table
        table.add_columns(*s.report.headers())
        self._show_categories({})
        self.query_one("#eval-bar", ProgressBar).update(total=max(1, s.total), progress=0)
        if not cancelling:
            think = "thinking off" if s.options.thinking is False else "thinking on"
            self._set_status(Text(f"{s.total} cases at {s.report.base_url}, {s.concurrency} in flight, {think}",
                                  style="cyan"))

    def _show_categories(self, per: dict) -> None:
        from tui.core.eval import SEED_004, label

        table = self.results_table
        table.clear()
        for cat, planned in self._planned.items():
            done, correct, _ = per.get(cat, (0, 0, planned))
            acc = f"{100 * correct / done:.2f}" if done else "-"
            row = [label(cat), f"{done}/{planned}" if done < planned else str(done), acc]
            if self._seed:
                row.append(f"{SEED_004[cat]:.2f}" if cat in SEED_004 else "-")
            table.add_row(*_cells(row))

    def _show_progress(self, p: Any) -> None:
        acc = "-" if p.accuracy is None else f"{p.accuracy:.1f}%"
        self._set_status(Text.assemble((f"{p.done}/{p.total} cases", "bold"), " · ", (f"{acc} correct", "bold cyan"),
                                       f" · {p.cases_per_s:.1f} cases/s · {p.in_flight} in flight · "
                                       f"{p.elapsed_s:.0f}s"))
        self.query_one("#eval-bar", ProgressBar).update(total=max(1, p.total), progress=p.done)
        self._show_categories(p.per_category)

    def _done(self, message: RunDone) -> None:
        rep = message.report
        where = self._saved_where(message.path)
        if message.error and rep is None:
            self._failed(message)
            return
        self.report = rep
        self._show_report(rep)
        ov = rep.overall()
        acc = "-" if ov["accuracy"] is None else f"{ov['accuracy']:.2f}%"
        if message.cancelled:
            t = Text(f"cancelled · {ov['cases']} case(s) kept (partial), {acc} correct{where}", style="yellow")
        else:
            t = Text(f"done: {ov['cases']} cases, {acc} correct (case-weighted){where}", style="green")
        failed = sum(1 for r in rep.cases if r.reason in ("server error", "timeout"))
        if failed:
            t.append(f" · {failed} request(s) failed", style="bold red")
        if message.error:
            t.append(f" · {message.error}", style="bold red")
        self._set_status(t)

    def _show_report(self, rep: Any) -> None:
        table = self.results_table
        table.clear()
        for row in rep.rows():
            table.add_row(*_cells(row))
        lines = [rep.summary_line()]
        reasons = rep.reasons()
        if reasons:
            lines.append("failures: " + " · ".join(f"{k} {v}" for k, v in reasons.items()))
        self.query_one("#eval-summary", Static).update(Text("\n".join(lines), style="dim"))
        self.failures = rep.failures()
        self.query_one("#eval-failures-title", Static).update(
            Text.assemble(("failed cases", "bold underline"), f" ({len(self.failures)}; ↑↓ shows one)")
            if self.failures else Text("no failed case", style="green"))
        ft = self.failures_table
        ft.clear()
        for r in self.failures:
            ft.add_row(*_cells([r.id, r.reason or "?", _short(r.error or "-", 60)]))
        if self.failures:
            self._show_case(self.failures[0])

    @on(DataTable.RowHighlighted, "#eval-failures")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.failures):
            self._show_case(self.failures[event.cursor_row])

    def _show_case(self, r: Any) -> None:
        t = Text.assemble((r.id, "bold"), f" ({r.category}, {r.reason})\n")
        for name, value in (("question", r.question), ("expected", r.expected), ("got", r.got),
                            ("BFCL", r.error or "-")):
            t.append(f"{name:>9} ", style="bold")
            t.append(_short(value, 400) + "\n")
        self.query_one("#eval-case", Static).update(t)


def _cells(row: list) -> list[Text]:
    """Plain text cells: a DataTable reads ``str`` cells as markup, which ate ``[simple]``."""
    return [Text(str(c)) for c in row]
