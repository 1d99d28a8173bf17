"""``llmdeck download MODEL [--quant Q] [--dry-run] [--force] [--json]``.

Plans first (files and sizes at a pinned commit, shard groups, the GGUF header read with a
Range request, free space), refuses when the rest does not fit unless ``--force``, then
downloads into ``models/<Repo-name>/<QUANT>/`` with resume and sha256 checks.

Output: the plan and progress on stdout — a rich display on a terminal, plain lines
otherwise (at most one progress line a second, plus one per state change), JSON lines with
``--json``. Problems are one line on stderr. Exit 0 when every file is complete, 1 when the
plan or a file failed (or ``--dry-run`` finds it does not fit), 2 for a usage/registry error,
130 when interrupted (Ctrl-C or SIGTERM: partial files are kept and the next run resumes).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from tui.cli.common import load_model
from tui.cli.output import EXIT_FAIL, EXIT_OK, EXIT_USAGE, error, human_bytes, human_duration, is_tty, warn
from tui.core.verbs import download_refusal


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="download a model's quant from the Hugging Face Hub "
                       "(resumable, sha256-verified)")
    p.add_argument("model")
    p.add_argument("--quant", "-q", help="the quant to fetch (default: the model's default_quant); "
                   "a quant not in models.json is looked up by folder/name in the repo")
    p.add_argument("--dry-run", action="store_true",
                   help="show files, sizes, the model's header and the disk verdict; download nothing "
                        "(exit 1 if it would not fit)")
    p.add_argument("--force", action="store_true", help="download even if the free-space check fails")
    p.add_argument("--json", action="store_true", help="the plan, then progress events, as JSON lines")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="files fetched at once (default 2)")
    p.set_defaults(func=cmd_download)


def _header_line(h) -> str:
    s = h.summary()
    parts = [s["architecture"] or "?"]
    if s["name"]:
        parts[0] += f' "{s["name"]}"'
    if s["size_label"]:
        parts.append(s["size_label"])
    if s["file_type"]:
        parts.append(s["file_type"])
    if s["context_length"]:
        parts.append(f"ctx {s['context_length']}")
    if s["block_count"]:
        parts.append(f"{s['block_count']} layers")
    if s["expert_count"]:
        parts.append(f"{s['expert_count']} experts ({s['expert_used_count'] or '?'} active)")
    if s["vocab_size"]:
        parts.append(f"vocab {s['vocab_size']}")
    types = s["tensor_types"]
    if types:
        parts.append("tensors " + ", ".join(list(types)[:4]))
    return " · ".join(parts)


def print_plan(plan, fit=None) -> None:
    print(f"{plan.model}  {plan.quant}  {plan.repo_id} @ {plan.revision[:12]}  →  {plan.target}")
    width = max(len(f.name) for f in plan.files)
    for f in plan.files:
        state = f.state if f.state != "partial" else f"partial ({human_bytes(f.have)})"
        print(f"  {f.name.ljust(width)}  {human_bytes(f.size):>10}  {state}")
    for g in plan.groups:
        line = f"  {g.count} shards of {g.prefix}"
        if g.missing:
            line += f" — the repo lacks {', '.join(g.missing)}"
        print(line)
    if plan.header is not None:
        print(f"model: {_header_line(plan.header)}")
    elif plan.header_error:
        print(f"model: header not read ({plan.header_error})")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    free = human_bytes(plan.free_bytes) if plan.free_bytes is not None else "unknown"
    print(f"total {human_bytes(plan.total_bytes)} · on disk {human_bytes(plan.have_bytes)} · "
          f"to download {human_bytes(plan.need_bytes)} · free {free} → {verdict}")
    if fit is not None:
        print(fit.line)


class _PlainReporter:
    """Plain progress lines: state changes always, a progress line at most every second."""

    def __init__(self, every: float = 1.0):
        self.every = every
        self.last = 0.0
        self.lock = threading.Lock()
        self.last_status: dict[str, str] = {}

    def __call__(self, ev) -> None:
        now = time.monotonic()
        with self.lock:
            changed = self.last_status.get(ev.file) != ev.status
            self.last_status[ev.file] = ev.status
            if ev.status == "queued":
                return
            if not changed and ev.status not in ("retrying",) and now - self.last < self.every:
                return
            if ev.status in ("downloading", "checking"):
                self.last = now
            line = f"{ev.file}  {ev.status}  {human_bytes(ev.done)} / {human_bytes(ev.total)}"
            if ev.status == "downloading":
                if ev.resumed_from and changed:
                    line += f"  (resuming at {human_bytes(ev.resumed_from)})"
                line += f"  {human_bytes(ev.speed)}/s  eta {human_duration(ev.eta)}"
                line += (f"  | total {human_bytes(ev.overall_done)} / {human_bytes(ev.overall_total)}"
                         f"  {human_bytes(ev.overall_speed)}/s  eta {human_duration(ev.overall_eta)}")
            if ev.message:
                line += f"  {ev.message}"
            print(line, flush=True)


class _JsonReporter:
    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self, ev) -> None:
        from dataclasses import asdict

        with self.lock:
            print(json.dumps({"event": "progress", **asdict(ev)}), flush=True)


class _RichReporter:
    """A rich progress display: one bar per active file plus the total."""

    def __init__(self, plan):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=None),
            DownloadColumn(binary_units=True),
            TextColumn("{task.fields[speed]:>11}"),
            TextColumn("{task.fields[eta]:>8}"),
            TextColumn("{task.fields[status]}"),
            expand=True, refresh_per_second=8,
        )
        self.total = self.progress.add_task("[bold]total", total=plan.total_bytes,
                                            completed=plan.have_bytes, speed="", eta="", status="")
        self.tasks: dict[str, int] = {}
        self.plan = plan
        self.lock = threading.Lock()

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, ev) -> None:
        with self.lock:
            tid = self.tasks.get(ev.file)
            if tid is None:
                if ev.status in ("queued",):
                    return
                tid = self.progress.add_task(ev.file, total=ev.total, completed=ev.done, speed="", eta="",
                                             status="")
                self.tasks[ev.file] = tid
            spd = f"{human_bytes(ev.speed)}/s" if ev.status == "downloading" else ""
            eta = human_duration(ev.eta) if ev.status == "downloading" else ""
            status = ev.status if ev.status != "downloading" else ""
            if ev.message:
                status += f" {ev.message}"
            self.progress.update(tid, completed=ev.done, total=ev.total, speed=spd, eta=eta,
                                 status=status[:60])
            self.progress.update(self.total, completed=ev.overall_done,
                                 speed=f"{human_bytes(ev.overall_speed)}/s" if ev.overall_speed else "",
                                 eta=human_duration(ev.overall_eta) if ev.overall_speed else "")


def cmd_download(args) -> int:
    reg, model = load_model(args)
    refusal = download_refusal(model, reg.path)  # the TUI's d key follows the same rule
    if refusal:
        error(refusal)
        return EXIT_USAGE
    quant = args.quant or model.default_quant
    if not quant:
        error(f"model '{model.name}' has no default_quant: pass --quant "
              f"(registered: {', '.join(model.quants) or 'none'})")
        return EXIT_USAGE
    if args.workers < 1:
        error("--workers must be 1 or more")
        return EXIT_USAGE

    from tui.core.downloads import Download, DownloadError, make_plan

    try:
        plan = make_plan(reg, model, quant)
    except DownloadError as exc:
        error(str(exc))
        return EXIT_FAIL

    from tui.core import memfit

    fit = memfit.of_plan(plan, model)
    if args.json:
        print(json.dumps({"event": "plan", **plan.to_dict(), "memory": fit.to_json()}), flush=True)
    else:
        print_plan(plan, fit)
    if args.dry_run:
        return EXIT_OK if plan.fits or args.force else EXIT_FAIL
    if not plan.fits and not args.force:
        from tui.core.downloads import NotEnoughSpace

        try:
            plan.check_space()
        except NotEnoughSpace as exc:
            error(str(exc))
        return EXIT_FAIL
    for g in plan.groups:
        if g.missing:
            warn(f"{model.repo_id}: the repo lacks {', '.join(g.missing)}; llama-server will not load "
                 f"{g.prefix} until they exist")
    if plan.complete:
        if args.json:
            print(json.dumps({"event": "result", "ok": True, "done": [f.name for f in plan.files], "failed": {},
                              "cancelled": False, "bytes_fetched": 0, "elapsed_s": 0.0}), flush=True)
        else:
            print(f"already downloaded: {plan.first.dest if plan.first else plan.target}")
        return EXIT_OK

    dl = Download(plan, workers=args.workers, force=args.force)
    reporter = (_JsonReporter() if args.json else _RichReporter(plan) if is_tty() else _PlainReporter())
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["result"] = dl.run(reporter)
        except DownloadError as exc:
            outcome["error"] = exc
        except BaseException as exc:  # noqa: BLE001 - reported on the main thread
            outcome["crash"] = exc

    interrupted = {"sig": None}

    def on_term(signum, frame):  # SIGTERM: stop like Ctrl-C, keeping partial files
        interrupted["sig"] = signum
        dl.cancel.set()

    old_term = signal.signal(signal.SIGTERM, on_term)
    th = threading.Thread(target=work, name="llmdeck-download", daemon=True)
    ctx = reporter if isinstance(reporter, _RichReporter) else None
    try:
        if ctx:
            ctx.__enter__()
        th.start()
        while th.is_alive():
            try:
                th.join(0.2)
            except KeyboardInterrupt:
                interrupted["sig"] = signal.SIGINT
                dl.cancel.set()
    finally:
        if ctx:
            ctx.__exit__(None, None, None)
        signal.signal(signal.SIGTERM, old_term)

    if "crash" in outcome:
        raise outcome["crash"]
    if "error" in outcome:
        error(str(outcome["error"]))
        return EXIT_FAIL
    res = outcome["result"]
    if args.json:
        print(json.dumps({"event": "result", "ok": res.ok, "done": res.done, "failed": res.failed,
                          "cancelled": res.cancelled, "bytes_fetched": res.bytes_fetched,
                          "elapsed_s": round(res.elapsed_s, 3)}), flush=True)
    for name, why in res.failed.items():
        error(why if name in why else f"{name}: {why}")
    if res.cancelled or interrupted["sig"]:
        print(f"interrupted: partial files kept in {plan.target}; run the same command to resume",
              file=sys.stderr, flush=True)
        return 130
    if not res.ok:
        return EXIT_FAIL
    if not args.json:
        rate = res.bytes_fetched / res.elapsed_s if res.elapsed_s > 0 else 0
        first = plan.first.dest if plan.first else plan.target
        print(f"done: {len(plan.files)} file(s) verified, {human_bytes(res.bytes_fetched)} fetched in "
              f"{human_duration(res.elapsed_s)} ({human_bytes(rate)}/s); load {first}")
    return EXIT_OK
