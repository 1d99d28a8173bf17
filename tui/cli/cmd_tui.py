"""``llmdeck`` with no command: open the TUI on the registry.

The registry is loaded like every other command does (``--registry``, ``LLMDECK_REGISTRY``,
``./models.json``); a bad one prints one line per problem and exits 2 before any screen is
drawn. Textual is imported only here.
"""

from __future__ import annotations

import argparse

from tui.cli.output import EXIT_OK, EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    from tui.cli.main import load_registry

    reg = load_registry(args)
    if reg is None:
        return EXIT_USAGE
    from tui.ui.app import LlmdeckApp  # the UI library, only for this command

    app = LlmdeckApp(reg, select=getattr(args, "select", None))
    code = app.run()
    return int(code or EXIT_OK) if isinstance(code, int) else EXIT_OK
