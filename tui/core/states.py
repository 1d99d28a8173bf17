"""A model's state (``ModelState``) and a cheap first read of every model's state.

:func:`first_status` is what a front end shows before anything else (the TUI's first frame):
it reads the pid files and probes each running server's ``/health`` once, with the standard
library's sockets and ``/proc`` only (no psutil, no ``http.client``: importing those costs
about 40 ms, more than everything else the read does). It never writes or removes a file and
never signals a process; a model it cannot decide cheaply (a pid file without a start time, a
server behind https, a probe that times out) is left out, and the full
:func:`tui.core.supervisor.status` — which adopts, cleans up stale pid files and records exits —
decides it a moment later. Off Linux (no ``/proc``) it decides nothing.

``load_pct`` of a loading server: the time it has loaded so far over its last load time of the
same quant (capped at 99 %); without a last load time, the llama-server loading stage's place
in the load order (``logfiles.STAGES``), which is coarse but moves.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tui.core import runfiles

if TYPE_CHECKING:
    from tui.core.registry import Registry

STATES = ("stopped", "starting", "loading", "ready", "unhealthy", "stopping", "crashed")
RUNNING_STATES = ("starting", "loading", "ready", "unhealthy", "stopping")


@dataclass
class ModelState:
    """What a front end shows of one model's server: its state and the figures behind it."""

    name: str
    engine: str
    state: str
    pid: int | None = None
    port: int | None = None
    url: str | None = None  # OpenAI base URL (…/v1)
    since: float | None = None  # when the current state's run started (epoch s)
    uptime_s: float | None = None
    exit: dict[str, Any] | None = None  # {"code", "signal", "reason", "at"} of the last run
    last_error: str | None = None
    last_log_lines: list[str] = field(default_factory=list)
    stage: str | None = None
    load_elapsed_s: float | None = None
    load_eta_s: float | None = None
    last_load_s: float | None = None
    quant: str | None = None
    log: str | None = None
    restarting_in_s: float | None = None
    watcher_pid: int | None = None
    load_pct: float | None = None  # 0-99 while starting/loading, when it can be told (module doc)

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return d


#: llama-server's loading stages (logfiles.STAGES names) → a rough percent done
STAGE_PCT = {"opening model": 5, "reading metadata": 10, "reading shards": 15, "loading tensors": 30,
             "allocating context": 80, "warming up": 90, "model loaded": 95, "listening": 97,
             "loading weights": 30, "capturing CUDA graphs": 85}


def load_percent(stage: str | None, elapsed_s: float | None, last_load_s: float | None) -> float | None:
    """Percent loaded (module doc), or None when nothing tells."""
    if elapsed_s is not None and last_load_s:
        return max(0.0, min(99.0, 100.0 * elapsed_s / last_load_s))
    return float(STAGE_PCT[stage]) if stage in STAGE_PCT else None


def fill_loading(st: ModelState, registry: "Registry", log) -> None:
    """Stage, elapsed, ETA and percent of a starting/loading server (reads its log's tail)."""
    from tui.core import logfiles

    st.load_elapsed_s = st.uptime_s
    st.stage = logfiles.stage(log)
    st.last_load_s = runfiles.last_load_time(registry.run_dir, st.name, st.quant)
    if st.last_load_s is not None and st.load_elapsed_s is not None:
        st.load_eta_s = max(0.0, st.last_load_s - st.load_elapsed_s)
    st.load_pct = load_percent(st.stage, st.load_elapsed_s, st.last_load_s)


# --- the cheap first read ------------------------------------------------------------------

