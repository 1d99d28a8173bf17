"""The bench pane (``b``): Pilot tests against a real llama-server with the real SmolLM2 model
through the real backend (core ``BenchSession``, reports saved under ``logs/bench/``), plus
form errors, a stopped model's one-line error, and one 80×24 snapshot of a finished run.

What is faked and why: only the snapshot's session (``FakeBenchSession``) — real timings are
never the same twice, so the screen gets fixed figures through the backend's
``bench_session``/``bench_reports`` methods, the way ``ui_fakes`` feeds the other panes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ui_fakes as F
from textual.widgets import Input
from ui_helpers import make_app, wait_until

from tui.core import supervisor
from tui.core.bench import BenchReport, Histogram, Progress, Summary, WorkloadResult, list_reports
from tui.core.bench.results import ClientOverhead
from tui.ui.app import LlmdeckApp
from tui.ui.backend import Backend
from tui.ui.widgets.bench_pane import BenchPane

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch):
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def tiny(make_deck, tmp_path, monkeypatch):
    """A registry with one SmolLM2 model ("tiny", 2 slots), its server started and ready."""
    monkeypatch.chdir(tmp_path)
    reg = make_deck({"tiny": {"params": {"ctx_size": 1024, "threads": 1, "parallel": 2}}})
    supervisor.start(reg, "tiny")
    st = supervisor.wait_ready(reg, "tiny", timeout=60)
    assert st.state == "ready", st
    yield reg
    supervisor.stop(reg, "tiny", grace=2)


def real_app(reg) -> LlmdeckApp:
    return LlmdeckApp(reg, backend=Backend(reg), status_interval=0.5, telemetry=False)


async def fill(pilot, *values: str) -> None:
    """Type the form's fields in order (workload, requests, max tokens) from the focused first one."""
    for i, v in enumerate(values):
        await pilot.press("ctrl+a", "ctrl+k", *v)
        if i < len(values) - 1:
            await pilot.press("tab")


def cells(table) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def open_bench(pilot, app) -> BenchPane:
    await wait_until(pilot, lambda: app.tabs is not None, what="panes mounted")
    await pilot.press("b")
    await wait_until(pilot, lambda: app.bench_pane is not None and app.tabs.active == "bench"
                     and app.focused is app.bench_pane.query_one("#bench-workload"), what="bench pane focused")
    return app.bench_pane


async def test_run_shows_results_histogram_and_saved_runs(tiny):
    reg = tiny
    app = real_app(reg)
    async with app.run_test(size=(100, 40)) as pilot:
        pane = await open_bench(pilot, app)
        assert pane.model == "tiny"
        await wait_until(pilot, lambda: "none saved yet" in str(pane.query_one("#bench-history-title").render()),
                         what="empty history")
        await fill(pilot, "concurrency=2", "6", "16")
        await pilot.press("enter")
        assert pane.running
        await wait_until(pilot, lambda: not pane.running, timeout=60, what="run finished")
        status = pane.status.plain
        assert status.startswith("done: 1 workload(s), 6 requests"), status
        # the result table, in the seed layout plus requests and errors
        rows = cells(pane.results_table)
        assert len(rows) == 1, rows
        workload, tok_s, ttft, e2e, requests, errors = rows[0]
        assert workload == "concurrency (2)"
        assert float(tok_s) > 0 and float(ttft) > 0 and float(e2e) >= float(ttft)
        assert (requests, errors) == ("6", "0")
        assert pane.progress is not None and pane.progress.total == 6 and pane.progress_updates >= 1
        # the histogram of that workload: TTFT and end-to-end, with the six requests in its bins
        hist = str(pane.query_one("#bench-hist").render())
        assert "TTFT" in hist and "E2E" in hist and "ms" in hist
        assert sum(pane.runs[0].ttft_hist.counts) == 6 and sum(pane.runs[0].e2e_hist.counts) == 6
        # the report was saved and shows in the side-by-side table
        saved = list_reports(reg.logs_dir, "tiny")
        assert len(saved) == 1 and saved[0].path == pane.saved_path
        assert saved[0].options["requests"] == 6 and saved[0].options["max_tokens"] == 16
        assert "saved logs/bench/tiny-" in status
        await wait_until(pilot, lambda: pane.history_table.row_count == 1, what="the run in the history")
        hrow = cells(pane.history_table)[0]
        # the same figures, read back from the saved JSON (rounded there to 0.01)
        assert hrow[1] == "concurrency (2)" and abs(float(hrow[2]) - float(tok_s)) <= 0.1
        assert abs(float(hrow[3]) - float(ttft)) <= 1 and abs(float(hrow[5]) - float(e2e)) <= 1
        assert "2 slots" in hrow[7]
        # a second run (enter in any field) lands beside the first, newest first
        await pilot.press("enter")
        await wait_until(pilot, lambda: not pane.running, timeout=60, what="second run finished")
        await wait_until(pilot, lambda: pane.history_table.row_count == 2, what="two runs side by side")
        assert len(list_reports(reg.logs_dir, "tiny")) == 2
        assert abs(float(cells(pane.history_table)[0][2]) - float(cells(pane.results_table)[0][1])) <= 0.1


