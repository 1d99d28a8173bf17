"""The ``/`` filter over the models list: its bar shows whenever a filter is active or typed."""

from __future__ import annotations

from textual.containers import Horizontal
from textual.widgets import Input, Static


class FilterInput(Input):
    """The ``/`` filter. It takes the focus only while its bar is shown: Textual's auto-focus
    (after a dialog or the palette closes) would otherwise pick it, the screen's first input,
    and keys would go into a box nobody sees."""

    typing_what = "filter"

    def allow_focus(self) -> bool:
        return super().allow_focus() and self.has_class("-shown")


class FilterBar(Horizontal):
    """``filter: <input> <hint>`` above the models list, shown while a filter is typed or active
    (``filter: q · esc clears``). Mounted after the first frame (its Input too), so its rules
    are parsed then."""

    DEFAULT_CSS = """
    FilterBar { display: none; height: 1; background: $warning 20%; }
    FilterBar.-shown { display: block; }
    FilterBar #filter-label { width: auto; padding: 0 0 0 1; text-style: bold; }
    FilterBar #filter { width: 1fr; height: 1; border: none; padding: 0 1; background: transparent; }
    FilterBar #filter:focus { border: none; }
    FilterBar #filter-hint { width: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        filter_input = FilterInput(placeholder="type part of a name", id="filter")
        hint = Static("", id="filter-hint")
        super().__init__(Static("filter:", id="filter-label"), filter_input, hint, id="filter-bar")
        self.input, self.hint = filter_input, hint


class ModelFilter:
    """Typing, keeping and clearing the filter; the models table applies it (``set_filter``)."""

    async def action_filter(self) -> None:
        await self.mount_after_first_frame()  # the bar itself, when / comes before it was mounted
        self._show_filter_bar(True)
        self.filter_input.focus()

    def _show_filter_bar(self, shown: bool) -> None:
        """The filter bar shows whenever a filter is active or being typed: a model row never
        disappears without ``filter: <text>`` on screen."""
        for w in (self.filter_bar, self.filter_input):
            w.set_class(shown, "-shown")
        self._filter_hint()

    def _filter_hint(self) -> None:
        typing = self._main is not None and self._main.focused is self.filter_input
        self.filter_bar.hint.update(
            "enter keeps it" if typing else ("esc clears" if self.filter_text else ""))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        table = self.table
        table.set_filter(event.value.strip())
        self._select(table.selected)
        self._update_title()
        self._filter_hint()
        self.refresh_bindings()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        self.table.focus()
        if not self.filter_text:
            self._show_filter_bar(False)

    def _clear_filter(self) -> None:
        self.filter_input.value = ""  # Changed: the rows come back, the title counts them all
        self.table.set_filter("")
        self._select(self.table.selected)
        self._show_filter_bar(False)
        self._update_title()

