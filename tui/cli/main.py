"""``llmdeck`` entry point: global options, then one sub-command.

Each command group lives in its own module with ``register(subparsers)``; the module's
handlers take the parsed ``args`` and return an exit code (0 ok, 1 the operation failed,
2 usage or registry error), or raise a :class:`~tui.core.errors.LlmdeckError`, which
:func:`main` prints (one line per problem, never a traceback) and maps to its exit code here,
once. Handlers import heavy libraries lazily so that quick commands
(``status``, ``list``) start fast. ``llmdeck`` with no command opens the TUI.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING

from tui import __version__
from tui.cli.output import EXIT_FAIL, EXIT_USAGE, error
from tui.core.errors import LlmdeckError

if TYPE_CHECKING:
    import argparse

#: command modules, in help order; each defines register(subparsers)
COMMAND_MODULES = [
    "tui.cli.cmd_models",
    "tui.cli.cmd_servers",
    "tui.cli.cmd_download",
    "tui.cli.cmd_hub",
    "tui.cli.cmd_telemetry",
    "tui.cli.cmd_serve",
    "tui.cli.cmd_bench",
    "tui.cli.cmd_chat",
    "tui.cli.cmd_eval",
]


def build_parser() -> "argparse.ArgumentParser":
    import argparse  # only for a command: the TUI's first frame does not pay for it (~2 ms)

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # one line, exit 2
            self.print_usage(sys.stderr)
            error(message)
            sys.exit(EXIT_USAGE)

    p = _Parser(prog="llmdeck", description="Control panel and CLI for local LLM servers. "
                "Without a command, opens the TUI.")
    p.add_argument("--version", action="version", version=f"llmdeck {__version__}")
    p.add_argument("--registry", metavar="PATH",
                   help="models.json to use (env LLMDECK_REGISTRY; default ./models.json); "
                        "run/ and logs/ live beside it")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def _tui_args(argv: list[str]) -> "SimpleNamespace | None":
    """``llmdeck`` or ``llmdeck --registry PATH`` (the TUI), parsed without building every
    command's parser: importing the command modules and their parsers costs ~20 ms, before
    the TUI's first frame (the handlers read ``args`` by attribute, as argparse's). Anything
    else (abbreviations, ``-h``) goes to the full parser."""
    if not argv:
        path = None
    elif len(argv) == 2 and argv[0] == "--registry" and argv[1] and not argv[1].startswith("-"):
        path = argv[1]
    elif len(argv) == 1 and argv[0].startswith("--registry=") and argv[0] != "--registry=":
        path = argv[0].split("=", 1)[1]
    else:
        return None
    return SimpleNamespace(registry=path, command=None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _tui_args(argv) or build_parser().parse_args(argv)
    if not args.command:
        from tui.cli import cmd_tui  # imports textual only here

        try:
            return cmd_tui.run(args)
        except LlmdeckError as exc:  # a bad registry: before any screen is drawn
            error(str(exc))
            return exc.exit_code
    try:
        return int(args.func(args) or 0)
    except LlmdeckError as exc:  # every command's one-line errors, with their exit codes
        error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if os.environ.get("LLMDECK_DEBUG"):
            raise
        error(f"{type(exc).__name__}: {exc} (set LLMDECK_DEBUG=1 for the traceback)")
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
