"""A model's log for the front page: the last lines, then what was added, by cursor.

The page asks ``/ui/logs/<model>`` without a cursor first: it gets the last ``BACKLOG`` lines
and a cursor (``"<inode>:<offset>"``, the end of the last whole line). Then it asks with the
cursor, once a second, and gets the lines written since (at most ``MAX_READ`` bytes a time;
a partial last line waits for its newline). A new inode (the log was rotated: a new run) or a
file shorter than the offset (truncated) starts over at its beginning, with ``reset`` true.
Each line comes with its level — ``error`` (:data:`tui.core.logfiles.ERROR_RE`, as the
TUI marks them), ``warn`` (the TUI's warning words) or ``""`` — so the page colours the same
lines the TUI's log pane does. Never follows a link (a log is a regular file of ours).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from tui.core import logfiles

BACKLOG = 200
MAX_READ = 256 << 10
WARN_RE = re.compile(r"(?i)\b(?:warn|warning|deprecated)\b|^\S+ W \S+")


def level(line: str) -> str:
    if logfiles.ERROR_RE.search(line):
        return "error"
    return "warn" if WARN_RE.search(line) else ""


def _lines(text: str) -> list[list[str]]:
    return [[ln, level(ln)] for ln in text.splitlines()]


def _parse(cursor: str | None) -> tuple[int, int] | None:
    try:
        ino, off = (cursor or "").split(":")
        return int(ino), int(off)
    except ValueError:
        return None


def read(path: Path | None, cursor: str | None) -> dict:
    """``{"lines": [[text, level], …], "cursor": str|None, "reset": bool, "missing": bool}``."""
    if path is None:
        return {"lines": [], "cursor": None, "reset": False, "missing": True}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return {"lines": [], "cursor": None, "reset": cursor is not None, "missing": True, "path": path.name}
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return {"lines": [], "cursor": None, "reset": False, "missing": True, "path": path.name}
        at = _parse(cursor)
        reset = at is None or at[0] != st.st_ino or at[1] > st.st_size
        if reset:
            start = max(0, st.st_size - MAX_READ)
            fh.seek(start)
            data = fh.read(st.st_size - start)
            if start:  # drop the first, probably partial, line
                data = data[data.find(b"\n") + 1:]
            # the end of the last whole line: that is where the next read starts
            end = st.st_size - (len(data) - (data.rfind(b"\n") + 1))
            data = data[:data.rfind(b"\n") + 1]
            lines = data.decode("utf-8", "replace").splitlines()[-BACKLOG:]
            return {"lines": [[ln, level(ln)] for ln in lines], "cursor": f"{st.st_ino}:{end}",
                    "reset": cursor is not None, "missing": False, "path": path.name}
        fh.seek(at[1])
        data = fh.read(MAX_READ)
        nl = data.rfind(b"\n")
        data = data[:nl + 1] if nl >= 0 else b""
        return {"lines": _lines(data.decode("utf-8", "replace")), "cursor": f"{st.st_ino}:{at[1] + len(data)}",
                "reset": False, "missing": False, "path": path.name}
