"""Saved run reports (``llmdeck bench``, ``llmdeck eval``): one JSON file per run, per model.

A report is written as ``<logs>/<kind>/<model>-<YYYYmmdd-HHMMSS>.json`` (``-2``, ``-3`` … when
two runs start in the same second; a file is never overwritten) and written atomically. The
last runs of a model are listed oldest first, by the time stamp in the name (the file's
modification time breaks ties); files that cannot be read, or are not this kind's reports,
are skipped. The kinds differ only in their directory, their JSON indent and how a report is
told apart and read back: :mod:`tui.core.bench.results`, :mod:`tui.core.eval.results`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")


def now_iso() -> str:
    """Local time, ISO 8601 with offset (a report's ``started_at``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def save_json(directory: Path, model: str, data: dict, *, indent: int) -> Path:
    """Write ``data`` atomically to ``directory/<model>-<timestamp>.json``; never overwrites."""
    from tui.core.safefiles import atomic_write

    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{model}-{stamp}.json"
    n = 2
    while path.exists():
        path = directory / f"{model}-{stamp}-{n}.json"
        n += 1
    atomic_write(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
    return path


def load_reports(directory: Path, model: str, last: int | None, is_report: Callable[[Any], bool],
                 read: Callable[[dict, Path], R]) -> list[R]:
    """The saved reports of ``model`` in ``directory``, oldest first (the last ``last`` of them):
    each file's JSON that ``is_report`` accepts, read by ``read(data, path)``."""
    pat = re.compile(rf"^{re.escape(model)}-\d{{8}}-\d{{6}}(-\d+)?\.json$")
    files = sorted((p for p in directory.glob(f"{model}-*.json") if pat.match(p.name)),
                   key=lambda p: (p.name[len(model) + 1:len(model) + 16], p.stat().st_mtime))
    if last is not None:
        files = files[-last:] if last > 0 else []
    out = []
    for p in files:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and is_report(data):
            out.append(read(data, p))
    return out
