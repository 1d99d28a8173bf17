"""Server logs: ``logs/<model>.log`` for the current run, ``.1``, ``.2`` … for older runs.

Each run starts with a dated banner line (``BANNER_PREFIX``), so the current run's lines are
those after the last banner. Reading is always from the end (``tail``), never the whole
file: logs of long runs reach gigabytes. :class:`Follower` follows a log like ``tail -F``,
through rotation (the path gets a new inode) and truncation (size drops below our offset).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BANNER_PREFIX = "===== llmdeck:"  # starts a run
NOTE_PREFIX = "----- llmdeck:"  # a note inside a run (e.g. how the server exited)

#: (regex, stage name) in load order; the last one seen after the banner is the stage
STAGES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"load_model: loading model|llama_model_load_from_file"), "opening model"),
    (re.compile(r"llama_model_loader: loaded meta data"), "reading metadata"),
    (re.compile(r"additional \d+ GGUFs metadata loaded"), "reading shards"),
    (re.compile(r"load_tensors:"), "loading tensors"),
    (re.compile(r"llama_context:|llama_kv_cache"), "allocating context"),
    (re.compile(r"warming up"), "warming up"),
    (re.compile(r"model loaded"), "model loaded"),
    (re.compile(r"listening on http|server is listening"), "listening"),
    # other engines
    (re.compile(r"Loading (?:model )?weights|Loading safetensors"), "loading weights"),
    (re.compile(r"Capturing CUDA graph|cuda graph", re.I), "capturing CUDA graphs"),
    (re.compile(r"Application startup complete|fired up and ready"), "listening"),
]
ERROR_RE = re.compile(r"failed to load model|exiting due to|error loading model|out of memory|"
                      r"failed to allocate|GGML_ASSERT|error:|Traceback", re.I)


def rotate(path: Path, keep: int) -> None:
    """Move ``x.log`` to ``x.log.1`` (and ``.1`` to ``.2`` …), keeping ``keep`` older runs."""
    if not path.exists() or path.stat().st_size == 0:
        return
    if keep <= 0:
        path.unlink()
        return
    for i in range(keep, 0, -1):
        src = path.with_name(f"{path.name}.{i}")
        if i == keep:
            if src.exists():
                src.unlink()
            continue
        if src.exists():
            os.replace(src, path.with_name(f"{path.name}.{i + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def banner(model: str, text: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
    return f"{BANNER_PREFIX} {stamp} {model}: {text} =====\n"


def note(model: str, text: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
    return f"{NOTE_PREFIX} {stamp} {model}: {text}\n"


def tail_bytes(path: Path, max_bytes: int = 256 << 10) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return b""
    if size > max_bytes:  # drop the first, probably partial, line
        nl = data.find(b"\n")
        data = data[nl + 1:] if nl >= 0 else data
    return data


def tail(path: Path, n: int = 20, *, current_run: bool = False, max_bytes: int = 1 << 20) -> list[str]:
    """The last ``n`` lines (of the current run only, if asked), read from the end."""
    budget = 64 << 10
    while True:
        data = tail_bytes(path, budget)
        lines = data.decode("utf-8", "replace").splitlines()
        if current_run:
            for i in range(len(lines) - 1, -1, -1):
                if lines[i].startswith(BANNER_PREFIX):
                    lines = lines[i + 1:]
                    break
        if len(lines) >= n or budget >= max_bytes or len(data) < budget:
            return lines[-n:] if n > 0 else []
        budget *= 4


def stage(path: Path) -> str | None:
    """The loading stage the current run's log shows (None if nothing recognisable)."""
    lines = tail(path, 400, current_run=True)
    found = None
    for line in lines:
        for rx, name in STAGES:
            if rx.search(line):
                found = name
    return found


def last_errors(path: Path, n: int = 3) -> list[str]:
    return [ln for ln in tail(path, 200, current_run=True) if ERROR_RE.search(ln)][-n:]


@dataclass
class Follower:
    """Follow a file like ``tail -F``. Call :meth:`poll` repeatedly; it returns new lines.

    Starts at the end minus ``backlog`` lines. Survives rotation (inode change: finishes
    nothing of the old file — it was read up to our offset — and starts the new one at 0) and
    truncation (size < offset: restart at 0). A partial last line is kept until its newline.
    """

    path: Path
    backlog: int = 100
    chunk: int = 1 << 20

    def __post_init__(self) -> None:
        self._fh = None
        self._ino: int | None = None
        self._buf = b""
        self._started = False

    def _open(self, at_end: bool) -> list[str]:
        try:
            fh = open(self.path, "rb")
        except OSError:
            return []
        if self._fh:
            self._fh.close()
        self._fh = fh
        st = os.fstat(fh.fileno())
        self._ino = st.st_ino
        self._buf = b""
        if at_end:
            lines = tail(self.path, self.backlog) if self.backlog else []
            fh.seek(st.st_size)
            # a partial last line is re-read on its completion
            data = tail_bytes(self.path, 4096)
            if data and not data.endswith(b"\n"):
                nl = data.rfind(b"\n")
                self._buf = data[nl + 1:]
                if lines:
                    lines = lines[:-1]
            return lines
        return []

    def poll(self) -> list[str]:
        out: list[str] = []
        if not self._started:
            self._started = True
            out += self._open(at_end=True)
        if self._fh is None:
            out += self._open(at_end=False)
            if self._fh is None:
                return out
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        if st is not None and st.st_ino != self._ino:
            out += self._drain()
            self._open(at_end=False)
        elif st is not None and st.st_size < self._fh.tell():
            self._fh.seek(0)
            self._buf = b""
        out += self._drain()
        return out

    def _drain(self) -> list[str]:
        if self._fh is None:
            return []
        out: list[str] = []
        while True:
            data = self._fh.read(self.chunk)
            if not data:
                break
            data = self._buf + data
            parts = data.split(b"\n")
            self._buf = parts.pop()
            out.extend(p.decode("utf-8", "replace").rstrip("\r") for p in parts)
        return out

    def follow(self, interval: float = 0.2, stop=None) -> Iterator[list[str]]:
        while stop is None or not stop():
            lines = self.poll()
            if lines:
                yield lines
            else:
                time.sleep(interval)

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None
