"""The installed ``llmdeck`` in a real terminal (tmux): a long log line is readable to its end.

``capture-pane`` gives the cells a person sees, at 80x24 and 160x48: a 304-character line
(unique 5-character groups, ending in a marker) wraps to its last character, ``w`` cuts it at
the pane's edge and back, ``z`` puts the log on the whole terminal (no models table; the
footer stays) and back, and a line appended while following shows up at the bottom. Each
test uses its own tmux server socket (``-L``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

LONG = "".join(f"<{i:03d}>" for i in range(60)) + "#END"
BORDER = "▕"  # the wide layout's line between the models and the panes


class Term:
    """``llmdeck`` in a detached tmux session of its own server."""

    def __init__(self, tmp: Path, cols: int, rows: int) -> None:
        self.tmux = shutil.which("tmux") or "/usr/bin/tmux"
        assert Path(self.tmux).exists(), "tmux is needed for this test (apt-get install tmux)"
        llmdeck = Path(sys.executable).parent / "llmdeck"
        assert llmdeck.exists(), f"{llmdeck} missing: pip install -e . installs the llmdeck command"
        (tmp / "m.gguf").write_bytes(b"GGUF" + bytes(60))
        (tmp / "models.json").write_text(json.dumps({"settings": {}, "models": {
            "m": {"model_path": "m.gguf", "default_port": 1},
            "other-model": {"model_path": "m.gguf", "default_port": 2}}}))
        (tmp / "logs").mkdir()
        self.log = tmp / "logs" / "m.log"
        self.log.write_text("".join(f"0.00.{i:03d} I srv  short line {i}\n" for i in range(5)) + LONG + "\n")
        self.sock = f"llmdeck-wrap-{os.getpid()}-{zlib.crc32(str(tmp).encode()):08x}"  # one server per test
        self.cols = cols
        self.t("new-session", "-d", "-s", "w", "-x", str(cols), "-y", str(rows),
               f"cd {tmp} && exec {llmdeck} --registry {tmp / 'models.json'}")

    def t(self, *args: str) -> str:
        # COLUMNS/LINES (set to 80/24 while pytest runs) would reach llmdeck through the tmux
        # server's environment, and Textual believes them over the terminal's real size
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run([self.tmux, "-L", self.sock, *args], capture_output=True, text=True,
                              timeout=10, env=env).stdout

    def screen(self) -> list[str]:
        return self.t("capture-pane", "-p", "-t", "w").splitlines()

    def keys(self, *keys: str) -> None:
        self.t("send-keys", "-t", "w", *keys)

    def wait(self, pred, timeout: float, what: str) -> list[str]:
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


def log_text(rows: list[str]) -> str:
    """The log's part of each row (right of the wide layout's border), scrollbar glyphs and
    padding dropped, joined: a wrapped line reads whole here."""
    out = []
    for r in rows:
        seg = r.rsplit(BORDER, 1)[-1]
        out.append(re.sub(r"[^\x20-\x7e]+$", "", seg).rstrip())
    return "".join(out)


def readable(rows: list[str]) -> bool:
    return LONG in log_text(rows)


@pytest.fixture
def term(tmp_path, request):
    cols, rows = request.param
    t = Term(tmp_path, cols, rows)
    yield t
    t.close()


@pytest.mark.parametrize("term", [(80, 24), (160, 48)], indirect=True, ids=["80x24", "160x48"])
def test_a_long_log_line_reads_to_its_end_w_cuts_it_z_zooms(term):
    term.wait(lambda rows: any("other-model" in r for r in rows), 20, "the models list")
    term.keys("l")
    rows = term.wait(readable, 10, "the long line, wrapped to its end")
    assert sum("#END" in r for r in rows) == 1
    assert any("w wrap on" in r for r in rows)
    # w: cut at the pane's edge (less -S); the marker is off screen
    term.keys("w")
    rows = term.wait(lambda rows: any("w wrap off" in r for r in rows), 5, "wrap off")
    assert not any("#END" in r for r in rows) and LONG[:40] in log_text(rows)
    term.keys("w")
    term.wait(readable, 5, "wrapped again")
    # z: the log on the whole terminal, the footer kept; z again: back
    term.keys("z")

    def spans(rows: list[str]) -> bool:  # a wrapped row of the line spans the terminal (less its scrollbar)
        return any(len(r.rstrip()) >= term.cols - 1 and r[:term.cols - 1] in LONG for r in rows)

    rows = term.wait(lambda rows: not any("other-model" in r for r in rows) and spans(rows), 5, "zoomed")
    assert readable(rows) and not any(BORDER in r for r in rows)
    assert "palette" in rows[-1]  # the footer
    term.keys("z")
    term.wait(lambda rows: any("other-model" in r for r in rows), 5, "unzoomed")
    # following with wrap on: an appended long line appears, whole, at the bottom
    with open(term.log, "a") as fh:
        fh.write("appended " + LONG.replace("#END", "#NEW") + "\n")
    rows = term.wait(lambda rows: ("appended" + LONG.replace("#END", "#NEW")) in log_text(rows).replace(" ", ""),
                     10, "the appended line")
    body = [r.rsplit(BORDER, 1)[-1] for r in rows[:-1]]
    body = [r for r in body if re.sub(r"[^\x20-\x7e]", "", r).strip()]
    assert "#NEW" in body[-1]  # the log's last row with text (the log is shorter than the pane)
