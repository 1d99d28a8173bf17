"""The models pane: one row per model, keyed by the model's name; it owns the models' states.

Rows are updated cell by cell (``update_cell``) and only where the text changed, so the
cursor stays put and a 1 Hz refresh repaints next to nothing. A crashed model's whole row
turns red. Filtering rebuilds the rows that match.

The table keeps what its rows show: ``states`` (a ModelState per model), ``files`` (on disk,
partial, missing), the verb in flight per model (``pending``), the latest telemetry
``snapshot`` and the router's on-demand view. Its status worker (:meth:`poll`) reads
``backend.status()`` every ``status_interval`` seconds, and every ``fast_interval`` for
models in a passing state (starting, loading, stopping) so "ready" shows within 0.3 s; it
also watches models.json (``RegistryReloaded``, handled by the app). Each poll is a
``StatesPolled`` message: the table applies it (rows, toasts on ready / crashed / stopped),
then it bubbles to the app (title, bindings, chat panes). Reading the files posts
``FilesRead`` the same way.
"""

from __future__ import annotations

import threading
import time
from typing import Any, NamedTuple

from rich.text import Text
from textual import work
from textual.widgets import DataTable
from textual.worker import get_current_worker

from tui.core.verbs import RUNNING
from tui.ui import keys, ondemand_view
from tui.ui.messages import FilesRead, RegistryReloaded, StatesPolled
from tui.ui.widgets.format import compact_bytes, files_text, state_text

TRANSIENT = ("starting", "loading", "stopping")

#: (label, key, width). Cells have no padding; each column is one wider than its text so
#: columns stay apart. The model column takes the longest name, up to MODEL_MAX: the whole
#: table then fits 80 columns (names cut with "…"; the title of the details dialog has it all).
COLUMNS = (("model", "model", 13), ("quant", "quant", 10), ("files", "files", 7), ("state", "state", 11),
           ("port", "port", 5), ("VRAM", "vram", 6), ("RAM", "ram", 6), ("tok/s", "tps", 5))
MODEL_MAX = 20


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class Row(NamedTuple):
    """One model's row as drawn: one Text per column, in COLUMNS order (a NamedTuple: it is
    the tuple of cells, compared whole to skip unchanged rows)."""

    model: Text
    quant: Text
    files: Text
    state: Text
    port: Text
    vram: Text
    ram: Text
    tps: Text


