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
``GET /``, ``/ui/…``                        the front page, its JSON, logs, start/stop
                                            (:mod:`tui.router.page`; the page's files need no key)
==========================================  =================================================

Answers decided here: a model that is not registered, or registered but not running → 404
(``model_not_found``, naming the running ones); starting or loading → 503 with
``Retry-After: 5``; unhealthy or stopping → 503. Before forwarding, the body's ``model`` is
set to the name the server answers to (vLLM rejects any other), so clients may use either
the registry name or the alias. Errors are OpenAI-shaped: ``{"error": {"message", "type",
"code"}}``.

With an API key, every route except ``/health`` needs ``Authorization: Bearer <key>`` or
``X-Api-Key: <key>`` (compared in constant time); a wrong or missing key → 401.

Who may use a model (issue 13):

* **Without a key** the router serves whoever reaches its port, so it (1) refuses a model that
  has its own key (``api_key_env``) with a 401 telling how to give the router one — it never
  lends a model's key to an unauthenticated caller; (2) answers only requests whose ``Host`` is
  an IP address, ``localhost`` or the name it was bound to, any port (an ``ssh -L`` tunnel may
  use another local port) — another name is a page that had its DNS name re-pointed at this
  machine (DNS rebinding): 421; (3) refuses requests from a web page (``Origin``) not on this
  machine (localhost, a loopback address, the bound name): 403, and CORS pre-flights: 403. It
  sends no CORS headers, so no other site's page can read an answer.
* **With a key** the key is the guard: any ``Host``; pre-flights are answered here (204,
  ``Access-Control-Allow-Origin: *``, never with credentials: the key travels in a header a
  page must set itself, not in a cookie), and answers carry ``Access-Control-Allow-Origin: *``.
* A server's own ``Access-Control-*`` headers are never passed on (:mod:`tui.router.proxy`).

Bad requests are 4xx, never 500: a body over ``max_body`` (32 MB by default; ``Content-Length``
checked before reading, a chunked body while reading) → 413; JSON nested too deeply → 400;
a header that is not UTF-8 → 401 (key) or 421 (Host). See :mod:`tui.router.body` for how a
large body is read without stalling the event loop. Anything unforeseen is a one-line JSON 500
and one line on stderr, not a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import logging
import socket
import sys
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from tui.router import body as rbody
from tui.router import held, page, proxy
from tui.router import ondemand as rod
from tui.router.backends import COMING_STATES, LISTED_STATES, READY_STATES, Backend, BackendTable, Provider

TABLE = web.AppKey("table", BackendTable)
SESSION = web.AppKey("session", proxy.Upstream)
API_KEY = web.AppKey("api_key", object)
MAX_BODY = web.AppKey("max_body", int)
BOUND = web.AppKey("bound", list)  # [host the router listens on] (set by serve())

OPENAI_ROUTES = ("chat/completions", "completions", "embeddings")
RETRY_AFTER_S = 5
GIVE_KEY = "'llmdeck serve --api-key-env NAME'"
CORS_MAX_AGE_S = 600
_WILDCARDS = ("", "0.0.0.0", "::", "*")


def _hostname(value: str) -> str | None:
    """The host part of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), lower case."""
    v = value.strip().lower()
    if v.startswith("["):
        end = v.find("]")
        if end < 0 or (v[end + 1:] and not v[end + 1:].startswith(":")):
            return None
        return v[1:end]
    if v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v.rstrip(".") or None


def _is_ip(name: str) -> bool:
    try:  # inet_pton: strict, and a tenth of ipaddress's cost (this runs on every keyless request)
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
        return True
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=8)
def _own_names(bound: str) -> frozenset[str]:
    """Names that mean this machine: localhost, and the bound name (the machine's own name when
    bound to every interface)."""
    names = {"localhost", "127.0.0.1", "::1"}
    b = bound.strip("[]").lower().rstrip(".")
    if b in _WILDCARDS:
        try:
            hn = socket.gethostname().lower()
            names |= {hn, hn.split(".")[0]}
        except OSError:
            pass
    elif not _is_ip(b):
        names.add(b)
    return frozenset(names)