async def test_esc_cancels_a_running_bench(tiny):
    reg = tiny
    app = real_app(reg)
    async with app.run_test(size=(100, 40)) as pilot:
        pane = await open_bench(pilot, app)
        await fill(pilot, "concurrency=2", "400", "64")
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.progress is not None and pane.progress.done >= 2, timeout=60,
                         what="requests finishing")
        assert app.check_action("back", ()) is True and pane.check_action("cancel_bench", ()) is True
        t0 = time.monotonic()
        await pilot.press("escape")
        await wait_until(pilot, lambda: not pane.running, timeout=15, what="cancelled")
        assert time.monotonic() - t0 < 10
        assert pane.status.plain.startswith("cancelled · nothing kept"), pane.status.plain
        assert pane.progress.done < 400
        assert pane.results_table.row_count == 0
        assert list_reports(reg.logs_dir, "tiny") == []  # no workload finished: nothing saved
        # esc is "back" again once nothing runs, and the server still answers a new run
        assert pane.check_action("cancel_bench", ()) is False
        await pilot.press("shift+tab", "shift+tab")  # back to the first field
        assert app.focused is pane.query_one("#bench-workload")
        await fill(pilot, "burst", "2", "4")
        await pilot.press("enter")
        # (2 short requests may finish within the key press itself: wait for the result, not for running)
        await wait_until(pilot, lambda: not pane.running and pane.status.plain.startswith("done"), timeout=60,
                         what="run after cancel")
        assert pane.status.plain.startswith("done: 1 workload(s), 2 requests"), pane.status.plain
        assert cells(pane.results_table)[0][0] == "burst" and cells(pane.results_table)[0][4:] == ["2", "0"]


