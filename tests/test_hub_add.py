"""Adding a model from the Hub (issue 17): the quant table, the entry builder, and
``llmdeck quants / search / add REPO[:QUANT]`` as a user runs them (subprocesses), all against
the local Hub test server (tests/hubsearch.py) through the real ``huggingface_hub`` client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import llmdeck, one_error_line
from hubsearch import GLM_QUANTS, SearchHubServer, populate_glm
from hubserver import HubSpec, hub_environ

from tui.core import hubentry, memfit, registry
from tui.core.downloads import DownloadError, gguf, quants

TOKEN = "hf_add_secret_token_789"
GIB = 1 << 30
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def hub_spec():
    return HubSpec(populate_glm, SearchHubServer, TOKEN)


@pytest.fixture
def srv(hub, hub_env):
    return hub


@pytest.fixture
def env(tmp_path, hub_env):
    e = dict(hub_env)
    fake = tmp_path / "bin" / "llama-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    e.update(LLMDECK_REGISTRY=str(tmp_path / "models.json"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    (tmp_path / "models.json").write_text(json.dumps({
        "settings": {"models_dir": str(tmp_path / "models"), "llama_server": str(fake)},
        "models": {"demo": {"model_path": "demo.gguf", "default_port": 8001}}}))
    return e


def repo_files(srv, repo: str) -> dict[str, int]:
    base = srv.root / repo
    return {p.relative_to(base).as_posix(): p.stat().st_size for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


# --- the quant table ------------------------------------------------------------------------

def test_quant_table_files_and_byte_sums_equal_the_repos(srv, tmp_path):
    repo = srv.repos["glm"]
    srv.page_size = 4  # the listing follows the Hub's Link: rel="next" pages
    t = quants.quant_table(repo, token="", cache=tmp_path / "c")
    assert len(srv.requests("GET", "/tree/")) > 3
    on_disk = repo_files(srv, repo)
    assert {r.quant for r in t.quants} == set(GLM_QUANTS)
    for r in t.quants:
        ft, folder, n = GLM_QUANTS[r.quant]
        want = sorted(p for p in on_disk if p.endswith(".gguf") and not p.startswith("mmproj")
                      and (p.startswith(f"{folder}/") if folder else ("/" not in p and f"-{r.quant}" in p)))
        assert r.files == want and r.shards == n == len(want) and not r.missing
        assert r.sizes == [on_disk[p] for p in want] and r.size_bytes == sum(on_disk[p] for p in want)
        assert r.folder == folder
    assert t.mmproj == [("mmproj-F16.gguf", on_disk["mmproj-F16.gguf"])]
    assert sorted(p for p, _ in t.other) == ["README.md", "config.json", "imatrix_unsloth.gguf_file"]
    # every file of the repo is in exactly one place
    listed = [p for r in t.quants for p in r.files] + [p for p, _ in t.mmproj] + [p for p, _ in t.other]
    assert sorted(listed) == sorted(on_disk)
    # largest first
    assert [r.size_bytes for r in t.quants] == sorted((r.size_bytes for r in t.quants), reverse=True)


def test_header_facts_equal_the_files_and_are_cached_per_commit(srv, tmp_path):
    repo = srv.repos["glm"]
    t = quants.quant_table(repo, token="", cache=tmp_path / "c")
    facts = ("architecture", "name", "size_label", "file_type", "context_length", "block_count",
             "embedding_length", "expert_count", "expert_used_count", "vocab_size", "tensor_count")
    for r in t.quants:
        local = gguf.read_file(srv.root / repo / r.first, tensors=True)
        assert r.header is not None
        assert {k: r.header.summary()[k] for k in facts} == {k: local.summary()[k] for k in facts}
        assert all(r.header.kv[k] == v for k, v in local.kv.items() if not k.startswith(("tokenizer.", "split.")))
        assert r.header.file_type_name == gguf.FILE_TYPES[GLM_QUANTS[r.quant][0]]
        # read only up to the vocabulary: one Range request of 256 KiB for a header larger than that
        assert r.header.extra["stopped_at"] == "tokenizer.ggml.tokens" and local.header_size > 256 << 10
        assert r.first.endswith(("-00001-of-00002.gguf", "-00001-of-00003.gguf", "Q4_K_M.gguf"))
        # memory: weights are the exact bytes, KV at the model's own context
        assert r.fit.weights == r.size_bytes and r.fit.ctx == 202752 and r.fit.kv > 0
    ranges = [q for q in srv.requests("GET", "/cdn/") if q.range]
    assert len(ranges) == len(t.quants)  # one Range request per quant, nothing downloaded whole
    assert {q.range for q in ranges} == {"bytes=0-262143"}
    srv.log.clear()
    t2 = quants.quant_table(repo, token="", cache=tmp_path / "c")
    assert t2.cached_headers == len(t2.quants) and not srv.requests("GET", "/cdn/")
    assert [r.header.summary() for r in t2.quants] == [r.header.summary() for r in t.quants]


def test_repo_forms_are_parsed():
    assert quants.parse_repo("unsloth/GLM-5-GGUF") == ("unsloth/GLM-5-GGUF", None)
    assert quants.parse_repo("hf.co/unsloth/GLM-5-GGUF:UD-IQ2_XXS") == ("unsloth/GLM-5-GGUF", "UD-IQ2_XXS")
    assert quants.parse_repo("https://huggingface.co/unsloth/GLM-5-GGUF/tree/main") == ("unsloth/GLM-5-GGUF",
                                                                                          None)
    with pytest.raises(DownloadError, match="not a Hub repo id"):
        quants.parse_repo("glm-5")


# --- the entry builder ------------------------------------------------------------------------

def _machine(vram: int | None, ram: int) -> memfit.Machine:
    return memfit.Machine((vram,) if vram is not None else None, ram, None if vram is not None else "no NVML")


def test_default_quant_is_the_largest_that_fits_in_vram_then_vram_plus_ram_then_the_smallest(srv, tmp_path):
    t = quants.quant_table(srv.repos["glm"], token="", cache=tmp_path / "c")
    by_size = [r.quant for r in t.quants]  # largest first
    # per-token KV of the test model at the judging context
    h = t.quants[0].header
    kv = int(memfit.kv_per_token(h)[0] * hubentry.MIN_CTX)
    second = t.quants[1]
    b = hubentry.build(t, machine=_machine(second.size_bytes + kv + 1, 0))
    assert b.quant == by_size[1] and b.entry["params"]["n_gpu_layers"] == 999 and not b.warnings
    assert b.entry["params"]["flash_attn"] == "on"
    b = hubentry.build(t, machine=_machine(1, t.quants[0].size_bytes + kv + 10))
    assert b.quant == by_size[0] and 0 <= b.entry["params"]["n_gpu_layers"] < 6
    b = hubentry.build(t, machine=_machine(None, 10))
    assert b.quant == by_size[-1] and "no quant fits" in b.warnings[0]
    assert b.entry["params"]["n_gpu_layers"] == 0 and b.entry["params"]["flash_attn"] == "auto"
    # ctx: the model's own when it fits, else capped so the KV cache fits beside the weights
    roomy = hubentry.build(t, machine=_machine(64 * GIB, 64 * GIB))
    assert roomy.entry["params"]["ctx_size"] == 202752 and roomy.quant == by_size[0]
    per_tok = memfit.kv_per_token(h)[0]
    tight = hubentry.build(t, quant=by_size[0], machine=_machine(t.quants[0].size_bytes + int(per_tok * 50000), 0))
    ctx = tight.entry["params"]["ctx_size"]
    assert hubentry.MIN_CTX <= ctx <= 50000 and ctx % hubentry.CTX_STEP == 0 and ctx > 40000
    assert any("capped" in n for n in tight.notes)


def test_entry_shape_name_port_and_parsers_by_family(srv, tmp_path):
    mach = _machine(None, 64 * GIB)
    t = quants.quant_table(srv.repos["glm"], token="", cache=tmp_path / "c")
    reg_path = tmp_path / "models.json"
    reg_path.write_text(json.dumps({"models": {"x": {"model_path": "x.gguf", "default_port": 8001}}}))
    b = hubentry.build(t, quant="ud-iq2_xxs", registry=registry.load(reg_path), machine=mach)
    e = b.entry
    assert b.name == "glm-5" and e["alias"] == "glm-5" and e["default_quant"] == "UD-IQ2_XXS"
    assert e["default_port"] not in (8001,) and e["default_port"] >= 8002
    assert e["reasoning_parser"] == "glm45" and e["tool_call_parser"] == "glm47"
    assert e["quants"]["UD-IQ2_XXS"] == {"pattern": "UD-IQ2_XXS/*.gguf",
                                         "size_gb": t.row("UD-IQ2_XXS").size_bytes / 1e9}
    assert e["quants"]["Q4_K_M"]["pattern"] == "GLM-5-Q4_K_M.gguf"
    assert e["quants"]["Q2_K"]["pattern"] == "GLM-5-Q2_K-*-of-00002.gguf"
    assert e["params"]["jinja"] is True
    assert registry.validate({"models": {b.name: e}}, reg_path)[2] == []
    with pytest.raises(DownloadError, match="no quant 'Q9_9'.*UD-IQ2_XXS"):
        hubentry.build(t, quant="Q9_9", machine=mach)
    for key, rp, tp in (("qwen", "qwen3", "hermes"), ("glm47", "glm45", "glm47"), ("odd", None, None)):
        tt = quants.quant_table(srv.repos[key], token="", cache=tmp_path / "c")
        bb = hubentry.build(tt, machine=mach)
        assert bb.entry.get("reasoning_parser") == rp and bb.entry.get("tool_call_parser") == tp
        if rp is None:
            assert any("no reasoning/tool-call parser" in n and "mysterynet" in n for n in bb.notes)
    assert hubentry.derive_name("unsloth/Qwen3.5-397B-A17B-GGUF") == "qwen3.5-397b-a17b"


# --- the CLI --------------------------------------------------------------------------------

def test_cli_quants_table_and_json(env, srv):
    r = llmdeck(env, "quants", "hf.co/unsloth/GLM-5-GGUF")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "unsloth/GLM-5-GGUF @ " in out and "4 quants, 1 mmproj, 3 other files" in out
    line = next(x for x in out.splitlines() if x.startswith("UD-IQ2_XXS "))
    assert "glm4moe" in line and "202752" in line and "16/4" in line and "IQ2_XXS" in line
    assert any(v in line for v in ("fits in VRAM", "fits in VRAM + RAM", "fits in RAM (CPU)", "does not fit"))
    assert "mmproj: mmproj-F16.gguf" in out
    r = llmdeck(env, "quants", "unsloth/GLM-5-GGUF", "--json")
    rows = json.loads(r.stdout)
    on_disk = repo_files(srv, "unsloth/GLM-5-GGUF")
    for row in rows:
        assert {"quant", "files", "size_bytes", "shards", "header", "memory"} <= set(row)
        assert row["size_bytes"] == sum(on_disk[f] for f in row["files"])
        assert row["memory"]["verdict"] in ("vram", "vram+ram", "no")
    assert {r["quant"]: r["shards"] for r in rows} == {q: v[2] for q, v in GLM_QUANTS.items()}


def test_cli_search(env):
    r = llmdeck(env, "search", "glm", "--json")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert [h["repo_id"] for h in hits] == ["unsloth/GLM-5-GGUF", "unsloth/GLM-4.7-Flash-GGUF"]
    assert hits[0]["downloads"] == 91234 and hits[0]["likes"] == 512 and hits[0]["params"] == 744_000_000_000
    r = llmdeck(env, "search", "GGUF")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["REPO", "DOWNLOADS", "LIKES", "MODIFIED", "PARAMS"]
    assert lines[1].startswith("unsloth/GLM-5-GGUF") and "744.0B" in lines[1] and "2026-02-11" in lines[1]
    assert not any("Safetensors-Only" in x for x in lines)  # the gguf filter


def test_add_writes_an_entry_that_check_download_and_start_use_unchanged(env, tmp_path, srv):
    r = llmdeck(env, "add", "unsloth/GLM-5-GGUF:UD-TQ1_0", "--dry-run")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)["glm-5"]
    assert json.loads((tmp_path / "models.json").read_text())["models"].keys() == {"demo"}
    r = llmdeck(env, "add", "unsloth/GLM-5-GGUF:UD-TQ1_0")
    assert r.returncode == 0, r.stderr
    assert "added 'glm-5'" in r.stderr and "parsers for GLM-4.7/5" in r.stderr
    written = json.loads((tmp_path / "models.json").read_text())["models"]["glm-5"]
    assert written == shown and written["default_quant"] == "UD-TQ1_0" and written["default_port"] != 8001
    r = llmdeck(env, "check")
    assert r.returncode == 0 and "ok (2 models)" in r.stdout, r.stdout + r.stderr
    # download uses the entry as written: exactly the quant's files, sizes equal to size_gb
    r = llmdeck(env, "download", "glm-5")
    assert r.returncode == 0, r.stderr
    qdir = tmp_path / "models" / "GLM-5-GGUF" / "UD-TQ1_0"
    got = sorted(p.name for p in qdir.glob("*.gguf"))
    assert got == ["GLM-5-UD-TQ1_0-00001-of-00002.gguf", "GLM-5-UD-TQ1_0-00002-of-00002.gguf"]
    assert round(written["quants"]["UD-TQ1_0"]["size_gb"] * 1e9) == sum((qdir / n).stat().st_size for n in got)
    r = llmdeck(env, "list", "--json")
    q = next(q for m in json.loads(r.stdout) if m["name"] == "glm-5" for q in m["quants"]
             if q["quant"] == "UD-TQ1_0")
    assert q["status"] == "present"
    r = llmdeck(env, "start", "glm-5", "--dry-run")
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.splitlines()[0]
    assert str(qdir / got[0]) in cmd and f"--port {written['default_port']}" in cmd
    assert f"--ctx-size {written['params']['ctx_size']}" in cmd and "--jinja" in cmd and "--alias glm-5" in cmd
    # a second add of the same repo is refused by name; --name gives a second entry
    r = llmdeck(env, "add", "unsloth/GLM-5-GGUF")
    assert r.returncode == 2 and "model 'glm-5' already exists" in one_error_line(r)
    r = llmdeck(env, "add", "unsloth/GLM-5-GGUF", "--name", "glm-5-b")
    assert r.returncode == 0, r.stderr
    models = json.loads((tmp_path / "models.json").read_text())["models"]
    assert models["glm-5-b"]["default_port"] not in (8001, written["default_port"])
    # the NAME JSON form keeps working
    r = llmdeck(env, "add", "hand", '{"model_path": "h.gguf", "default_port": 8050}')
    assert r.returncode == 0, r.stderr
    r = llmdeck(env, "add", "hand2")
    assert r.returncode == 2 and "give the entry as JSON" in one_error_line(r)


@pytest.mark.parametrize("repo,needle,rc", [
    ("secret/Private-GGUF", "answered 401", 1),
    ("gated/Gated-GGUF", "is gated", 1),
    ("meta-llama/Llama-Gated-GGUF", "is gated", 1),  # listing public, files 403, as on the real Hub
    ("nobody/Nothing-GGUF", "no such model repo", 1),
    ("acme/Safetensors-Only", "no GGUF model files", 2),
    ("not a repo", "not a Hub repo id", 2),
])
def test_each_error_is_one_clear_line(env, repo, needle, rc):
    for cmd in (["quants", repo], ["add", repo] if "/" in repo else ["quants", repo]):
        r = llmdeck(env, *cmd)
        assert r.returncode == rc and needle in one_error_line(r) and repo in r.stderr


def test_private_repo_works_with_the_token_and_429_says_when_to_retry(env, srv):
    r = llmdeck({**env, "HF_TOKEN": TOKEN}, "quants", "secret/Private-GGUF", "--json")
    assert r.returncode == 0, r.stderr
    assert [x["quant"] for x in json.loads(r.stdout)] == ["Q4_0"] and TOKEN not in r.stdout + r.stderr
    token_file = Path(env["HF_HOME"]) / "token"  # what `hf auth login` writes
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(TOKEN)
    r = llmdeck(env, "add", "secret/Private-GGUF", "--dry-run")
    assert r.returncode == 0 and json.loads(r.stdout)["private"]["repo_id"] == "secret/Private-GGUF", r.stderr
    assert TOKEN not in r.stdout + r.stderr
    token_file.unlink()
    srv.rate_limit = 1
    r = llmdeck(env, "quants", "unsloth/GLM-5-GGUF")
    line = one_error_line(r)
    assert r.returncode == 1 and "rate-limiting" in line and "(429)" in line and "retry in 7 s" in line
    srv.rate_limit = 1
    r = llmdeck(env, "search", "glm")
    assert r.returncode == 1 and "retry in 7 s" in one_error_line(r)
    # limited on the listing (after the repo info answered): at once, one line, no retry loop
    srv.rate_limit, srv.rate_limit_path = 1, "/tree/"
    r = llmdeck(env, "add", "unsloth/GLM-5-GGUF", "--dry-run", timeout=20)
    assert r.returncode == 1 and "retry in 7 s" in one_error_line(r)


def test_grouping_edge_cases():
    """Shapes seen on the Hub: an mmproj inside a quant folder, a folder and a root file carrying
    the same quant, untagged root files (single and split), a split set missing a shard."""
    from types import SimpleNamespace as F

    entries = [F(path=p, size=n) for p, n in [
        ("Q8_0/M-Q8_0-00001-of-00002.gguf", 10), ("Q8_0/M-Q8_0-00002-of-00002.gguf", 11),
        ("Q8_0/mmproj-Q8_0.gguf", 3), ("M-Q8_0.gguf", 7), ("model.gguf", 5),
        ("weights-00001-of-00002.gguf", 4), ("weights-00002-of-00002.gguf", 4),
        ("BF16/M-BF16-00001-of-00003.gguf", 20), ("BF16/M-BF16-00003-of-00003.gguf", 20),
        ("README.md", 1)]] + [F(path="Q8_0", size=None)]  # a folder entry (no size)
    rows, mmproj, other = quants.group(entries)
    by = {r.quant: r for r in rows}
    assert set(by) == {"Q8_0", "M-Q8_0", "model", "weights", "BF16"}
    assert by["Q8_0"].files == ["Q8_0/M-Q8_0-00001-of-00002.gguf", "Q8_0/M-Q8_0-00002-of-00002.gguf"]
    assert by["M-Q8_0"].files == ["M-Q8_0.gguf"] and by["M-Q8_0"].pattern == "M-Q8_0.gguf"
    assert by["model"].pattern == "model.gguf" and by["weights"].pattern == "weights-*-of-00002.gguf"
    assert by["weights"].size_bytes == 8 and by["weights"].first == "weights-00001-of-00002.gguf"
    assert by["BF16"].missing == ["M-BF16-00002-of-00003.gguf"]
    assert mmproj == [("Q8_0/mmproj-Q8_0.gguf", 3)] and other == [("README.md", 1)]
    table = quants.QuantTable("o/M-GGUF", "a" * 40, "http://x", rows, mmproj, other)
    # a folder holding an mmproj gets an explicit file list, so the pattern cannot pull it in
    assert hubentry.quant_spec(table, by["Q8_0"]) == {"files": by["Q8_0"].files, "size_gb": 21 / 1e9}
    assert hubentry.quant_spec(table, by["BF16"])["pattern"] == "BF16/*.gguf"


# --- end to end: an entry from a repo id alone, served by the real llama-server -----------------

@pytest.fixture(scope="module")
def smol_hub(tmp_path_factory, smollm_gguf):
    from hubserver import split_gguf

    root = tmp_path_factory.mktemp("smolhub")
    split_gguf(smollm_gguf, root / "HuggingFaceTB" / "SmolLM2-135M-Instruct-GGUF" / "Q4_1", 2)
    with SearchHubServer(root) as srv:
        yield srv


@pytest.mark.server
@pytest.mark.timeout(180)
def test_an_added_entry_downloads_and_the_real_llama_server_serves_it(smol_hub, llama_server_bin, tmp_path):
    from conftest import free_port, kill_servers

    e = hub_environ(smol_hub, tmp_path)
    e.update(LLMDECK_REGISTRY=str(tmp_path / "models.json"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    (tmp_path / "models.json").write_text(json.dumps({"settings": {"models_dir": str(tmp_path / "models"),
                                                                   "llama_server": str(llama_server_bin)},
                                                      "models": {}}))
    port = free_port()
    r = llmdeck(e, "add", "hf.co/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "--port", str(port))
    assert r.returncode == 0, r.stderr
    assert "no reasoning/tool-call parser" in r.stderr and "llama" in r.stderr  # an unknown family says so
    entry = json.loads((tmp_path / "models.json").read_text())["models"]["smollm2-135m-instruct"]
    assert entry["default_quant"] == "Q4_1" and entry["params"]["ctx_size"] == 8192
    assert llmdeck(e, "download", "smollm2-135m-instruct").returncode == 0
    try:
        r = llmdeck(e, "start", "smollm2-135m-instruct", "--wait", "--timeout", "120", timeout=150)
        assert r.returncode == 0, r.stderr
        r = llmdeck(e, "chat", "smollm2-135m-instruct", "Say hi.", "--max-tokens", "8", timeout=60)
        assert r.returncode == 0 and r.stdout.strip(), r.stderr
    finally:
        llmdeck(e, "stop", "smollm2-135m-instruct", timeout=60)
        kill_servers(registry.load(tmp_path / "models.json"))