class ModelsTable(DataTable):
    BINDINGS = keys.bindings("list")

    def __init__(self, registry, backend, *, first_states=None, status_interval: float = 1.0,
                 fast_interval: float = 0.1, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, cell_padding=0, **kw)
        self.registry = registry
        self.backend = backend
        self.status_interval = status_interval
        self.fast_interval = fast_interval
        self._rows: dict[str, Row] = {}
        self._shown: list[str] = []
        self.model_width = max([COLUMNS[0][2], *(len(n) for n in registry.models)])
        self.model_width = min(self.model_width, MODEL_MAX)
        self.states: dict[str, Any] = {}
        self.files: dict[str, str] = {n: "unknown" for n in registry.models}
        self.download_rows: dict[str, dict] = {}  # the downloads pane's quant rows, read with the files
        self.pending: dict[str, str] = {}  # model → verb in flight
        self.ready_seen_at: dict[str, float] = {}  # model → when the UI first showed ready
        self.filter_text = ""
        self.snapshot = None  # the latest telemetry sample
        self.router_view: tuple = (None, {})  # the router's run file, on-demand fields (ondemand_view)
        self.refs: list = []  # the servers the sampler watches
        self._router_seen: float | None = None
        self._polled_all = False
        self._wake = threading.Event()
        self._take_first_states(first_states)

    def _take_first_states(self, fn) -> None:
        """States for the first frame, before any poll (the status worker refines them):
        ``fn() -> {name: ModelState}``, the backend's cheap first read."""
        if fn is None:
            return
        try:
            first = fn() or {}
        except Exception:  # noqa: BLE001 — the status worker reports what is wrong a moment later
            return
        for name, st in first.items():
            if name in self.registry.models:
                self.states[name] = st
                self._transition(None, st, first=True)

    def on_mount(self) -> None:
        for label, key, width in COLUMNS:
            if key == "model":
                width = self.model_width
            # a Text label, not a str: a str is parsed as markup, which loads rich's emoji table
            # (~4 ms) before the first frame
            self.add_column(Text(" " + label), key=key, width=width + 1)

    @property
    def shown(self) -> list[str]:
        return list(self._shown)

    @property
    def selected(self) -> str | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row]

    def show(self, names: list[str], rows: dict[str, Row]) -> None:
        """(Re)build the table with ``names`` in order, keeping the selection when it is shown."""
        keep = self.selected
        self._rows = dict(rows)
        self.clear()
        self._shown = list(names)
        for n in names:
            self.add_row(*rows[n], key=n)
        if keep in self._shown:
            self.move_cursor(row=self._shown.index(keep), animate=False)

    def update(self, name: str, row: Row) -> None:
        old = self._rows.get(name)
        self._rows[name] = row
        if name not in self._shown or old == row:
            return
        for (_label, key, _w), new, prev in zip(COLUMNS, row, old or (None,) * 8):
            if new != prev:
                self.update_cell(name, key, new)

    # -- rows ----------------------------------------------------------------------------

    def matching(self) -> list[str]:
        """The models the filter lets through, in registry order."""
        f = self.filter_text.lower()
        return [n for n in self.registry.models if f in n.lower()]

    def rebuild(self) -> None:
        self.show(self.matching(), {n: self.row(n) for n in self.registry.models})

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.rebuild()

    def row(self, name: str) -> Row:
        model = self.registry.models[name]
        st = self.states.get(name)
        state = st.state if st else "unknown"
        pend = self.pending.get(name)
        red = state == "crashed"

        def cell(text: str, style: str = "") -> Text:
            return Text(text, style="bold red" if red else style)

        quant = (st.quant if st and st.quant else None) or model.default_quant or ("file" if model.model_path else "-")
        port = st.port if st and st.port else model.default_port
        sample = self.snapshot.model(name) if self.snapshot is not None else None
        vram = ram = tps = ""
        if sample is not None and state in RUNNING:
            u, srv = sample.usage, sample.server
            if u is not None:
                vram = compact_bytes(u.vram_bytes)
                ram = compact_bytes(u.rss_bytes)
            if srv is not None and srv.tokens_per_s is not None:
                tps = f"{srv.tokens_per_s:.1f}"
        state_cell = state_text(state, pend)
        if st is not None and state in ("starting", "loading") and not pend:
            extra = ""
            if getattr(st, "load_pct", None) is not None:  # "loading 45%" (11 columns)
                extra = f" {st.load_pct:.0f}%"
            elif st.load_eta_s is not None:
                extra = f" {st.load_eta_s:.0f}s"
            state_cell = Text(f"{state}{extra}", style=state_cell.style)
        if not pend and (od := ondemand_view.state_cell(state, self.router_view[1].get(name))):
            state_cell = Text(od, style=state_cell.style)  # "ready 4:32": the router unloads it then
        return Row(model=cell(" " + fit(name, self.model_width), "bold"), quant=cell(" " + fit(str(quant), 10)),
                   files=Text(" ") + files_text(self.files.get(name, "unknown")) if not red else cell(
                       " " + files_text(self.files.get(name, "unknown")).plain),
                   state=Text(" ") + state_cell, port=cell(" " + str(port or "-")), vram=cell(" " + vram),
                   ram=cell(" " + ram), tps=cell(" " + tps))

    def redraw_row(self, name: str) -> None:
        self.update(name, self.row(name))

    def redraw_rows(self, names=None) -> None:
        for n in self.registry.models if names is None else names:
            self.update(n, self.row(n))

    def running(self) -> list[str]:
        return [n for n, s in self.states.items() if s.state in RUNNING]

    # -- states ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="status", exit_on_error=False)
    def poll(self) -> None:
        """The status worker (see the module's docstring); ``poll_now`` wakes it for a full poll."""
        from tui.ui.backend import RegistryWatch

        worker = get_current_worker()
        watch = RegistryWatch(self.registry.path)
        last_full = 0.0
        fast: list[str] = []
        while not worker.is_cancelled:
            now = time.monotonic()
            changed = watch.check()  # models.json edited: reloaded on the UI thread
            if changed is not None:
                kind, what = changed
                self.post_message(RegistryReloaded(registry=what) if kind == "ok" else
                                  RegistryReloaded(problems=what))
            try:
                if fast and now - last_full < self.status_interval:
                    self.post_message(StatesPolled([self.backend.state_of(n) for n in fast], partial=True))
                else:
                    self.router_view = self.backend.router_view()  # models on demand: run/router.json
                    self.post_message(StatesPolled(self.backend.status()))
                    last_full = now
            except Exception as exc:  # noqa: BLE001 — shown once, polling goes on
                self.app.call_from_thread(self.notify, f"status: {exc}", severity="error")
            fast = [n for n, s in list(self.states.items()) if s.state in TRANSIENT] + \
                [n for n in list(self.pending) if n not in self.states or self.states[n].state not in TRANSIENT]
            wait = self.fast_interval if fast else self.status_interval
            self._wake.wait(wait)
            if self._wake.is_set():
                self._wake.clear()
                fast = []  # a wake-up asks for a full poll
                last_full = 0.0

    def poll_now(self) -> None:
        self._wake.set()

    def on_states_polled(self, message: StatesPolled) -> None:
        toasts, self._router_seen = ondemand_view.new_events(self.router_view[0], self._router_seen)
        for text in toasts:  # what the router started, swapped or unloaded, and why
            self.notify(text, title="router", timeout=8)
        for st in message.states:
            if st.name not in self.registry.models:  # polled just before models.json was reloaded
                continue
            self.set_state(st, first=not self._polled_all)
        if not message.partial:
            self._polled_all = True
        self.refs = [self.backend.server_ref(s) for s in self.states.values()
                     if s.state in ("starting", "loading", "ready", "unhealthy") and (s.pid or s.url)]

    def set_state(self, new, first: bool = False) -> None:
        """A model's new state: its row, and a toast when it became ready, crashed or stopped."""
        old = self.states.get(new.name)
        self.states[new.name] = new
        self._transition(old, new, first)
        self.redraw_row(new.name)

    def _transition(self, old, new, first: bool) -> None:
        if new.state == "ready" and (old is None or old.state != "ready"):
            self.ready_seen_at[new.name] = time.perf_counter()
            if not first:
                self.notify(f"{new.name} is ready on port {new.port}", title="ready")
        if new.state == "crashed" and not first and (old is None or old.state != "crashed"):
            reason = (new.exit or {}).get("reason") or new.last_error or "exited"
            self.notify(f"{new.name} crashed: {reason} — enter shows the last log lines, l the log",
                        title="crashed", severity="error", timeout=15)
        if (new.state == "stopped" and not first and old is not None and old.state in RUNNING
                and self.pending.get(new.name) != "restart"):  # x, K, or stopped from the CLI
            self.notify(f"{new.name} stopped", title="stopped")

    def set_registry(self, reg) -> None:
        """models.json was reloaded: rows for the new models (their servers keep running)."""
        old = self.registry.models
        self.registry = reg
        for n in reg.models:
            self.files.setdefault(n, "unknown")
        for n in [n for n in old if n not in reg.models]:
            self.states.pop(n, None)
            self.files.pop(n, None)
        self.rebuild()

    def set_snapshot(self, snapshot) -> None:
        """A telemetry sample: the VRAM, RAM and tok/s cells of the running models."""
        self.snapshot = snapshot
        self.redraw_rows(self.running())

    # -- files on disk ---------------------------------------------------------------------

    @work(thread=True, group="files", exit_on_error=False)
    def load_files(self) -> None:
        """Read what is on disk (the files column, the downloads pane's quant rows)."""
        files = self.backend.files()
        rows = {}
        for name in self.registry.models:
            try:
                rows[name] = self.backend.download_rows(name)
            except Exception:  # noqa: BLE001 — the pane shows no quant table then
                rows[name] = {}
        self.app.call_from_thread(self._set_files, files, rows)

    def _set_files(self, files: dict[str, str], rows: dict[str, dict]) -> None:
        if not self.is_attached:
            return
        self.files.update(files)
        self.download_rows.update(rows)
        self.redraw_rows()
        self.post_message(FilesRead())

    def select(self, name: str) -> None:
        if name in self._shown:
            self.move_cursor(row=self._shown.index(name), animate=False)

    def action_scroll_top(self) -> None:
        if self._shown:
            self.move_cursor(row=0, animate=False)

    def action_scroll_bottom(self) -> None:
        if self._shown:
            self.move_cursor(row=len(self._shown) - 1, animate=False)
