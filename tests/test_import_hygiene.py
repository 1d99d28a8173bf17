"""The core never imports textual or rich (checked in a fresh interpreter)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import tui.core

ROOT = Path(__file__).resolve().parent.parent


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(tui.core.__path__, "tui.core."))


def test_core_imports_neither_textual_nor_rich():
    mods = core_modules()
    assert "tui.core.supervisor" in mods and "tui.core.registry" in mods
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    importlib.import_module(m)\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('textual', 'rich'))\n"
            "print(','.join(bad))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"core pulled in: {r.stdout.strip()}"


def test_cli_help_and_quick_commands_do_not_load_the_ui():
    code = ("import sys\nfrom tui.cli.main import main\n"
            "rc = main(['--registry', 'models.json', 'list'])\n"
            "print('UI:' + ','.join(sorted(k for k in sys.modules if k.split('.')[0] in ('textual',))), "
            "file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "UI:\n" in r.stderr or r.stderr.rstrip().endswith("UI:")
