"""The front page at ``/`` (issue 18): the box's models, GPUs, logs and a chat, in a browser.

Routes (added by :func:`setup`; URLs in the page are relative, so it works through an
``ssh -L`` tunnel at any local port):

==================================  ====================================================
``GET /``                           the page (``static/index.html``); open, also with a key
``GET /ui/app.js``, ``/ui/app.css`` its script and style (package data); open
``GET /ui/status``                  ``{"models": [status --json objects + "server", …],
                                    "gpus": …, "keyed": bool, "at": …}``, at most 1 s old
``GET /ui/logs/{model}?cursor=…``   the model's log: the last lines, then what was added
``POST /ui/models/{model}/start``   start / stop the model's server: only on a router with
``POST /ui/models/{model}/stop``    an API key (which the guard checks); else 403
==================================  ====================================================

Decisions where the issue is silent:

* The page's files hold no data, so ``/`` and its two files are served without the key (a
  browser cannot send a header with a navigation); everything else needs it as any route does.
  The page asks for the key once, keeps it in ``sessionStorage`` and sends it as a header.
* Start/stop only with a key: without one, anyone reaching the port could stop every model.
  A keyless router's page is read-only and says why.
* Every answer (the whole router's) carries a strict Content-Security-Policy (no inline script,
  nothing from elsewhere, no framing) and ``nosniff``. The ``/ui/`` routes never carry CORS
  headers, their pre-flights are refused, and a POST whose ``Origin`` is not the page's own
  (``Host``) is refused: a page on another site can neither read nor drive them.
* The JSON never holds an API key or an ``env`` value (:mod:`tui.core.statusjson`).
* GPU gauges, per-model VRAM/RSS and tok/s come from one telemetry
  :class:`~tui.core.telemetry.Sampler`, started when a page first asks and stopped after
  ``IDLE_STOP_S`` without a page asking (its ``/metrics`` scrapes then stop too).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from tui.router import pagelogs, proxy

STATIC = Path(__file__).with_name("static")
FILES = {"/": ("index.html", "text/html"), "/ui/app.js": ("app.js", "text/javascript"),
         "/ui/app.css": ("app.css", "text/css")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
GPU_HISTORY = 60  # points (seconds) of history per GPU gauge sent to the page
IDLE_STOP_S = 60.0
PAGE = web.AppKey("page", object)


def is_public(path: str) -> bool:
    """The page's own files: served without the router's key."""
    return path in FILES


def is_page_api(path: str) -> bool:
    return path.startswith("/ui/") and path not in FILES


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer: CSP and nosniff; the page's routes: no CORS at all."""
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")
    if is_public(request.path) or is_page_api(request.path):
        for name in [k for k in h if k.lower().startswith("access-control-")]:
            del h[name]
        h["X-Frame-Options"] = "DENY"


