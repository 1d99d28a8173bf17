"""Build a models.json entry from a Hub repo's quant table (``llmdeck add REPO[:QUANT]``, the
TUI's add screen): name, port, quants with exact sizes, the default quant, params a user
would start from, and the parsers the model's family needs.

Decisions where the issue is silent:

* **Name**: the repo's name without a ``-GGUF`` suffix, lower-cased, other characters than
  ``a-z 0-9 . _ -`` turned into ``-`` (``unsloth/GLM-5-GGUF`` → ``glm-5``). A name already in
  models.json is refused (pass ``--name``), never overwritten.
* **Port**: the first port from :data:`FIRST_PORT` up that no entry uses and nothing on this
  machine listens on now.
* **Quants**: every quant of the table, with the ``pattern`` that selects exactly its files
  (``FOLDER/*.gguf``, the file name, or ``PREFIX-*-of-0000N.gguf`` for split root files; a
  folder that also holds an ``mmproj`` gets a ``files`` list instead) and ``size_gb`` = exact
  bytes / 1e9 (decimal GB, as models.json's ``size_gb`` always was).
* **Default quant**: the one given; else the largest that fits in VRAM; else the largest
  that fits in VRAM + RAM; else the smallest, with a warning. "Fits" is judged with the KV
  cache at :data:`MIN_CTX` (or the model's context if smaller), not at the model's full
  context: the entry's ``ctx_size`` is then capped to what fits, so judging at the full
  context (often 128k–200k tokens) would reject quants that run fine.
* **ctx_size**: the model's own context, capped (in steps of :data:`CTX_STEP`) so the weights
  plus the KV cache fit in the memory tier the quant fits in; never below :data:`MIN_CTX`.
  When memfit cannot estimate the KV cache (MLA, sliding-window, hybrid architectures), the
  model's context capped at :data:`UNKNOWN_KV_CTX`, and the output says so.
* **n_gpu_layers**: 999 (all) when it fits in VRAM; with a GPU but not enough VRAM the share
  of layers that fit (``block_count × (VRAM − KV) / weights``); 0 without a GPU.
  ``flash_attn`` "on" with a GPU ("auto" without), ``jinja`` true.
* **Parsers** by family (:data:`FAMILIES`), matched on the repo name and the header's
  ``general.name``/``general.basename``, then on the architecture. Unknown families get none.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import Any

from tui.core import memfit
from tui.core.downloads.errors import DownloadError

FIRST_PORT = 8001
MIN_CTX = 4096
CTX_STEP = 1024
UNKNOWN_KV_CTX = 32768

#: (regex on "repo name | general.name | general.basename", architectures, reasoning, tool, family)
FAMILIES: list[tuple[str, tuple[str, ...], str | None, str | None, str]] = [
    (r"glm-?4\.[56]\b", (), "glm45", "glm45", "GLM-4.5/4.6"),
    (r"glm-?(4\.7|5)(\b|[^0-9])", (), "glm45", "glm47", "GLM-4.7/5"),
    (r"qwen-?3\.5", ("qwen35", "qwen35moe"), "qwen3", "qwen3_coder", "Qwen3.5"),
    (r"qwen-?3-?coder", ("qwen3coder",), None, "qwen3_coder", "Qwen3-Coder"),
    (r"qwen-?3(\b|[^.0-9])", ("qwen3", "qwen3moe"), "qwen3", "hermes", "Qwen3"),
    (r"deepseek", ("deepseek2", "deepseek3"), "deepseek_r1", None, "DeepSeek"),
    (r"glm", ("glm4moe",), "glm45", "glm45", "GLM-4.5 (glm4moe)"),
]


def derive_name(repo_id: str) -> str:
    base = repo_id.rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"[-_.]gguf$", "", base, flags=re.IGNORECASE)
    name = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-._")
    return name or "model"


def family(repo_id: str, header) -> tuple[str | None, str | None, str | None]:
    """(reasoning_parser, tool_call_parser, family name) — all None when unknown."""
    names = [repo_id.rsplit("/", 1)[-1]]
    arch = None
    if header is not None:
        names += [str(header.get("general.name") or ""), str(header.get("general.basename") or "")]
        arch = header.architecture
    text = " | ".join(names).lower()
    for rx, _, rp, tp, fam in FAMILIES:
        if re.search(rx, text):
            return rp, tp, fam
    for _, archs, rp, tp, fam in FAMILIES:
        if arch and arch in archs:
            return rp, tp, fam
    return None, None, None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(used: set[int], start: int = FIRST_PORT) -> int:
    p = start
    while p in used or not port_free(p):
        p += 1
    return p


@dataclass
class Built:
    name: str
    entry: dict[str, Any]
    quant: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _vram(m: memfit.Machine) -> int:
    return sum(m.gpu_free) if m.gpu_free else 0


def judge_ctx(row) -> int:
    """The context a quant's fit is judged at when choosing the default quant."""
    ctx = row.header.context_length if row.header is not None else None
    return min(ctx, MIN_CTX) if isinstance(ctx, int) and ctx > 0 else MIN_CTX


def tier(row, mach: memfit.Machine) -> str:
    """"vram" | "vram+ram" | "no": the quant with the KV cache at the judging context."""
    return memfit.estimate(row.size_bytes, row.header, {"ctx_size": judge_ctx(row)}, mach).verdict