async def test_stopped_model_and_bad_form_give_one_line(make_deck, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reg = make_deck({"tiny": {}})
    app = real_app(reg)
    async with app.run_test(size=(100, 40)) as pilot:
        pane = await open_bench(pilot, app)
        await fill(pilot, "concurrency=x")
        await pilot.press("enter")
        assert not pane.running
        assert pane.status.plain == "workload 'concurrency=x': 'x' is not a number"
        await fill(pilot, "burst", "0")
        await pilot.press("enter")
        assert pane.status.plain == "requests must be 1 or more"
        await pilot.press("ctrl+a", "ctrl+k", "3", "ctrl+r")  # ctrl+r runs from any field
        # the server is not running: the core's preflight says so in one line
        await wait_until(pilot, lambda: not pane.running and pane.status.plain.startswith("tiny: "), timeout=20,
                         what="preflight error")
        msg = pane.status.plain
        assert "\n" not in msg and "tiny" in msg and "Traceback" not in msg
        assert any("bench tiny:" in n.message for n in app._notifications)
        assert list_reports(reg.logs_dir, "tiny") == []


# -- the snapshot: fixed figures through a fake session -----------------------------------------


def fixed_result(title="concurrency (4)", spec="concurrency=4", scale=1.0) -> WorkloadResult:
    ttft = [scale * (90 + 400 * (i / 19) ** 3) for i in range(20)]  # most fast, a slow tail
    e2e = [scale * (900 + 40 * i + (i % 4) * 90) for i in range(20)]
    return WorkloadResult(
        workload=spec, title=title, requests=20, completed=20, errors=0, error_kinds={}, duration_s=6.2,
        output_tokens=2560, prompt_tokens=3100, output_tok_s=412.9 / scale, req_s=3.2,
        ttft_ms=Summary.of(ttft), e2e_ms=Summary.of(e2e), tpot_ms=Summary.of([7.1]),
        server_prompt_ms=Summary.of([]), ttft_hist=Histogram.of(ttft), e2e_hist=Histogram.of(e2e),
        client=ClientOverhead(cpu_pct=12.0))


def fixed_report(when: str, scale: float, path: Path | None = None) -> BenchReport:
    return BenchReport(model="glm-5", base_url="http://127.0.0.1:8001/v1", started_at=when,
                       settings={"quant": "UD-IQ2_XXS", "params": {"parallel": 4}}, server={},
                       prompts={"source": "synthetic"}, options={"requests": 20, "workloads": ["concurrency=4"]},
                       runs=[fixed_result(scale=scale)], path=path)


class FakeBenchSession:
    """Plays one progress update and one fixed result; ``save()`` adds the report to the history."""

    def __init__(self, backend, name, workloads, options) -> None:
        self.backend = backend
        self.options = options
        self.cancelled = False
        self.report = fixed_report("2026-01-01T12:05:00+0000", 1.0)
        self.report.options["workloads"] = [w.label for w in workloads]

    def run(self, on_progress, on_result):
        on_progress(Progress("concurrency=4", 11, 20, 4, 0, 1408, 3.4, 401.0, 3.2))
        r = fixed_result()
        self.report.runs = [r]
        on_result(r)
        return self.report

    def cancel(self) -> None:
        self.cancelled = True

    def save(self) -> Path:
        self.report.path = Path.cwd() / "logs/bench/glm-5-20260101-120500.json"
        self.backend.saved.append(self.report)
        return self.report.path


def fake_bench(be) -> None:
    be.saved = [fixed_report("2026-01-01T11:40:00+0000", 1.3), fixed_report("2026-01-01T11:52:00+0000", 1.1)]
    be.bench_session = lambda name, workloads, options: FakeBenchSession(be, name, workloads, options)
    be.bench_reports = lambda name, last=5: [r for r in be.saved if r.model == name][-last:]


async def test_fake_session_fills_every_part(tmp_path, monkeypatch):
    """The pane's parts from fixed figures (what the snapshot shows), checked as values."""
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states())
    fake_bench(be)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_bench(pilot, app)
        await wait_until(pilot, lambda: pane.history_table.row_count == 2, what="history")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not pane.running and pane.history_table.row_count == 3, what="done")
        expected = fixed_result()
        assert cells(pane.results_table) == [[*expected.seed_row(), "20", "0"]]
        assert expected.seed_row()[1:] == ["413", f"{expected.ttft_ms.p50:.0f}", f"{expected.e2e_ms.p50:.0f}"]
        hist = str(pane.query_one("#bench-hist").render())
        assert f"{min(expected.ttft_hist.edges):>7.0f} ▕" in hist and f"{expected.e2e_hist.edges[-1]:.0f} ms" in hist
        assert [r[0] for r in cells(pane.history_table)] == ["01-01 12:05", "01-01 11:52", "01-01 11:40"]
        assert cells(pane.history_table)[0][7] == "UD-IQ2_XXS · 4 slots"
        assert pane.status.plain == "done: 1 workload(s), 20 requests · saved logs/bench/glm-5-20260101-120500.json"


def test_snapshot_finished_run_80x24(snap_compare, tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), sampler=F.FakeSampler(F.snapshots(30)))
    fake_bench(be)
    app.animation_level = "none"

    async def run_before(pilot):
        await wait_until(pilot, lambda: len(app.states) == 4 and app.files.get("glm-5") == "partial",
                         what="states and files")
        pane = await open_bench(pilot, app)
        await wait_until(pilot, lambda: pane.history_table.row_count == 2, what="history")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not pane.running and pane.history_table.row_count == 3, what="done")
        await pilot.press("tab", "tab", "tab")  # focus on the results table: the form scrolls away
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
