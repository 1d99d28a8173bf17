"""The downloads pane: the selected model's quants (on disk / partial / missing, sizes) and
every download of this session with a progress bar, speed and ETA.

It owns the download flow, as ``BenchPane`` owns its runs: ``plan(name)`` lists the files in
a thread worker (``DownloadPlanned``), asks before fetching (size, free disk, memory fit),
runs the download in a second worker that posts ``DownloadProgress`` (≤10 Hz, replaceable)
and ``DownloadFinished``, and keeps each model's cancel event (``running``) for ``X``, quit
and the verb rules (``d`` greyed while it runs). Partial files are kept on cancel and resumed
by the next ``d``. When a download ends it posts ``FilesChanged``: the app reads the disk again.
Quant rows (``modelfiles.download_status``) come from the app (``show_model``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ProgressBar, Static

from tui.ui import keys
from tui.ui.messages import DownloadFinished, DownloadPlanned, DownloadProgress, FilesChanged
from tui.ui.widgets.format import files_text, human_bytes, human_duration, short_path


@dataclass
class Job:
    """One download of this session, as the pane shows it."""

    model: str
    quant: str
    total: int
    done: int = 0
    speed: float = 0.0
    eta: float | None = None
    status: str = "planning"
    message: str = ""
    files: dict[str, str] = field(default_factory=dict)  # file → status

    def line(self) -> Text:
        t = Text()
        t.append(f"{self.model} {self.quant}", style="bold")
        t.append(f"  {self.status}", style={"done": "green", "failed": "bold red", "cancelled": "yellow"}.get(
            self.status, "cyan"))
        t.append(f"  {human_bytes(self.done)} / {human_bytes(self.total)}")
        if self.status == "downloading":
            t.append(f"  {human_bytes(self.speed)}/s")
            if self.eta is not None:
                t.append(f"  ETA {human_duration(self.eta)}")
        if self.message:
            t.append(f"  {self.message}", style="red" if self.status == "failed" else "dim")
        return t


class JobView(Vertical):
    DEFAULT_CSS = """
    JobView { height: auto; margin-bottom: 1; }
    JobView > Static { height: auto; }
    """

    def __init__(self, job: Job, **kw) -> None:
        super().__init__(**kw)
        self.job = job

    def compose(self) -> ComposeResult:
        yield Static(self.job.line(), classes="job-line")
        yield ProgressBar(total=max(1, self.job.total), show_eta=False, show_percentage=True)

    def on_mount(self) -> None:
        # the bar rounds its percentage to its width, unknown until the first layout
        self.call_after_refresh(self.refresh_job)

    def refresh_job(self) -> None:
        self.query_one(".job-line", Static).update(self.job.line())
        self.query_one(ProgressBar).update(total=max(1, self.job.total), progress=self.job.done)


def quants_table(model, rows: dict[str, dict]) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("quant")
    t.add_column("size", justify="right")
    t.add_column("on disk")
    t.add_column("", justify="right")
    for q, info in rows.items():
        size = model.quants[q].size_gb if q in model.quants else None
        total = info.get("bytes_total")
        size_s = human_bytes(total) if total else (f"{size:g} GB" if size else "?")
        done = info.get("bytes_done") or 0
        pct = f"{100 * done / total:.0f}%" if total and info.get("status") == "partial" else ""
        mark = " (default)" if q == model.default_quant else ""
        t.add_row(q + mark, size_s, files_text(info.get("status", "missing")), pct)
    return t


class DownloadsPane(VerticalScroll):
    BINDINGS = keys.bindings("downloads")

    DEFAULT_CSS = """
    DownloadsPane { height: 1fr; }
    DownloadsPane > Static { height: auto; }
    """

    def __init__(self, backend, **kw) -> None:
        super().__init__(**kw)
        self.backend = backend
        self.jobs: dict[str, Job] = {}
        self.running: dict[str, threading.Event] = {}  # model → cancel event of a running download
        self.model = None
        self.rows: dict[str, dict] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="dl-head")
        yield Static("", id="dl-quants")
        yield Static(Text("downloads of this session", style="bold underline"), id="dl-jobs-title")
        yield Vertical(id="dl-jobs")

    def show_model(self, model, rows: dict[str, dict] | None) -> None:
        self.model, self.rows = model, rows
        head = self.query_one("#dl-head", Static)
        quants = self.query_one("#dl-quants", Static)
        if model is None:
            head.update("no model selected")
            quants.update("")
            return
        if model.model_path:
            head.update(Text.assemble((model.name, "bold"), f" uses a local file: {model.model_path} "
                                      "(model_path; nothing to download)"))
            quants.update("")
            return
        if not model.repo_id:
            head.update(Text.assemble((model.name, "bold"), " has no repo_id: nothing to download"))
            quants.update("")
            return
        keys_hint = "d downloads the default quant" + (" · X cancels" if self.running else "")
        head.update(Text.assemble((model.name, "bold"), f" · {model.repo_id} · ", (keys_hint, "dim")))
        quants.update(quants_table(model, rows or {}))

    async def update_job(self, job: Job) -> None:
        self.jobs[job.model] = job
        views = {v.job.model: v for v in self.query(JobView)}
        view = views.get(job.model)
        if view is None or view.job is not job:
            if view is not None:
                await view.remove()
            view = JobView(job)
            await self.query_one("#dl-jobs", Vertical).mount(view)
        view.refresh_job()

    # -- the download flow -----------------------------------------------------------------

    @work(thread=True, group="downloads", exit_on_error=False)
    def plan(self, name: str) -> None:
        """List what ``d`` would fetch for ``name`` (network), then ask (on_download_planned)."""
        from tui.ui.backend import one_line

        try:
            plan = self.backend.download_plan(name)
            self.post_message(DownloadPlanned(name, plan=plan, fit=self.backend.memory_fit(name, plan)))
        except Exception as exc:  # noqa: BLE001
            self.post_message(DownloadPlanned(name, error=one_line(exc)))

    def on_download_planned(self, message: DownloadPlanned) -> None:
        from tui.ui.screens.confirm import ConfirmScreen

        if message.error:
            self.notify(f"download {message.model}: {message.error}", severity="error", timeout=12)
            return
        plan = message.plan
        if plan.complete:
            self.notify(f"{message.model} {plan.quant} is already on disk")
            self.post_message(FilesChanged())
            return
        free = f", {human_bytes(plan.free_bytes)} free" if plan.free_bytes is not None else ""
        q = (f"Download {message.model} {plan.quant}: {len(plan.files)} file(s), {human_bytes(plan.need_bytes)} "
             f"to fetch (of {human_bytes(plan.total_bytes)}) into {short_path(plan.target)}{free}?")
        if not plan.fits:
            q += "\nIt does NOT fit on that disk."
        if message.fit is not None:
            q += "\n" + message.fit.line[0].upper() + message.fit.line[1:]

        def go(yes: bool | None) -> None:
            if yes:
                self._start(message.model, plan)

        self.app.push_screen(ConfirmScreen(q, yes="Download"), go)

    def _start(self, name: str, plan) -> None:
        cancel = self.running[name] = threading.Event()
        job = self.jobs[name] = Job(name, plan.quant, plan.total_bytes, done=plan.have_bytes, status="queued")
        self.run_worker(self.update_job(job))
        self.refresh_bindings()  # d greys, X shows
        self.show_model(self.model, self.rows)  # its head line offers X now
        self._run(name, plan, cancel)

    @work(thread=True, group="downloads", exit_on_error=False)
    def _run(self, name: str, plan, cancel: threading.Event) -> None:
        from tui.ui.backend import one_line

        last = [0.0]

        def progress(ev) -> None:
            now = time.monotonic()
            if ev.status in ("downloading", "checking") and now - last[0] < 0.1:
                return
            last[0] = now
            self.post_message(DownloadProgress(name, ev))

        try:
            res = self.backend.download_run(plan, progress, cancel)
        except Exception as exc:  # noqa: BLE001
            self.post_message(DownloadFinished(name, False, one_line(exc)))
            return
        if res.ok:
            self.post_message(DownloadFinished(name, True, f"{len(res.done)} file(s), "
                                                           f"{human_bytes(res.bytes_fetched)} fetched"))
        elif res.cancelled:
            self.post_message(DownloadFinished(name, False, "cancelled; partial files kept (d resumes)"))
        else:
            why = "; ".join(f"{f}: {m}" for f, m in list(res.failed.items())[:2])
            self.post_message(DownloadFinished(name, False, why or "failed"))

    async def on_download_progress(self, message: DownloadProgress) -> None:
        job = self.jobs.get(message.model)
        if job is None:
            return
        ev = message.event
        job.done, job.total = ev.overall_done, ev.overall_total
        job.speed, job.eta = ev.overall_speed, ev.overall_eta
        job.files[ev.file] = ev.status
        job.status = "downloading" if ev.status in ("downloading", "checking", "verifying", "retrying") else (
            job.status if ev.status in ("done", "present", "queued") else ev.status)
        job.message = ev.message if ev.status in ("retrying", "failed") else ""
        await self.update_job(job)

    async def on_download_finished(self, message: DownloadFinished) -> None:
        self.running.pop(message.model, None)
        job = self.jobs.get(message.model)
        if job is not None:
            job.status = "done" if message.ok else ("cancelled" if "cancelled" in message.text else "failed")
            job.message = message.text
            if message.ok:
                job.done = job.total
            await self.update_job(job)
        self.notify(f"download {message.model}: {'done, ' if message.ok else ''}{message.text}",
                    severity="information" if message.ok else "warning", timeout=10)
        self.post_message(FilesChanged())
        self.refresh_bindings()

    def cancel_all(self) -> None:
        """Stop every running download (quit, exit): partial files are kept."""
        for ev in self.running.values():
            ev.set()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel_download":  # X shows (and works) only while something downloads
            return True if self.running else False
        return True

    def action_cancel_download(self) -> None:
        """``X``: cancel the selected model's download (else the first running one), after asking."""
        from tui.ui.screens.confirm import ConfirmScreen

        name = self.model.name if self.model is not None and self.model.name in self.running else None
        if name is None:
            if not self.running:
                self.notify("no download is running")
                return
            name = next(iter(self.running))
        ev = self.running[name]

        def done(yes: bool | None) -> None:
            if yes:
                ev.set()

        self.app.push_screen(ConfirmScreen(f"Cancel the download of {name}? Partial files are kept; d resumes.",
                                           yes="Cancel it"), done)
