"""Issue 13, processes: one server per model however starts race (two CLIs, restart against
start, an ``on-failure`` watcher against a manual start), logs never opened through a planted
link, secrets in ``env`` masked in the log and the launch record, the API key file gone with its
server. Real ``llmdeck`` processes, the real llama-server and SmolLM2."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tui.core import runfiles, supervisor

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.server


def spawn(reg_path: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tui", "--registry", str(reg_path), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env=env)


def run(reg_path: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    p = spawn(reg_path, *args, env=env)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def together(reg_path: Path, *commands: list[str], env: dict | None = None, timeout: float = 180):
    """Run llmdeck commands at the same moment; their CompletedProcesses in order."""
    procs = [spawn(reg_path, *c, env=env) for c in commands]
    outs = [p.communicate(timeout=timeout) for p in procs]
    return [subprocess.CompletedProcess(p.args, p.returncode, o, e) for p, (o, e) in zip(procs, outs)]


def our_servers(port: int) -> list[int]:
    """PIDs of live llama-server processes serving ``port`` (ours: the port is a fresh one)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if (cmd and os.path.basename(cmd[0]).startswith("llama-server") and p.info["status"] != psutil.STATUS_ZOMBIE
                and "--port" in cmd and cmd[cmd.index("--port") + 1] == str(port)):
            found.append(p.pid)
    return found


def watchers(launch: Path) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE and "tui.core.watcher" in (p.info["cmdline"] or [])
            and str(launch) in (p.info["cmdline"] or [])]


