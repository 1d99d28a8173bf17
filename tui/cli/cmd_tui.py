"""``llmdeck`` with no command: open the TUI on the registry.

The registry is loaded like every other command does (``--registry``, ``LLMDECK_REGISTRY``,
``./models.json``); a bad one prints one line per problem and exits 2 before any screen is
drawn. Textual is imported only here.

Environment (the TUI has no flags of its own, as ``llmdeck`` without a command takes none):
``LLMDECK_TOOLS`` — a JSON file of OpenAI tool definitions offered to the model in the chat
pane (the same format as ``llmdeck chat --tools``); ``LLMDECK_HIDE_THOUGHTS=1`` — start with
thinking blocks hidden.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tui.cli.output import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    import argparse


def _first_states_in_background(reg):
    """Start reading every model's state (pid files, one ``/health`` each) in a thread while
    Textual is imported; returns the function the app calls for them before its first frame.
    The read waits on sockets, so it overlaps the import rather than adding to it."""
    import threading

    from tui.core.states import first_status

    box: dict = {}

    def read() -> None:
        try:
            box["states"] = first_status(reg)
        except Exception:  # noqa: BLE001 — the app's status worker reports it
            box["states"] = {}

    th = threading.Thread(target=read, name="llmdeck-first-states", daemon=True)
    th.start()

    def result() -> dict:
        th.join(1.0)
        return box.get("states", {})

    return result


def run(args: argparse.Namespace) -> int:
    import gc

    # no collections until the first frame: the imports and widgets before it allocate a lot
    # and nothing is garbage yet (5-10 % of the time to that frame); tune_gc() turns it back on
    gc.disable()
    from tui.cli.common import load_registry

    reg = load_registry(args)
    chat_options = {}
    tools_file = os.environ.get("LLMDECK_TOOLS")
    if tools_file:
        from tui.cli.common import exits
        from tui.core.chat.tools import ToolsError, load_tools

        with exits(EXIT_USAGE, ToolsError, prefix="LLMDECK_TOOLS: "):
            chat_options["tools"] = load_tools(tools_file)
    first = _first_states_in_background(reg)
    from tui.ui.app import LlmdeckApp  # the UI library, only for this command
    from tui.ui.backend import Backend

    app = LlmdeckApp(reg, backend=Backend(reg, chat_options=chat_options), select=getattr(args, "select", None),
                     first_states=first)
    code = app.run()
    return int(code or EXIT_OK) if isinstance(code, int) else EXIT_OK
