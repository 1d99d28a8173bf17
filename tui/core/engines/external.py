"""``engine: "external"``: a server llmdeck does not start (chat, health and metrics only).

The entry gives ``base_url``, the OpenAI base URL such as ``http://127.0.0.1:8000/v1``.
Health is ``<origin>/health``; metrics ``<origin>/metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tui.core.engines.base import Engine, LaunchError, LaunchSpec

if TYPE_CHECKING:
    from tui.core.registry import Model, Registry


class External(Engine):
    name = "external"
    params = {}
    needs_port = False

    def validate(self, name, entry):
        problems = []
        url = entry.get("base_url")
        if not isinstance(url, str):
            problems.append(f"models.{name}.base_url: engine 'external' needs base_url, "
                            "e.g. \"http://127.0.0.1:8000/v1\"")
        else:
            u = urlsplit(url)
            if u.scheme not in ("http", "https") or not u.netloc:
                problems.append(f"models.{name}.base_url: '{url}' is not an http(s) URL")
        for k in ("params", "quants", "model_path"):
            if k in entry and k != "params":
                problems.append(f"models.{name}.{k}: not used by engine 'external' (llmdeck does not start it)")
        return problems

    def launch(self, registry: "Registry", model: "Model", *, quant: str | None = None,
               port: int | None = None, binary: str | None = None,
               cpp_dir: str | None = None, dry_run: bool = False) -> LaunchSpec:
        if not model.base_url:
            raise LaunchError(f"model '{model.name}' has no base_url")
        u = urlsplit(model.base_url)
        origin = f"{u.scheme}://{u.netloc}"
        return LaunchSpec(model=model.name, engine=self.name, argv=[], host=u.hostname or "",
                          port=u.port, base_url=model.base_url.rstrip("/"),
                          health_url=origin + "/health", metrics_url=origin + "/metrics",
                          started_by_llmdeck=False)
