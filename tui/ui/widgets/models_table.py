"""The models pane: one row per model, keyed by the model's name.

Rows are updated cell by cell (``update_cell``) and only where the text changed, so the
cursor stays put and a 1 Hz refresh repaints next to nothing. A crashed model's whole row
turns red. Filtering rebuilds the rows that match.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from tui.ui import keys

#: (label, key, width). Cells have no padding; each column is one wider than its text so
#: columns stay apart. The model column takes the longest name, up to MODEL_MAX: the whole
#: table then fits 80 columns (names cut with "…"; the title of the details dialog has it all).
COLUMNS = (("model", "model", 13), ("quant", "quant", 10), ("files", "files", 7), ("state", "state", 11),
           ("port", "port", 5), ("VRAM", "vram", 6), ("RAM", "ram", 6), ("tok/s", "tps", 5))
MODEL_MAX = 20


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class Row:
    model: Text
    quant: Text
    files: Text
    state: Text
    port: Text
    vram: Text
    ram: Text
    tps: Text

    def cells(self) -> tuple[Text, ...]:
        return (self.model, self.quant, self.files, self.state, self.port, self.vram, self.ram, self.tps)


class ModelsTable(DataTable):
    BINDINGS = keys.bindings("list")

    def __init__(self, names: list[str] | None = None, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, cell_padding=0, **kw)
        self._rows: dict[str, Row] = {}
        self._shown: list[str] = []
        self.model_width = max([COLUMNS[0][2], *(len(n) for n in names or [])])
        self.model_width = min(self.model_width, MODEL_MAX)

    def on_mount(self) -> None:
        for label, key, width in COLUMNS:
            if key == "model":
                width = self.model_width
            self.add_column(" " + label, key=key, width=width + 1)

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
            self.add_row(*rows[n].cells(), key=n)
        if keep in self._shown:
            self.move_cursor(row=self._shown.index(keep), animate=False)

    def update(self, name: str, row: Row) -> None:
        old = self._rows.get(name)
        self._rows[name] = row
        if name not in self._shown or old == row:
            return
        for (_label, key, _w), new, prev in zip(COLUMNS, row.cells(), old.cells() if old else (None,) * 8):
            if new != prev:
                self.update_cell(name, key, new)

    def select(self, name: str) -> None:
        if name in self._shown:
            self.move_cursor(row=self._shown.index(name), animate=False)

    def action_scroll_top(self) -> None:
        if self._shown:
            self.move_cursor(row=0, animate=False)

    def action_scroll_bottom(self) -> None:
        if self._shown:
            self.move_cursor(row=len(self._shown) - 1, animate=False)