def choose_quant(table, quant: str | None, mach: memfit.Machine) -> tuple[Any, str | None]:
    """(the row, a warning or None). Raises :class:`DownloadError` for an unknown quant."""
    if quant:
        row = table.row(quant)
        if row is None:
            raise DownloadError(f"{table.repo_id}: no quant '{quant}' at {table.revision[:12]}; quants: "
                                + ", ".join(r.quant for r in table.quants))
        return row, None
    by_size = sorted(table.quants, key=lambda r: r.size_bytes, reverse=True)
    for want in ("vram", "vram+ram"):
        for r in by_size:
            if tier(r, mach) == want:
                return r, None
    r = by_size[-1]
    return r, (f"{table.repo_id}: no quant fits this machine's memory (the smallest, {r.quant}, needs "
               f"{r.size_bytes / 2**30:.1f} GiB for the weights): chose {r.quant} anyway; llama-server "
               "would page weights from disk")


def params_for(row, mach: memfit.Machine) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    h = row.header
    model_ctx = h.context_length if h is not None and isinstance(h.context_length, int) else None
    t = tier(row, mach)
    gpu = bool(mach.gpu_free)
    budget = {"vram": _vram(mach), "vram+ram": _vram(mach) + mach.ram_available}.get(t)
    per_token, why = memfit.kv_per_token(h) if h is not None else (None, "no GGUF header")
    if model_ctx is None:
        ctx = MIN_CTX
        notes.append(f"ctx_size {ctx}: the header gives no context length")
    elif per_token is None:
        ctx = min(model_ctx, UNKNOWN_KV_CTX)
        notes.append(f"ctx_size {ctx:,} (model: {model_ctx:,}): {why}; raise it if memory allows")
    elif budget is None:
        ctx = min(model_ctx, MIN_CTX)
    else:
        room = (budget - row.size_bytes) / per_token
        ctx = max(min(model_ctx, MIN_CTX), min(model_ctx, int(room // CTX_STEP) * CTX_STEP))
        if ctx < model_ctx:
            notes.append(f"ctx_size {ctx:,} (model: {model_ctx:,}): capped so the KV cache fits beside "
                         "the weights")
    kv = int(per_token * ctx) if per_token is not None else 0
    if t == "vram":
        ngl = 999
    elif gpu and h is not None and isinstance(h.block_count, int):
        ngl = max(0, min(h.block_count, int(h.block_count * max(0, _vram(mach) - kv) / max(1, row.size_bytes))))
        notes.append(f"n_gpu_layers {ngl}: only part of the model fits in VRAM; the rest runs on the CPU")
    else:
        ngl = 0 if not gpu else 999
    params = {"ctx_size": ctx, "n_gpu_layers": ngl, "flash_attn": "on" if gpu else "auto", "jinja": True}
    return params, notes


def quant_spec(table, row) -> dict[str, Any]:
    spec: dict[str, Any]
    if row.folder is not None and any(p.startswith(row.folder + "/") for p, _ in table.mmproj):
        spec = {"files": list(row.files)}
    else:
        spec = {"pattern": row.pattern}
    spec["size_gb"] = row.size_bytes / 1e9
    return spec


def build(table, *, quant: str | None = None, name: str | None = None, port: int | None = None,
          registry=None, machine: memfit.Machine | None = None) -> Built:
    """The entry for ``table`` (a :class:`tui.core.downloads.quants.QuantTable`). ``registry``
    (a loaded Registry, or None) gives the names and ports already taken.
    Raises :class:`DownloadError` (one line) on a name clash or an unknown quant."""
    from tui.core.registry import NAME_RE

    mach = machine or table.machine or memfit.machine()
    taken = dict(registry.models) if registry is not None else {}
    nm = name or derive_name(table.repo_id)
    where = str(registry.path) if registry is not None else "models.json"
    if not NAME_RE.match(nm):
        raise DownloadError(f"'{nm}' is not a valid model name: use lower-case letters, digits, '.', '_' "
                            "and '-' (pass --name)")
    if nm in taken:
        raise DownloadError(f"model '{nm}' already exists in {where}: pass --name NAME for a new entry, "
                            f"or `llmdeck remove {nm}` first")
    used = {m.default_port for m in taken.values() if m.default_port}
    if port is not None and port in used:
        owner = next(m.name for m in taken.values() if m.default_port == port)
        raise DownloadError(f"port {port} is already model '{owner}''s default_port in {where}: pick another")
    row, warning = choose_quant(table, quant, mach)
    params, notes = params_for(row, mach)
    rp, tp, fam = family(table.repo_id, row.header)
    entry: dict[str, Any] = {
        "description": _description(table, row),
        "repo_id": table.repo_id,
        "quants": {r.quant: quant_spec(table, r) for r in table.quants},
        "default_quant": row.quant,
        "alias": nm,
        "default_port": port if port is not None else free_port(used),
    }
    if rp:
        entry["reasoning_parser"] = rp
    if tp:
        entry["tool_call_parser"] = tp
    entry["params"] = params
    out = Built(nm, entry, row.quant, [warning] if warning else [], notes)
    arch = row.header.architecture if row.header is not None else None
    if fam:
        out.notes.append(f"parsers for {fam}: reasoning {rp or 'none'}, tool calls {tp or 'none'}")
    else:
        out.notes.append(f"no reasoning/tool-call parser: llmdeck does not know the family of "
                         f"{arch or 'this model'}; set reasoning_parser/tool_call_parser by hand if it "
                         "thinks or calls tools")
    if row.header is None:
        out.warnings.append(f"{row.quant}: GGUF header not read ({row.header_error or 'unknown error'}): "
                            "params are defaults")
    if table.mmproj:
        out.notes.append(f"the repo has {len(table.mmproj)} mmproj file(s) (vision projector); not added")
    return out


def _description(table, row) -> str:
    h = row.header
    bits = []
    if h is not None:
        bits = [str(x) for x in (h.name, h.size_label, h.architecture) if x]
    what = " · ".join(bits) or table.repo_id
    return f"{what}, GGUF from {table.repo_id} @ {table.revision[:12]} (llmdeck add)"
