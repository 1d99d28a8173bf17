"""``?``: the ``esc`` rule, then every binding from the one action registry
(:mod:`tui.ui.keys`), by scope."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.ui import keys

#: the one rule for esc, as ``LlmdeckApp.esc_step`` applies it
ESC_RULE = (
    "esc, everywhere, does the first of:",
    "  1. cancel what runs in the shown pane (a reply, a bench or eval run)",
    "  2. leave the input you type in (the footer says 'typing: …')",
    "  3. clear the filter (or the log search)",
    "  4. close a dialog, or leave the zoom (z), or go back to the models list",
)


def help_table(keymap: dict[str, str] | None = None) -> Table:
    t = Table(box=None, show_header=False, pad_edge=False, expand=True)
    t.add_column("keys", style="bold cyan", no_wrap=True, min_width=14)
    t.add_column("what")
    scope = None
    for title, key, desc in keys.help_rows(keymap):
        if title != scope:
            if scope is not None:
                t.add_row("", "")
            t.add_row(Text(title, style="bold underline"), "")
            scope = title
        t.add_row(key, desc)
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape,q,question_mark", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen #help {
        width: 90%; max-width: 120; height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("llmdeck keys · esc closes · ctrl+p runs any action by name", style="bold"))
            yield Static(Text("\n".join(ESC_RULE) + "\n"), id="esc-rule")
            yield Static(help_table(getattr(self.app, "user_keymap", None)), id="help-table")

    def action_close(self) -> None:
        self.dismiss(None)
