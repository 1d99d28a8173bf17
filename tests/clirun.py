"""``llmdeck`` as a user runs it, in a subprocess with a given environment (the local Hub's, from
conftest's ``hub_env``), and its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def llmdeck(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """The one stderr line of a failed command: ``llmdeck: error: …``, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("llmdeck: error: ") and "Traceback" not in r.stderr
    return lines[0]