def host_allowed(host: str | None, bound: str) -> bool:
    """Whether a keyless router answers a request with this ``Host`` header: an IP address (no
    page can rebind a DNS name to look like one), ``localhost`` or the name it is bound to; any
    port. ``None`` (an HTTP/1.0 client sent none; browsers always do) is allowed."""
    if host is None:
        return True
    name = _hostname(host)
    if not name or not name.isascii():
        return False
    return name in _own_names(bound) or _is_ip(name)


def origin_allowed(origin: str, bound: str) -> bool:
    """Whether a keyless router serves a web page from ``origin``: only pages on this machine
    (localhost, a loopback address, the bound name). ``null`` (a sandboxed or file page) is not."""
    try:
        name = urlsplit(origin).hostname
    except ValueError:
        return False
    if not name or not name.isascii():
        return False
    name = name.rstrip(".")
    if _is_ip(name):
        return ipaddress.ip_address(name).is_loopback or name == bound.strip("[]")
    return name in _own_names(bound)


def _key_of(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-Api-Key")


def _same(given: str, key: str) -> bool:
    # a header aiohttp could not decode as UTF-8 holds surrogates: compare bytes, never fail on it
    try:
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode("utf-8"))
    except UnicodeError:
        return False


def _preflight(request: web.Request) -> bool:
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


def _cors_preflight(request: web.Request) -> web.Response:
    asked = request.headers.get("Access-Control-Request-Headers", "")
    allow = ["Authorization", "Content-Type", "X-Api-Key"]
    allow += [h.strip() for h in asked.split(",") if h.strip() and h.strip().lower() not in
              {a.lower() for a in allow} and h.strip().isascii()]
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": ", ".join(allow), "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
        "Vary": "Origin"})


async def _cors_on_answers(request: web.Request, response: web.StreamResponse) -> None:
    """With a key: every answer to a web page may be read by it (the key is the guard)."""
    if "Origin" in request.headers:
        response.headers["Access-Control-Allow-Origin"] = "*"


def _guard(request: web.Request) -> web.Response | None:
    """The answer refusing this request before any handler, or None."""
    key = request.app[API_KEY]
    if key:
        if _preflight(request):
            if page.is_public(request.path) or page.is_page_api(request.path):  # the page: same origin only
                return proxy.json_error(403, "the router's page answers no CORS pre-flight", "permission_error",
                                        "cross_origin_refused")
            return _cors_preflight(request)
        if request.path != "/health" and not page.is_public(request.path):
            given = _key_of(request)
            if not given or not _same(given, key):
                return proxy.json_error(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                                        "authentication_error", "invalid_api_key")
    else:
        bound = request.app[BOUND][0]
        host = request.headers.get("Host")
        if not host_allowed(host, bound):
            shown = ascii(_hostname(host) or host)
            return proxy.json_error(
                421, f"this router has no API key and answers only requests addressed to this machine "
                f"(an IP address, localhost{'' if bound in _WILDCARDS or _is_ip(bound) else ', ' + bound}), not "
                f"{shown}: a web page that re-points its own name at this machine (DNS rebinding) would reach "
                f"your models; use the address, or give the router a key: {GIVE_KEY}",
                "invalid_request_error", "misdirected_request")
        origin = request.headers.get("Origin")
        if origin is not None and (_preflight(request) or not origin_allowed(origin, bound)):
            return proxy.json_error(
                403, f"cross-origin request from {ascii(origin)} refused: a router without an API key "
                f"serves no web pages but those on this machine, and answers no CORS pre-flight; "
                f"give the router a key: {GIVE_KEY}", "permission_error", "cross_origin_refused")
    if request.content_length is not None and request.content_length > request.app[MAX_BODY]:
        return _too_large(request)
    return None


def _too_large(request: web.Request) -> web.Response:
    limit = request.app[MAX_BODY]
    return proxy.json_error(413, f"the request body is over the router's limit of {rbody.mb(limit)}; "
                            "raise it with 'llmdeck serve --max-body-mb N'", "invalid_request_error", 413)


