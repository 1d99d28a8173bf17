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
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tui.core import health, runfiles
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
    # the launch file held the secret only until now
    if secrets:
        spec_clean = dict(spec, secret_files={p: "" for p in secrets})
        runfiles.write_json(launch_path, spec_clean)
    api_key = next(iter(secrets.values())).strip() if secrets else None

    # a stop that arrives while we are between restarts ends the watcher cleanly
    stop_flag = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_flag.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    attempt = 0
    backoff = 1.0
    logfh = open(log_path, "ab", buffering=0)
    while True:
        started = time.time()
        try:
            proc = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=logfh,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    cwd=spec.get("cwd") or None)
        except OSError as exc:
            _log(logfh, f"llmdeck: cannot start {spec['argv'][0]}: {exc}\n")
            runfiles.write_json(rd.exit, dict(runfiles.exit_record(127, None, stop_requested=False, pid=None),
                                              reason=f"could not start: {exc.strerror or exc}"))
            runfiles.unlink(rd.pid)
            return 1
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
        runfiles.write_json(rd.exit, rec_exit)
        runfiles.unlink(rd.pid)
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
    state = runfiles.read_json(rd.state) or {}
    state.pop("backoff_until", None)
    runfiles.write_json(rd.state, state)
    runfiles.unlink(rd.key)
    return 0


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m tui.core.watcher RUN/<model>.launch.json", file=sys.stderr)
        return 2
    return run(Path(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
