"""Start, stop, adopt and report servers — one per model.

States (``ModelState.state``):

=============  ==============================================================================
stopped        no process; the last run (if any) ended because a stop was asked for
starting       process up, port not answering yet
loading        the server answers 503 (model loading); ``stage``/``load_elapsed_s``/``load_eta_s``
ready          ``/health`` answers 200
unhealthy      was ready in this run, now not answering 200
stopping       a stop is in progress (SIGTERM sent, waiting for the grace period)
crashed        the process exited by itself: ``exit`` holds its code or signal, plus the last
               log lines; with ``restart: on-failure`` the watcher is restarting it
=============  ==============================================================================

``external`` models (servers llmdeck does not start) are probed: ready / loading /
unhealthy / stopped (nothing answers).

**Adoption.** Any front end calls :func:`status`: it reads ``run/*.pid`` and re-attaches to a
server only when its PID is alive *and* is the same process — its start time and command
line match the pid file — *and* is what llmdeck launched for this model: the command line is
the one in ``run/<model>.launch.json`` (or, for a pid file without one, the engine's binary
with this model's ``--port``) and the process's executable is that binary. A stale, recycled
or forged PID file is reported (``last_error``) and removed, and that process is never
signalled. A zombie (exited but not reaped, common in containers whose PID 1 reaps nothing)
counts as exited. A ``run/`` folder that group or others can write to is refused (nothing in
it is read or signalled): anyone could forge a pid file there.

**One server per model.** :func:`start` holds ``run/<model>.start.lock`` (``flock``) from
its state check until the new pid file exists, and a watcher holds it around each
``on-failure`` restart, so two starts at once (CLI, TUI, router, watcher) never spawn two
servers: the second waits, then finds the first running and fails with "already running".
A watcher only removes or overwrites run files that record its own server.

**Stop.** SIGTERM to the server's process group, SIGKILL after the grace period
(``settings.stop_grace_s``, 30 s by default: llama-server can take that long to exit while
streams are open).

This module ties the run files to the processes. Whether a process is the model's server
(identity, adoption) and ending one (signals) live in :mod:`tui.core.processes`; what a start
checks first (the engine's launch, the port, the binary) in :mod:`tui.core.preflight`. Their
public names are importable from here too. Every function takes the model as a
:class:`~tui.core.registry.Model` or its name (:data:`~tui.core.preflight.ModelRef`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tui.core import engines, health, logfiles, runfiles, safefiles
from tui.core.engines.base import LaunchError, LaunchSpec  # noqa: F401 — re-exported
from tui.core.errors import SupervisorError
from tui.core.preflight import ModelRef, check_binary, check_port_free, launch_spec, model_of  # noqa: F401
from tui.core.processes import (adopt_seed_record, alive_same, gone, launch_problem, same_command,  # noqa: F401
                                signal_watcher, terminate, wait_until, watcher_alive)
from tui.core.registry import Model, Registry
from tui.core.states import RUNNING_STATES, STATES, ModelState, fill_loading  # noqa: F401 — re-exported


def _check_run_dir(registry: Registry) -> None:
    problem = safefiles.dir_problem(registry.run_dir)
    if problem:
        raise SupervisorError(problem)


def _remove_key_if_unused(rd: runfiles.RunDir) -> None:
    """The API key file goes with its server: removed once no pid file names a live server."""
    rec = runfiles.read_pid(rd.pid)
    if rec is None or gone(rec.pid):
        runfiles.unlink(rd.key)


# --- status ---------------------------------------------------------------------------------

def _api_key(model: Model) -> str | None:
    try:
        return model.api_key()
    except Exception:
        return None


def _probe_state(url: str, model: Model, timeout: float = 0.5) -> tuple[str, str | None]:
    p = health.health(url, api_key=_api_key(model), timeout=timeout)
    if p.status == 200:
        return "ready", None
    if p.status == 503:
        return "loading", None
    if p.status is None:
        return ("starting" if p.refused else "unhealthy"), (None if p.refused else f"/health: {p.error}")
    return "unhealthy", f"/health answered HTTP {p.status}"


def state_of(registry: Registry, ref: ModelRef, *, probe: bool = True) -> ModelState:
    model = model_of(registry, ref)
    name = model.name
    rd = runfiles.RunDir(registry.run_dir, name)
    log = registry.log_file(name)
    if model.engine == "external":
        spec = engines.spec_for(registry, model)
        st = ModelState(name=name, engine=model.engine, state="stopped", url=spec.base_url, port=spec.port)
        if probe:
            s, err = _probe_state(spec.health_url, model)
            st.state = "stopped" if s == "starting" else s
            st.last_error = err if s != "starting" else f"nothing answers at {spec.health_url}"
        return st

    now = time.time()
    st = ModelState(name=name, engine=model.engine, state="stopped", log=str(log))
    problem = safefiles.dir_problem(registry.run_dir)
    if problem:  # nothing in it is read, adopted or signalled
        st.last_error = problem
        return st
    rec = runfiles.read_pid(rd.pid)
    exit_rec = runfiles.read_json(rd.exit)
    state_rec = runfiles.read_json(rd.state) or {}
    if rec is not None:
        same, why = alive_same(rec)
        if same and not rec.seed_format:
            why = launch_problem(registry, model, rd, rec)
            same = why is None
        if same and rec.seed_format:
            adopt_seed_record(registry, name, rd, rec)
        if not same and why:
            # stale, recycled or forged: report and clean up, never signal that process
            runfiles.unlink_pid_if(rd.pid, rec.pid)
            st.last_error = f"stale pid file {rd.pid} removed: {why}"
            rec = None
        elif not same:
            # our process is gone; the watcher records its exit unless it is gone too
            watcher_running = watcher_alive(rec.watcher_pid)
            if watcher_running:
                time.sleep(0.05)
                exit_rec = runfiles.read_json(rd.exit)
            cur = runfiles.read_pid(rd.pid)
            if cur is not None and cur.pid == rec.pid:  # not replaced by a new start meanwhile
                if exit_rec is None or exit_rec.get("pid") != rec.pid:
                    stop_req = rd.stopping.exists()
                    exit_rec = dict(runfiles.exit_record(None, None, stop_requested=stop_req, pid=rec.pid),
                                    reason="exited; exit status unknown (its watcher was not running)")
                    runfiles.write_json(rd.exit, exit_rec)
                if runfiles.unlink_pid_if(rd.pid, rec.pid) and not watcher_alive(rec.watcher_pid):
                    runfiles.unlink(rd.key)  # its watcher would have; the key goes with its server
            elif cur is not None:
                return state_of(registry, model, probe=probe)
            rec = None
    if rec is not None:
        st.pid, st.port, st.quant = rec.pid, rec.port, rec.quant
        st.since = rec.started_at
        st.uptime_s = now - rec.started_at if rec.started_at else None
        st.watcher_pid = rec.watcher_pid
        spec_url = rec.base_url or (f"http://127.0.0.1:{rec.port}/v1" if rec.port else None)
        st.url = spec_url
        hurl = rec.health_url or (f"http://127.0.0.1:{rec.port}/health" if rec.port else None)
        if rd.stopping.exists():
            st.state = "stopping"
        elif probe and hurl:
            s, err = _probe_state(hurl, model)
            was_ready = state_rec.get("pid") == rec.pid and state_rec.get("ready_at")
            if s in ("starting", "loading", "unhealthy") and was_ready:
                s = "unhealthy"
                err = err or "stopped answering after it was ready"
            st.state, st.last_error = s, err
        else:
            st.state = "starting"
        if st.state in ("starting", "loading"):
            fill_loading(st, registry, log)
        elif state_rec.get("pid") == rec.pid and state_rec.get("load_s") is not None:
            st.last_load_s = state_rec.get("load_s")
        return st

    if exit_rec is not None:
        st.exit = {k: exit_rec.get(k) for k in ("code", "signal", "reason", "at")}
        st.since = exit_rec.get("at")
        if not exit_rec.get("stop_requested"):
            st.state = "crashed"
            st.last_error = st.last_error or f"server {exit_rec.get('reason')}"
            st.last_log_lines = logfiles.tail(log, 15, current_run=True)
            until = state_rec.get("backoff_until")
            if until and until > now and watcher_alive(_last_watcher(rd)):
                st.restarting_in_s = until - now
    if rd.stopping.exists() and st.state != "stopping":
        runfiles.unlink(rd.stopping)
    return st


def _last_watcher(rd: runfiles.RunDir) -> int | None:
    return (runfiles.read_json(rd.state) or {}).get("watcher_pid")


def endpoints(registry: Registry, ref: ModelRef) -> LaunchSpec:
    """Where a model's server is reached: the URL its pid file recorded while it runs (it may
    run on another port than ``default_port``), else where models.json says it would be.
    No network probe. ``argv`` is empty: this is for talking to it, not starting it."""
    model = model_of(registry, ref)
    if model.engine != "external":
        st = state_of(registry, model, probe=False)
        if st.state in RUNNING_STATES and st.url:
            origin = st.url.rstrip("/").removesuffix("/v1")
            return LaunchSpec(model=model.name, engine=model.engine, argv=[], port=urlsplit(st.url).port, base_url=st.url,
                              health_url=origin + "/health", metrics_url=origin + "/metrics")
    return engines.spec_for(registry, model)


def status(registry: Registry, *, probe: bool = True) -> list[ModelState]:
    """One state per registered model, adopting running servers (see module docstring)."""
    return [state_of(registry, n, probe=probe) for n in registry.models]


# --- start ----------------------------------------------------------------------------------

#: how long a start waits for another start of the same model to finish (its preflight and
#: the wait for the pid file take at most ~30 s) before reporting "already starting"
START_LOCK_WAIT_S = 60.0
#: how long a start or stop waits for a model's watcher to end (it is writing the exit record)
WATCHER_END_WAIT_S = 5.0
#: how long a start waits for its watcher to start the server and write the pid file
WATCHER_START_WAIT_S = 60.0


def start(registry: Registry, ref: ModelRef, *, quant: str | None = None, port: int | None = None,
          binary: str | None = None, cpp_dir: str | None = None, check_bin: bool = True) -> ModelState:
    """Preflight, then spawn the watcher in a new session. Returns once the PID is known.

    Exclusive per model (``run/<model>.start.lock``, see the module docstring): a second start
    of the same model waits for the first and then fails with "already running (pid …)", or
    with "already starting" when the first is still at it after :data:`START_LOCK_WAIT_S`."""
    # what cannot be launched (an external model, an engine not installed, a missing file) is
    # refused before anything is written: no run/, logs/ or lock beside the registry
    model = model_of(registry, ref)
    name = model.name
    _check_run_dir(registry)
    launch_spec(registry, model, quant=quant, port=port, binary=binary, cpp_dir=cpp_dir)
    rd = runfiles.RunDir(registry.run_dir, name)
    try:
        safefiles.private_dir(registry.run_dir)
        safefiles.private_dir(registry.logs_dir)
        with runfiles.start_lock(rd.start_lock, timeout=START_LOCK_WAIT_S):
            return _start_locked(registry, model, rd, quant=quant, port=port, binary=binary, cpp_dir=cpp_dir,
                                 check_bin=check_bin)
    except runfiles.Busy as busy:
        cur = state_of(registry, model, probe=False)
        if cur.pid:
            raise SupervisorError(f"model '{name}' is already starting (pid {cur.pid}, port {cur.port})") from None
        by = f" by llmdeck pid {busy.holder}" if busy.holder else ""
        raise SupervisorError(f"model '{name}' is already starting{by} ({rd.start_lock} is held)") from None
    except safefiles.UnsafeFile as exc:
        raise SupervisorError(str(exc)) from None


def _start_locked(registry: Registry, model: Model, rd: runfiles.RunDir, *, quant: str | None, port: int | None,
                  binary: str | None, cpp_dir: str | None, check_bin: bool) -> ModelState:
    name = model.name
    cur = state_of(registry, model)
    if cur.running:
        raise SupervisorError(f"model '{name}' is already running (pid {cur.pid}, port {cur.port}, {cur.state})")
    spec = launch_spec(registry, model, quant=quant, port=port, binary=binary, cpp_dir=cpp_dir)
    if check_bin and spec.argv and model.engine == "llama-server":
        check_binary(spec.argv[0])
    if spec.port:
        check_port_free(spec.host, spec.port)
    # a watcher waiting to restart its server (on-failure) or finishing its exit record is
    # told to give up, and waited for, so that this start does not race it
    signal_watcher(_last_watcher(rd), rd, wait_s=WATCHER_END_WAIT_S)

    log = registry.log_file(name)
    safefiles.refuse_link(log)  # before rotating: a planted link is refused, not moved aside
    logfiles.rotate(log, registry.settings.log_runs_kept)
    qname = quant or model.default_quant
    with safefiles.open_append(log) as fh:
        fh.write(logfiles.banner(name, f"starting ({spec.engine}, quant {qname or '-'}, port {spec.port})").encode())
        fh.write(f"llmdeck: command: {spec.shell_line(masked=True)}\n".encode())
    for p in (rd.exit, rd.stopping, rd.state):
        runfiles.unlink(p)
    launch = {
        "model": name, "engine": spec.engine, "argv": spec.argv, "env": spec.env, "port": spec.port,
        "host": spec.host, "base_url": spec.base_url, "health_url": spec.health_url, "log": str(log),
        "quant": qname, "restart": model.restart, "health_poll_s": registry.settings.health_poll_s,
        "secret_files": {str(k): v for k, v in spec.secret_files.items()},
    }
    runfiles.write_json(rd.launch, launch, mode=0o600)
    logfh = safefiles.open_append(log)
    try:
        w = subprocess.Popen([sys.executable, "-m", "tui.core.watcher", str(rd.launch)],
                             stdin=subprocess.DEVNULL, stdout=logfh, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True, cwd=str(registry.root),
                             env=_watcher_env())
    finally:
        logfh.close()
    # the lock is held until *this* watcher's pid file exists (or the watcher ended: it could
    # not start the server). Not until any exit record appears: a stop of the previous run
    # may write one meanwhile, and a second start let in then would spawn a second server.
    deadline = time.monotonic() + WATCHER_START_WAIT_S
    while True:
        rec = runfiles.read_pid(rd.pid)
        if (rec is not None and rec.watcher_pid == w.pid) or w.poll() is not None:
            break
        if time.monotonic() > deadline:
            w.kill()  # it never got to start the server; nothing of it may start one later
            w.wait()
            raise SupervisorError(f"model '{name}': its watcher did not start the server within "
                                  f"{WATCHER_START_WAIT_S:.0f} s (machine overloaded?); see {log}")
        time.sleep(0.01)
    st = state_of(registry, model)
    if st.state == "crashed" and st.exit and st.exit.get("code") == 127:
        raise SupervisorError(f"model '{name}': {st.exit.get('reason')}")
    return st


def _watcher_env() -> dict[str, str]:
    env = dict(os.environ)
    # the watcher imports tui from the same place we did, wherever the cwd is
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def wait_ready(registry: Registry, ref: ModelRef, timeout: float | None = None, poll_s: float = 0.02,
               on_change=None) -> ModelState:
    """Wait until ready, crashed, or stopped (or timeout). ``on_change(state)`` on each change."""
    model = model_of(registry, ref)
    name = model.name
    timeout = timeout or model.load_timeout_s or registry.settings.start_timeout_s
    deadline = time.monotonic() + timeout
    last = None
    rd = runfiles.RunDir(registry.run_dir, name)
    url = None
    while True:
        rec = runfiles.read_pid(rd.pid)
        if rec is not None and rec.health_url and url is None:
            url = rec.health_url
        # fast path: probe health directly; fall back to a full state every few polls
        if url is not None:
            p = health.health(url, api_key=_api_key(model), timeout=1.0)
            if p.status == 200:
                st = state_of(registry, model)
                if st.state == "ready":
                    if on_change and last != "ready":
                        on_change(st)
                    return st
        st = state_of(registry, model, probe=url is None)
        if st.state in ("crashed", "stopped"):
            if on_change and st.state != last:
                on_change(st)
            return st
        if st.state != last or (st.stage and on_change):
            if on_change:
                on_change(st)
            last = st.state
        if time.monotonic() > deadline:
            st.last_error = f"not ready after {timeout:.0f}s (still {st.state})"
            return st
        time.sleep(poll_s)


def stop(registry: Registry, ref: ModelRef, *, grace: float | None = None, on_kill=None) -> ModelState:
    """SIGTERM the server's process group; SIGKILL after ``grace`` seconds. Idempotent."""
    model = model_of(registry, ref)
    name = model.name
    if model.engine == "external":
        raise SupervisorError(f"model '{name}' is engine 'external': llmdeck does not stop it")
    _check_run_dir(registry)
    rd = runfiles.RunDir(registry.run_dir, name)
    st = state_of(registry, model, probe=False)
    watcher = st.watcher_pid or _last_watcher(rd)
    if st.pid is None:
        # nothing running; a watcher waiting to restart is told to give up
        if watcher_alive(watcher):
            runfiles.write_json(rd.stopping, {"at": time.time(), "grace": 0})
            signal_watcher(watcher, wait_s=2.0)
            runfiles.unlink(rd.stopping)
            exit_rec = runfiles.read_json(rd.exit)
            if exit_rec:
                exit_rec["stop_requested"] = True
                runfiles.write_json(rd.exit, exit_rec)
        _remove_key_if_unused(rd)
        return state_of(registry, model, probe=False)
    grace = registry.settings.stop_grace_s if grace is None else grace
    pid = st.pid
    runfiles.write_json(rd.stopping, {"at": time.time(), "grace": grace, "pid": pid})
    terminate(pid, grace, on_kill)
    # the watcher writes the exit record; wait briefly for it, else write it ourselves
    wait_until(lambda: (runfiles.read_json(rd.exit) or {}).get("pid") == pid or not watcher_alive(watcher), 2.0)
    # and for the watcher itself to end: it removes run files as it goes, and a start that
    # follows (restart) must not race it
    wait_until(lambda: not watcher_alive(watcher), WATCHER_END_WAIT_S)
    ex = runfiles.read_json(rd.exit)
    if not ex or ex.get("pid") != pid:
        runfiles.write_json(rd.exit, runfiles.exit_record(None, None, stop_requested=True, pid=pid))
    else:
        ex["stop_requested"] = True
        runfiles.write_json(rd.exit, ex)
    runfiles.unlink_pid_if(rd.pid, pid)
    runfiles.unlink(rd.stopping)
    _remove_key_if_unused(rd)
    return state_of(registry, model, probe=False)


