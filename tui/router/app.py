"""The router's routes, its API key, and running it.

Routes:

==========================================  =================================================
``GET /health``                             the router itself: 200 ``{"status": "ok"}`` (no key)
``GET /v1/models``                          running models (OpenAI list; ``id`` = registry name,
                                            plus ``aliases``, ``engine``, ``state``)
``GET /v1/models/{model}``                  one of them, or 404
``POST /v1/chat/completions``,              routed by the body's ``model`` (registry name or
``/v1/completions``, ``/v1/embeddings``     alias) to that server's ``/v1/…``
``GET /api/models``                         the seed's list (serve-ui.py): running models with
                                            port, URL, state, uptime
``* /api/{model}/{path}``                   the seed's passthrough to ``<server>/{path}``
==========================================  =================================================

Answers decided here: a model that is not registered, or registered but not running → 404
(``model_not_found``, naming the running ones); starting or loading → 503 with
``Retry-After: 5``; unhealthy or stopping → 503. Before forwarding, the body's ``model`` is
set to the name the server answers to (vLLM rejects any other), so clients may use either
the registry name or the alias. Errors are OpenAI-shaped: ``{"error": {"message", "type",
"code"}}``.

With an API key, every route except ``/health`` needs ``Authorization: Bearer <key>`` or
``X-Api-Key: <key>`` (compared in constant time); a wrong or missing key → 401.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Iterable

from aiohttp import web

from tui.router import proxy
from tui.router.backends import COMING_STATES, LISTED_STATES, READY_STATES, Backend, BackendTable, Provider

TABLE = web.AppKey("table", BackendTable)
SESSION = web.AppKey("session", object)
API_KEY = web.AppKey("api_key", object)

OPENAI_ROUTES = ("chat/completions", "completions", "embeddings")
RETRY_AFTER_S = 5


def _key_of(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-Api-Key")


@web.middleware
async def _auth_and_errors(request: web.Request, handler):
    key = request.app[API_KEY]
    if key and request.path != "/health":
        given = _key_of(request)
        if not given or not hmac.compare_digest(given.encode(), key.encode()):
            return proxy.json_error(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                                    "authentication_error", "invalid_api_key")
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return proxy.json_error(404, f"no route {request.method} {request.path}; the OpenAI base is /v1",
                                "not_found_error", 404)
    except web.HTTPMethodNotAllowed as exc:
        return proxy.json_error(405, f"{request.method} is not allowed on {request.path} "
                                f"(allowed: {', '.join(sorted(exc.allowed_methods))})", "invalid_request_error", 405)


def _model_object(b: Backend) -> dict:
    return {"id": b.name, "object": "model", "created": int(b.since or 0), "owned_by": "llmdeck",
            "aliases": list(b.aliases), "engine": b.engine, "state": b.state}


def _running(items: Iterable[Backend]) -> list[Backend]:
    return [b for b in items if b.state in LISTED_STATES and b.url]


async def _check(table: BackendTable, model: str) -> Backend | web.Response:
    """The ready backend for ``model``, or the error answer."""
    b = await table.lookup(model)
    if b is not None and b.state in READY_STATES and b.url:
        return b
    running = ", ".join(table.known()) or "none"
    if b is None:
        return proxy.json_error(404, f"model '{model}' is not served here; running models: {running}",
                                "invalid_request_error", "model_not_found")
    if b.state in COMING_STATES:
        return proxy.json_error(503, f"model '{b.name}' is {b.state}; retry in a few seconds"
                                + (f" ({b.detail})" if b.detail else ""), "unavailable_error", 503,
                                headers={"Retry-After": str(RETRY_AFTER_S)})
    if b.state in ("unhealthy", "stopping"):
        return proxy.json_error(503, f"model '{b.name}' is {b.state}" + (f": {b.detail}" if b.detail else ""),
                                "unavailable_error", 503)
    return proxy.json_error(404, f"model '{b.name}' is registered but not running ({b.state}); start it with "
                            f"'llmdeck start {b.name}'; running models: {running}", "invalid_request_error",
                            "model_not_found")


def _retarget(body: dict, raw: bytes, b: Backend) -> bytes:
    if b.served_name and body.get("model") != b.served_name:
        body["model"] = b.served_name
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return raw


async def openai_route(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return proxy.json_error(400, f"the request body is not JSON ({exc})", "invalid_request_error", 400)
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model:
        running = ", ".join(request.app[TABLE].known()) or "none"
        return proxy.json_error(400, f"the request has no 'model' field; running models: {running}",
                                "invalid_request_error", "model_not_found")
    b = await _check(request.app[TABLE], model)
    if isinstance(b, web.Response):
        return b
    target = f"{b.url.rstrip('/')}/{request.match_info['route']}"
    if request.query_string:
        target += "?" + request.query_string
    return await proxy.forward(request, request.app[SESSION], target, _retarget(body, raw, b), model=b.name,
                               backend_key=b.api_key)


async def list_models(request: web.Request) -> web.Response:
    items = _running(await request.app[TABLE].all())
    return web.json_response({"object": "list", "data": [_model_object(b) for b in items]})


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    b = await request.app[TABLE].lookup(name)
    if b is None or b not in _running([b]):
        return proxy.json_error(404, f"model '{name}' is not running here", "invalid_request_error",
                                "model_not_found")
    return web.json_response(_model_object(b))


async def api_models(request: web.Request) -> web.Response:
    now = time.time()
    out = [{"name": b.name, "aliases": list(b.aliases), "engine": b.engine, "state": b.state, "port": b.port,
            "url": b.url, "uptime_s": round(now - b.since, 1) if b.since else None}
           for b in _running(await request.app[TABLE].all())]
    return web.json_response({"models": out})


async def api_passthrough(request: web.Request) -> web.StreamResponse:
    b = await _check(request.app[TABLE], request.match_info["model"])
    if isinstance(b, web.Response):
        return b
    raw = await request.read() if request.can_read_body else None
    if raw and request.content_type == "application/json":
        try:
            body = json.loads(raw)
            if isinstance(body, dict) and "model" in body:
                raw = _retarget(body, raw, b)
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # not ours to judge: the server answers it
    target = f"{b.origin}/{request.match_info['path']}"
    if request.query_string:
        target += "?" + request.query_string
    return await proxy.forward(request, request.app[SESSION], target, raw, model=b.name, backend_key=b.api_key)


async def router_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(backends: Provider, *, api_key: str | None = None, ttl: float = 1.0) -> web.Application:
    """The router as an aiohttp application. ``backends`` returns the current :class:`Backend` list
    (sync or async); ``llmdeck serve`` passes :class:`~tui.router.backends.RegistryBackends`."""
    app = web.Application(middlewares=[_auth_and_errors], client_max_size=256 << 20)
    app[TABLE] = BackendTable(backends, ttl=ttl)
    app[API_KEY] = api_key

    async def session_ctx(app: web.Application):
        app[SESSION] = proxy.make_session()
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/health", router_health)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    for r in OPENAI_ROUTES:
        app.router.add_post(f"/v1/{{route:{r}}}", openai_route)
    app.router.add_get("/api/models", api_models)
    app.router.add_route("*", "/api/{model}/{path:.*}", api_passthrough)
    return app


def run(coro):
    """Run the router's event loop: uvloop where installed (it about halves the loop's cost per
    relayed chunk, measured by benchmarks/bench_router.py), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def serve(app: web.Application, host: str, port: int, *, ready=None,
                stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or forever). ``ready(sockets)`` is called once listening."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        if ready is not None:
            ready([s.getsockname() for s in site._server.sockets] if site._server else [])
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await runner.cleanup()
