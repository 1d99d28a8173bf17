"""What every ``cmd_*`` module shares: the registry path, loading the registry, looking up
the model a command names (they lived in :mod:`tui.cli.main`, which imports the command
modules; the commands import this module instead, so nothing imports ``main`` back).
Exit codes and the error/warn/info printers are in :mod:`tui.cli.output`.
"""

from __future__ import annotations

import argparse
import os

from tui.cli.output import error


def registry_path(args: argparse.Namespace) -> str:
    return args.registry or os.environ.get("LLMDECK_REGISTRY") or "models.json"


def load_registry(args: argparse.Namespace):
    """Load the registry or print every problem and return None (the caller exits 2)."""
    from tui.core import registry

    try:
        return registry.load(registry_path(args))
    except registry.RegistryError as exc:
        for line in str(exc).splitlines():
            error(line)
        return None


def load_model(args: argparse.Namespace):
    """(registry, the model ``args.model`` names), or None after printing why (the caller exits 2)."""
    from tui.core.registry import UnknownModel

    reg = load_registry(args)
    if reg is None:
        return None
    try:
        return reg, reg.get(args.model)
    except UnknownModel as exc:
        error(str(exc))
        return None