@web.middleware
async def _guard_and_errors(request: web.Request, handler):
    refused = _guard(request)
    if refused is not None:
        return refused
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return proxy.json_error(404, f"no route {request.method} {request.path}; the OpenAI base is /v1",
                                "not_found_error", 404)
    except web.HTTPMethodNotAllowed as exc:
        return proxy.json_error(405, f"{request.method} is not allowed on {request.path} "
                                f"(allowed: {', '.join(sorted(exc.allowed_methods))})", "invalid_request_error", 405)
    except rbody.TooLarge:
        return _too_large(request)
    except rbody.BadBody as exc:
        return proxy.json_error(400, str(exc), "invalid_request_error", 400)
    except (web.HTTPException, asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:  # a bug: one line for the operator, JSON for the client, no traceback
        print(f"llmdeck serve: error: {request.method} {request.path}: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        return proxy.json_error(500, f"the router failed on this request ({type(exc).__name__}); "
                                "see the output of 'llmdeck serve'", "server_error", 500)


def _model_object(b: Backend) -> dict:
    return {"id": b.name, "object": "model", "created": int(b.since or 0), "owned_by": "llmdeck",
            "aliases": list(b.aliases), "engine": b.engine, "state": b.state}


def _running(items: Iterable[Backend]) -> list[Backend]:
    return [b for b in items if b.state in LISTED_STATES and b.url]


async def _check(request: web.Request, model: str) -> Backend | web.Response:
    """The ready backend for ``model``, or the error answer (a keyed model behind a keyless
    router is a 401 whatever its state)."""
    table = request.app[TABLE]
    b = await table.lookup(model)
    if b is not None and (refused := _not_lent(request, b)) is not None:
        return refused
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


def _not_lent(request: web.Request, b: Backend) -> web.Response | None:
    """A model with its own key, asked through a router without one: refused (401), so the
    router never hands the model's key to whoever reaches its port."""
    if b.api_key and not request.app[API_KEY]:
        return proxy.json_error(
            401, f"model '{b.name}' has its own API key, and this router has none: it sends a model's key only "
            f"for clients that give the router's key; start the router with one ({GIVE_KEY}) and send "
            "'Authorization: Bearer <that key>'", "authentication_error", "router_key_required")
    return None


async def openai_route(request: web.Request) -> web.StreamResponse:
    raw = await rbody.read(request, request.app[MAX_BODY])
    parsed = await rbody.inspect(raw)
    model = parsed.model
    if not isinstance(model, str) or not model:
        running = ", ".join(request.app[TABLE].known()) or "none"
        return proxy.json_error(400, f"the request has no 'model' field; running models: {running}",
                                "invalid_request_error", "model_not_found")
    route = request.match_info["route"]

    def forward(b: Backend, prepared=None):
        target = f"{b.url.rstrip('/')}/{route}" + (f"?{request.query_string}" if request.query_string else "")
        return proxy.forward(request, request.app[SESSION], target, rbody.retarget(parsed, raw, b.served_name),
                             model=b.name, backend_key=b.api_key, prepared=prepared)

    ond = request.app.get(rod.ONDEMAND)
    if ond is not None:  # models on demand (issue 16): counted, started when stopped
        return await held.serve_request(request, ond, model, parsed, raw, check=lambda: _check(request, model),
                                        refuse=lambda b: _not_lent(request, b), forward=forward)
    b = await _check(request, model)
    if isinstance(b, web.Response):
        return b
    return await forward(b)


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
    b = await _check(request, request.match_info["model"])
    if isinstance(b, web.Response):
        return b
    raw = await rbody.read(request, request.app[MAX_BODY]) if request.can_read_body else None
    if raw and request.content_type == "application/json":
        try:
            parsed = await rbody.inspect(raw)
            if parsed.model is not None:
                raw = rbody.retarget(parsed, raw, b.served_name)
        except rbody.TooDeep:
            raise
        except rbody.BadBody:
            pass  # not JSON: not ours to judge, the server answers it
    target = f"{b.origin}/{request.match_info['path']}"
    if request.query_string:
        target += "?" + request.query_string
    return await proxy.forward(request, request.app[SESSION], target, raw, model=b.name, backend_key=b.api_key)


async def api_load_unload(request: web.Request) -> web.Response:
    """``POST /api/<model>/load`` and ``/unload`` (issue 16; :mod:`tui.router.ondemand`)."""
    ond, name = request.app[rod.ONDEMAND], request.match_info["model"]
    b = await request.app[TABLE].lookup(name)
    if b is None or b.engine == "external":
        return proxy.json_error(404, f"model '{name}' is not a model llmdeck runs here", "invalid_request_error",
                                "model_not_found")
    if (refused := _not_lent(request, b)) is not None:
        return refused
    try:
        if request.match_info["verb"] == "load":
            return web.json_response(await ond.load(b.name))
        return web.json_response(await ond.unload(b.name))
    except rod.Refusal as exc:
        return exc.response()


async def router_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(backends: Provider, *, api_key: str | None = None, ttl: float = 1.0,
             max_body: int = rbody.DEFAULT_MAX_BODY, host: str = "127.0.0.1", on_demand: bool = False,
             gpu_source=None) -> web.Application:
    """The router as an aiohttp application. ``backends`` returns the current :class:`Backend` list
    (sync or async); ``llmdeck serve`` passes :class:`~tui.router.backends.RegistryBackends`.
    ``max_body``: the largest request body in bytes; ``host``: the address it listens on, for
    the Host check of a keyless router (:func:`serve` sets it to the address it binds).
    ``on_demand`` (``llmdeck serve``; needs a provider with ``registry()``): models on demand,
    TTLs and swaps (:mod:`tui.router.ondemand`), ``gpu_source`` its NVML source; it claims the
    registry's ``run/router.lock`` and raises ``RouterBusy`` (one line naming the other router's pid
    and address) when another router holds it."""
    app = web.Application(middlewares=[_guard_and_errors], client_max_size=max_body)
    app[TABLE] = BackendTable(backends, ttl=ttl)
    app[API_KEY] = api_key
    app[MAX_BODY] = max_body
    app[BOUND] = [host]
    if api_key:
        app.on_response_prepare.append(_cors_on_answers)

    async def session_ctx(app: web.Application):
        app[SESSION] = proxy.Upstream()
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/health", router_health)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    for r in OPENAI_ROUTES:
        app.router.add_post(f"/v1/{{route:{r}}}", openai_route)
    app.router.add_get("/api/models", api_models)
    page.setup(app, backends, app[TABLE], keyed=bool(api_key))  # the front page at / (issue 18)
    if on_demand:
        ond = app[rod.ONDEMAND] = rod.OnDemand(backends, app[TABLE], gpu_source=gpu_source, address=host)
        ond.claim()  # one router per registry: a second one refuses here, before it listens
        app.on_startup.append(ond.on_startup)
        app.on_cleanup.append(ond.on_cleanup)
        app.router.add_post("/api/{model}/{verb:load|unload}", api_load_unload)
    app.router.add_route("*", "/api/{model}/{path:.*}", api_passthrough)
    return app


class _OneLine(logging.Handler):
    """aiohttp's own errors (a request its parser rejects: 400) as one line, never a traceback
    that any client could print on the operator's terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        text = str(getattr(exc, "message", None) or exc or "")
        why = next((ln.strip().rstrip(":") for ln in text.splitlines() if ln.strip()), "")
        why = why or (type(exc).__name__ if exc is not None else "")
        print(f"llmdeck serve: {record.getMessage()}{': ' + why if why else ''}", file=sys.stderr, flush=True)


def _server_logger() -> logging.Logger:
    log = logging.getLogger("llmdeck.router.server")
    if not log.handlers:
        log.addHandler(_OneLine())
        log.propagate = False
    return log


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
    """Run until ``stop`` is set (or forever). ``ready(sockets)`` is called once listening.
    A client that goes away cancels its handler (``handler_cancellation``): the request to the
    model is closed at once, not when the model next writes."""
    app[BOUND][0] = host
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5,
                           handler_cancellation=True, logger=_server_logger())
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        if ready is not None:
            ready([s.getsockname() for s in site._server.sockets] if site._server else [])
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await runner.cleanup()
