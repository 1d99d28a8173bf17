"""The small parent process of one server: ``python -m tui.core.watcher RUN/<model>.launch.json``.

The supervisor starts the watcher in a new session (so it and the server outlive the TUI,
the CLI and the SSH connection). The watcher:

1. writes secret files (the API key) with mode 0600;
2. starts the engine with an argv list in *its own* session (so a stop can signal the whole
   process group of the server without touching the watcher), stdout and stderr appended
   to ``logs/<model>.log``;
3. writes ``run/<model>.pid`` (PID, port, identity);
4. polls ``/health`` until ready and records the load time (the ETA of the next load);
5. waits; on exit writes ``run/<model>.exit`` with the exit code or signal (a detached
   server's exit status is otherwise lost — containerd-shim and conmon exist for the same
   reason) and removes the pid file;
6. with ``restart: "on-failure"``, restarts after a failure with exponential backoff
   (1 s, 2 s, 4 s … capped at 60 s; the backoff resets after 10 minutes of uptime).

It never reads the API key from anywhere but the launch file's secret list and never logs it.
Once read, the launch file is rewritten (0600) without the secret files' contents and with the
values of secret-looking ``env`` names masked.

It only removes or overwrites run files that record its own server: before a restart it takes
``run/<model>.start.lock`` and gives up when another start has put its own server in place
meanwhile; after its server exits it writes the exit record and removes the pid file and the
key only while the pid file still names that server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tui.core import health, runfiles, safefiles
from tui.core.engines.base import mask_env
from tui.core.logfiles import banner, note

BACKOFF_MAX_S = 60.0
BACKOFF_RESET_S = 600.0


def _log(logfh, line: str) -> None:
    logfh.write(line.encode())
    logfh.flush()


def _health_loop(url: str, api_key: str | None, started: float, rd: runfiles.RunDir, model: str,
                 quant: str | None, proc: subprocess.Popen, poll_s: float) -> None:
    """Poll /health until 200 (or the process exits); record the load time."""
    while proc.poll() is None:
        p = health.health(url, api_key=api_key, timeout=2.0)
        if p.status == 200:
            load_s = time.time() - started
            state = runfiles.read_json(rd.state) or {}
            state.update({"ready_at": time.time(), "load_s": round(load_s, 3), "pid": proc.pid})
            runfiles.write_json(rd.state, state)
            runfiles.record_load_time(rd.dir, model, quant, load_s)
            return
        time.sleep(poll_s)


def run(launch_path: Path) -> int:
    spec = runfiles.read_json(launch_path)
    if spec is None:
        print(f"llmdeck watcher: cannot read {launch_path}", file=sys.stderr)
        return 2
    model: str = spec["model"]
    rd = runfiles.RunDir(launch_path.parent, model)
    log_path = Path(spec["log"])
    restart_policy = spec.get("restart", "no")
    env = dict(os.environ)
    env.update(spec.get("env", {}))
    secrets: dict[str, str] = spec.get("secret_files", {})
    for path, content in secrets.items():
        runfiles.write_atomic(Path(path), content, mode=0o600)
    # the launch file held the secrets only until now
    spec_clean = dict(spec, secret_files={p: "" for p in secrets}, env=mask_env(spec.get("env", {})))
    if spec_clean != spec:
        runfiles.write_json(launch_path, spec_clean, mode=0o600)
    api_key = next(iter(secrets.values())).strip() if secrets else None

    # a stop that arrives while we are between restarts ends the watcher cleanly
    stop_flag = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_flag.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    attempt = 0
    backoff = 1.0
    try:
        logfh = safefiles.open_append(log_path)
    except OSError as exc:
        print(f"llmdeck watcher: {exc}", file=sys.stderr)
        runfiles.write_json(rd.exit, dict(runfiles.exit_record(127, None, stop_requested=False, pid=None),
                                          reason=f"could not open the log: {exc}"))
        return 1
    proc: subprocess.Popen | None = None
    while True:
        if attempt:
            # a restart: exclusive with any other start of this model, which may have won meanwhile
            try:
                with runfiles.start_lock(rd.start_lock, timeout=BACKOFF_MAX_S, give_up=stop_flag.is_set):
                    if stop_flag.is_set() or rd.stopping.exists():
                        break
                    other = runfiles.read_pid(rd.pid)
                    if other is not None and other.pid != proc.pid and _alive(other.pid):
                        _log(logfh, note(model, f"not restarting: another start runs it now (pid {other.pid})"))
                        return 0
                    proc, started = _spawn(spec, env, logfh, rd, log_path, attempt)
            except runfiles.Busy:
                if stop_flag.is_set():
                    break
                _log(logfh, note(model, "not restarting: another start holds the start lock"))
                return 0
        else:  # the first start: the starting process holds the lock until our pid file exists
            proc, started = _spawn(spec, env, logfh, rd, log_path, attempt)
        if proc is None:
            return 1
        if spec.get("health_url"):
            threading.Thread(target=_health_loop, daemon=True,
                             args=(spec["health_url"], api_key, started, rd, model, spec.get("quant"), proc,
                                   float(spec.get("health_poll_s", 0.05)))).start()
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - we ignore SIGINT in a daemon
                continue
        stop_requested = rd.stopping.exists() or stop_flag.is_set()
        code, sig = (None, -rc) if rc < 0 else (rc, None)
        rec_exit = runfiles.exit_record(code, sig, stop_requested=stop_requested, pid=proc.pid)
        if not _owns(rd, proc.pid):
            # another start's server is recorded there: its files are not ours to touch
            _log(logfh, note(model, f"server {rec_exit['reason']}; another server of this model is running"))
            return 0
        runfiles.write_json(rd.exit, rec_exit)
        runfiles.unlink_pid_if(rd.pid, proc.pid)
        _log(logfh, note(model, f"server {rec_exit['reason']}" + (" (stop requested)" if stop_requested else "")))
        failed = not stop_requested
        if not (failed and restart_policy == "on-failure") or stop_flag.is_set():
            break
        if time.time() - started > BACKOFF_RESET_S:
            backoff = 1.0
        attempt += 1
        state = runfiles.read_json(rd.state) or {}
        state.update({"backoff_until": time.time() + backoff, "attempt": attempt})
        runfiles.write_json(rd.state, state)
        _log(logfh, banner(model, f"restarting in {backoff:.0f}s (restart {attempt}, on-failure)"))
        if stop_flag.wait(backoff) or rd.stopping.exists():
            break
        backoff = min(backoff * 2, BACKOFF_MAX_S)
    if proc is None or _owns(rd, proc.pid):
        state = runfiles.read_json(rd.state) or {}
        if state.get("watcher_pid") in (None, os.getpid()):
            state.pop("backoff_until", None)
            runfiles.write_json(rd.state, state)
        runfiles.unlink(rd.key)
    return 0


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _owns(rd: runfiles.RunDir, pid: int) -> bool:
    """No pid file, or one that records our server: the run files are ours to write."""
    rec = runfiles.read_pid(rd.pid)
    return rec is None or rec.pid == pid


def _spawn(spec: dict, env: dict, logfh, rd: runfiles.RunDir, log_path: Path,
           attempt: int) -> tuple[subprocess.Popen | None, float]:
    """Start the server; write its pid file and the state. (None, t) when it cannot start."""
    started = time.time()
    try:
        proc = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=logfh,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                cwd=spec.get("cwd") or None)
    except OSError as exc:
        _log(logfh, f"llmdeck: cannot start {spec['argv'][0]}: {exc}\n")
        runfiles.write_json(rd.exit, dict(runfiles.exit_record(127, None, stop_requested=False, pid=None),
                                          reason=f"could not start: {exc.strerror or exc}"))
        return None, started
    try:
        import psutil

        ctime = psutil.Process(proc.pid).create_time()
    except Exception:
        ctime = None
    since_boot, boot_id = runfiles.process_start(proc.pid)
    rec = runfiles.PidRecord(pid=proc.pid, port=spec.get("port"), create_time=ctime,
                             start_since_boot=since_boot, boot_id=boot_id,
                             cmdline=list(spec["argv"]), watcher_pid=os.getpid(), started_at=started,
                             log=str(log_path), quant=spec.get("quant"), engine=spec.get("engine"),
                             base_url=spec.get("base_url"), health_url=spec.get("health_url"))
    runfiles.write_json(rd.state, {"started_at": started, "attempt": attempt, "pid": proc.pid,
                                   "watcher_pid": os.getpid()})
    runfiles.write_atomic(rd.pid, rec.dumps())
    runfiles.unlink(rd.exit)
    return proc, started


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m tui.core.watcher RUN/<model>.launch.json", file=sys.stderr)
        return 2
    return run(Path(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