def same_origin(request: web.Request) -> bool:
    """A POST from the page itself: no ``Origin`` (not a browser) or one naming this ``Host``."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc.lower() == (request.headers.get("Host") or "").lower()
    except ValueError:
        return False


def _ondemand_models(reg) -> dict[str, dict]:
    """Per model: ``on_demand``, ``ttl_s``, ``unload_in_s``… from the run file the router's
    on-demand loader (:mod:`tui.router.ondemand`) keeps; {} where there is none."""
    try:
        from tui.core import runfiles
        from tui.router import ondemand as rod

        data = runfiles.read_json(reg.run_dir / rod.RUN_FILE) or {}
    except Exception:  # noqa: BLE001 — no on-demand loader (yet), or no file: nothing to show
        return {}
    models = data.get("models") if isinstance(data, dict) else None
    return {k: v for k, v in models.items() if isinstance(v, dict)} if isinstance(models, dict) else {}


class PageData:
    """What ``/ui/status`` answers, computed at most once a second whoever asks."""

    def __init__(self, backends, table, keyed: bool) -> None:
        self._registry = getattr(backends, "registry", None)  # RegistryBackends (llmdeck serve)
        self.table, self.keyed = table, keyed
        self._at, self._data = float("-inf"), None
        self._lock = asyncio.Lock()
        self.sampler = None
        self._asked = 0.0
        self._idle_task: asyncio.Task | None = None

    def registry(self):
        return self._registry() if self._registry is not None else None

    def invalidate(self) -> None:
        self._at = float("-inf")

    async def status(self) -> dict[str, Any]:
        self._asked = time.monotonic()
        async with self._lock:
            if time.monotonic() - self._at >= 0.9 or self._data is None:
                self._data = await self._compute()
                self._at = time.monotonic()
            return self._data

    async def _compute(self) -> dict[str, Any]:
        reg = self.registry()
        if reg is None:  # a router fed by a plain list of backends (tests, embedders)
            items = await self.table.all()
            models = [{"name": b.name, "engine": b.engine, "state": b.state, "port": b.port, "url": b.url,
                       "last_error": b.detail} for b in items]
            return {"models": models, "gpus": {"state": "off", "message": "no registry", "gpus": []},
                    "keyed": self.keyed, "at": time.time()}
        return await asyncio.to_thread(self._compute_sync, reg)

    def _ensure_sampler(self, reg):
        if self.sampler is None:
            from tui.core.telemetry import Sampler, supervisor_servers
            from tui.core.telemetry.nvml import default_source

            # the process-wide GPU source (one nvmlInit; tests swap in a fake with set_default_source)
            self.sampler = Sampler(supervisor_servers(reg, every=1.0), interval=1.0, history_s=GPU_HISTORY,
                                   gpu_source=default_source())
            self.sampler.sample()
            self.sampler.start()
            self._idle_task = asyncio.run_coroutine_threadsafe(self._idle_stop(), self._loop)
        return self.sampler

    async def _idle_stop(self) -> None:
        while self.sampler is not None:
            await asyncio.sleep(min(5.0, IDLE_STOP_S / 4))
            if time.monotonic() - self._asked > IDLE_STOP_S:
                self.close()

    def close(self) -> None:
        s, self.sampler = self.sampler, None
        self.invalidate()  # the next ask reads afresh (and starts a sampler again)
        if s is not None:
            s.stop()

    def _compute_sync(self, reg) -> dict[str, Any]:
        from tui.core import statusjson, supervisor

        states = supervisor.status(reg)
        ondemand = _ondemand_models(reg)
        from tui.core import ondemand as core_od

        router = core_od.read_router(reg.run_dir)
        od_fields = core_od.status_fields(reg, router)  # status --json's on-demand fields, the same here
        snap = self._ensure_sampler(reg).latest
        samples = {m.name: m for m in snap.models} if snap else {}
        usage = {m.pid: m.usage for m in samples.values() if m.pid and m.usage}
        models = statusjson.model_objects(states, usage)
        for d in models:
            m = reg.models.get(d["name"])
            ms = samples.get(d["name"])
            srv = ms.server if ms else None
            d["server"] = None if srv is None else {
                "tokens_per_s": srv.tokens_per_s, "busy_slots": srv.busy_slots, "total_slots": srv.total_slots,
                "kv_cache_usage": srv.kv_cache_usage, "note": srv.note}
            d["alias"] = getattr(m, "served_name", None) if m else None
            # on demand (issue 16): what the router's on-demand run file says, where it has one
            od = ondemand.get(d["name"]) or {}
            d.setdefault("on_demand", od.get("on_demand", getattr(m, "on_demand", None) if m else None))
            d.setdefault("unloads_in_s", od.get("unload_in_s"))
            d.setdefault("ttl_s", od.get("ttl_s"))
            for k, v in od_fields.get(d["name"], {}).items():
                d.setdefault(k, v)
            d.setdefault("router", router.get("address") if router else None)
            d["keyed_model"] = bool(getattr(m, "api_key_env", None)) if m else False
        return {"models": models, "gpus": self._gpus(snap), "keyed": self.keyed, "at": time.time()}

    def _gpus(self, snap) -> dict[str, Any]:
        if snap is None:
            return {"state": "unknown", "message": "not read yet", "gpus": []}
        r = snap.gpu
        hist = self.sampler.history if self.sampler else None
        gpus = []
        for g in r.gpus:
            series = {}
            if hist is not None:
                for k in ("util", "mem_used", "temp", "power"):
                    series[k] = list(hist.series(("gpu", g.index, k)))[-GPU_HISTORY:]
            gpus.append({"index": g.index, "name": g.name, "state": g.state, "note": g.note,
                         "mem_used": g.mem_used, "mem_total": g.mem_total, "util_percent": g.util_percent,
                         "temp_c": g.temp_c, "power_w": g.power_w, "power_limit_w": g.power_limit_w,
                         "history": series})
        return {"state": r.state, "message": r.message, "driver": r.driver, "gpus": gpus}


_CACHE: dict[str, bytes] = {}


def _data(request: web.Request) -> PageData:
    return request.app[PAGE]


async def static_file(request: web.Request) -> web.Response:
    name, ctype = FILES[request.path]
    body = _CACHE.get(name)
    if body is None:  # read once: the package's files do not change while it runs
        body = _CACHE[name] = await asyncio.to_thread((STATIC / name).read_bytes)
    return web.Response(body=body, content_type=ctype, charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def status(request: web.Request) -> web.Response:
    return web.json_response(await _data(request).status(), headers={"Cache-Control": "no-store"})


async def logs(request: web.Request) -> web.Response:
    pd = _data(request)
    reg = pd.registry()
    name = request.match_info["model"]
    if reg is None or name not in reg.models:
        return proxy.json_error(404, f"model '{name}' is not in the registry", "invalid_request_error",
                                "model_not_found")
    from tui.core import supervisor

    st = await asyncio.to_thread(supervisor.state_of, reg, name, probe=False)
    path = Path(st.log) if st.log else reg.log_file(name)
    out = await asyncio.to_thread(pagelogs.read, path, request.query.get("cursor"))
    return web.json_response(out, headers={"Cache-Control": "no-store"})


async def control(request: web.Request) -> web.Response:
    action, name = request.match_info["action"], request.match_info["model"]
    if not request.app[_KEY_FLAG]:
        return proxy.json_error(403, "this router has no API key, so its page is read-only: starting and "
                                "stopping need 'llmdeck serve --api-key-env NAME'", "permission_error",
                                "read_only")
    if not same_origin(request):
        return proxy.json_error(403, "start/stop only from the router's own page", "permission_error",
                                "cross_origin_refused")
    pd = _data(request)
    reg = pd.registry()
    if reg is None or name not in reg.models:
        return proxy.json_error(404, f"model '{name}' is not in the registry", "invalid_request_error",
                                "model_not_found")
    from tui.core import supervisor
    from tui.core.engines.base import LaunchError

    try:
        if action == "start":
            st = await asyncio.to_thread(supervisor.start, reg, name)
        else:
            st = await asyncio.to_thread(supervisor.stop, reg, name)
    except (LaunchError, supervisor.SupervisorError) as exc:
        return proxy.json_error(409, f"{action} {name}: {exc}", "invalid_request_error", "conflict")
    pd.invalidate()
    await pd.table.refresh()
    return web.json_response({"model": name, "action": action, "state": st.state})


_KEY_FLAG = web.AppKey("page_keyed", bool)


def setup(app: web.Application, backends, table, *, keyed: bool) -> None:
    """Add the page's routes and headers to the router ``app``."""
    app[PAGE] = pd = PageData(backends, table, keyed)
    app[_KEY_FLAG] = keyed
    for path in FILES:
        app.router.add_get(path, static_file)
    app.router.add_get("/ui/status", status)
    app.router.add_get("/ui/logs/{model}", logs)
    app.router.add_post("/ui/models/{model}/{action:start|stop}", control)
    app.on_response_prepare.append(security_headers)

    async def on_startup(app: web.Application) -> None:
        pd._loop = asyncio.get_running_loop()

    async def on_cleanup(app: web.Application) -> None:
        await asyncio.to_thread(pd.close)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
