"""Forward one request to a backend and pass the answer through as it arrives.

Each piece the backend writes is written to the client at once (``iter_any``: no line or
event re-framing, no buffering), bytes untouched (no decompression). Decisions:

* The client's ``Authorization`` / ``X-Api-Key`` (the router's own key) never reach a
  backend; a backend with its own key gets ``Authorization: Bearer <its key>``.
* No read timeout: a long prompt can keep a server silent for minutes before its first
  token. Connecting times out after ``connect_timeout`` seconds.
* A backend that cannot be reached → 502 with an OpenAI-style JSON error naming the model
  and its URL. A backend that dies mid-stream → the client gets one more SSE event,
  ``data: {"error": {...}}``, and a clean end of the response (the same shape llama.cpp uses
  for a mid-stream failure; no ``[DONE]`` follows, so clients see an error, not a truncated
  success). A non-SSE body cut short ends short: the status line is already sent.
* The client going away closes the backend connection, which is how a server learns to stop
  generating (vLLM and SGLang stop; llama-server finishes a whole answer anyway). The server
  runs with ``handler_cancellation``, so this holds while a server is still silent (a whole
  answer not yet written, a long prefill), not only once the next chunk fails to send.
* A pooled keep-alive connection the backend has already closed fails when the request is
  written to it, or gives "Server disconnected" before any byte of the answer. That request is
  sent once more, on a fresh connection (:attr:`Upstream.fresh`, never pooled), instead of
  being a 502: no byte of an answer came back, and a model request has no effect on the server
  but the work it causes. Failing to connect at all is not retried (the server is not there).
* A server's CORS headers (``Access-Control-*``; llama-server echoes any ``Origin`` with
  credentials allowed) never reach the client: the router decides CORS itself (see
  :mod:`tui.router.app`).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})
_REQ_DROP = HOP_BY_HOP | {"authorization", "x-api-key"}
_RESP_DROP = HOP_BY_HOP | {"server", "date"}


def error_body(status: int, message: str, type_: str, code: str | int | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code if code is not None else status}}


def json_error(status: int, message: str, type_: str, code: str | int | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(status, message, type_, code), status=status, headers=headers)


def make_session(connect_timeout: float = 10.0, pooled: bool = True) -> aiohttp.ClientSession:
    connector = (aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, enable_cleanup_closed=True)
                 if pooled else aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=True))
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=connect_timeout, sock_read=None)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                 skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                                 cookie_jar=aiohttp.DummyCookieJar())


class Upstream:
    """The router's clients: ``pooled`` (keep-alive, every first attempt) and ``fresh`` (one
    connection per request, for the retry after a stale pooled connection)."""

    def __init__(self, connect_timeout: float = 10.0):
        self.pooled = make_session(connect_timeout)
        self.fresh = make_session(connect_timeout, pooled=False)

    async def close(self) -> None:
        await self.pooled.close()
        await self.fresh.close()


#: failures of a request written to a connection that turned out to be closed (retried once)
_STALE = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionResetError)
#: failing to connect at all (not retried; ClientConnectorError is a ClientOSError)
_NO_SERVER = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


async def forward(request: web.Request, upstream: Upstream, target: str, body: bytes | None, *,
                  model: str, backend_key: str | None = None,
                  prepared: web.StreamResponse | None = None) -> web.StreamResponse:
    """``prepared``: an SSE answer already sent to the client (a stream held while its model
    loaded, :mod:`tui.router.ondemand`): the backend's stream continues it, and an error, whose
    status can no longer be sent, becomes one ``data: {"error": …}`` event."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _REQ_DROP}
    if backend_key:
        headers["Authorization"] = f"Bearer {backend_key}"
    session = upstream.pooled
    while True:
        try:
            up = await session.request(request.method, target, data=body, headers=headers, allow_redirects=False)
            break
        except _NO_SERVER as exc:
            err = exc
        except _STALE as exc:
            err = exc
            if session is upstream.pooled:
                session = upstream.fresh  # no byte of an answer came: once more, on a new connection
                continue
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as exc:
            err = exc
        why = type(err).__name__ if not str(err) else str(err)
        msg = f"model '{model}' at {target} is not answering ({why}); see 'llmdeck status'"
        if prepared is not None:
            return await _error_event(prepared, error_body(502, msg, "backend_unreachable", 502))
        return json_error(502, msg, "backend_unreachable", 502)
    if prepared is not None:
        return await _continue(prepared, up, model)
    try:
        resp = web.StreamResponse(status=up.status, reason=up.reason)
        for k, v in up.headers.items():
            lk = k.lower()
            if lk not in _RESP_DROP and not lk.startswith("access-control-"):
                resp.headers.add(k, v)
        sse = up.headers.get("Content-Type", "").startswith("text/event-stream")
        if up.content_length is not None and not sse:
            resp.content_length = up.content_length
        await resp.prepare(request)
        try:
            async for data in up.content.iter_any():
                await resp.write(data)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # the backend went away mid-answer; the client is still there
            if sse:
                why = str(exc) or type(exc).__name__
                event = error_body(502, f"model '{model}': the server closed the stream mid-answer ({why})",
                                   "server_error", 502)
                await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            else:
                up.close()
                raise ConnectionResetError("backend closed mid-body") from None  # ends the client connection
        await resp.write_eof()
        return resp
    except (ConnectionResetError, asyncio.CancelledError):
        up.close()  # the client left: closing makes the server cancel generation
        raise
    finally:
        up.release()


async def _error_event(resp: web.StreamResponse, body: dict) -> web.StreamResponse:
    await resp.write(b"data: " + json.dumps(body).encode() + b"\n\n")
    await resp.write_eof()
    return resp


async def _continue(resp: web.StreamResponse, up: aiohttp.ClientResponse, model: str) -> web.StreamResponse:
    """The backend's answer written into an SSE answer already sent (see :func:`forward`)."""
    try:
        if up.status >= 400 or not up.headers.get("Content-Type", "").startswith("text/event-stream"):
            data = await up.read()
            try:
                body = json.loads(data)
                body = body if isinstance(body, dict) and "error" in body else error_body(
                    up.status, f"model '{model}' answered {up.status} without a stream", "server_error", up.status)
            except ValueError:
                body = error_body(up.status, f"model '{model}' answered {up.status}: "
                                  f"{data[:200].decode('utf-8', 'replace')}", "server_error", up.status)
            return await _error_event(resp, body)
        try:
            async for data in up.content.iter_any():
                await resp.write(data)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            return await _error_event(resp, error_body(
                502, f"model '{model}': the server closed the stream mid-answer ({why})", "server_error", 502))
        await resp.write_eof()
        return resp
    except (ConnectionResetError, asyncio.CancelledError):
        up.close()
        raise
    finally:
        up.release()
