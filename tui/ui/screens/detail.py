"""``enter`` on a model: its state, exit reason, the exact command, how to reach it (``ssh -L``,
base URL, ``curl``; ``ctrl+o`` copies those lines) and the last log lines."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tui.ui import keys
from tui.ui.widgets.format import STATE_STYLE, human_duration


def detail_text(model, state, files: str, command: str, log_lines: list[str], connect=None) -> Text:
    t = Text()
    t.append(f"{model.name}", style="bold")
    if model.description:
        t.append(f" — {model.description}", style="dim")
    t.append("\n\nstate    ")
    s = state.state if state else "unknown"
    t.append(s, style=STATE_STYLE.get(s, ""))
    if state is not None:
        if state.pid:
            t.append(f"  pid {state.pid}")
        if state.port:
            t.append(f"  port {state.port}")
        if state.uptime_s is not None and state.running:
            t.append(f"  up {human_duration(state.uptime_s)}")
        if state.stage and state.state in ("starting", "loading"):
            t.append(f"  stage: {state.stage}")
        if state.url:
            t.append(f"\nurl      {state.url}")
        if state.exit and state.state in ("crashed", "stopped"):
            ex = state.exit
            t.append("\nexit     ")
            t.append(str(ex.get("reason") or f"code {ex.get('code')} signal {ex.get('signal')}"),
                     style="bold red" if state.state == "crashed" else "")
        if state.last_error:
            t.append("\nnote     ")
            t.append(state.last_error, style="yellow")
    t.append(f"\nengine   {model.engine}")
    if model.default_quant:
        t.append(f"   quant {model.default_quant}")
    t.append(f"   files {files}")
    t.append("\ncommand  ")
    t.append(command, style="cyan")
    t.append("\n\nlast log lines (l opens the live log):\n", style="bold")
    for line in log_lines or ["(no log yet)"]:
        t.append(line + "\n", style="red" if "error" in line.lower() else "")
    if connect is not None:  # after the log lines: a crash's cause stays on the first screen
        t.append("\nreach it (ctrl+o copies these lines):\n", style="bold")
        for line in connect.lines():
            t.append(line + "\n", style="dim" if line.startswith("#") else "")
    return t


class DetailScreen(ModalScreen[str | None]):
    """Dismisses with an action name for the main screen (``logs``/``chat``) or None."""

    BINDINGS = keys.bindings("details")
    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen #detail {
        width: 90%; max-width: 120; height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, text: Text, copy_lines: list[str] | None = None) -> None:
        super().__init__()
        self.text = text
        self.copy_lines = copy_lines or []

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(self.text, id="detail-text")
        yield Footer(compact=True)  # this screen's keys (ctrl+o copy, l, c, esc), not the main screen's

    def action_close(self) -> None:
        self.dismiss(None)

    def action_copy_connect(self) -> None:
        if not self.copy_lines:
            self.app.bell()
            return
        self.app.copy_to_clipboard("\n".join(self.copy_lines) + "\n")
        self.app.notify(f"copied {len(self.copy_lines)} lines (OSC 52: your terminal's clipboard, over SSH too)")

    def action_go(self, where: str) -> None:
        self.dismiss(where)
