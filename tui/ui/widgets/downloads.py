"""The downloads pane: the selected model's quants (on disk / partial / missing, sizes) and
every download of this session with a progress bar, speed and ETA.

It renders what the app hands it: quant rows (from ``modelfiles.download_status``) and
progress events (``tui.core.downloads.Progress``, posted at ≤10 Hz per file, replaceable).
Starting and cancelling downloads are app actions (``d``, ``X``); partial files are kept
on cancel and resumed by the next ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ProgressBar, Static

from tui.ui import keys
from tui.ui.widgets.format import files_text, human_bytes, human_duration


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

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.jobs: dict[str, Job] = {}
        self.model = None

    def compose(self) -> ComposeResult:
        yield Static("", id="dl-head")
        yield Static("", id="dl-quants")
        yield Static(Text("downloads of this session", style="bold underline"), id="dl-jobs-title")
        yield Vertical(id="dl-jobs")

    def show_model(self, model, rows: dict[str, dict] | None) -> None:
        self.model = model
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
        keys_hint = "d downloads the default quant" + (" · X cancels" if getattr(self.app, "downloads", None) else "")
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

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel_download":  # X shows (and works) only while something downloads
            return True if getattr(self.app, "downloads", None) else False
        return True

    def action_cancel_download(self) -> None:
        self.app.action_cancel_download()
