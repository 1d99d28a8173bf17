"""models.json: validation messages, atomic edits, locking, the shipped file."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from tui.core import registry
from tui.core.registry import RegistryError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, data, name="models.json") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return p


def problems(tmp_path, data) -> list[str]:
    return registry.check(write(tmp_path, data))


def test_shipped_models_json_is_valid_and_has_the_seed_models():
    reg = registry.load(ROOT / "models.json")
    assert {"glm-5", "qwen3.5", "glm-4.7-flash", "smollm2"} <= set(reg.models)
    glm = reg.models["glm-5"]
    assert glm.default_port == 8001 and glm.repo_id == "unsloth/GLM-5-GGUF"
    assert glm.quants["UD-IQ2_XXS"].size_gb == 241 and glm.quants["UD-TQ1_0"].size_gb == 176
    qwen = reg.models["qwen3.5"]
    assert qwen.default_port == 8002
    assert {q: v.size_gb for q, v in qwen.quants.items()} == {"MXFP4_MOE": 214, "UD-Q4_K_XL": 214, "UD-Q2_K_XL": 120}
    # sizes we do not know are left unknown, never invented
    assert all(q.size_gb is None for q in reg.models["glm-4.7-flash"].quants.values())


def test_json_syntax_error_names_line_and_column(tmp_path):
    out = problems(tmp_path, '{\n  "models": {\n    "a": {"default_port": 8001,}\n  }\n}\n')
    assert len(out) == 1
    assert "line 3:" in out[0] and "invalid JSON" in out[0] and "models.json" in out[0]


def test_unknown_key_with_did_you_mean(tmp_path):
    out = problems(tmp_path, {"models": {"a": {"default_prot": 8001}}})
    assert out == [f"{tmp_path / 'models.json'}: models.a: unknown key 'default_prot' (did you mean 'default_port'?)"]


def test_unknown_param_with_did_you_mean_and_wrong_type(tmp_path):
    out = problems(tmp_path, {"models": {"a": {"default_port": 1, "params": {"ctx_sise": 1, "temp": "hot"}}}})
    assert any("unknown llama-server parameter 'ctx_sise' (did you mean 'ctx_size'?)" in p for p in out)
    assert any("models.a.params.temp: must be a number" in p for p in out)
    assert len(out) == 2


def test_wrong_type_unknown_quant_and_port_clash(tmp_path):
    out = problems(tmp_path, {"models": {
        "a": {"default_port": "8001"},
        "b": {"default_port": 8002, "quants": {"Q4": {"pattern": "*.gguf", "size_gb": 1}}, "default_quant": "Q5"},
        "c": {"default_port": 8003},
        "d": {"default_port": 8003},
    }})
    assert any("models.a.default_port: must be an integer" in p for p in out)
    assert any("models.b.default_quant: unknown quant 'Q5'" in p and "Q4" in p for p in out)
    assert any("models.d.default_port: port 8003 is also used by model 'c'" in p for p in out)
    assert len(out) == 3


@pytest.mark.parametrize("name", ["../x", "A", "-x", "a/b", "", "a b"])
def test_bad_model_names_rejected(tmp_path, name):
    out = problems(tmp_path, {"models": {name: {"default_port": 8001}}})
    assert len(out) == 1 and "invalid model name" in out[0]


def test_every_problem_is_one_line(tmp_path):
    out = problems(tmp_path, {"settings": {"stop_grace": 3}, "models": {"x": {"engine": "llama-srever"}}})
    assert out and all("\n" not in p for p in out)
    assert any("did you mean 'stop_grace_s'" in p for p in out)
    assert any("unknown engine 'llama-srever' (did you mean 'llama-server'?)" in p for p in out)


def test_edit_is_atomic_keeps_order_and_refuses_invalid(tmp_path):
    p = write(tmp_path, {"settings": {"stop_grace_s": 5}, "models": {
        "zz": {"default_port": 9001, "alias": "z"}, "aa": {"default_port": 9002}}})
    registry.update_model(p, "zz", {"params": {"ctx_size": 1024}})
    raw = json.loads(p.read_text())
    assert list(raw["models"]) == ["zz", "aa"]  # key order kept
    assert list(raw["models"]["zz"]) == ["default_port", "alias", "params"]
    before = p.read_text()
    with pytest.raises(RegistryError) as ei:
        registry.update_model(p, "zz", {"default_port": 9002})  # clashes with aa
    assert "also used by model" in str(ei.value)
    assert p.read_text() == before  # untouched
    registry.add_model(p, "new-model", {"default_port": 9003})
    registry.remove_model(p, "aa")
    assert list(json.loads(p.read_text())["models"]) == ["zz", "new-model"]
    assert not list(tmp_path.glob(".models.json.*.tmp"))  # no temp files left


def test_add_rejects_path_like_names(tmp_path):
    p = write(tmp_path, {"models": {}})
    with pytest.raises(RegistryError):
        registry.add_model(p, "../x", {"default_port": 9003})
    assert json.loads(p.read_text()) == {"models": {}}


def _adder(path: str, i: int) -> None:
    for j in range(10):
        registry.add_model(path, f"m{i}-{j}", {"default_port": 10000 + i * 100 + j})


def test_concurrent_writers_lose_nothing(tmp_path):
    p = write(tmp_path, {"models": {}})
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_adder, args=(str(p), i)) for i in range(4)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(60)
    assert all(pr.exitcode == 0 for pr in procs)
    assert len(registry.load(p).models) == 40


def test_relative_paths_resolve_beside_models_json(tmp_path, monkeypatch):
    p = write(tmp_path, {"models": {"a": {"default_port": 1, "model_path": "m/x.gguf"}}})
    monkeypatch.chdir("/")
    reg = registry.load(p)
    assert reg.resolve(reg.models["a"].model_path) == tmp_path / "m" / "x.gguf"
    assert reg.run_dir == tmp_path / "run" and reg.logs_dir == tmp_path / "logs"
    assert reg.models_dir == tmp_path / "models"
    assert os.path.isabs(reg.path)


def test_a_server_reachable_from_outside_without_an_api_key_is_warned_about(tmp_path, capsys):
    from tui.cli.main import main

    path = write(tmp_path, {"models": {
        "lan": {"host": "0.0.0.0", "default_port": 8001, "model_path": "x.gguf"},
        "keyed": {"host": "0.0.0.0", "default_port": 8002, "model_path": "x.gguf", "api_key_env": "K"},
        "flag": {"host": "192.168.1.5", "default_port": 8003, "model_path": "x.gguf",
                 "extra_args": ["--api-key-file", "/k"]},
        "local": {"default_port": 8004, "model_path": "x.gguf"},
        "v6": {"host": "::1", "default_port": 8005, "model_path": "x.gguf"},
        "remote": {"engine": "external", "base_url": "http://10.0.0.2:8000/v1"},
        "vl": {"engine": "vllm", "host": "0.0.0.0", "default_port": 8006, "repo_id": "zai-org/GLM-5-FP8"}}})
    reg = registry.load(path)
    assert reg.models["lan"].exposure() == (
        "model 'lan' listens on 0.0.0.0:8001 with no API key: anyone who can reach this machine can use it; "
        "set api_key_env, or keep host 127.0.0.1 and tunnel (ssh -L 8001:127.0.0.1:8001 <this machine>)")
    assert [n for n, m in reg.models.items() if m.exposure()] == ["lan", "vl"]
    # vLLM & co. take a key only on their command line (refused): the router or a tunnel instead
    assert reg.models["vl"].exposure().endswith(
        "keep host 127.0.0.1 and either serve it through 'llmdeck serve --api-key-env NAME' or tunnel "
        "(ssh -L 8006:127.0.0.1:8006 <this machine>)")
    # check warns (and still passes); start warns before anything else
    assert main(["--registry", str(path), "check"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["llmdeck: warning: " + reg.models[n].exposure() for n in ("lan", "vl")]
    assert main(["--registry", str(path), "start", "lan", "--dry-run"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == "llmdeck: warning: " + reg.models["lan"].exposure()
