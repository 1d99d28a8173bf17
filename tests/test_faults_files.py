"""Issue 13, files: llmdeck never writes through a link planted at one of its file names, keeps
its private folders private, refuses forged pid files and folders anyone can write to, and
matches model names whole. Every test plants the fault, runs llmdeck as a user does (a
subprocess) where there is a command for it, and checks that what the link points at is
untouched and that the refusal is one line naming the file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from hubserver import registry_json
from tui.core import registry, runfiles, safefiles, supervisor

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(90)


def llmdeck(reg_path: Path, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui", "--registry", str(reg_path), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)


def error_lines(r: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in r.stderr, r.stderr
    return [ln for ln in r.stderr.splitlines() if ln.startswith("llmdeck: error: ")]


def plain_registry(tmp_path: Path, models: dict | None = None) -> Path:
    """A models.json whose models are never started here (stop/status/edit only)."""
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"settings": {"llama_server": "/nonexistent/llama-server"},
                             "models": models or {"m": {"model_path": "/nonexistent/m.gguf", "default_port": 18555}}},
                            indent=2))
    return p


# --- 3: a .part that is a link ---------------------------------------------------------------

def test_a_part_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, hub_env):
    env = hub_env  # the local Hub (conftest.py), here and in the llmdeck subprocess
    reg_path = tmp_path / "models.json"
    reg_path.write_text(json.dumps(registry_json(tmp_path / "models")))
    from tui.core.downloads import make_plan

    reg = registry.load(reg_path)
    plan = make_plan(reg, reg.get("tiny"), None, token="")
    f = plan.files[0]
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's own data\n")
    f.part.parent.mkdir(parents=True, exist_ok=True)
    f.part.symlink_to(victim)

    r = llmdeck(reg_path, "download", "tiny", env=env, timeout=80)
    assert r.returncode != 0
    errs = [ln for ln in error_lines(r) if str(f.part) in ln]
    assert errs and "symbolic link" in errs[0], r.stderr
    assert victim.read_text() == "the user's own data\n"
    assert f.part.is_symlink() and not f.dest.exists()
    # the other shards are not affected
    assert all(g.dest.is_file() for g in plan.files[1:])


# --- 5: edit on a linked models.json -------------------------------------------------------------

def test_edit_writes_through_a_linked_models_json_and_keeps_the_link(tmp_path):
    real_dir = tmp_path / "dotfiles"
    real_dir.mkdir()
    real = plain_registry(real_dir)
    os.chmod(real, 0o640)
    deck = tmp_path / "deck"
    deck.mkdir()
    link = deck / "models.json"
    link.symlink_to(real)

    r = llmdeck(link, "edit", "m", "default_port=18666")
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["models"]["m"]["default_port"] == 18666
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # its mode is kept
    # the lock and temp files sit beside the real file, none beside the link
    assert not (deck / "models.json.lock").exists() and not list(deck.glob(".models.json.*"))
    assert registry.load(link).models["m"].default_port == 18666


def test_a_linked_registry_lock_file_is_refused(tmp_path):
    reg_path = plain_registry(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "models.json.lock").symlink_to(victim)
    r = llmdeck(reg_path, "edit", "m", "default_port=18667")
    assert r.returncode != 0
    (line,) = error_lines(r)
    assert "models.json.lock" in line and "symbolic link" in line
    assert victim.read_text() == "keep\n"
    assert json.loads(reg_path.read_text())["models"]["m"]["default_port"] == 18555


# --- 7: a forged pid file with another process's real identity --------------------------------

@pytest.mark.parametrize("with_launch_record", [False, True])
def test_a_forged_full_pid_file_is_never_adopted_nor_signalled(tmp_path, with_launch_record):
    reg_path = plain_registry(tmp_path)
    reg = registry.load(reg_path)
    rd = runfiles.RunDir(safefiles.private_dir(reg.run_dir), "m")
    if with_launch_record:  # what llmdeck launched last time for this model
        runfiles.write_json(rd.launch, {"model": "m", "argv": ["/opt/llama/llama-server", "-m", "/x.gguf",
                                                             "--port", "18555"]})
    victim = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        p = psutil.Process(victim.pid)
        since, boot = runfiles.process_start(victim.pid)
        forged = runfiles.PidRecord(pid=victim.pid, port=18555, create_time=p.create_time(), start_since_boot=since,
                                    boot_id=boot, cmdline=p.cmdline(), engine="llama-server")
        rd.pid.write_text(forged.dumps())
        assert supervisor.alive_same(forged) == (True, None)  # the identity fields all match …
        r = llmdeck(reg_path, "stop", "m", "--grace", "1")
        assert r.returncode == 0, r.stderr
        assert victim.poll() is None, "stop signalled a process llmdeck did not launch"
        assert "stale pid file" in r.stderr and "not adopted" in r.stderr
        assert not rd.pid.exists()
        rd.pid.write_text(forged.dumps())
        r = llmdeck(reg_path, "stop", "--all", "--grace", "1")
        assert r.returncode == 0 and victim.poll() is None
        rd.pid.write_text(forged.dumps())
        st = supervisor.state_of(reg, "m")
        assert st.state == "stopped" and st.pid is None and "not adopted" in st.last_error
    finally:
        victim.kill()
        victim.wait()


# --- run/ writable by others ------------------------------------------------------------------

def test_a_run_folder_writable_by_others_is_refused_with_the_fix(tmp_path):
    reg_path = plain_registry(tmp_path)
    reg = registry.load(reg_path)
    reg.run_dir.mkdir()
    os.chmod(reg.run_dir, 0o777)
    victim = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        (reg.run_dir / "m.pid").write_text(f"{victim.pid}\n18555\n")
        for args in (["stop", "m"], ["start", "m"], ["stop", "--all"]):
            r = llmdeck(reg_path, *args)
            assert r.returncode == 1, (args, r.stderr)
            (line,) = error_lines(r)
            assert "writable by group or others" in line and f"chmod 700 {reg.run_dir}" in line
        assert victim.poll() is None
        r = llmdeck(reg_path, "status")
        assert "chmod 700" in r.stdout + r.stderr and "Traceback" not in r.stderr
        os.chmod(reg.run_dir, 0o700)
        st = supervisor.state_of(reg, "m")
        assert st.last_error and "stale pid file" in st.last_error  # read again once fixed
    finally:
        victim.kill()
        victim.wait()


def test_private_folders_and_files_are_created_private_and_never_through_links(tmp_path):
    run = tmp_path / "deck" / "run"
    safefiles.private_dir(run)
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    fresh = tmp_path / "other" / "run"  # whichever run file is written first makes run/ private
    runfiles.write_json(fresh / "history.json", {})
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    rd = runfiles.RunDir(run, "m")
    runfiles.write_json(rd.state, {"a": 1})
    assert stat.S_IMODE(rd.state.stat().st_mode) == 0o600
    victim = tmp_path / "victim"
    victim.write_text("")
    rd.start_lock.symlink_to(victim)
    with pytest.raises(safefiles.UnsafeFile) as exc:
        with runfiles.start_lock(rd.start_lock):
            pass
    assert str(rd.start_lock) in str(exc.value) and "\n" not in str(exc.value)
    assert victim.read_text() == ""
    # a planted dangling link is replaced by an atomic write, its target never created
    rd.exit.symlink_to(tmp_path / "created-by-accident")
    runfiles.write_json(rd.exit, {"code": 0})
    assert not rd.exit.is_symlink() and not (tmp_path / "created-by-accident").exists()
    fifo = run / "m.log"
    os.mkfifo(fifo)
    with pytest.raises(safefiles.UnsafeFile, match="not a regular file"):
        safefiles.open_append(fifo)


# --- 11: a model name with a trailing newline ----------------------------------------------------

def test_a_model_name_with_a_trailing_newline_is_rejected(tmp_path):
    reg_path = tmp_path / "models.json"
    reg_path.write_text(json.dumps({"models": {"x\n": {"model_path": "/x.gguf", "default_port": 18556}}}))
    r = llmdeck(reg_path, "check")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if "invalid model name" in ln]
    assert len(lines) == 1 and '"x\\n"' in lines[0]
    r = llmdeck(reg_path, "status")
    assert r.returncode == 2 and not (tmp_path / "run").exists()
    good = plain_registry(tmp_path / "g" if (tmp_path / "g").mkdir() is None else tmp_path)
    r = llmdeck(good, "add", "y\n", '{"model_path": "/y.gguf", "default_port": 18557}')
    assert r.returncode == 2 and "invalid model name" in r.stderr
    assert "y\n" not in json.loads(good.read_text())["models"]
    assert registry.NAME_RE.fullmatch("x\n") is None and registry.NAME_RE.fullmatch("x")
