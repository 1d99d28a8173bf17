"""The router when connections fail (issue 13): a client that leaves, a backend that closed a
pooled keep-alive connection, a large body rewritten in place, and bench_router counting a 502.

The backend is bench_router's llama-server-shaped fake (its own process; ``GET /stats`` counts
requests, completed answers and disconnects), or a raw asyncio server where the test needs a
connection to misbehave exactly.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from conftest import free_port, wait_http_ok
from tui.router.app import make_app, serve
from tui.router.backends import Backend

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench_router.py"

pytestmark = [pytest.mark.timeout(120)]


class Router:
    def __init__(self, backends, **kw):
        self.backends, self.kw = backends, kw
        self.stop = asyncio.Event()

    async def __aenter__(self):
        got = asyncio.get_running_loop().create_future()
        app = make_app(lambda: self.backends, ttl=0.2, **self.kw)
        self.task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=got.set_result, stop=self.stop))
        self.url = f"http://127.0.0.1:{(await asyncio.wait_for(got, 10))[0][1]}"
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture(scope="module")
def fake():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(BENCH), "--role", "fake", "--port", str(port)], cwd=ROOT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 30, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


def _stats(base: str) -> dict:
    return httpx.get(base + "/stats", timeout=10).json()


def _chat(n: int, stream: bool, model: str = "bench") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": n, "stream": stream}


async def _until(fn, timeout: float):
    deadline = time.monotonic() + timeout
    while not (v := fn()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return v


@pytest.mark.parametrize("stream", [False, True], ids=["whole-answer", "stream"])
async def test_a_client_that_leaves_is_dropped_upstream_at_once(fake, stream):
    """300 tokens at 100/s: 3 s of generation. The client leaves after 0.6 s; the backend must see
    the router go within a second, long before it would have finished."""
    backends = [Backend(name="bench", state="ready", url=fake + "/v1", served_name="bench")]
    async with Router(backends) as r:
        before = _stats(fake)

        async def client():
            async with httpx.AsyncClient(base_url=r.url, timeout=30) as c:
                async with c.stream("POST", "/v1/chat/completions", json=_chat(300, stream)) as resp:
                    async for _ in resp.aiter_raw():
                        pass

        task = asyncio.create_task(client())
        assert await _until(lambda: _stats(fake)["requests"] > before["requests"], 5)
        await asyncio.sleep(0.6)
        task.cancel()  # closes the client's connection to the router
        left = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        got = await _until(lambda: (s := _stats(fake))["disconnects"] > before["disconnects"] and s, 1.5)
        assert got, f"the backend still generates {time.monotonic() - left:.1f} s after the client left"
        assert got["completed"] == before["completed"]


class StaleKeepAliveBackend:
    """Answers the first request on a connection (keep-alive), then closes the connection as soon
    as a second request starts on it: a server whose keep-alive timeout fired just as the router
    reused the pooled connection."""

    def __init__(self):
        self.connections = 0
        self.served = 0
        self.dropped = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            n = 0
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n += 1
                if n > 1:  # a reused connection: gone, with the request unread
                    self.dropped += 1
                    writer.transport.abort()
                    return
                length = int(next((ln.split(b":", 1)[1] for ln in head.split(b"\r\n")
                                   if ln.lower().startswith(b"content-length:")), b"0"))
                body = json.loads(await reader.readexactly(length))
                self.served += 1
                out = json.dumps({"object": "chat.completion", "model": body.get("model"), "size": length,
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]})
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(out), out.encode()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def test_a_stale_pooled_connection_is_retried_on_a_fresh_one():
    be = StaleKeepAliveBackend()
    server = await asyncio.start_server(be.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backends = [Backend(name="m", state="ready", url=f"http://127.0.0.1:{port}/v1", served_name="m")]
    try:
        async with Router(backends) as r, httpx.AsyncClient(base_url=r.url, timeout=30) as c:
            # every second request finds its pooled connection closed: with a small body (the close
            # is seen while waiting for the answer) and with a 4 MB one (seen while writing it)
            for i, pad in enumerate(["", "", "x" * (4 << 20), "x" * (4 << 20), ""]):
                resp = await c.post("/v1/chat/completions", json={**_chat(1, False, "m"), "pad": pad})
                assert resp.status_code == 200, (i, resp.text)
                assert resp.json()["model"] == "m"
        assert (be.served, be.dropped, be.connections) == (5, 2, 5)  # each retry was on a new connection
    finally:
        server.close()
        await server.wait_closed()


async def test_a_large_body_is_rewritten_in_place(fake):
    """Above the size parsed inline, the router finds ``model`` without a full parse and splices the
    served name in; the rest of the body reaches the server byte for byte."""
    backends = [Backend(name="big", state="ready", url=fake + "/v1", aliases=("bench",), served_name="bench")]
    body = {"model": "big", "messages": [{"role": "user", "content": "é \\u00e9 \" ] } " * 100_000}],
            "max_tokens": 1, "stream": False, "nested": [{"model": "not-this-one"}]}
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) > 1 << 20
    async with Router(backends) as r, httpx.AsyncClient(base_url=r.url, timeout=30) as c:
        resp = await c.post("/v1/chat/completions", content=raw)
        assert resp.status_code == 200, resp.text
        assert resp.json()["model"] == "bench"
        assert _stats(fake)["max_body"] == len(raw) - len(b'"big"') + len(b'"bench"')  # nothing else changed
        for bad, why in ((b'{"model": 7, "pad": "' + b"x" * (1 << 20) + b'"}', "no 'model'"),
                         (b'["' + b"x" * (1 << 20) + b'"]', "no 'model'")):
            resp = await c.post("/v1/chat/completions", content=bad)
            assert resp.status_code == 400 and why in resp.json()["error"]["message"]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_router_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def test_bench_router_counts_a_502_as_a_failed_run(monkeypatch, capsys):
    bench = _load_bench()
    monkeypatch.setattr(bench, "STREAMS", 6)
    monkeypatch.setattr(bench, "ARRIVAL_GAP_S", 0.0)
    seen = []

    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(1)
        if len(seen) % 3 == 0:
            return web.json_response({"error": {"message": "model 'bench' is not answering", "code": 502}},
                                     status=502)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n')
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        row = await bench.one_round(base, 1)
    finally:
        await runner.cleanup()
    assert len(row["failures"]) == 2 and all("HTTP 502" in f for f in row["failures"])
    assert row["tokens"] == 4
    assert bench.failures([row], []) == row["failures"]
    assert "FAILED" in capsys.readouterr().out
