"""The supervisor and the server CLI verbs against a real llama-server and SmolLM2."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import free_port
from tui.core import registry, runfiles, supervisor

pytestmark = pytest.mark.server


def cli(reg_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui", "--registry", str(reg_path), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def deck(make_deck):
    """A registry with two SmolLM2 models on free ports; every server killed at the end."""
    return make_deck({name: {"alias": f"{name}-alias"} for name in ("tiny-a", "tiny-b")})


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            return True
        except OSError:
            return False


@pytest.mark.timeout(120)
def test_start_ready_models_status_stop(deck):
    name = "tiny-a"
    port = deck.models[name].default_port
    r = cli(deck.path, "start", name, "--wait")
    assert r.returncode == 0, r.stderr
    assert "ready at" in r.stderr
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
        ids = [m["id"] for m in json.load(resp)["data"]]
    assert ids == ["tiny-a-alias"]

    r = cli(deck.path, "status", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    a = rows[name]
    assert a["state"] == "ready" and a["port"] == port and a["url"] == f"http://127.0.0.1:{port}/v1"
    assert a["pid"] and psutil.pid_exists(a["pid"])
    for key in ("since", "uptime_s", "exit", "last_error"):
        assert key in a
    assert a["exit"] is None and a["uptime_s"] >= 0
    assert rows["tiny-b"]["state"] == "stopped" and rows["tiny-b"]["pid"] is None
    pid = a["pid"]
    # pid file: line 1 PID, line 2 port, then identity
    lines = (deck.run_dir / f"{name}.pid").read_text().splitlines()
    assert lines[0] == str(pid) and lines[1] == str(port)
    ident = json.loads(lines[2])
    assert ident["cmdline"][0].endswith("llama-server") and ident["create_time"] > 0
    assert ident["start_since_boot"] > 0 and ident["boot_id"]
    log = (deck.logs_dir / f"{name}.log").read_text()
    assert "===== llmdeck:" in log and "starting" in log

    r = cli(deck.path, "stop", name)
    assert r.returncode == 0, r.stderr
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert port_free(port)
    st = supervisor.state_of(deck, name)
    assert st.state == "stopped" and st.pid is None
    assert not (deck.run_dir / f"{name}.pid").exists()


@pytest.mark.timeout(120)
def test_two_models_kill9_crashed_and_adoption(deck):
    for n in ("tiny-a", "tiny-b"):
        supervisor.start(deck, n)
    for n in ("tiny-a", "tiny-b"):
        assert supervisor.wait_ready(deck, n, timeout=60).state == "ready"
    # a fresh CLI process adopts both
    r = cli(deck.path, "status", "--json")
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["tiny-a"]["state"] == rows["tiny-b"]["state"] == "ready"
    assert rows["tiny-a"]["port"] != rows["tiny-b"]["port"]

    victim = rows["tiny-b"]["pid"]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    st = supervisor.state_of(deck, "tiny-b")
    while st.state != "crashed" and time.monotonic() < deadline:
        time.sleep(0.1)
        st = supervisor.state_of(deck, "tiny-b")
    assert st.state == "crashed"
    assert st.exit["signal"] == "SIGKILL" and "SIGKILL" in st.exit["reason"]
    assert st.last_log_lines and any("llama" in ln or "srv" in ln or "main" in ln for ln in st.last_log_lines)
    r = cli(deck.path, "status")
    assert "crashed" in r.stdout and "SIGKILL" in r.stdout
    # the other server is untouched
    assert supervisor.state_of(deck, "tiny-a").state == "ready"
    r = cli(deck.path, "stop", "--all")
    assert r.returncode == 0 and "tiny-a" in r.stderr
    assert supervisor.state_of(deck, "tiny-a").state == "stopped"
    # a stopped model's last crash is not forgotten until the next start
    assert supervisor.state_of(deck, "tiny-b").state == "crashed"


@pytest.mark.timeout(60)
def test_unrelated_process_in_pid_file_is_never_signalled(deck):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        deck.run_dir.mkdir(parents=True, exist_ok=True)
        pf = deck.run_dir / "tiny-a.pid"
        # identity of a llama-server that no longer exists, PID now recycled by `sleep`
        rec = runfiles.PidRecord(pid=sleeper.pid, port=deck.models["tiny-a"].default_port,
                                 create_time=psutil.Process(sleeper.pid).create_time() - 100,
                                 cmdline=["/x/llama-server", "-m", "m.gguf"])
        pf.write_text(rec.dumps())
        r = cli(deck.path, "stop", "tiny-a")
        assert r.returncode == 0
        assert sleeper.poll() is None, "the unrelated process was signalled"
        assert "stale pid file" in r.stderr or not pf.exists()
        assert not pf.exists()
        # the seed's two-line format (no identity) is never adopted either
        pf.write_text(f"{sleeper.pid}\n8001\n")
        st = supervisor.state_of(deck, "tiny-a")
        assert st.state == "stopped" and st.pid is None and "stale pid file" in st.last_error
        supervisor.stop(deck, "tiny-a")
        supervisor.stop_all(deck)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_identity_survives_a_wall_clock_adjustment_and_catches_a_recycled_pid(monkeypatch):
    """psutil's create_time is boot time + start, and the kernel's boot time moves when the
    clock is adjusted: a server must not be taken for another process (its pid file removed)
    because NTP stepped the clock. Start times counted from boot do not move."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        since, boot = runfiles.process_start(sleeper.pid)
        assert since is not None and boot
        rec = runfiles.PidRecord(pid=sleeper.pid, port=1, create_time=psutil.Process(sleeper.pid).create_time(),
                                 start_since_boot=since, boot_id=boot, cmdline=["sleep", "30"])
        assert supervisor.alive_same(rec) == (True, None)
        real = psutil.Process.create_time
        monkeypatch.setattr(psutil.Process, "create_time", lambda self: real(self) + 7.0)  # clock stepped
        assert supervisor.alive_same(rec) == (True, None)
        # an older pid file (wall-clock time only) tolerates the usual 1 s jitter of btime, not more
        legacy = runfiles.PidRecord(pid=sleeper.pid, port=1, create_time=real(psutil.Process(sleeper.pid)) + 1.0,
                                    cmdline=["sleep", "30"])
        monkeypatch.setattr(psutil.Process, "create_time", real)
        assert supervisor.alive_same(legacy) == (True, None)
        # the same PID and command started at another time, or before a reboot: another process
        other = runfiles.PidRecord(**{**rec.__dict__, "start_since_boot": since - 3.0})
        same, why = supervisor.alive_same(other)
        assert not same and "started at another time" in why
        rebooted = runfiles.PidRecord(**{**rec.__dict__, "boot_id": "00000000-dead-beef"})
        same, why = supervisor.alive_same(rebooted)
        assert not same and "the machine restarted since" in why
        parsed = runfiles.PidRecord.parse(rec.dumps())
        assert parsed.start_since_boot == since and parsed.boot_id == boot
        # caught in the middle of exec, /proc/<pid>/cmdline reads empty: the start time decides
        monkeypatch.setattr(psutil.Process, "cmdline", lambda self: [])
        assert supervisor.alive_same(rec) == (True, None)
        bare = runfiles.PidRecord(pid=sleeper.pid, port=1, cmdline=["sleep", "30"])
        same, why = supervisor.alive_same(bare)
        assert not same and "no command line to compare" in why
    finally:
        sleeper.kill()
        sleeper.wait()


