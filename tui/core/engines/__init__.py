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
_loaded = False


def register(engine: Engine) -> Engine:
    """Add an engine to the table (the built-in ones are listed in :func:`_load`)."""
    _ENGINES[engine.name] = engine
    return engine


def _load() -> None:
    """The static table of built-in engines, filled on first use (importing an engine module
    registers nothing: the modules never import this package back)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from tui.core.engines.external import External
    from tui.core.engines.llama_server import LlamaServer

    builtin: list[Engine] = [External(), LlamaServer()]
    try:  # optional engines (vLLM, SGLang, LightLLM)
        from tui.core.engines.others import OTHER_ENGINES
    except ImportError:
        OTHER_ENGINES = ()
    for eng in (*builtin, *OTHER_ENGINES):
        _ENGINES.setdefault(eng.name, eng)


def get_engine(name: str) -> Engine | None:
    _load()
    return _ENGINES.get(name)


def spec_for(registry: "Registry", model: "Model") -> LaunchSpec:
    """Where a model is reached, without the preflight of a launch (for chat/health/metrics)."""
    from tui.core.engines.external import External

    if model.engine == "external":
        return External().launch(registry, model)
    port = model.default_port
    host = model.host
    eng = get_engine(model.engine)
    if eng is not None and hasattr(eng, "endpoint"):  # engines with their own default host/port
        host, port, *_ = eng.endpoint(model)
    chost = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{chost}:{port}"
    return LaunchSpec(model=model.name, engine=model.engine, argv=[], host=host, port=port,
                      base_url=base + "/v1", health_url=base + "/health", metrics_url=base + "/metrics")


class _Names:
    def __iter__(self):
        _load()
        return iter(list(_ENGINES))


ENGINE_NAMES = _Names()

__all__ = ["Engine", "LaunchError", "LaunchSpec", "get_engine", "register", "spec_for", "ENGINE_NAMES"]