def status_of(reg_path: Path, name: str, env: dict | None = None) -> dict:
    r = run(reg_path, "status", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return next(s for s in json.loads(r.stdout) if s["name"] == name)


def started_pid(r: subprocess.CompletedProcess) -> int:
    line = next(ln for ln in r.stderr.splitlines() if " started " in ln or ln.startswith("llmdeck: started"))
    return int(line.split("pid ")[1].split(",")[0])


def settle(port: int, want: int, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        pids = our_servers(port)
        if len(pids) == want or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def stop_and_check_none_left(reg_path: Path, name: str, port: int, env: dict | None = None) -> None:
    r = run(reg_path, "stop", name, "--grace", "10", env=env)
    assert r.returncode == 0 and f"{name}: stopped" in r.stderr, r.stderr
    assert settle(port, 0) == [], "a llama-server of ours is still running after stop"


# --- 1: two starts at the same moment ------------------------------------------------------------

@pytest.mark.timeout(420)
def test_two_starts_at_the_same_moment_give_one_server_that_status_and_stop_see(make_deck):
    reg = make_deck({"race": {}})
    port = reg.models["race"].default_port
    for rnd in range(3):
        a, b = together(reg.path, ["start", "race", "--wait"], ["start", "race", "--wait"])
        rcs = sorted([a.returncode, b.returncode])
        assert rcs == [0, 1], (rnd, a.stderr, b.stderr)
        winner, loser = (a, b) if a.returncode == 0 else (b, a)
        pid = started_pid(winner)
        errs = [ln for ln in loser.stderr.splitlines() if ln.startswith("llmdeck: error: ")]
        assert len(errs) == 1 and "already" in errs[0] and f"pid {pid}" in errs[0], loser.stderr
        assert "started" not in loser.stderr  # the loser spawned nothing
        assert our_servers(port) == [pid]
        st = status_of(reg.path, "race")
        assert st["state"] == "ready" and st["pid"] == pid
        assert len(watchers(reg.run_dir / "race.launch.json")) == 1
        stop_and_check_none_left(reg.path, "race", port)
        assert watchers(reg.run_dir / "race.launch.json") == []


@pytest.mark.timeout(300)
def test_restart_racing_a_start_leaves_exactly_one_server(make_deck):
    reg = make_deck({"rs": {}})
    port = reg.models["rs"].default_port
    for running_before in (False, True):
        if running_before:
            r = run(reg.path, "start", "rs", "--wait")
            assert r.returncode == 0, r.stderr
        a, b = together(reg.path, ["restart", "rs", "--wait"], ["start", "rs", "--wait"])
        if 0 not in (a.returncode, b.returncode):
            logs = "".join(f.read_text()[-3000:] for f in sorted(reg.logs_dir.glob("rs.log*")))
            pytest.fail(f"neither succeeded\nrestart: {a.stderr}\nstart: {b.stderr}\nlogs:\n{logs}")
        for r in (a, b):
            assert "Traceback" not in r.stderr
            if r.returncode != 0:
                assert "already" in r.stderr or "stopped" in r.stderr or "crashed" in r.stderr, r.stderr
        pids = settle(port, 1)
        assert len(pids) == 1, pids
        st = status_of(reg.path, "rs")
        assert st["state"] == "ready" and st["pid"] == pids[0]
        assert len(watchers(reg.run_dir / "rs.launch.json")) == 1
        stop_and_check_none_left(reg.path, "rs", port)


@pytest.mark.timeout(240)
def test_an_on_failure_restart_racing_a_manual_start_leaves_one_server(make_deck):
    reg = make_deck({"phoenix": {"restart": "on-failure"}})
    port = reg.models["phoenix"].default_port
    launch = reg.run_dir / "phoenix.launch.json"
    r = run(reg.path, "start", "phoenix", "--wait")
    assert r.returncode == 0, r.stderr
    first = started_pid(r)
    os.kill(first, signal.SIGKILL)  # a crash: its watcher restarts it after 1 s
    deadline = time.monotonic() + 10
    while supervisor.state_of(reg, "phoenix", probe=False).state != "crashed" and time.monotonic() < deadline:
        time.sleep(0.02)
    r = run(reg.path, "start", "phoenix", "--wait")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    if r.returncode == 1:
        assert "already" in r.stderr, r.stderr
    time.sleep(3.0)  # past the watcher's backoff: a second server would have appeared by now
    pids = settle(port, 1)
    assert len(pids) == 1 and first not in pids, pids
    assert len(watchers(launch)) == 1
    st = status_of(reg.path, "phoenix")
    assert st["state"] == "ready" and st["pid"] == pids[0]
    stop_and_check_none_left(reg.path, "phoenix", port)
    assert watchers(launch) == []


# --- 6: a planted link at the log's name ------------------------------------------------------------

@pytest.mark.timeout(120)
def test_a_log_that_is_a_link_is_refused_before_anything_starts(make_deck, tmp_path):
    reg = make_deck({"lg": {}})
    port = reg.models["lg"].default_port
    reg.logs_dir.mkdir(mode=0o700)
    log = reg.logs_dir / "lg.log"
    dangling = tmp_path / "would-be-created"
    empty = tmp_path / "empty-target"
    empty.write_text("")
    for target in (dangling, empty):
        log.symlink_to(target)
        r = run(reg.path, "start", "lg", "--wait")
        assert r.returncode == 1
        errs = [ln for ln in r.stderr.splitlines() if ln.startswith("llmdeck: error: ")]
        assert len(errs) == 1 and str(log) in errs[0] and "symbolic link" in errs[0], r.stderr
        assert our_servers(port) == []
        assert log.is_symlink()
        log.unlink()
    assert not dangling.exists() and empty.read_text() == ""
    r = run(reg.path, "start", "lg", "--wait")  # with the link gone it starts
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and not log.is_symlink()
    stop_and_check_none_left(reg.path, "lg", port)


# --- 8 and 9: secrets in env; the key file outliving a killed watcher ----------------------------

@pytest.mark.timeout(120)
def test_env_secrets_are_masked_files_private_and_the_key_goes_with_its_server(make_deck):
    secrets = {"HF_TOKEN": "hf_SECRET_aaa111", "DB_Password": "pw-SECRET-bbb222", "my_api_key": "SECRET-ccc333"}
    reg = make_deck({"sec": {"env": {**secrets, "GGML_SCHED_MAX_COPIES": "1"}, "api_key_env": "SEC_KEY"}})
    port = reg.models["sec"].default_port
    env = dict(os.environ, SEC_KEY="key-SECRET-ddd444")
    r = run(reg.path, "start", "sec", "--wait", env=env)
    assert r.returncode == 0, r.stderr
    pid = started_pid(r)
    rd = runfiles.RunDir(reg.run_dir, "sec")
    log_text = reg.log_file("sec").read_text()
    launch_text = rd.launch.read_text()
    for v in [*secrets.values(), env["SEC_KEY"]]:
        assert v not in log_text and v not in launch_text and v not in r.stderr
    cmd_line = next(ln for ln in log_text.splitlines() if ln.startswith("llmdeck: command: "))
    assert "HF_TOKEN='****'" in cmd_line and "DB_Password='****'" in cmd_line and "GGML_SCHED_MAX_COPIES=1" in cmd_line
    for d in (reg.run_dir, reg.logs_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in (rd.launch, rd.key, rd.pid, reg.log_file("sec")):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    # the server itself got the real values
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"HF_TOKEN=hf_SECRET_aaa111" in environ and b"DB_Password=pw-SECRET-bbb222" in environ
    assert rd.key.read_text().strip() == env["SEC_KEY"]
    # the watcher dies (OOM killer, kill -9): stop still removes the key with the server
    (watcher,) = watchers(rd.launch)
    os.kill(watcher, signal.SIGKILL)
    stop_and_check_none_left(reg.path, "sec", port, env=env)
    assert not rd.key.exists()