def probe_health(url: str, api_key: str | None = None, timeout: float = 0.25) -> int | None | str:
    """GET ``url`` over a plain socket: the HTTP status, "refused", or None (no answer in
    ``timeout``, not http, or anything odd — undecided)."""
    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        return None
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
    req = f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\n{auth}Connection: close\r\n\r\n".encode()
    try:
        # an ASCII host goes as bytes: a str makes getaddrinfo load the idna codec (~4 ms, which
        # the TUI's first frame would pay for the first /health)
        host = u.hostname.encode("ascii") if u.hostname.isascii() else u.hostname
        with socket.create_connection((host, u.port or 80), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(req)
            head = b""
            while b"\r\n" not in head and len(head) < 256:
                chunk = s.recv(256)
                if not chunk:
                    break
                head += chunk
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return None
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def _proc_start(pid: int) -> tuple[float | None, bool]:
    """(seconds from boot to the process's start, is a zombie) from ``/proc``; (None, False)
    when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        rest = stat[stat.rindex(b")") + 2:].split()
        return int(rest[19]) / os.sysconf("SC_CLK_TCK"), rest[0] == b"Z"
    except (OSError, ValueError, IndexError):
        return None, False


def _api_key(model) -> str | None:
    try:
        return model.api_key()
    except Exception:  # noqa: BLE001 — no key is sent then
        return None


def _state_from_probe(code, was_ready: bool) -> tuple[str, str | None] | None:
    if code == 200:
        return "ready", None
    if code is None:
        return None
    if code == "refused":
        s, err = "starting", None
    elif code == 503:
        s, err = "loading", None
    else:
        s, err = "unhealthy", f"/health answered HTTP {code}"
    if was_ready and s != "unhealthy":
        return "unhealthy", "stopped answering after it was ready"
    return s, err


def first_state(registry: "Registry", name: str, *, timeout: float = 0.25,
                boot_id: str | None = None) -> ModelState | None:
    """One model's state from a cheap read (module doc), or None when it cannot be told."""
    if not os.path.isdir("/proc/self"):
        return None
    model = registry.get(name)
    if model.engine == "external":
        from tui.core import engines

        spec = engines.spec_for(registry, model)
        st = ModelState(name=name, engine=model.engine, state="stopped", url=spec.base_url, port=spec.port)
        code = probe_health(spec.health_url, _api_key(model), timeout)
        if code == "refused":
            st.last_error = f"nothing answers at {spec.health_url}"
            return st
        decided = _state_from_probe(code, False)
        if decided is None:
            return None
        st.state, st.last_error = decided
        return st

    rd = runfiles.RunDir(registry.run_dir, name)
    log = registry.log_file(name)
    st = ModelState(name=name, engine=model.engine, state="stopped", log=str(log))
    rec = runfiles.read_pid(rd.pid)
    if rec is None:
        exit_rec = runfiles.read_json(rd.exit)
        if exit_rec is not None:
            st.exit = {k: exit_rec.get(k) for k in ("code", "signal", "reason", "at")}
            st.since = exit_rec.get("at")
            if not exit_rec.get("stop_requested"):
                until = (runfiles.read_json(rd.state) or {}).get("backoff_until")
                if until and until > time.time():
                    return None  # a restart may be on its way: the full status looks at the watcher
                st.state = "crashed"
                st.last_error = f"server {exit_rec.get('reason')}"
                from tui.core import logfiles

                st.last_log_lines = logfiles.tail(log, 15, current_run=True)
        return st
    if rec.start_since_boot is None or rec.seed_format:
        return None  # older or foreign pid file: the full status checks its identity
    start, zombie = _proc_start(rec.pid)
    if start is None or zombie or abs(start - rec.start_since_boot) > 0.05:
        return None  # gone or another process: the full status records the exit or cleans up
    if rec.boot_id and boot_id and rec.boot_id != boot_id:
        return None
    now = time.time()
    st.pid, st.port, st.quant = rec.pid, rec.port, rec.quant
    st.since = rec.started_at
    st.uptime_s = now - rec.started_at if rec.started_at else None
    st.watcher_pid = rec.watcher_pid
    st.url = rec.base_url or (f"http://127.0.0.1:{rec.port}/v1" if rec.port else None)
    hurl = rec.health_url or (f"http://127.0.0.1:{rec.port}/health" if rec.port else None)
    if rd.stopping.exists():
        st.state = "stopping"
        return st
    if not hurl:
        return None
    state_rec = runfiles.read_json(rd.state) or {}
    was_ready = bool(state_rec.get("pid") == rec.pid and state_rec.get("ready_at"))
    decided = _state_from_probe(probe_health(hurl, _api_key(model), timeout), was_ready)
    if decided is None:
        return None
    st.state, st.last_error = decided
    if st.state in ("starting", "loading"):
        fill_loading(st, registry, log)
    elif state_rec.get("pid") == rec.pid and state_rec.get("load_s") is not None:
        st.last_load_s = state_rec.get("load_s")
    return st


def first_status(registry: "Registry", *, timeout: float = 0.25) -> dict[str, ModelState]:
    """Every model whose state a cheap read can tell (module doc), by name. Servers are probed
    one after another: a local ``/health`` answers in a few ms; one that does not within
    ``timeout`` is left to the full status."""
    boot = runfiles.boot_id()
    out: dict[str, ModelState] = {}
    deadline = time.monotonic() + 2 * timeout  # a few hung servers must not hold the screen
    for name in registry.models:
        left = deadline - time.monotonic()
        if left <= 0.01:
            break
        try:
            st = first_state(registry, name, timeout=min(timeout, left), boot_id=boot)
        except Exception:  # noqa: BLE001 — a first read must not stop the screen; the full status reports
            st = None
        if st is not None:
            out[name] = st
    return out
