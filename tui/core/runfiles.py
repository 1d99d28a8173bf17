"""The files under ``run/`` that describe servers, and how they are written.

``run/<model>.pid``  line 1 PID, line 2 port (the seed's format), line 3 a JSON object with
                     what identifies the process later: its start time counted from boot
                     (``start_since_boot``, /proc/<pid>/stat field 22, with the ``boot_id``),
                     its wall-clock ``create_time`` (older files have only this), its command
                     line, the watcher's PID, the log file, quant and engine.
``run/<model>.exit`` JSON: exit ``code`` or ``signal`` of the last run, ``at``, whether a stop
                     was requested. A detached server's exit status is otherwise lost.
``run/<model>.stopping``  present while a stop is in progress (JSON: at, grace).
``run/<model>.state``     JSON written by the watcher: ready_at, load_s, restarts, backoff.
``run/<model>.launch.json``  what the watcher was asked to run (argv, env, urls).
``run/<model>.key``  the API key for ``--api-key-file`` (mode 0600).
``run/<model>.start.lock``  flocked from a start's state check until its pid file exists
                     (and by a watcher around a restart), so one model never gets two
                     servers; it holds the PID of the process starting one.
``run/history.json``  last load duration per model and quant (the ETA of the next load).

All writes are atomic (temp file + rename) so a reader never sees half a file, and a link
planted at a run file's name is replaced, never written through. Run files are 0600 in a
0700 ``run/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tui.core import safefiles


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    if not path.parent.is_dir():  # run/ is made private, by whichever writer comes first
        safefiles.private_dir(path.parent)
    safefiles.atomic_write(path, text, mode)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any], mode: int = 0o600) -> None:
    write_atomic(path, json.dumps(data, indent=1) + "\n", mode)


def unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def unlink_pid_if(path: Path, pid: int | None) -> bool:
    """Remove a pid file only while it still records ``pid`` (another start may have written
    its own since it was read). Whether it was removed."""
    rec = read_pid(path)
    if rec is None or rec.pid != pid:
        return False
    unlink(path)
    return True


#: another process holds a model's start lock; ``holder`` is its PID when known
Busy = safefiles.LockBusy


def start_lock(path: Path, *, timeout: float = 60.0, give_up: Callable[[], bool] | None = None,
               poll_s: float = 0.02) -> contextlib.AbstractContextManager[None]:
    """Hold ``run/<model>.start.lock``: waits up to ``timeout`` seconds (or until ``give_up()``)
    and then raises :class:`Busy`; the file records the holder's PID (:func:`safefiles.lock`)."""
    safefiles.private_dir(path.parent)
    return safefiles.lock(path, timeout=timeout, give_up=give_up, poll_s=poll_s, record_pid=True)


def process_start(pid: int) -> tuple[float | None, str | None]:
    """(seconds from boot to the process's start, this boot's id), or (None, None) off Linux.

    This is the identity to compare, not the wall-clock ``create_time``: psutil computes that
    as boot time + start, and the kernel's boot time (``btime``) moves when the wall clock is
    adjusted (NTP, a VM resumed), so the same process can appear to have started a second or
    more later and be taken for another one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        ticks = int(stat[stat.rindex(b")") + 2:].split()[19])  # field 22; comm may hold spaces
        start = ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None, None
    return start, boot_id()


def boot_id() -> str | None:
    """This boot's id (``/proc/sys/kernel/random/boot_id``), or None off Linux. Read as bytes:
    the first text-mode open in a thread costs ~1.5 ms more (codec set-up), before the TUI's
    first frame."""
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as fh:
            return fh.read().strip().decode("ascii", "replace") or None
    except OSError:
        return None


@dataclass
class PidRecord:
    """``run/<model>.pid``: the server's pid and port, and what identifies the process."""

    pid: int
    port: int | None
    create_time: float | None = None
    start_since_boot: float | None = None
    boot_id: str | None = None
    cmdline: list[str] = field(default_factory=list)
    watcher_pid: int | None = None
    started_at: float | None = None
    log: str | None = None
    quant: str | None = None
    engine: str | None = None
    base_url: str | None = None
    health_url: str | None = None

    @property
    def timed(self) -> bool:
        """It records when its process started (since boot, or on the wall clock)."""
        return self.start_since_boot is not None or self.create_time is not None

    @property
    def seed_format(self) -> bool:
        """The seed scripts' two-line file: a PID and a port, nothing to identify the process by."""
        return not self.timed and not self.cmdline

    def dumps(self) -> str:
        ident = {k: v for k, v in asdict(self).items() if k not in ("pid", "port")}
        return f"{self.pid}\n{self.port if self.port is not None else ''}\n{json.dumps(ident)}\n"

    @classmethod
    def parse(cls, text: str) -> PidRecord | None:
        """Parse a pid file; seed-style two-line files (no identity) are accepted too."""
        lines = text.splitlines()
        try:
            pid = int(lines[0].strip())
        except (IndexError, ValueError):
            return None
        port = None
        if len(lines) > 1 and lines[1].strip():
            try:
                port = int(lines[1].strip())
            except ValueError:
                port = None
        extra: dict[str, Any] = {}
        if len(lines) > 2:
            try:
                extra = json.loads(lines[2])
            except ValueError:
                extra = {}
        known = {k: extra[k] for k in cls.__dataclass_fields__ if k in extra and k not in ("pid", "port")}
        return cls(pid=pid, port=port, **known)


def read_pid(path: Path) -> PidRecord | None:
    try:
        return PidRecord.parse(path.read_text())
    except (OSError, UnicodeDecodeError):
        return None


def describe_exit(code: int | None, sig: int | None) -> str:
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    if code is None:
        return "exit status unknown"
    return f"exited with code {code}"


def exit_record(code: int | None, sig: int | None, *, stop_requested: bool, pid: int | None) -> dict[str, Any]:
    sname = None
    if sig:
        try:
            sname = signal.Signals(sig).name
        except ValueError:
            sname = str(sig)
    return {"code": code, "signal": sname, "signal_number": sig, "at": time.time(),
            "stop_requested": stop_requested, "pid": pid, "reason": describe_exit(code, sig)}


class RunDir:
    """Paths of one model's run files."""

    def __init__(self, run_dir: Path, name: str):
        self.dir = run_dir
        self.name = name

    def _p(self, suffix: str) -> Path:
        return self.dir / f"{self.name}{suffix}"

    @property
    def pid(self) -> Path:
        return self._p(".pid")

    @property
    def exit(self) -> Path:
        return self._p(".exit")

    @property
    def stopping(self) -> Path:
        return self._p(".stopping")

    @property
    def state(self) -> Path:
        return self._p(".state")

    @property
    def launch(self) -> Path:
        return self._p(".launch.json")

    @property
    def key(self) -> Path:
        return self._p(".key")

    @property
    def start_lock(self) -> Path:
        return self._p(".start.lock")


def history_path(run_dir: Path) -> Path:
    return run_dir / "history.json"


def record_load_time(run_dir: Path, model: str, quant: str | None, seconds: float) -> None:
    path = history_path(run_dir)
    data = read_json(path) or {}
    data.setdefault(model, {})[quant or "-"] = round(seconds, 3)
    write_json(path, data)


def last_load_time(run_dir: Path, model: str, quant: str | None) -> float | None:
    data = read_json(history_path(run_dir)) or {}
    v = data.get(model, {}).get(quant or "-")
    return float(v) if isinstance(v, (int, float)) else None
