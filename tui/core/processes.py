"""Which process is a model's server, and ending one: the process-level half of the supervisor.

:func:`alive_same` and :func:`launch_problem` decide whether a pid file's process is still the
server llmdeck launched for the model (start time, command line, executable; see
:mod:`tui.core.supervisor` on adoption); :func:`watcher_alive` whether a watcher of a
model's launch file runs; :func:`terminate` ends a server's process group (SIGTERM, SIGKILL
after the grace period). Nothing here reads or writes the registry.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

import psutil

from tui.core import runfiles
from tui.core.registry import Model, Registry

START_SLACK_S = 0.05  # start times counted from boot are exact to a clock tick (10 ms)
# wall-clock start times (pid files without start_since_boot) move with the kernel's boot
# time when the clock is adjusted; with the command line also compared, 2 s of slack is safe
WALL_SLACK_S = 2.0


def alive_same(rec: runfiles.PidRecord) -> tuple[bool, str | None]:
    """(alive and the same process, why not — for a stale file)."""
    try:
        p = psutil.Process(rec.pid)
        with p.oneshot():
            st = p.status()
            if st == psutil.STATUS_ZOMBIE:
                return False, None
            ctime = p.create_time()
            cmd = p.cmdline()
            pname = p.name()
    except psutil.NoSuchProcess:
        return False, None
    except psutil.AccessDenied:
        return False, f"pid {rec.pid} belongs to another user"
    if rec.seed_format:
        # the seed's two-line file (manage.sh/deploy.sh): adopted when that PID is a
        # llama-server serving the recorded port; state_of then writes its identity
        if serves_port(cmd, rec.port):
            return True, None
        return False, (f"pid file has no identity (seed format) and pid {rec.pid} ({pname}) is not a "
                       f"llama-server on port {rec.port}: not adopted")
    since_boot, boot_id = runfiles.process_start(rec.pid) if rec.start_since_boot is not None else (None, None)
    if since_boot is not None:
        if rec.boot_id and boot_id and rec.boot_id != boot_id:
            return False, f"pid {rec.pid} is now another process ({pname}; the machine restarted since)"
        if abs(since_boot - rec.start_since_boot) > START_SLACK_S:
            return False, f"pid {rec.pid} is now another process ({pname}, started at another time)"
    elif rec.create_time is not None and abs(ctime - rec.create_time) > WALL_SLACK_S:
        return False, f"pid {rec.pid} is now another process ({pname}, started at another time)"
    if rec.cmdline and not cmd and not rec.timed:
        return False, f"pid {rec.pid} ({pname}) shows no command line to compare"
    # an empty command line is a process in the middle of exec (the kernel sets the new
    # arguments after it lets the parent go on): its start time above has already matched
    if rec.cmdline and cmd and not same_command(cmd, rec.cmdline):
        return False, f"pid {rec.pid} is now another process ({pname}: {' '.join(cmd)[:60]})"
    return True, None


def serves_port(cmd: list[str], port: int | None) -> bool:
    """A llama-server command line whose ``--port`` is ``port``."""
    if not cmd or port is None or not os.path.basename(cmd[0]).startswith("llama-server"):
        return False
    for i, a in enumerate(cmd):
        if a == "--port" and i + 1 < len(cmd):
            return cmd[i + 1] == str(port)
        if a.startswith("--port="):
            return a.split("=", 1)[1] == str(port)
    return port == 8080  # llama-server's default port


def adopt_seed_record(registry: Registry, name: str, rd: runfiles.RunDir, rec: runfiles.PidRecord) -> None:
    """Give a seed-format pid file of a live llama-server its identity (lines 1 and 2 stay as
    the seed's scripts read them), so later checks compare start times like our own."""
    try:
        p = psutil.Process(rec.pid)
        rec.create_time, rec.cmdline = p.create_time(), p.cmdline()
    except psutil.Error:
        return
    rec.start_since_boot, rec.boot_id = runfiles.process_start(rec.pid)
    rec.started_at = rec.create_time
    rec.engine = "llama-server"
    rec.log = str(registry.log_file(name))
    rec.base_url = f"http://127.0.0.1:{rec.port}/v1"
    rec.health_url = f"http://127.0.0.1:{rec.port}/health"
    # from now on it is checked like our own: the launch record is what it runs (one of an
    # earlier llmdeck run of this model is over, since this server holds the model's port)
    runfiles.write_json(rd.launch, {"model": name, "engine": "llama-server", "argv": rec.cmdline, "port": rec.port,
                                    "adopted": "seed pid file"}, mode=0o600)
    runfiles.write_atomic(rd.pid, rec.dumps())


def same_command(actual: list[str], launched: list[str]) -> bool:
    """Whether a process's command line is the one launched. A script started through its
    ``#!`` line (``vllm serve …``, a pip console script) shows up as its interpreter, maybe one
    interpreter argument, then the script's path, then the arguments launched."""
    if actual == launched:
        return True
    if not launched:
        return False
    rest = launched[1:]
    if rest and actual[len(actual) - len(rest):] != rest:
        return False
    head = actual[:len(actual) - len(rest)]
    return 2 <= len(head) <= 3 and os.path.basename(head[-1]) == os.path.basename(launched[0])


def argv_port(argv: list[str]) -> int | None:
    for i, a in enumerate(argv):
        try:
            if a == "--port" and i + 1 < len(argv):
                return int(argv[i + 1])
            if a.startswith("--port="):
                return int(a.split("=", 1)[1])
        except ValueError:
            return None
    return None


def _resolved(prog: str) -> str:
    import shutil

    if not os.path.isabs(prog):
        prog = shutil.which(prog) or prog
    return os.path.realpath(prog)


def _looks_like_engine(registry: Registry, model: Model, argv: list[str]) -> bool:
    """For a pid file with no launch record: is this command the model's engine at all?"""
    if model.engine == "llama-server":
        base = os.path.basename(argv[0])
        own = os.path.basename(registry.settings.llama_server or "") or None
        return base.startswith("llama-server") or base == own
    return any(model.engine in a for a in argv[:4])


def launch_problem(registry: Registry, model: Model, rd: runfiles.RunDir, rec: runfiles.PidRecord) -> str | None:
    """Why a live process that matches its pid file (start time, command line) is still not to
    be adopted or signalled as this model's server, or None: its command must be the one
    llmdeck launched for this model (``launch.json``; without one, the engine's binary with the
    recorded ``--port``) and its executable that command's binary."""
    name = model.name
    launch = runfiles.read_json(rd.launch) or {}
    launched = launch.get("argv") if isinstance(launch.get("argv"), list) and launch.get("argv") else None
    who = f"pid {rec.pid}"
    if launched is not None and rec.cmdline != launched:
        return f"{who} is not the command llmdeck launched for '{name}' (see {rd.launch}): not adopted"
    expected = launched or rec.cmdline
    if not expected:
        return f"{who}: the pid file records no command line: not adopted"
    if launched is None and not _looks_like_engine(registry, model, expected):
        return f"{who} ({os.path.basename(expected[0])}) is not a {model.engine} command: not adopted"
    port = argv_port(expected)
    if model.engine == "llama-server" and port is None:
        port = 8080  # llama-server's default
    if port is not None and rec.port is not None and port != rec.port:
        return f"{who} listens on port {port}, not the recorded {rec.port}: not adopted"
    try:
        p = psutil.Process(rec.pid)
        exe, cmd = p.exe(), p.cmdline()
    except psutil.NoSuchProcess:
        return None  # gone meanwhile: the next look records its exit
    except psutil.AccessDenied:
        return f"{who} belongs to another user: not adopted"
    if not exe:
        return f"{who} shows no executable to compare: not adopted"
    if not cmd or cmd == expected:  # started directly (or caught mid-exec: its start time matched)
        ok = _resolved(expected[0]) == os.path.realpath(exe)
    else:  # through its #! line: the interpreter runs
        ok = _resolved(cmd[0]) == os.path.realpath(exe) or os.path.basename(exe).startswith(os.path.basename(cmd[0]))
    if not ok:
        return f"{who} runs {exe}, not {expected[0]}: not adopted"
    return None


def watcher_alive(pid: int | None, rd: runfiles.RunDir | None = None) -> bool:
    """A live watcher process (of this model's launch file, when ``rd`` is given)."""
    if not pid:
        return False
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        cmd = p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    if not any("tui.core.watcher" in a for a in cmd):
        return False
    if rd is None:
        return True
    launch = os.path.realpath(rd.launch)
    return any(a.endswith(".launch.json") and os.path.realpath(a) == launch for a in cmd)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(done: Callable[[], bool], timeout: float, poll_s: float = 0.02) -> bool:
    """Poll ``done()`` until it is true or ``timeout`` seconds passed; whether it became true."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def signal_watcher(pid: int | None, rd: runfiles.RunDir | None = None, *, wait_s: float = 2.0) -> None:
    """SIGTERM a live watcher (of ``rd``'s launch file, when given) and wait up to ``wait_s``
    seconds for it to end; nothing when it is not running."""
    if not watcher_alive(pid, rd):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not watcher_alive(pid, rd), wait_s)


def terminate(pid: int, grace: float, on_kill: Callable[[int], None] | None = None) -> None:
    """SIGTERM ``pid``'s process group (the pid alone when it does not lead one), SIGKILL after
    ``grace`` seconds (``on_kill(pid)`` first), then wait up to 10 s for it to be gone."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None

    def send(sig: int) -> None:
        try:
            if pgid == pid:  # its own group, as the watcher started it
                os.killpg(pgid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    if wait_until(lambda: gone(pid), grace, 0.05):
        return
    if on_kill:
        on_kill(pid)
    send(signal.SIGKILL)
    wait_until(lambda: gone(pid), 10.0, 0.05)
