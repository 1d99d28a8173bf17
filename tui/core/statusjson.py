"""The objects of ``llmdeck status --json``, shared with the router's front page.

One dict per registered model: :meth:`ModelState.to_json` plus ``vram_bytes``,
``vram_by_gpu`` (GPU index as a string → bytes) and ``rss_bytes`` of the server's process
tree (None / empty when it is not a local process or cannot be read). Nothing here holds an
API key or an ``env`` value: a ModelState has neither, and :func:`scrub` drops such keys
should a later field bring one.
"""

from __future__ import annotations

from typing import Any

#: keys never sent out (defence in depth: a ModelState has none of them today)
SECRET_KEYS = frozenset({"env", "api_key", "api_key_env_value", "key"})


def usage_by_pid(states) -> dict:
    """VRAM and RSS per running server (empty when none runs: NVML is then not touched)."""
    from tui.core.telemetry import per_model_usage

    try:
        return per_model_usage([s.pid for s in states if s.pid])
    except Exception:  # the figures show n/a; status itself must still answer
        return {}


def scrub(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in SECRET_KEYS}


def model_objects(states, usage: dict | None = None) -> list[dict[str, Any]]:
    """``status --json``'s list for ``states`` (``usage``: :func:`usage_by_pid`'s answer)."""
    usage = usage_by_pid(states) if usage is None else usage
    out = []
    for st in states:
        d = scrub(st.to_json())
        u = usage.get(st.pid) if st.pid else None
        d["vram_bytes"] = getattr(u, "vram_bytes", None) if u else None
        # GPU index (as a string: JSON keys) -> bytes; a model split over GPUs has several
        d["vram_by_gpu"] = {str(i): b for i, b in getattr(u, "vram_by_gpu", ())} if u else {}
        d["rss_bytes"] = getattr(u, "rss_bytes", None) if u else None
        out.append(d)
    return out
