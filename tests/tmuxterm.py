"""The installed ``llmdeck`` in a real terminal: a detached tmux session on a tmux server of its
own, read with ``capture-pane`` (the cells a person sees) and driven with ``send-keys``.

Shared by the tmux tests (tests/test_tmux_*.py; tests/tmux_e2e.sh does the same in bash). The
server socket (``-L``) is named from this process and the test's own tmp dir, so two tests never
share a tmux server, not even under pytest-xdist workers, and none touches the user's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path


class Term:
    """``llmdeck --registry <tmp>/models.json`` (started in ``tmp``) at ``cols`` x ``rows``."""

    def __init__(self, tmp: Path, cols: int, rows: int, *, prefix: str = "llmdeck-term") -> None:
        self.tmux = shutil.which("tmux") or "/usr/bin/tmux"
        assert Path(self.tmux).exists(), "tmux is needed for this test (apt-get install tmux)"
        llmdeck = Path(sys.executable).parent / "llmdeck"
        assert llmdeck.exists(), f"{llmdeck} missing: pip install -e . installs the llmdeck command"
        self.sock = f"{prefix}-{os.getpid()}-{zlib.crc32(str(tmp).encode()):08x}"  # one server per test
        self.cols, self.rows = cols, rows
        self.t("new-session", "-d", "-s", "s", "-x", str(cols), "-y", str(rows),
               f"cd {tmp} && exec {llmdeck} --registry {tmp / 'models.json'}")

    def t(self, *args: str) -> str:
        # COLUMNS/LINES (set while pytest runs) would reach llmdeck through the tmux server's
        # environment, and Textual believes them over the terminal's real size
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run([self.tmux, "-L", self.sock, *args], capture_output=True, text=True,
                              timeout=10, env=env).stdout

    def screen(self) -> list[str]:
        return self.t("capture-pane", "-p", "-t", "s").splitlines()

    def keys(self, *keys: str) -> None:
        self.t("send-keys", "-t", "s", *keys)

    def wait(self, pred, timeout: float, what: str) -> list[str]:
        """The screen once ``pred(rows)`` holds; else an AssertionError showing the last screen."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.screen()
            if pred(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; the screen:\n"
                                     + "\n".join(rows))
            time.sleep(0.05)

    def close(self) -> None:
        self.t("kill-server")
