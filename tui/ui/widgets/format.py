"""Small formatting helpers shared by the panes (text only, no widgets)."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text

from tui.core.text import human_bytes, human_duration  # one formatting of sizes/durations

__all__ = ["STATE_STYLE", "FILES_STYLE", "state_text", "files_text", "bar", "sparkline", "pct_style",
           "human_bytes", "human_duration", "short_path", "gib", "compact_bytes"]

#: state → Rich style (the CLI's ``status`` uses the same colours)
STATE_STYLE = {
    "ready": "bold green", "loading": "yellow", "starting": "yellow", "unhealthy": "bold red",
    "crashed": "bold white on red", "stopping": "magenta", "stopped": "dim", "external": "cyan",
    "unknown": "dim",
}

#: LocalFiles.status → (label, style)
FILES_STYLE = {
    "present": ("on disk", "green"), "partial": ("partial", "yellow"), "incomplete": ("incomplete", "yellow"),
    "missing": ("missing", "red"), "remote": ("remote", "cyan"), "unknown": ("…", "dim"),
}

SPARK = "▁▂▃▄▅▆▇█"


def state_text(state: str, pending: str | None = None) -> Text:
    if pending and state not in ("crashed",):
        label = {"start": "starting", "stop": "stopping", "kill": "killing", "restart": "restarting"}.get(
            pending, pending)
        return Text(label + "…", style=STATE_STYLE.get(label, "magenta"))
    return Text(state, style=STATE_STYLE.get(state, ""))


def files_text(status: str) -> Text:
    label, style = FILES_STYLE.get(status, (status, ""))
    return Text(label, style=style)


def pct_style(pct: float | None) -> str:
    """Green below 50 %, yellow from 50 %, red from 80 % (textual-practice.md gauges)."""
    if pct is None:
        return "dim"
    return "red" if pct >= 80 else ("yellow" if pct >= 50 else "green")


def bar(pct: float | None, width: int) -> Text:
    """``███████░░░░`` for a percentage, coloured by :func:`pct_style`."""
    if width <= 0:
        return Text()
    if pct is None:
        return Text("·" * width, style="dim")
    filled = max(0, min(width, round(width * pct / 100)))
    t = Text("█" * filled, style=pct_style(pct))
    t.append("░" * (width - filled), style="dim")
    return t


def sparkline(values, width: int, top: float | None = None) -> str:
    """The last ``width`` values as block characters (None → space). ``top``: the scale's max."""
    vals = list(values)[-width:] if width > 0 else []
    nums = [v for v in vals if v is not None]
    if not nums:
        return " " * len(vals)
    hi = top if top else max(nums)
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        elif hi <= 0:
            out.append(SPARK[0])
        else:
            out.append(SPARK[max(0, min(7, int(v / hi * 7.999)))])
    return "".join(out)


def compact_bytes(n: float | None) -> str:
    """``210M``, ``23.4G``: sizes in at most 6 characters (the models table)."""
    if n is None:
        return "n/a"
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1000 or unit == "T":
            return f"{n:.0f}{unit}" if unit in ("B", "K", "M") or n >= 100 else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"


def gib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / (1 << 30):.1f}"


def short_path(p: Path) -> str:
    """Relative to the working directory when inside it, else with ``~``."""
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        home = os.path.expanduser("~")
        s = str(p)
        return "~" + s[len(home):] if home != "/" and s.startswith(home + os.sep) else s
