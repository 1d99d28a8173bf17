"""The footer: keys that fit, and first what ``esc`` does now.

Textual's ``Footer`` lays its keys in one row and cuts the last one at the edge (at 80
columns ``d down▏``). :class:`FitFooter` leaves out whole keys that do not fit, from the end
(the command palette's ``^p`` last of all: it reaches every action), so what shows is never cut.

Its first entry comes from the app's one ``esc`` rule (``LlmdeckApp.esc_step``) and says what
the next ``esc`` does, so focus is never invisible:

* ``esc cancel`` while a reply or a bench run is running in the shown pane;
* ``typing: message · esc leaves`` while an input has the keyboard (printable keys are text
  there, not commands);
* ``esc clear filter`` / ``esc clear search`` while one is active and the keys go to the list
  or the log;
* ``esc unzoom`` while the panes are zoomed (``z``).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey


def step_text(step: tuple[str, str] | None) -> tuple[str, str] | None:
    """(key, description) of the footer's first entry for an ``esc_step``; None: no entry."""
    if step is None:
        return None
    kind, what = step
    if kind == "cancel":
        return "esc", f"cancel {what}"
    if kind == "leave":
        return "typing:", f"{what} · esc leaves"
    if kind == "clear":
        return "esc", f"clear {what}"
    if kind == "unzoom":
        return "esc", "unzoom"
    return None


def key_width(key: FooterKey) -> int:
    """Columns a compact FooterKey takes: key, a space and the description, a margin of 1
    (the palette's key adds its left border)."""
    w = cell_len(key.key_display) + (1 + cell_len(key.description) if key.description else 0) + 1
    return w + (1 if key.has_class("-command-palette") else 0)


class EscEntry(Static):
    """The footer's first entry (see the module docstring)."""

    DEFAULT_CSS = """
    EscEntry { width: auto; height: 1; margin-right: 1; text-wrap: nowrap; }
    EscEntry.-typing { background: $primary 50%; color: $text; }
    """


class FitFooter(Footer):
    def compose(self) -> ComposeResult:
        items = list(super().compose())
        width = self.size.width or self.app.size.width
        step = getattr(self.app, "esc_step", lambda: None)() if self.screen is self.app.screen else None
        first = step_text(step)
        used = 0
        if first is not None:
            key, desc = first
            entry = EscEntry(Text.assemble((key, "bold"), " ", desc), classes="-typing" if key == "typing:" else "")
            used += cell_len(key) + 1 + cell_len(desc) + 1
            yield entry
        palette = [w for w in items if isinstance(w, FooterKey) and w.has_class("-command-palette")]
        keys = [w for w in items if w not in palette]
        room = width - used - sum(key_width(p) for p in palette)
        shown = []
        for w in keys:
            need = key_width(w) if isinstance(w, FooterKey) else cell_len(str(getattr(w, "renderable", ""))) + 1
            if need > room:
                break  # keep the order: the first keys are the ones that matter most
            room -= need
            shown.append(w)
        yield from shown
        if room >= 0:
            yield from palette

    def on_resize(self) -> None:
        self.call_after_refresh(self.recompose)
