"""``enter`` on a model: its state, exit reason, the exact command and the last log lines."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.ui.widgets.format import STATE_STYLE, human_duration


def detail_text(model, state, files: str, command: str, log_lines: list[str]) -> Text:
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
    return t


class DetailScreen(ModalScreen[str | None]):
    """Dismisses with an action name for the main screen (``logs``/``chat``) or None."""

    BINDINGS = [("escape,q", "close", "Close"), ("l", "go('logs')", "Logs"), ("c", "go('chat')", "Chat")]

    def __init__(self, text: Text) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(self.text, id="detail-text")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_go(self, where: str) -> None:
        self.dismiss(where)
