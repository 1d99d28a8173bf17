"""Which server a benchmark talks to, whether it answers, and what it says about itself.

The URL comes from the supervisor's state of the model (the port it was really started on,
or ``base_url`` for ``engine: "external"``). A model the supervisor reports stopped is still
tried on its ``default_port``: a server started outside llmdeck (the seeds' ``deploy.sh``) can
be benchmarked too. Probes never go through an HTTP proxy: a benchmark of a local server
through ``http_proxy`` would measure the proxy.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tui.core.bench.results import masked_entry
from tui.core.bench.runner import BenchError, Target

if TYPE_CHECKING:
    from tui.core.registry import Registry

_NOT_RUNNING = ("stopped", "crashed", "stopping")
_NOT_READY = ("starting", "loading", "unhealthy")


def origin(base_url: str) -> str:
    u = urlsplit(base_url)
    return f"{u.scheme}://{u.netloc}"


def resolve(registry: "Registry", name: str) -> tuple[Target, dict[str, Any]]:
    """The target and the settings to save for model ``name`` (raises UnknownModel, BenchError)."""
    from tui.core import supervisor
    from tui.core import engines

    model = registry.get(name)
    state = supervisor.state_of(registry, name)
    url, quant = state.url, state.quant
    if state.state == "stopped" and model.engine != "external" and model.default_port:
        # not started by llmdeck: a server may still answer on its port (preflight tells)
        url = engines.spec_for(registry, model).base_url
    elif state.state in _NOT_RUNNING:
        why = f" ({state.last_error})" if state.last_error else ""
        raise BenchError(f"model '{name}' is {state.state}{why}: start it first (llmdeck start {name})")
    elif state.state in _NOT_READY:
        why = f" ({state.last_error})" if state.last_error else ""
        raise BenchError(f"model '{name}' is {state.state}{why}, not ready: wait for it "
                         f"(llmdeck start {name} --wait) and run the benchmark again")
    if not url:
        raise BenchError(f"model '{name}' has no URL: give it a default_port, or start it (llmdeck start {name})")
    settings = masked_entry(model.raw)
    settings["engine"] = model.engine
    settings["quant"] = quant or model.default_quant
    return Target(url.rstrip("/"), model.served_name, model.api_key()), settings


def _get(url: str, api_key: str | None, timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(1 << 16) if exc.fp else b""


def preflight(target: Target, name: str, timeout: float = 5.0) -> None:
    """Raise BenchError unless the server answers and is not loading (a missing /health is fine)."""
    url = origin(target.base_url) + "/health"
    try:
        status, _ = _get(url, target.api_key, timeout)
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise BenchError(f"model '{name}': nothing answers at {origin(target.base_url)} ({why}): "
                         f"start it (llmdeck start {name})") from None
    if status == 503:
        raise BenchError(f"model '{name}' is still loading ({url} answers 503): wait and retry")
    if status in (401, 403):
        raise BenchError(f"model '{name}': {url} refused the API key (HTTP {status}): check api_key_env")


def server_info(target: Target, timeout: float = 5.0) -> dict[str, Any]:
    """What llama-server's ``/props`` says about slots, context and build; {} elsewhere."""
    try:
        status, body = _get(origin(target.base_url) + "/props", target.api_key, timeout)
        props = json.loads(body) if status == 200 else {}
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    if not isinstance(props, dict):
        return {}
    dgs = props.get("default_generation_settings") or {}
    info = {
        "total_slots": props.get("total_slots"),
        "n_ctx": dgs.get("n_ctx") if isinstance(dgs, dict) else None,
        "build_info": props.get("build_info"),
        "model_path": props.get("model_path"),
        "model_alias": props.get("model_alias"),
    }
    return {k: v for k, v in info.items() if v is not None}
