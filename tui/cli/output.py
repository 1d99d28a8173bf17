"""Small output helpers shared by CLI commands.

stdout carries results; diagnostics go to stderr as one line ``llmdeck: error: …``.
Rich is imported lazily and only when stdout is a terminal (keeps ``status`` fast).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tui.core.text import human_bytes, human_duration  # noqa: F401  (one formatting, shared with the UI)

from tui.core.errors import EXIT_FAIL, EXIT_OK, EXIT_USAGE  # noqa: F401  (one set, carried by the errors)


def error(msg: str) -> None:
    for line in str(msg).splitlines() or [""]:
        print(f"llmdeck: error: {line}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"llmdeck: warning: {msg}", file=sys.stderr, flush=True)


def info(msg: str) -> None:
    print(f"llmdeck: {msg}", file=sys.stderr, flush=True)


def is_tty() -> bool:
    return sys.stdout.isatty()


def live_line(every_s: float = 0.0):
    """(show(text), clear()) for one line on stderr that redraws itself, at most every
    ``every_s`` seconds unless ``force``; (None, a no-op) when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None, lambda: None
    import time

    last = [0.0]

    def show(text: str, force: bool = False) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and not force:
            return
        last[0] = now
        sys.stderr.write("\r\x1b[2K" + text)
        sys.stderr.flush()

    def clear() -> None:
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()

    return show, clear


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def table(headers: list[str], rows: list[list[Any]], styles: dict[int, Any] | None = None) -> None:
    """Print a table: rich on a terminal, aligned plain text otherwise."""
    srows = [["" if c is None else str(c) for c in r] for r in rows]
    if is_tty():
        from rich.console import Console  # the UI library, only for terminal output
        from rich.table import Table

        t = Table(show_edge=False, header_style="bold", pad_edge=False, box=None)
        for h in headers:
            t.add_column(h)
        for i, r in enumerate(srows):
            style = styles.get(i) if styles else None
            t.add_row(*r, style=style)
        Console().print(t)
        return
    widths = [max(len(h), *(len(r[i]) for r in srows)) if srows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in srows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
