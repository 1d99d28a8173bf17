"""Will it fit: the KV-cache formula against the real llama-server's own figure, and the verdicts."""

from __future__ import annotations

import re

import pytest
from hubserver import model_kv, write_gguf

from tui.core import memfit
from tui.core.downloads import gguf

MiB = 1 << 20
GB = 1 << 30


def header(tmp_path, kv):
    return gguf.read_file(write_gguf(tmp_path / "m.gguf", kv), tensors=False)


@pytest.mark.server
@pytest.mark.timeout(90)
@pytest.mark.parametrize("ctx,ctk,ctv", [(4096, "f16", "f16"), (3000, "q8_0", "q4_0")])
def test_kv_estimate_equals_llama_servers_own_kv_size(llama_server, smollm_gguf, ctx, ctk, ctv):
    """SmolLM2 (30 layers, 3 KV heads of 64): llmdeck's figure is the one llama-server logs."""
    h = gguf.read_model(smollm_gguf)
    fit = memfit.estimate(smollm_gguf.stat().st_size, h, {"ctx_size": ctx, "cache_type_k": ctk, "cache_type_v": ctv},
                          memfit.Machine(None, 8 * GB, "no NVML"))
    srv = llama_server("-ctk", ctk, "-ctv", ctv, "-fa", "on", "-v", ctx=ctx)
    m = re.search(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells", srv.log.read_text())
    assert m, srv.log.read_text()[-1500:]
    cells = int(m[2])  # llama.cpp rounds the context up to its padding
    theirs = float(m[1])
    per_token, note = memfit.kv_per_token(h, ctk, ctv)
    assert abs(per_token * cells / MiB - theirs) < 0.01, (per_token, cells, theirs)
    assert cells == -(-ctx // 256) * 256 and fit.kv == int(per_token * cells) and "30 layers" in note
    assert fit.verdict == "vram+ram" and "fits in RAM (CPU only)" in fit.line


def test_verdicts_and_what_is_not_estimated(tmp_path):
    kv = {"general.architecture": "llama", "llama.block_count": 4, "llama.context_length": 1000,
          "llama.embedding_length": 256, "llama.attention.head_count": 8, "llama.attention.head_count_kv": 2}
    h = header(tmp_path, kv)
    per_token, _ = memfit.kv_per_token(h)
    assert per_token == 4 * 2 * (32 + 32) * 2  # head dim from embedding/heads, f16
    two_gpus = memfit.Machine((40 * GB, 40 * GB), 100 * GB)
    f = memfit.estimate(70 * GB, h, {}, two_gpus)  # ctx 0/unset: the model's context_length
    assert f.ctx == 1000 and f.kv == per_token * 1024 and f.verdict == "vram"  # 256-cell padding
    assert "VRAM free 40.0 GiB + 40.0 GiB" in f.line and "→ fits in VRAM" in f.line
    f = memfit.estimate(120 * GB, h, {"ctx_size": 500}, two_gpus)
    assert f.verdict == "vram+ram" and "about 40.0 GiB on the CPU" in f.line
    f = memfit.estimate(200 * GB, h, {}, two_gpus)
    assert f.verdict == "no" and "DOES NOT FIT in VRAM + RAM (short by 20.0 GiB" in f.line
    # MLA, hybrid and sliding-window layouts are named, not guessed; the weights still count
    for extra in ({"llama.attention.kv_lora_rank": 512}, {"llama.ssm.conv_kernel": 4},
                  {"llama.attention.sliding_window": 4096}):
        hx = header(tmp_path, {**kv, **extra})
        f = memfit.estimate(10 * GB, hx, {}, two_gpus)
        assert f.kv is None and f.kv_note.startswith("KV cache not estimated for llama") and f.verdict == "vram"
        assert "for the weights alone" in f.line
    # per-layer head counts (an array) and explicit key/value lengths
    hx = header(tmp_path, {**kv, "llama.attention.head_count_kv": [2, 0, 2, 4], "llama.attention.key_length": 128,
                           "llama.attention.value_length": 96})
    assert memfit.kv_per_token(hx, "q8_0", "f16")[0] == 8 * (128 * 34 / 32 + 96 * 2)
    assert memfit.kv_per_token(hx, "q3_x")[1] == "KV cache not estimated: unknown cache type 'q3_x'"
    # the GLM-style test header (head counts per layer, no KV heads): falls back to head_count
    hg = header(tmp_path, model_kv(layers=4))
    assert memfit.kv_per_token(hg)[0] == 4 * 8 * (8 + 8) * 2
    assert memfit.estimate(1 * GB, None, {}, two_gpus).kv_note == "KV cache not estimated: no GGUF header"


def test_machine_reads_free_vram_per_gpu_and_available_ram():
    from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml
    from tui.core.telemetry.nvml import NvmlSource

    src = NvmlSource(FakeNvml([FakeGpu(total=80 * GB, used=30 * GB, reserved=GB // 2),
                               FakeGpu(total=80 * GB, used=5 * GB)]))
    m = memfit.machine(src)  # NVML's free: what the driver keeps reserved is not free
    assert m.gpu_free == (50 * GB - GB // 2, 75 * GB) and m.ram_available > 0
    broken = NvmlSource(FakeNvml([FakeGpu()]))
    broken.lib.fail("nvmlInit", 9)  # driver not loaded
    m = memfit.machine(broken)
    assert m.gpu_free is None and m.gpu_note


@pytest.mark.timeout(60)
def test_start_dry_run_says_whether_the_local_files_fit(make_deck, smollm_gguf, capsys):
    from tui.cli.main import main

    reg = make_deck({"tiny": {"params": {"ctx_size": 4096}}})
    assert main(["--registry", str(reg.path), "start", "tiny", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(str(reg.settings.llama_server))  # stdout is the command alone
    mem = [x for x in err.splitlines() if "memory: " in x]
    # 30 layers × 3 KV heads × (64 + 64) × 2 bytes × 4096 cells = 94.4 MB
    assert len(mem) == 1 and "KV cache 0.1 GiB at ctx 4,096" in mem[0]
    assert f"weights {smollm_gguf.stat().st_size / 2**30:.1f} GiB" in mem[0] and "→ fits in" in mem[0]
