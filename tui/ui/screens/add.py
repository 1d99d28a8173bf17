"""``a``: add a model from the Hugging Face Hub.

Type a repo (``org/name``, ``hf.co/org/name``, a URL, optionally ``:QUANT``) or search text and
press enter. Search text lists GGUF repos (most downloaded first); enter on one opens it. A
repo shows its quant table: size, files, context, quant type and the memory verdict coloured
(green fits in VRAM, yellow VRAM + RAM, red does not fit), with the highlighted quant's header
facts and memory line below. Enter on a quant writes the entry (``llmdeck add REPO:QUANT``) and
closes the screen with its name; the app shows it in the table at once and asks whether to
download it. ``esc`` steps back: quants → results → the input → close.

All Hub and registry calls run in thread workers through :class:`tui.ui.backend.HubAdd`.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from tui.core.text import human_bytes
from tui.ui import keys

VERDICT = {"vram": ("VRAM", "green"), "vram+ram": ("VRAM + RAM", "yellow"), "no": ("does not fit", "red")}


def _count(n: int | None) -> str:
    if n is None:
        return ""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


class AddScreen(ModalScreen[tuple | None]):
    """Dismisses with ``(name, registry, messages)`` once an entry is written, else None.
    Modal, so the main screen's single-letter keys (``s`` start, ``q`` quit …) do not fire here."""

    BINDINGS = keys.bindings("add")
    DEFAULT_CSS = """
    AddScreen { layout: vertical; background: $surface; }
    AddScreen #add-title { height: 1; background: $primary; color: $text; padding: 0 1; }
    AddScreen #add-input { margin: 0 0; }
    AddScreen #add-status { height: auto; max-height: 2; padding: 0 1; }
    AddScreen #add-table { height: 1fr; }
    AddScreen #add-info { height: auto; max-height: 5; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, hub) -> None:
        super().__init__()
        self.hub = hub
        self.mode = "input"  # "results" | "quants"
        self.results: list = []
        self.qtable = None
        self.came_from_results = False
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Static("Add a model from the Hugging Face Hub", id="add-title")
        yield Input(placeholder="org/name[:QUANT], hf.co/… or search text — enter", id="add-input")
        yield Static("", id="add-status")
        yield DataTable(id="add-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="add-info")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#add-table", DataTable).display = False
        self.query_one("#add-input", Input).focus()

    # -- status ------------------------------------------------------------------------------
    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#add-status", Static).update(Text(text, style=style))

    def _error(self, text: str) -> None:
        self.busy = False
        self._status(text, "bold red")

    # -- input ---------------------------------------------------------------------------------
    @on(Input.Submitted, "#add-input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.busy:
            return
        self.busy = True
        if "/" in text:
            self._status(f"listing {text} …")
            self._load_repo(text)
        else:
            self._status(f"searching the Hub for '{text}' …")
            self._search(text)

    @work(thread=True, exclusive=True, group="hub")
    def _search(self, text: str) -> None:
        from tui.ui.backend import one_line

        try:
            hits = self.hub.search(text)
        except Exception as exc:  # noqa: BLE001 — one line on the screen, never a traceback
            self.app.call_from_thread(self._error, one_line(exc))
            return
        self.app.call_from_thread(self._show_results, text, hits)

    def _show_results(self, text: str, hits: list) -> None:
        self.busy = False
        if not hits:
            self._status(f"no GGUF repos match '{text}'", "yellow")
            return
        self.results = hits
        self.mode = "results"
        t = self.query_one("#add-table", DataTable)
        t.clear(columns=True)
        t.add_column("REPO", width=40)
        for col in ("DOWNLOADS", "LIKES", "PARAMS", "MODIFIED"):
            t.add_column(col)
        for i, h in enumerate(hits):
            t.add_row(h.repo_id[:40], _count(h.downloads), _count(h.likes), _count(h.params),
                      (h.last_modified or "")[:10], key=str(i))
        t.display = True
        t.focus()
        self.query_one("#add-info", Static).update("")
        self._status(f"{len(hits)} GGUF repos match '{text}' — enter opens one", "")

    @work(thread=True, exclusive=True, group="hub")
    def _load_repo(self, text: str) -> None:
        from tui.ui.backend import one_line

        try:
            repo, quant = self.hub.parse(text)
            table = self.hub.table(repo)
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self._error, one_line(exc))
            return
        self.app.call_from_thread(self._show_quants, table, quant)

    def _show_quants(self, table, quant: str | None) -> None:
        self.busy = False
        self.came_from_results = self.mode == "results"
        self.qtable = table
        self.mode = "quants"
        t = self.query_one("#add-table", DataTable)
        t.clear(columns=True)
        t.add_column("QUANT", width=14)
        for col in ("SIZE", "FILES", "CTX", "TYPE"):
            t.add_column(col)
        t.add_column("MEMORY")
        for r in table.quants:
            s = r.facts()
            word, style = VERDICT[r.fit.verdict] if r.fit else ("?", "")
            if r.fit is not None and r.fit.verdict == "vram+ram" and not r.fit.machine.gpu_free:
                word = "RAM (CPU)"
            t.add_row(r.quant[:14], human_bytes(r.size_bytes), str(r.shards), _count(s.get("context_length")),
                      s.get("file_type") or "", Text(word, style=style), key=r.quant)
        t.display = True
        t.focus()
        if quant and table.row(quant) is not None:
            t.move_cursor(row=table.quants.index(table.row(quant)))
        extra = f", {len(table.mmproj)} mmproj" if table.mmproj else ""
        self._status(f"{table.repo_id} @ {table.revision[:12]}: {len(table.quants)} quants{extra} — "
                     "enter adds the quant")
        self._show_info(table.quants[t.cursor_row] if table.quants else None)

    def _show_info(self, row) -> None:
        info = self.query_one("#add-info", Static)
        if row is None:
            info.update("")
            return
        s = row.facts()
        bits = [s.get("architecture") or "?"]
        if s.get("size_label"):
            bits.append(s["size_label"])
        if s.get("block_count"):
            bits.append(f"{s['block_count']} layers")
        if s.get("expert_count"):
            bits.append(f"{s['expert_count']} experts ({s.get('expert_used_count') or '?'} active)")
        first = f"{row.quant}: {', '.join(bits)}; {row.shards} file(s)"
        if row.header_error:
            first = f"{row.quant}: header not read ({row.header_error})"
        text = Text(first + "\n")
        if row.fit is not None:
            text.append(row.fit.line, style=VERDICT[row.fit.verdict][1])
        info.update(text)

    @on(DataTable.RowHighlighted, "#add-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.mode == "quants" and self.qtable is not None and event.row_key is not None:
            self._show_info(self.qtable.row(event.row_key.value))

    @on(DataTable.RowSelected, "#add-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if self.busy or event.row_key is None:
            return
        if self.mode == "results":
            hit = self.results[int(event.row_key.value)]
            self.busy = True
            self._status(f"listing {hit.repo_id} …")
            self._load_repo(hit.repo_id)
        elif self.mode == "quants" and self.qtable is not None:
            self.busy = True
            self._status(f"adding {self.qtable.repo_id}:{event.row_key.value} …")
            self._add(self.qtable, event.row_key.value)

    @work(thread=True, exclusive=True, group="hub")
    def _add(self, table, quant: str) -> None:
        from tui.ui.backend import one_line

        try:
            name, reg, messages = self.hub.add(table, quant)
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self._error, one_line(exc))
            return
        self.app.call_from_thread(self.dismiss, (name, reg, messages))

    # -- esc -----------------------------------------------------------------------------------
    def action_back(self) -> None:
        t = self.query_one("#add-table", DataTable)
        inp = self.query_one("#add-input", Input)
        if self.mode == "quants" and self.came_from_results and self.results:
            self.came_from_results = False
            self._show_results(inp.value.strip(), self.results)
        elif self.mode != "input" and self.focused is t:
            inp.focus()
        else:
            self.dismiss(None)
