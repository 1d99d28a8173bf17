"""vLLM, SGLang and LightLLM: the seeds' commands, validation, and the not-installed check.

The seed commands below are copied from /work/shared/seeds (002: GLM-4.5 tutorial, 003: GLM-5
guide, 004: LightLLM GLM-4.7-Flash guide); seed 002's line continuations (``\\--flag``, a
formatting artefact of the page) are written as plain spaces. ``llmdeck start MODEL --dry-run``
over the matching ``examples/*.json`` must print each of them token for token.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tui.core import engines, registry
from tui.core.engines.base import LaunchError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

SEED_003_VLLM = """vllm serve zai-org/GLM-5-FP8 \\
  --tensor-parallel-size 8 \\
  --speculative-config.method mtp \\
  --speculative-config.num_speculative_tokens 1 \\
  --tool-call-parser glm47 \\
  --reasoning-parser glm45 \\
  --enable-auto-tool-choice \\
  --served-model-name glm-5-fp8 \\
  --gpu-memory-utilization 0.85"""

SEED_003_SGLANG = """python3 -m sglang.launch_server \\
  --model-path zai-org/GLM-5-FP8 \\
  --tp-size 8 \\
  --tool-call-parser glm47 \\
  --reasoning-parser glm45 \\
  --speculative-algorithm EAGLE \\
  --speculative-num-steps 3 \\
  --speculative-eagle-topk 1 \\
  --speculative-num-draft-tokens 4 \\
  --mem-fraction-static 0.85 \\
  --served-model-name glm-5-fp8"""

SEED_004_LIGHTLLM = """LIGHTLLM_TRITON_AUTOTUNE_LEVEL=1 LOADWORKER=18 \\
    python -m lightllm.server.api_server \\
        --model_dir /path/to/GLM-4.7-Flash/ \\
        --tp 1 \\
        --max_req_total_len 202752 \\
        --chunked_prefill_size 8192 \\
        --llm_prefill_att_backend fa3 \\
        --llm_decode_att_backend flashinfer \\
        --graph_max_batch_size 512 \\
        --tool_call_parser glm47 \\
        --reasoning_parser glm45 \\
        --host 0.0.0.0 \\
        --port 8000"""

SEED_004_LIGHTLLM_MTP = """LIGHTLLM_TRITON_AUTOTUNE_LEVEL=1 LOADWORKER=18 \\
    python -m lightllm.server.api_server \\
        --model_dir /path/to/GLM-4.7-Flash/ \\
        --tp 1 \\
        --max_req_total_len 202752 \\
        --chunked_prefill_size 8192 \\
        --llm_prefill_att_backend fa3 \\
        --llm_decode_att_backend flashinfer \\
        --graph_max_batch_size 512 \\
        --tool_call_parser glm47 \\
        --reasoning_parser glm45 \\
        --mtp_step 4 \\
        --mtp_mode eagle_with_att \\
        --mtp_draft_model_dir /path/to/GLM-4.7-Flash/ \\
        --host 0.0.0.0 \\
        --port 8000"""

SEED_002_SGLANG = ("python3 -m sglang.launch_server --model-path zai-org/GLM-4.5 --tool-call-parser glm45 "
                   "--reasoning-parser glm45 --served-model-name glm-4.5 --port 8000 --host 0.0.0.0")
SEED_002_VLLM = "vllm serve zai-org/GLM-4.5-Air --tensor-parallel-size 8 --served-model-name glm-4.5-air"

CASES = [
    ("glm5-fp8.json", "glm-5-fp8", SEED_003_VLLM),
    ("glm5-fp8.json", "glm-5-fp8-sglang", SEED_003_SGLANG),
    ("glm47-flash-lightllm.json", "glm-4.7-flash", SEED_004_LIGHTLLM),
    ("glm47-flash-lightllm-mtp.json", "glm-4.7-flash-mtp", SEED_004_LIGHTLLM_MTP),
    ("glm45-sglang.json", "glm-4.5", SEED_002_SGLANG),
    ("glm45-air-vllm.json", "glm-4.5-air", SEED_002_VLLM),
]


def _tokens(cmd: str) -> list[str]:
    return shlex.split(cmd.replace("\\\n", " "))


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)


@pytest.mark.parametrize("file,model,seed", CASES, ids=[c[1] for c in CASES])
def test_dry_run_prints_the_seed_command(file, model, seed):
    r = _cli("--registry", str(EXAMPLES / file), "start", model, "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()
    assert len(out) == 1, r.stdout
    assert _tokens(out[0]) == _tokens(seed)
    # the engines are not installed here: a warning on stderr, never in the command
    assert "not installed" in r.stderr


@pytest.mark.parametrize("file,model,seed", CASES, ids=[c[1] for c in CASES])
def test_launch_spec_argv_and_env(file, model, seed):
    reg = registry.load(EXAMPLES / file)
    m = reg.get(model)
    spec = engines.get_engine(m.engine).launch(reg, m, dry_run=True)
    toks = _tokens(seed)
    n_env = sum(1 for t in toks if "=" in t and not t.startswith("-") and t.split("=")[0].isupper())
    assert [f"{k}={v}" for k, v in spec.env.items()] == toks[:n_env]
    assert spec.argv == toks[n_env:]
    assert spec.health_url.endswith("/health") and spec.base_url.endswith("/v1")


def test_endpoints_follow_engine_defaults():
    reg = registry.load(EXAMPLES / "glm5-fp8.json")
    v = engines.get_engine("vllm").launch(reg, reg.get("glm-5-fp8"), dry_run=True)
    s = engines.get_engine("sglang").launch(reg, reg.get("glm-5-fp8-sglang"), dry_run=True)
    assert (v.host, v.port, v.health_url) == ("0.0.0.0", 8000, "http://127.0.0.1:8000/health")
    assert v.metrics_url == "http://127.0.0.1:8000/metrics"
    assert (s.host, s.port, s.health_url) == ("127.0.0.1", 30000, "http://127.0.0.1:30000/health")
    assert s.metrics_url is None  # SGLang serves /metrics only with enable_metrics
    reg = registry.load(EXAMPLES / "glm47-flash-lightllm.json")
    lt = engines.get_engine("lightllm").launch(reg, reg.get("glm-4.7-flash"), dry_run=True)
    assert (lt.host, lt.port, lt.base_url) == ("0.0.0.0", 8000, "http://127.0.0.1:8000/v1")


def test_port_given_to_start_is_passed():
    reg = registry.load(EXAMPLES / "glm5-fp8.json")
    spec = engines.get_engine("vllm").launch(reg, reg.get("glm-5-fp8"), port=9123, dry_run=True)
    assert spec.argv[-2:] == ["--port", "9123"] and spec.port == 9123
    assert spec.health_url == "http://127.0.0.1:9123/health"
    r = _cli("--registry", str(EXAMPLES / "glm5-fp8.json"), "start", "glm-5-fp8-sglang", "--port", "9124",
             "--dry-run")
    assert _tokens(r.stdout)[-2:] == ["--port", "9124"]


def _write(tmp_path: Path, models: dict) -> Path:
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"settings": {}, "models": models}))
    return p


@pytest.mark.parametrize("entry,needle", [
    ({"engine": "vllm"}, "needs repo_id"),
    ({"engine": "lightllm", "repo_id": "zai-org/GLM-4.7-Flash"}, "needs model_path"),
    ({"engine": "vllm", "repo_id": "a/b", "quants": {"Q": {"pattern": "*"}}}, "quants: not used by engine 'vllm'"),
    ({"engine": "sglang", "repo_id": "a/b", "api_key_env": "K"}, "where ps shows it"),
    ({"engine": "vllm", "repo_id": "a/b", "params": {"enable_auto_tool_choice": True}}, "set tool_call_parser"),
    ({"engine": "vllm", "repo_id": "a/b", "params": {"speculative_config": "mtp"}}, "must be an object"),
    ({"engine": "vllm", "repo_id": "a/b", "params": {"tensor_paralel_size": 8}},
     "did you mean 'tensor_parallel_size'"),
    ({"engine": "sglang", "repo_id": "a/b", "params": {"mem_fraction_static": "0.8"}}, "must be a number"),
    ({"engine": "lightllm", "model_path": "/m/", "params": {"mtp_mode": "eagle"}}, "must be one of"),
    ({"engine": "lightllm", "model_path": "/m/", "params": {"mtp_mode": "eagle_with_att"}},
     "needs mtp_draft_model_dir"),
    ({"engine": "lightllm", "model_path": "/m/", "chat_template_file": "t.jinja"}, "not supported by engine"),
    ({"engine": "sglang", "repo_id": "a/b", "executable": 3}, "executable: must be a string"),
])
def test_validation_names_the_field(tmp_path, entry, needle):
    problems = registry.check(_write(tmp_path, {"m": entry}))
    assert problems and any(needle in p for p in problems), problems
    assert all(str(tmp_path) in p for p in problems)


def test_quant_is_refused(tmp_path):
    reg = registry.load(_write(tmp_path, {"m": {"engine": "vllm", "repo_id": "a/b"}}))
    with pytest.raises(LaunchError, match="has no quants"):
        engines.get_engine("vllm").launch(reg, reg.get("m"), quant="Q4_K_M", dry_run=True)


def test_relative_paths_join_models_json_folder(tmp_path):
    reg = registry.load(_write(tmp_path, {"m": {
        "engine": "lightllm", "model_path": "ckpt/GLM/", "params": {
            "mtp_mode": "vanilla_with_att", "mtp_draft_model_dir": "ckpt/GLM/"}}}))
    spec = engines.get_engine("lightllm").launch(reg, reg.get("m"), dry_run=True)
    assert spec.argv[spec.argv.index("--model_dir") + 1] == f"{tmp_path}/ckpt/GLM/"
    assert spec.argv[spec.argv.index("--mtp_draft_model_dir") + 1] == f"{tmp_path}/ckpt/GLM/"
    assert spec.argv[0] == "python3"  # the default interpreter
    assert "--model_name" not in spec.argv  # LightLLM gets a name only from an alias


def test_boolean_options_and_served_name(tmp_path):
    reg = registry.load(_write(tmp_path, {"m": {
        "engine": "vllm", "repo_id": "a/b", "params": {
            "enable_chunked_prefill": False, "enable_prefix_caching": True, "trust_remote_code": True,
            "speculative_config": {"method": "mtp", "num_speculative_tokens": 2, "draft": {"x": 1}}}}}))
    argv = engines.get_engine("vllm").launch(reg, reg.get("m"), dry_run=True).argv
    assert "--no-enable-chunked-prefill" in argv and "--enable-prefix-caching" in argv
    assert argv[argv.index("--served-model-name") + 1] == "m"  # no alias: the registry name
    assert argv[argv.index("--speculative-config.draft") + 1] == '{"x":1}'


# --- the not-installed check (real starts only) ----------------------------------------------

def test_not_installed_is_one_line_at_start(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path / "empty"))
    existed = {d: (EXAMPLES / d).exists() for d in ("run", "logs")}
    r = _cli("--registry", str(EXAMPLES / "glm5-fp8.json"), "start", "glm-5-fp8", env=env)
    for d, was in existed.items():  # nothing is written for a start that cannot launch
        assert was or not (EXAMPLES / d).exists(), f"examples/{d} was created"
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines == ["llmdeck: error: engine vllm is not installed: 'vllm' not found on PATH (model 'glm-5-fp8'); "
                     "install it (pip install vllm), or set the model's \"executable\" to its path"]
    assert not (EXAMPLES / "run" / "glm-5-fp8.pid").exists()


def test_python_engine_without_its_module(tmp_path):
    reg = registry.load(_write(tmp_path, {"m": {"engine": "sglang", "repo_id": "a/b",
                                                "executable": sys.executable}}))
    with pytest.raises(LaunchError) as ei:
        engines.get_engine("sglang").launch(reg, reg.get("m"))
    msg = str(ei.value)
    assert "\n" not in msg and "no module 'sglang'" in msg and sys.executable in msg


def test_installed_engine_passes_preflight(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "sglang"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vllm").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "vllm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    reg = registry.load(_write(tmp_path, {
        "s": {"engine": "sglang", "repo_id": "a/b", "executable": sys.executable, "default_port": 30001},
        "v": {"engine": "vllm", "repo_id": "a/b", "default_port": 30002},
        "l": {"engine": "lightllm", "model_path": str(tmp_path / "nope"), "executable": sys.executable}}))
    assert engines.get_engine("sglang").launch(reg, reg.get("s")).argv[:3] == [sys.executable, "-m",
                                                                                 "sglang.launch_server"]
    assert engines.get_engine("vllm").launch(reg, reg.get("v")).argv[:2] == ["vllm", "serve"]
    (tmp_path / "site" / "lightllm").mkdir()
    (tmp_path / "site" / "lightllm" / "__init__.py").write_text("")
    with pytest.raises(LaunchError, match=r"model_path .*nope does not exist"):
        engines.get_engine("lightllm").launch(reg, reg.get("l"))
