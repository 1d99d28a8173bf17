"""What every ``cmd_*`` module shares: the registry path, loading the registry, looking up
the model a command names (they lived in :mod:`tui.cli.main`, which imports the command
modules; the commands import this module instead, so nothing imports ``main`` back).

Errors are raised, never printed here: a :class:`~tui.core.errors.LlmdeckError` (a bad
registry, an unknown model, a bad option) carries its one-line message and exit code, and
:func:`tui.cli.main.main` prints and maps it once. A command looks its model up once, with
:func:`load_model`, and hands the :class:`~tui.core.registry.Model` down.
Exit codes and the error/warn/info printers are in :mod:`tui.cli.output`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tui.core.errors import Failed, LlmdeckError, UsageError

if TYPE_CHECKING:
    import argparse

    from tui.core.registry import Model, Registry


def registry_path(args: argparse.Namespace) -> str:
    return args.registry or os.environ.get("LLMDECK_REGISTRY") or "models.json"


def load_registry(args: argparse.Namespace) -> "Registry":
    """The registry ``--registry`` / ``$LLMDECK_REGISTRY`` / ``./models.json`` names; raises
    :class:`~tui.core.registry.RegistryError` (one line per problem, exit 2)."""
    from tui.core import registry

    return registry.load(registry_path(args))


def load_model(args: argparse.Namespace, name: str | None = None) -> tuple["Registry", "Model"]:
    """(registry, the model ``name`` or ``args.model`` names); raises
    :class:`~tui.core.registry.UnknownModel` (exit 2) for a name not registered."""
    reg = load_registry(args)
    return reg, reg.get(args.model if name is None else name)


def add_report_options(p: argparse.ArgumentParser, kind: str, *, history_help: str, last: int, noun: str) -> None:
    """The options every saved-report command (``bench``, ``eval``) ends with: ``--json``,
    ``--no-save``, ``--history`` and ``--last`` (read by :func:`print_history`)."""
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    p.add_argument("--no-save", action="store_true", help=f"do not save the report under logs/{kind}/")
    p.add_argument("--history", action="store_true", help=history_help)
    p.add_argument("--last", type=int, default=last, help=f"with --history: how many {noun} (default {last})")


def print_history(args: argparse.Namespace, kind: str, list_reports, to_dict, show) -> int:
    """``llmdeck bench|eval MODEL --history``: the model's last ``args.last`` saved reports
    (``list_reports(logs_dir, name, n)``), as JSON (``to_dict(report)`` plus its path) or as
    ``show(reports)`` prints them; one line when there are none."""
    from tui.cli.output import EXIT_OK, info, print_json

    reg, model = load_model(args)
    reports = list_reports(reg.logs_dir, model.name, args.last)
    if not reports:
        info(f"no saved runs of '{model.name}' in {reg.logs_dir / kind}: run llmdeck {kind} {model.name}")
    elif args.json:
        print_json([to_dict(r) | {"path": str(r.path)} for r in reports])
    else:
        show(reports)
    return EXIT_OK


@contextlib.contextmanager
def exits(code: int, *types: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Turn the exceptions ``types`` of a library that knows nothing of exit codes into an
    error that ends the command with ``code`` and the message (after ``prefix``)."""
    try:
        yield
    except types as exc:
        err = LlmdeckError(f"{prefix}{exc}")
        err.exit_code = code
        raise err from None


__all__ = ["Failed", "LlmdeckError", "UsageError", "add_report_options", "exits", "load_model", "load_registry", "print_history",
           "registry_path"]
