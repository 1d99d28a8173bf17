"""Will a model fit this machine's memory? Asked before a 200 GB download and a 10-minute load.

What is counted, and what is not (nothing is guessed):

* **Weights**: the bytes of the model's GGUF files (exact; the plan's sizes or the files on disk).
* **KV cache**: ``ctx_size × bytes per token``, where bytes per token is
  ``Σ over layers of n_head_kv × (key_length + value_length) × bytes per element`` of the cache
  type (``cache_type_k``/``cache_type_v``; f16 by default). llama-server's ``--ctx-size`` is the
  total over all slots, so ``parallel`` does not multiply it; llama.cpp rounds it up to a
  multiple of 256 cells, and so does this. The formula is only used where it
  is llama.cpp's layout: architectures with MLA (``attention.kv_lora_rank``), recurrent or
  hybrid layers (``ssm.*``, ``full_attention_interval``, ``shortconv``) or sliding-window
  attention get "not estimated for <arch>" instead of a wrong number.
* **Not counted**: compute buffers (typically 0.5–3 GiB per GPU), the CUDA context (~0.5 GiB per
  GPU) and what other programs will take later. The verdict says so.

Free memory is now's: NVML's free bytes per GPU (so running models are already accounted for)
and the kernel's available RAM. The verdict is one of ``fits in VRAM``, ``fits in VRAM + RAM``
(the rest on the CPU, slower), or ``does not fit`` (llama-server would page weights from disk).
"""

from __future__ import annotations

from dataclasses import dataclass

#: bytes per element of llama.cpp's KV cache types (block size 32 for the quantised ones)
CACHE_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32,
                    "q5_0": 22 / 32, "q5_1": 24 / 32, "iq4_nl": 18 / 32}
CTX_PAD = 256  # llama.cpp allocates the KV cache for ctx rounded up to this many cells
_UNSUPPORTED_KEYS = ("attention.kv_lora_rank", "full_attention_interval", "attention.sliding_window",
                     "ssm.", "shortconv.", "wkv.")


@dataclass(frozen=True)
class Machine:
    """Free memory now: per GPU (None when no GPU could be read) and available RAM."""

    gpu_free: tuple[int, ...] | None
    ram_available: int
    gpu_note: str | None = None  # why GPUs are not counted


@dataclass(frozen=True)
class Fit:
    weights: int
    kv: int | None  # bytes of the KV cache at ctx, None when not estimated
    kv_note: str  # how the KV figure was made, or why there is none
    ctx: int | None
    machine: Machine
    verdict: str  # "vram" | "vram+ram" | "no"

    @property
    def line(self) -> str:
        """The one line to show."""
        return describe(self)

    def to_json(self) -> dict:
        return {"weights_bytes": self.weights, "kv_bytes": self.kv, "kv_note": self.kv_note, "ctx": self.ctx,
                "gpu_free_bytes": list(self.machine.gpu_free) if self.machine.gpu_free is not None else None,
                "ram_available_bytes": self.machine.ram_available, "verdict": self.verdict, "line": self.line}


def machine(gpu_source=None) -> Machine:
    """Free VRAM per GPU (NVML) and available RAM (psutil), read now."""
    import psutil

    from tui.core.telemetry import nvml

    src = gpu_source or nvml.default_source()
    reading = src.read()
    ram = int(psutil.virtual_memory().available)
    if not reading.ok:
        return Machine(None, ram, reading.message or f"GPUs: {reading.state}")
    free = tuple(g.mem_free if g.mem_free is not None else max(0, g.mem_total - g.mem_used)
                 for g in reading.gpus
                 if g.state == "ok" and g.mem_total is not None and g.mem_used is not None)
    if not free:
        return Machine(None, ram, "no GPU memory reading")
    return Machine(free, ram)


def _layers(value, n_layer: int) -> list[int] | None:
    if isinstance(value, int):
        return [value] * n_layer
    if isinstance(value, list) and len(value) == n_layer and all(isinstance(v, int) for v in value):
        return value
    return None


