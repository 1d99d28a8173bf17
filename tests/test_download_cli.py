"""``llmdeck download`` as a user runs it (a subprocess), against the local Hub server:
dry run, the disk-full refusal, 401/404 as one line, tokens from HF_TOKEN and the token
file never shown, a corrupted byte, and a process killed with SIGKILL mid-file then resumed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import llmdeck, one_error_line

from hubserver import HubSpec, registry_json

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_cli_secret_token_456"
pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def hub_spec():
    return HubSpec(token=TOKEN)


@pytest.fixture
def srv(hub, hub_env):
    return hub


@pytest.fixture
def env(tmp_path, hub_env):
    e = dict(hub_env, LLMDECK_REGISTRY=str(tmp_path / "models.json"))
    (tmp_path / "models.json").write_text(json.dumps(registry_json(tmp_path / "models")))
    return e


def test_dry_run_shows_files_shards_header_and_verdict(env, tmp_path, srv):
    r = llmdeck(env, "download", "tiny", "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "unsloth/Tiny-GGUF @ " in out and "Tiny-Q4_K_M-00003-of-00003.gguf" in out
    assert "3 shards of Tiny-Q4_K_M" in out
    assert "glm4moe" in out and "ctx 202752" in out and "8 experts (2 active)" in out and "IQ2_XXS" in out
    assert "→ fits" in out
    # the memory line: weights and the KV cache at the model's context, against this machine
    mem = next(x for x in out.splitlines() if x.startswith("memory: "))
    assert "weights " in mem and "KV cache " in mem and "at ctx 202,752" in mem and "RAM available" in mem
    assert "fits in" in mem or "DOES NOT FIT" in mem
    assert not (tmp_path / "models").exists()
    r = llmdeck(env, "download", "tiny", "--dry-run", "--json")
    plan = json.loads(r.stdout.splitlines()[0])
    assert plan["event"] == "plan" and plan["fits"] and len(plan["files"]) == 3
    assert plan["header"]["expert_count"] == 8
    mem = plan["memory"]
    assert mem["weights_bytes"] == plan["total_bytes"] and mem["ctx"] == 202752 and mem["kv_bytes"] > 0
    assert mem["verdict"] in ("vram", "vram+ram", "no") and mem["ram_available_bytes"] > 0


def test_disk_full_is_refused_with_one_line_and_force_overrides_the_dry_run(env, tmp_path, srv):
    r = llmdeck(env, "download", "tiny", "--quant", "Huge")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "Huge" in line and "--force" in line and "free" in line
    assert "DOES NOT FIT" in r.stdout
    # refused before any transfer began: only the header probe (a Range GET) went out
    assert all(q.range and q.range.startswith("bytes=0-") for q in srv.requests("GET", "/cdn/"))
    assert not (tmp_path / "models").exists()
    assert llmdeck(env, "download", "tiny", "--quant", "Huge", "--dry-run").returncode == 1
    assert llmdeck(env, "download", "tiny", "--quant", "Huge", "--dry-run", "--force").returncode == 0


def test_401_and_404_each_give_one_clear_line(env):
    r = llmdeck(env, "download", "private")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "secret/Private-GGUF" in line and "401" in line and "HF_TOKEN" in line
    r = llmdeck(env, "download", "ghost")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "unsloth/Nope-GGUF" in line and "404" in line
    r = llmdeck(env, "download", "tiny", "--quant", "Q9_Z")
    assert r.returncode == 1 and "Q4_K_M" in one_error_line(r)
    r = llmdeck(env, "download", "tinny")
    assert r.returncode == 2 and "did you mean 'tiny'" in one_error_line(r)


@pytest.mark.parametrize("how", ["env", "file"])
def test_token_from_env_or_token_file_is_used_and_never_shown(env, tmp_path, srv, how):
    if how == "env":
        env["HF_TOKEN"] = TOKEN
    else:
        (tmp_path / "hf-home").mkdir(exist_ok=True)
        (tmp_path / "hf-home" / "token").write_text(TOKEN)
    r = llmdeck(env, "download", "private")
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout + r.stderr
    assert "done: 1 file(s) verified" in r.stdout
    assert all(q.auth for q in srv.log if not q.path.startswith("/cdn/"))
    assert not any(q.auth for q in srv.log if q.path.startswith("/cdn/"))


def test_corrupted_byte_fails_and_the_final_name_never_appears(env, tmp_path, srv):
    srv.corrupt = {"unsloth/Big-GGUF/Q4_K_M/Big-Q4_K_M.gguf"}
    r = llmdeck(env, "download", "big")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "Big-Q4_K_M.gguf" in line and "sha256 mismatch" in line
    qdir = tmp_path / "models" / "Big-GGUF" / "Q4_K_M"
    assert not (qdir / "Big-Q4_K_M.gguf").exists() and not (qdir / "Big-Q4_K_M.gguf.part").exists()


def test_sigkill_mid_file_then_rerun_resumes_with_range_and_verifies(env, tmp_path, srv):
    qdir = tmp_path / "models" / "Big-GGUF" / "Q4_K_M"
    final, part = qdir / "Big-Q4_K_M.gguf", qdir / "Big-Q4_K_M.gguf.part"
    srv.throttle_bps = 2_000_000  # 8 MiB takes ~4 s: time to kill it mid-file
    proc = subprocess.Popen([sys.executable, "-m", "tui", "download", "big"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if part.exists() and part.stat().st_size >= 2 * (1 << 20):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    kept = part.stat().st_size
    size = (srv.root / "unsloth/Big-GGUF/Q4_K_M/Big-Q4_K_M.gguf").stat().st_size
    assert 2 * (1 << 20) <= kept < size and not final.exists()

    r = llmdeck(env, "download", "big", "--dry-run")
    assert f"partial ({(kept / (1 << 20)):.1f} MiB)" in r.stdout

    srv.throttle_bps = None
    srv.log.clear()
    r = llmdeck(env, "download", "big")
    assert r.returncode == 0, r.stderr
    ranges = [q.range for q in srv.requests("GET", "/cdn/")]
    assert ranges[-1] == f"bytes={kept}-"  # resumed, not restarted
    assert all(q.range is not None for q in srv.requests("GET", "/cdn/"))
    assert "resuming at" in r.stdout
    assert hashlib.sha256(final.read_bytes()).hexdigest() == srv.file_sha256("unsloth/Big-GGUF",
                                                                               "Q4_K_M/Big-Q4_K_M.gguf")
    assert not part.exists()


def test_sigterm_cancels_cleanly_keeping_the_partial(env, tmp_path, srv):
    part = tmp_path / "models" / "Big-GGUF" / "Q4_K_M" / "Big-Q4_K_M.gguf.part"
    srv.throttle_bps = 2_000_000
    proc = subprocess.Popen([sys.executable, "-m", "tui", "download", "big"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size >= 1 << 20):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and took < 3
    assert "partial files kept" in err and "Traceback" not in err
    assert part.exists() and part.stat().st_size >= 1 << 20
