"""Engines: one module per inference server, each turning a registry entry into a launch.

An engine knows its own model keys and parameter table, validates them, and builds a
:class:`~tui.core.engines.base.LaunchSpec` (argv list, environment, readiness URL, files
it needs). ``external`` is a server llmdeck does not start: chat, health and metrics only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.core.engines.base import Engine, LaunchError, LaunchSpec

if TYPE_CHECKING:
    from tui.core.registry import Model, Registry

_ENGINES: dict[str, Engine] = {}

#: the static table of built-in engines: name → (module, class), imported on first use of that
#: engine (a registry of llama-server models never pays for the GPU engines' tables; the TUI's
#: first frame is the one that notices). The modules never import this package back.
BUILTIN: dict[str, tuple[str, str]] = {
    "external": ("tui.core.engines.external", "External"),
    "llama-server": ("tui.core.engines.llama_server", "LlamaServer"),
    "lightllm": ("tui.core.engines.lightllm", "LightLLM"),
    "sglang": ("tui.core.engines.sglang", "SGLang"),
    "vllm": ("tui.core.engines.vllm", "VLLM"),
}


def register(engine: Engine) -> Engine:
    """Add an engine to the table (the built-in ones are listed in :data:`BUILTIN`)."""
    _ENGINES[engine.name] = engine
    return engine


def get_engine(name: str) -> Engine | None:
    eng = _ENGINES.get(name)
    if eng is None and name in BUILTIN:
        import importlib

        module, cls = BUILTIN[name]
        try:
            eng = _ENGINES.setdefault(name, getattr(importlib.import_module(module), cls)())
        except ImportError:  # an optional engine whose module cannot load: as if unknown
            return None
    return eng


def spec_for(registry: "Registry", model: "Model") -> LaunchSpec:
    """Where a model is reached, without the preflight of a launch (for chat/health/metrics)."""
    from tui.core.engines.external import External

    if model.engine == "external":
        return External().launch(registry, model)
    eng = get_engine(model.engine)
    host, port = (model.host, model.default_port) if eng is None else eng.endpoint(model)[:2]
    chost = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{chost}:{port}"
    return LaunchSpec(model=model.name, engine=model.engine, argv=[], host=host, port=port,
                      base_url=base + "/v1", health_url=base + "/health", metrics_url=base + "/metrics")


class _Names:
    def __iter__(self):
        names = [n for n in BUILTIN if get_engine(n) is not None]
        return iter(names + [n for n in _ENGINES if n not in BUILTIN])


ENGINE_NAMES = _Names()

__all__ = ["Engine", "LaunchError", "LaunchSpec", "get_engine", "register", "spec_for", "ENGINE_NAMES"]
