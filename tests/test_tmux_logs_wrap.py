"""The installed ``llmdeck`` in a real terminal (tmux): a long log line is readable to its end.

``capture-pane`` gives the cells a person sees, at 80x24 and 160x48: a 304-character line
(unique 5-character groups, ending in a marker) wraps to its last character, ``w`` cuts it at
the pane's edge and back, ``z`` puts the log on the whole terminal (no models table; the
footer stays) and back, and a line appended while following shows up at the bottom. Each
test uses its own tmux server socket (``-L``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tmuxterm

pytestmark = pytest.mark.timeout(120)

LONG = "".join(f"<{i:03d}>" for i in range(60)) + "#END"
BORDER = "▕"  # the wide layout's line between the models and the panes


class Term(tmuxterm.Term):
    """``llmdeck`` over two models; ``m``'s log ends in the long line."""

    def __init__(self, tmp: Path, cols: int, rows: int) -> None:
        (tmp / "m.gguf").write_bytes(b"GGUF" + bytes(60))
        (tmp / "models.json").write_text(json.dumps({"settings": {}, "models": {
            "m": {"model_path": "m.gguf", "default_port": 1},
            "other-model": {"model_path": "m.gguf", "default_port": 2}}}))
        (tmp / "logs").mkdir()
        self.log = tmp / "logs" / "m.log"
        self.log.write_text("".join(f"0.00.{i:03d} I srv  short line {i}\n" for i in range(5)) + LONG + "\n")
        super().__init__(tmp, cols, rows, prefix="llmdeck-wrap")


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

    def zoomed(rows: list[str]) -> bool:  # the whole screen at once: a capture taken while the
        # terminal is mid-redraw (a loaded machine) can show the top rows zoomed, the rest not yet
        return not any("other-model" in r or BORDER in r for r in rows) and spans(rows)

    rows = term.wait(zoomed, 5, "zoomed")
    assert readable(rows)
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