def stop_all(registry: Registry, *, grace: float | None = None) -> list[ModelState]:
    _check_run_dir(registry)
    out = []
    for st in status(registry, probe=False):
        if st.engine != "external" and (st.pid is not None or st.restarting_in_s):
            out.append(stop(registry, st.name, grace=grace))
    return out


def restart(registry: Registry, ref: ModelRef, **kw: Any) -> ModelState:
    model = model_of(registry, ref)
    grace = kw.pop("grace", None)
    stop(registry, model, grace=grace)
    return start(registry, model, **kw)


def delete_files(registry: Registry, ref: ModelRef, quant: str | None = None, *,
                 dry_run: bool = False) -> tuple[list[Path], int]:
    """Delete one quant's downloaded files (final, partial, manifest). Refused while the
    model's server runs with that quant, and for ``model_path`` models (the user's files).
    Returns the files (to be) removed and their size in bytes."""
    from tui.core import modelfiles

    model = model_of(registry, ref)
    name = model.name
    qname = quant or model.default_quant
    if model.model_path:
        raise SupervisorError(f"model '{name}' uses model_path {model.model_path}: those files are yours; "
                              "llmdeck only deletes what it downloaded")
    if qname is None or (qname not in model.quants and not modelfiles.quant_dir(registry, model, qname).is_dir()):
        raise SupervisorError(f"model '{name}' has no quant '{qname}'; known: {', '.join(model.quants) or 'none'}")
    st = state_of(registry, model, probe=False)
    if st.running and (st.quant in (None, qname)):
        raise SupervisorError(f"model '{name}' is running (pid {st.pid}) with quant {st.quant or qname}: stop it first")
    files = modelfiles.deletable_files(registry, model, qname)
    if dry_run:
        return files, sum(f.stat().st_size for f in files if f.exists())
    return modelfiles.delete_quant(registry, model, qname)


def dumps_states(states: list[ModelState]) -> str:
    return json.dumps([s.to_json() for s in states], indent=2)