def kv_per_token(header, cache_type_k: str = "f16", cache_type_v: str = "f16") -> tuple[float | None, str]:
    """(KV bytes per token of context, how it was computed / why not)."""
    arch = header.architecture
    if not arch:
        return None, "KV cache not estimated: the header names no architecture"
    for key in header.kv:
        if key.startswith(arch + ".") and any(key[len(arch) + 1:].startswith(k) for k in _UNSUPPORTED_KEYS):
            return None, f"KV cache not estimated for {arch} (its cache layout differs: {key[len(arch) + 1:]})"
    n_layer = header.block_count
    n_head = header.arch_key("attention.head_count")
    n_embd = header.embedding_length
    if not isinstance(n_layer, int) or n_layer <= 0:
        return None, f"KV cache not estimated: no {arch}.block_count"
    heads = _layers(header.arch_key("attention.head_count_kv"), n_layer) or _layers(n_head, n_layer)
    if heads is None:
        return None, f"KV cache not estimated: no {arch}.attention.head_count(_kv)"
    k_len, v_len = header.arch_key("attention.key_length"), header.arch_key("attention.value_length")
    if not isinstance(k_len, int) or not isinstance(v_len, int):
        q_heads = n_head if isinstance(n_head, int) else max(_layers(n_head, n_layer) or [0])
        if not (isinstance(n_embd, int) and q_heads):
            return None, f"KV cache not estimated: no {arch}.attention.key_length"
        k_len = v_len = n_embd // q_heads
    bk, bv = CACHE_TYPE_BYTES.get(cache_type_k), CACHE_TYPE_BYTES.get(cache_type_v)
    if bk is None or bv is None:
        bad = cache_type_k if bk is None else cache_type_v
        return None, f"KV cache not estimated: unknown cache type {bad!r}"
    per_token = sum(h * (k_len * bk + v_len * bv) for h in heads)
    types = cache_type_k if cache_type_k == cache_type_v else f"{cache_type_k}/{cache_type_v}"
    return per_token, f"KV {types}, {sum(heads)} KV heads over {n_layer} layers × ({k_len}+{v_len})"


def estimate(weights: int, header, params: dict | None, mach: Machine) -> Fit:
    """The fit of a model whose files hold ``weights`` bytes, with llama-server ``params``."""
    params = params or {}
    ctx = params.get("ctx_size")
    if not isinstance(ctx, int) or ctx <= 0:  # 0 or unset: llama-server takes the model's own
        ctx = header.context_length if header is not None else None
    kv, note = None, "KV cache not estimated: no GGUF header"
    if header is not None:
        per_token, note = kv_per_token(header, str(params.get("cache_type_k", "f16")),
                                       str(params.get("cache_type_v", "f16")))
        if per_token is not None and isinstance(ctx, int):
            kv = int(per_token * (-(-ctx // CTX_PAD) * CTX_PAD))
        elif per_token is not None:
            note = "KV cache not estimated: no context length"
    need = weights + (kv or 0)
    vram = sum(mach.gpu_free) if mach.gpu_free else 0
    if mach.gpu_free and need <= vram:
        verdict = "vram"
    elif need <= vram + mach.ram_available:
        verdict = "vram+ram"
    else:
        verdict = "no"
    return Fit(weights, kv, note, ctx, mach, verdict)


def of_plan(plan, model) -> Fit:
    """The fit of a download plan's files (sizes and header from the plan), on this machine now."""
    return estimate(plan.total_bytes, plan.header, model.params, machine())


def of_files(files, model) -> Fit:
    """The fit of model files on disk (header read from the first: shard 1), on this machine now."""
    from tui.core.downloads import gguf

    try:
        header = gguf.read_model(files[0])
    except (OSError, gguf.GGUFError):
        header = None
    return estimate(sum(f.stat().st_size for f in files), header, model.params, machine())


def _gb(n: float) -> str:
    """GiB, as every other size llmdeck prints (status, gpus, the download plan)."""
    return f"{n / 2**30:.1f} GiB"


def describe(f: Fit) -> str:
    need = f.weights + (f.kv or 0)
    parts = [f"weights {_gb(f.weights)}"]
    parts.append(f"KV cache {_gb(f.kv)} at ctx {f.ctx:,}" if f.kv is not None else f.kv_note)
    m = f.machine
    if m.gpu_free:
        have = f"VRAM free {' + '.join(_gb(x) for x in m.gpu_free)}, RAM available {_gb(m.ram_available)}"
    else:
        have = f"no GPU ({m.gpu_note}), RAM available {_gb(m.ram_available)}"
    vram = sum(m.gpu_free) if m.gpu_free else 0
    if f.verdict == "vram":
        verdict = "fits in VRAM"
    elif f.verdict == "vram+ram":
        verdict = (f"fits in VRAM + RAM (about {_gb(need - vram)} on the CPU: slower)" if vram
                   else "fits in RAM (CPU only)")
    else:
        verdict = (f"DOES NOT FIT in VRAM + RAM (short by {_gb(need - vram - m.ram_available)}: llama-server "
                   "would page weights from disk)")
    extra = "" if f.kv is not None else " for the weights alone"
    return (f"memory: {' + '.join(parts)}; {have} → {verdict}{extra} "
            "(compute buffers, ~0.5–3 GiB per GPU, not counted)")
