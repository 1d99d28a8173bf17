"""Engines: one module per inference server, each turning a registry entry into a launch.

An engine knows its own model keys and parameter table, validates them, and builds a
:class:`~tui.core.engines.base.LaunchSpec` (argv list, environment, readiness URL, files
it needs). ``external`` is a server llmdeck does not start: chat, health and metrics only.
"""

from __future__ import annotations

from tui.core.engines.base import Engine, LaunchError, LaunchSpec

_ENGINES: dict[str, Engine] = {}
_loaded = False


def register(engine: Engine) -> Engine:
    _ENGINES[engine.name] = engine
    return engine


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from tui.core.engines import external, llama_server  # noqa: F401  (registers)

    try:  # optional engines (vLLM, SGLang, LightLLM) register themselves when present
        from tui.core.engines import others  # noqa: F401
    except ImportError:
        pass


def get_engine(name: str) -> Engine | None:
    _load()
    return _ENGINES.get(name)


class _Names:
    def __iter__(self):
        _load()
        return iter(list(_ENGINES))


ENGINE_NAMES = _Names()

__all__ = ["Engine", "LaunchError", "LaunchSpec", "get_engine", "register", "ENGINE_NAMES"]
