"""``enter`` on a model: the details dialog (command line, state, connect lines, last log lines)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.widgets import DataTable


class ModelDetail:
    """Opening the details; the app provides ``backend``, ``table``, ``registry``, ``selected``."""

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "models":
            self.action_open_model()

    def action_open_model(self) -> None:
        name = self.selected
        if name is None:
            return
        self._open_detail(name)

    @work(thread=True, group="detail", exclusive=True, exit_on_error=False)
    def _open_detail(self, name: str) -> None:
        from tui.ui.screens.detail import detail_text

        command = self.backend.command_line(name)
        lines = self.backend.last_log_lines(name, 15)
        st = self.states.get(name)
        try:
            conn = self.backend.connect(name)
        except Exception:  # noqa: BLE001 — the details still open without these lines
            conn = None
        text = detail_text(self.registry.models[name], st, self.files.get(name, "unknown"), command, lines, conn)
        self.call_from_thread(self._push_detail, text, conn.lines() if conn else [])

    def _push_detail(self, text: Text, copy_lines: list[str] | None = None) -> None:
        if not self._alive():
            return
        from tui.ui.screens.detail import DetailScreen

        def done(where: str | None) -> None:
            if where:
                self.run_worker(self.action_show_pane(where))

        self.push_screen(DetailScreen(text, copy_lines), done)

