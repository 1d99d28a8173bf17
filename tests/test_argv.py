"""llama-server argv from a registry entry: flags table, shards, secrets, binary lookup."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tui.core import registry, supervisor
from tui.core.engines.base import LaunchError
from tui.core.engines.llama_server import find_binary


@pytest.fixture
def fake_bin(tmp_path) -> Path:
    b = tmp_path / "bin" / "llama-server"
    b.parent.mkdir()
    b.write_text("#!/bin/sh\necho version: 1\n")
    b.chmod(b.stat().st_mode | stat.S_IEXEC)
    return b


def reg_with(tmp_path, models, settings=None):
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"settings": settings or {}, "models": models}))
    return registry.load(p)


def make_shards(d: Path, prefix: str, n: int, skip=()):
    d.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        if i not in skip:
            (d / f"{prefix}-{i:05d}-of-{n:05d}.gguf").write_bytes(b"GGUF")


def test_split_gguf_uses_first_shard_and_params_map_to_flags(tmp_path, fake_bin, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    reg = reg_with(tmp_path, {"glm-5": {
        "repo_id": "unsloth/GLM-5-GGUF", "quants": {"UD-IQ2_XXS": {"pattern": "UD-IQ2_XXS/*.gguf", "size_gb": 241}},
        "default_quant": "UD-IQ2_XXS", "alias": "glm-5", "default_port": 8001, "api_key_env": "SECRET_KEY",
        "env": {"CUDA_VISIBLE_DEVICES": "0,1"}, "extra_args": ["--no-webui"],
        "params": {"ctx_size": 16384, "n_gpu_layers": 999, "flash_attn": True, "cache_type_k": "q8_0",
                   "n_cpu_moe": 10, "temp": 1.0, "top_p": 0.95, "mlock": True, "parallel": 2}}},
        {"llama_server": str(fake_bin)})
    make_shards(tmp_path / "models" / "GLM-5-GGUF" / "UD-IQ2_XXS", "GLM-5-UD-IQ2_XXS", 6)
    spec = supervisor.launch_spec(reg, "glm-5")
    a = spec.argv
    assert a[0] == str(fake_bin)
    assert a[a.index("--model") + 1].endswith("GLM-5-UD-IQ2_XXS-00001-of-00006.gguf")
    for flag, val in [("--alias", "glm-5"), ("--host", "127.0.0.1"), ("--port", "8001"), ("--ctx-size", "16384"),
                      ("--n-gpu-layers", "999"), ("--flash-attn", "on"), ("--cache-type-k", "q8_0"),
                      ("--n-cpu-moe", "10"), ("--temp", "1.0"), ("--top-p", "0.95"), ("--parallel", "2")]:
        assert a[a.index(flag) + 1] == val, flag
    assert "--metrics" in a and "--mlock" in a and a[-1] == "--no-webui"
    # the key goes through a 0600 file, never argv
    assert "s3cret" not in " ".join(a)
    kf = Path(a[a.index("--api-key-file") + 1])
    assert spec.secret_files[kf].strip() == "s3cret"
    assert spec.env == {"CUDA_VISIBLE_DEVICES": "0,1"}


def test_missing_shard_is_named(tmp_path, fake_bin):
    reg = reg_with(tmp_path, {"m": {"repo_id": "o/R-GGUF", "quants": {"Q": {"pattern": "Q/*.gguf", "size_gb": 1}},
                                    "default_quant": "Q", "default_port": 8001}}, {"llama_server": str(fake_bin)})
    make_shards(tmp_path / "models" / "R-GGUF" / "Q", "R-Q", 3, skip=(2,))
    with pytest.raises(LaunchError) as ei:
        supervisor.launch_spec(reg, "m")
    msg = str(ei.value)
    assert "R-Q-00002-of-00003.gguf" in msg and "missing shard" in msg and "\n" not in msg


def test_binary_lookup_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("LLMDECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    reg = reg_with(tmp_path, {}, {"llama_server": "nope/llama-server"})
    with pytest.raises(LaunchError) as ei:
        find_binary(reg, cpp_dir=str(tmp_path / "cpp"))
    msg = str(ei.value)
    for place in ("cpp/build/bin/llama-server", "settings.llama_server", "$LLAMA_SERVER", "PATH", "llmdeck cache"):
        assert place in msg, place


def test_binary_lookup_order(tmp_path, fake_bin, monkeypatch):
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    cpp = tmp_path / "cpp" / "build" / "bin"
    cpp.mkdir(parents=True)
    (cpp / "llama-server").write_text("#!/bin/sh\n")
    (cpp / "llama-server").chmod(0o755)
    reg = reg_with(tmp_path, {}, {"llama_server": str(fake_bin)})
    assert find_binary(reg) == fake_bin
    assert find_binary(reg, cpp_dir=str(tmp_path / "cpp")) == cpp / "llama-server"
    monkeypatch.setenv("LLAMA_SERVER", str(cpp / "llama-server"))
    assert find_binary(reg_with(tmp_path, {})) == cpp / "llama-server"


def test_dry_run_prints_command_even_without_files(tmp_path, fake_bin):
    reg = reg_with(tmp_path, {"m": {"repo_id": "o/R-GGUF", "quants": {"Q": {"pattern": "Q/*.gguf", "size_gb": 1}},
                                    "default_quant": "Q", "default_port": 8001}}, {"llama_server": str(fake_bin)})
    spec = supervisor.launch_spec(reg, "m", dry_run=True)
    assert spec.warnings and "no model files" in spec.warnings[0]
    assert spec.argv[spec.argv.index("--model") + 1].endswith("R-GGUF/Q/*.gguf")
    assert os.path.basename(spec.argv[0]) == "llama-server"