def test_zombie_counts_as_exited(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.02)
    p = psutil.Process(child.pid)
    rec = runfiles.PidRecord(pid=child.pid, port=1, create_time=p.create_time(), cmdline=[])
    alive, why = supervisor.alive_same(rec)
    assert alive is False and why is None
    child.wait()


@pytest.mark.timeout(60)
def test_taken_port_missing_binary_missing_shard_bad_json(deck, tmp_path):
    port = deck.models["tiny-a"].default_port
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        r = cli(deck.path, "start", "tiny-a")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and f"port {port}" in r.stderr and "in use" in r.stderr

    bad = tmp_path / "nobin.json"
    raw = json.loads(deck.path.read_text())
    raw["settings"]["llama_server"] = str(tmp_path / "nowhere" / "llama-server")
    bad.write_text(json.dumps(raw))
    env = dict(os.environ, PATH="/usr/bin:/bin", LLMDECK_CACHE=str(tmp_path / "nocache"))
    env.pop("LLAMA_SERVER", None)
    r = subprocess.run([sys.executable, "-m", "tui", "--registry", str(bad), "start", "tiny-a"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "llama-server not found" in r.stderr and "settings.llama_server" in r.stderr

    shard = tmp_path / "split.json"
    d = tmp_path / "models" / "X-GGUF" / "Q"
    d.mkdir(parents=True)
    (d / "X-Q-00001-of-00002.gguf").write_bytes(b"GGUF")
    raw["models"]["split"] = {"repo_id": "o/X-GGUF", "quants": {"Q": {"pattern": "Q/*.gguf", "size_gb": 1}},
                              "default_quant": "Q", "default_port": free_port()}
    raw["settings"]["llama_server"] = deck.settings.llama_server
    shard.write_text(json.dumps(raw))
    r = cli(shard, "start", "split")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "X-Q-00002-of-00002.gguf" in r.stderr

    broken = tmp_path / "broken.json"
    broken.write_text('{"models": {\n  "a": {"default_port": 1,,}\n}}')
    for args in (["check"], ["status"], ["start", "a"]):
        r = cli(broken, *args)
        assert r.returncode == 2, args
        assert "line 2:" in r.stderr and "broken.json" in r.stderr and "Traceback" not in r.stderr

    r = cli(deck.path, "add", "../x", '{"default_port": 1234}')
    assert r.returncode == 2 and "invalid model name" in r.stderr
    r = cli(deck.path, "start", "nosuch")
    assert r.returncode == 2 and "no model 'nosuch'" in r.stderr


@pytest.mark.timeout(120)
def test_restart_on_failure_and_log_rotation(deck):
    registry.update_model(deck.path, "tiny-a", {"restart": "on-failure"})
    reg = registry.load(deck.path)
    supervisor.start(reg, "tiny-a")
    st = supervisor.wait_ready(reg, "tiny-a", timeout=60)
    assert st.state == "ready"
    first = st.pid
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = supervisor.state_of(reg, "tiny-a")
        if st.pid and st.pid != first and st.state == "ready":
            break
        time.sleep(0.1)
    assert st.pid != first and st.state == "ready", st
    log = reg.log_file("tiny-a").read_text()
    assert "killed by SIGKILL" in log and "restarting in" in log
    supervisor.stop(reg, "tiny-a")
    assert supervisor.state_of(reg, "tiny-a").state == "stopped"
    # the next start rotates the previous run's log to .1
    supervisor.start(reg, "tiny-a")
    supervisor.stop(reg, "tiny-a")
    assert reg.log_file("tiny-a").with_name("tiny-a.log.1").exists()
    assert "restarting in" in reg.log_file("tiny-a").with_name("tiny-a.log.1").read_text()


@pytest.mark.timeout(60)
def test_logs_and_health_and_metrics_cli(deck):
    supervisor.start(deck, "tiny-a")
    assert supervisor.wait_ready(deck, "tiny-a", timeout=60).state == "ready"
    r = cli(deck.path, "logs", "tiny-a", "-n", "5")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5
    r = cli(deck.path, "health", "tiny-a")
    assert r.returncode == 0 and "ok" in r.stdout
    r = cli(deck.path, "health", "tiny-b")
    assert r.returncode == 1 and "refused" in r.stdout
    r = cli(deck.path, "metrics", "tiny-a")
    assert r.returncode == 0, r.stderr
    assert "llamacpp:prompt_tokens_total" in r.stdout
    supervisor.stop(deck, "tiny-a")


@pytest.mark.timeout(90)
def test_unhealthy_stopping_and_sigkill_escalation(deck):
    import threading

    supervisor.start(deck, "tiny-a")
    st = supervisor.wait_ready(deck, "tiny-a", timeout=60)
    assert st.state == "ready"
    # the last load time is remembered (by the watcher, just after ready) for the next load's ETA
    deadline = time.monotonic() + 5
    while runfiles.last_load_time(deck.run_dir, "tiny-a", None) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runfiles.last_load_time(deck.run_dir, "tiny-a", None) > 0
    pid = st.pid
    os.kill(pid, signal.SIGSTOP)  # a hung server: /health stops answering, SIGTERM is not handled
    try:
        st = supervisor.state_of(deck, "tiny-a")
        assert st.state == "unhealthy" and st.last_error
        killed = []
        t = threading.Thread(target=lambda: supervisor.stop(deck, "tiny-a", grace=2, on_kill=killed.append))
        t.start()
        time.sleep(0.5)
        assert supervisor.state_of(deck, "tiny-a").state == "stopping"
        t.join(30)
        assert killed == [pid]
        st = supervisor.state_of(deck, "tiny-a")
        assert st.state == "stopped" and st.exit["signal"] == "SIGKILL"
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


@pytest.mark.server
@pytest.mark.timeout(90)
def test_a_server_started_by_the_seed_scripts_is_adopted_not_orphaned(make_deck, llama_server):
    """manage.sh/deploy.sh write run/<model>.pid as two lines (PID, port). A live llama-server on
    that port is adopted: shown, given an identity (lines 1-2 kept for the seed's scripts), and
    stoppable; nothing of the user's is removed."""
    srv = llama_server()
    reg = make_deck({"glm-5": {"default_port": srv.port}})
    reg.run_dir.mkdir(parents=True, exist_ok=True)
    pf = reg.run_dir / "glm-5.pid"
    pf.write_text(f"{srv.proc.pid}\n{srv.port}\n")
    st = supervisor.state_of(reg, "glm-5")
    assert st.state == "ready" and st.pid == srv.proc.pid and st.port == srv.port and st.last_error is None
    lines = pf.read_text().splitlines()
    assert lines[:2] == [str(srv.proc.pid), str(srv.port)]  # what the seed's scripts read
    ident = json.loads(lines[2])
    assert ident["start_since_boot"] > 0 and os.path.basename(ident["cmdline"][0]).startswith("llama-server")
    assert supervisor.state_of(reg, "glm-5").state == "ready"  # and from now on by start time
    # a seed file naming a llama-server on another port is not adopted (nor signalled)
    other = make_deck({"qwen3.5": {"default_port": free_port()}}, file="other.json")
    other.run_dir.mkdir(parents=True, exist_ok=True)
    (other.run_dir / "qwen3.5.pid").write_text(f"{srv.proc.pid}\n{srv.port + 1}\n")
    st2 = supervisor.state_of(other, "qwen3.5")
    assert st2.state == "stopped" and "is not a llama-server on port" in st2.last_error
    supervisor.stop(other, "qwen3.5")
    assert srv.proc.poll() is None
    # llmdeck stops the adopted one like its own
    st = supervisor.stop(reg, "glm-5", grace=10)
    assert srv.proc.wait(timeout=15) is not None and st.state in ("stopped", "crashed")
    assert not pf.exists()
