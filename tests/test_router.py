"""The router in front of two real llama-servers (SmolLM2 on two ports, two aliases).

The router runs in-process (aiohttp) with an injected ``backends()``; the client is httpx, so
every byte goes over real HTTP. The supervisor-fed provider and ``llmdeck serve`` itself are
covered in test_router_serve.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time

import httpx
import pytest

from conftest import RunningServer, free_port
from tui.router.app import make_app, serve
from tui.router.backends import Backend

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def two_servers(module_llama_server):
    return tuple(module_llama_server(ctx=4096, parallel=8, threads=1, alias=alias)
                 for alias in ("smol-a", "smol-b"))


def _backends(a: RunningServer, b: RunningServer, **extra: Backend) -> list[Backend]:
    out = [Backend(name="left", state="ready", url=a.base_url, aliases=("smol-a",), served_name="smol-a",
                   engine="llama-server", port=a.port, since=time.time() - 5),
           Backend(name="right", state="ready", url=b.base_url, aliases=("smol-b",), served_name="smol-b",
                   engine="llama-server", port=b.port, since=time.time() - 5),
           Backend(name="off", state="stopped", engine="llama-server")]
    return out + list(extra.values())


class Router:
    def __init__(self, backends, api_key=None):
        self.backends = backends
        self.api_key = api_key
        self.stop = asyncio.Event()
        self.url = ""

    async def __aenter__(self):
        got = asyncio.get_running_loop().create_future()
        app = make_app(lambda: self.backends, api_key=self.api_key, ttl=0.2)
        self.task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=got.set_result, stop=self.stop))
        addrs = await asyncio.wait_for(got, 10)
        self.url = f"http://127.0.0.1:{addrs[0][1]}"
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


def _chat(model: str, content: str = "Say hi.", n: int = 8, stream: bool = False, **kw) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": n,
            "stream": stream, "temperature": 0, **kw}


def _predicted(srv: RunningServer) -> float:
    text = httpx.get(srv.base + "/metrics", timeout=5).text
    m = re.search(r"^llamacpp:tokens_predicted_total\s+(\S+)", text, re.M)
    return float(m.group(1)) if m else 0.0


def _events(raw: bytes) -> list[str]:
    return [e[len("data: "):] for e in raw.decode().split("\n\n") if e.startswith("data: ")]


async def test_models_list_running_only(two_servers):
    a, b = two_servers
    async with Router(_backends(a, b, coming=Backend(name="coming", state="loading", url=a.base_url))) as r:
        async with httpx.AsyncClient(base_url=r.url) as c:
            data = (await c.get("/v1/models")).json()
            assert data["object"] == "list"
            ids = {m["id"]: m for m in data["data"]}
            assert set(ids) == {"left", "right", "coming"}  # "off" is stopped: not listed
            assert ids["left"]["aliases"] == ["smol-a"] and ids["left"]["state"] == "ready"
            assert ids["coming"]["state"] == "loading"
            one = (await c.get("/v1/models/smol-b")).json()
            assert one["id"] == "right"
            assert (await c.get("/v1/models/off")).status_code == 404
            seed = (await c.get("/api/models")).json()["models"]
            assert {m["name"]: m["port"] for m in seed}["left"] == a.port
            assert all(m["uptime_s"] >= 5 for m in seed if m["state"] == "ready")


async def test_routing_by_name_and_alias(two_servers):
    a, b = two_servers
    async with Router(_backends(a, b)) as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        for model, hit, miss in (("left", a, b), ("smol-b", b, a), ("right", b, a)):
            before_hit, before_miss = _predicted(hit), _predicted(miss)
            resp = await c.post("/v1/chat/completions", json=_chat(model, n=4))
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["choices"][0]["message"]["content"]
            n = body["usage"]["completion_tokens"]
            assert _predicted(hit) - before_hit == n and _predicted(miss) == before_miss
        # /v1/completions goes the same way
        before = _predicted(a)
        resp = await c.post("/v1/completions", json={"model": "left", "prompt": "Once upon", "max_tokens": 3})
        assert resp.status_code == 200 and _predicted(a) - before == resp.json()["usage"]["completion_tokens"]


async def test_embeddings_are_routed_and_answered_by_the_server(two_servers):
    a, b = two_servers
    req = {"model": "smol-a", "input": "hello"}
    direct = httpx.post(a.base_url + "/embeddings", json=req, timeout=30)
    async with Router(_backends(a, b)) as r, httpx.AsyncClient(base_url=r.url, timeout=30) as c:
        via = await c.post("/v1/embeddings", json=req)
    assert via.status_code == direct.status_code
    if direct.status_code == 200:
        assert via.json()["data"][0]["embedding"] == direct.json()["data"][0]["embedding"]
    else:  # this build serves embeddings only with --embeddings: the server's own error comes through
        assert via.json() == direct.json()


async def test_stream_passes_through_as_it_arrives(two_servers):
    a, b = two_servers
    async with Router(_backends(a, b)) as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        t0 = time.monotonic()
        arrivals: list[float] = []
        raw = b""
        async with c.stream("POST", "/v1/chat/completions",
                            json=_chat("left", "Count from one to forty in words.", n=48, stream=True,
                                       stream_options={"include_usage": True})) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for piece in resp.aiter_raw():
                arrivals.append(time.monotonic() - t0)
                raw += piece
    events = _events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {ch["id"] for ch in chunks} and len({ch["id"] for ch in chunks}) == 1
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
    usage = [ch["usage"] for ch in chunks if ch.get("usage")]
    assert text and usage and usage[-1]["completion_tokens"] > 10
    # many separate arrivals, spread over the generation: nothing was held back until the end
    assert len(arrivals) >= 10
    assert arrivals[0] < 0.6 * arrivals[-1]


async def test_32_concurrent_streams(two_servers):
    a, b = two_servers
    async with Router(_backends(a, b)) as r, httpx.AsyncClient(
            base_url=r.url, timeout=90, limits=httpx.Limits(max_connections=64)) as c:
        async def one(i: int) -> tuple[str, int, str]:
            model = ("left", "smol-b")[i % 2]
            raw = b""
            async with c.stream("POST", "/v1/chat/completions",
                                json=_chat(model, f"Name a colour. ({i})", n=6, stream=True)) as resp:
                async for piece in resp.aiter_raw():
                    raw += piece
            ev = _events(raw)
            chunks = [json.loads(e) for e in ev if e != "[DONE]"]
            text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
            return ev[-1], resp.status_code, chunks[0]["model"] if chunks else "", text

        before = _predicted(a), _predicted(b)
        results = await asyncio.gather(*(one(i) for i in range(32)))
    assert all(status == 200 and last == "[DONE]" for last, status, _, _ in results), results
    assert all(text for *_, text in results), "a stream carried no content"
    assert {m for _, _, m, _ in results} == {"smol-a", "smol-b"}
    assert _predicted(a) > before[0] and _predicted(b) > before[1]  # both servers did work


async def test_unknown_stopped_loading_and_bad_requests(two_servers):
    a, b = two_servers
    extra = {"coming": Backend(name="coming", state="loading", url=a.base_url, detail="stage load_tensors"),
             "sick": Backend(name="sick", state="unhealthy", url=a.base_url)}
    async with Router(_backends(a, b, **extra)) as r, httpx.AsyncClient(base_url=r.url, timeout=30) as c:
        resp = await c.post("/v1/chat/completions", json=_chat("gpt-4"))
        assert resp.status_code == 404
        err = resp.json()["error"]
        assert err["code"] == "model_not_found" and "'gpt-4'" in err["message"] and "left" in err["message"]
        resp = await c.post("/v1/chat/completions", json=_chat("off"))
        assert resp.status_code == 404 and "llmdeck start off" in resp.json()["error"]["message"]
        resp = await c.post("/v1/chat/completions", json=_chat("coming", stream=True))
        assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
        assert "loading" in resp.json()["error"]["message"]
        assert (await c.post("/v1/completions", json={"model": "sick", "prompt": "x"})).status_code == 503
        resp = await c.post("/v1/chat/completions", json={"messages": []})
        assert resp.status_code == 400 and "no 'model'" in resp.json()["error"]["message"]
        resp = await c.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
        assert resp.status_code == 400 and "not JSON" in resp.json()["error"]["message"]
        resp = await c.get("/v1/chat/completions")
        assert resp.status_code == 405
        resp = await c.get("/nothing/here")
        assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found_error"
        # the server's own errors pass through untouched (llama-server: prompt over the context)
        resp = await c.post("/v1/chat/completions", json=_chat("left", "word " * 3000))
        assert resp.status_code == 400 and resp.json()["error"]["type"] == "exceed_context_size_error"


async def test_seed_api_passthrough(two_servers):
    a, b = two_servers
    async with Router(_backends(a, b)) as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        assert (await c.get("/api/right/health")).json() == {"status": "ok"}
        props = (await c.get("/api/smol-a/props")).json()
        assert props["model_alias"] == "smol-a"
        assert (await c.get("/api/right/v1/models")).json()["data"][0]["id"] == "smol-b"
        resp = await c.post("/api/left/v1/chat/completions", json=_chat("whatever", n=3))
        assert resp.status_code == 200 and resp.json()["model"] == "smol-a"
        assert "llamacpp:" in (await c.get("/api/left/metrics", params={"x": "1"})).text
        assert (await c.get("/api/gpt-4/health")).status_code == 404


async def test_backend_killed_mid_stream_gives_a_clean_error(two_servers, llama_server):
    a, b = two_servers
    doomed = llama_server(parallel=1, alias="doomed")
    backends = _backends(a, b, doomed=Backend(name="doomed", state="ready", url=doomed.base_url,
                                              served_name="doomed"))
    async with Router(backends) as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        raw = b""
        killed = False
        async with c.stream("POST", "/v1/chat/completions",
                            json=_chat("doomed", "Write a long story about the sea.", n=1500, stream=True,
                                       ignore_eos=True)) as resp:
            assert resp.status_code == 200
            async for piece in resp.aiter_raw():  # ends normally: no exception on the client side
                raw += piece
                if not killed and raw.count(b"\n\n") >= 3:
                    doomed.proc.send_signal(signal.SIGKILL)
                    killed = True
        assert killed
        events = _events(raw)
        assert events[-1] != "[DONE]"
        err = json.loads(events[-1])["error"]
        assert err["type"] == "server_error" and "'doomed'" in err["message"] and "mid-answer" in err["message"]
        assert all("choices" in json.loads(e) for e in events[:-1])  # everything before it was the server's
        # the next request to the dead backend is a 502 naming it; the others still work
        resp = await c.post("/v1/chat/completions", json=_chat("doomed"))
        assert resp.status_code == 502 and "doomed" in resp.json()["error"]["message"]
        assert (await c.post("/v1/chat/completions", json=_chat("left", n=2))).status_code == 200


async def test_api_key_on_router_and_backend(two_servers, llama_server):
    a, b = two_servers
    locked = llama_server("--api-key", "backend-secret", alias="locked")
    backends = _backends(a, b, locked=Backend(name="locked", state="ready", url=locked.base_url,
                                              served_name="locked", api_key="backend-secret"))
    async with Router(backends, api_key="router-secret") as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        assert (await c.get("/health")).status_code == 200  # the router's own health needs no key
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer backend-secret"}):
            resp = await c.get("/v1/models", headers=headers)
            assert resp.status_code == 401 and resp.json()["error"]["type"] == "authentication_error"
        assert (await c.post("/v1/chat/completions", json=_chat("left"))).status_code == 401
        ok = {"Authorization": "Bearer router-secret"}
        assert (await c.get("/v1/models", headers=ok)).status_code == 200
        assert (await c.get("/api/models", headers={"X-Api-Key": "router-secret"})).status_code == 200
        # the router sends the backend its own key, never the client's
        resp = await c.post("/v1/chat/completions", json=_chat("locked", n=2), headers=ok)
        assert resp.status_code == 200, resp.text
        resp = await c.post("/api/left/v1/chat/completions", json=_chat("x", n=2), headers=ok)
        assert resp.status_code == 200
    assert httpx.post(locked.base_url + "/chat/completions", json=_chat("locked"),
                      headers={"Authorization": "Bearer router-secret"}).status_code == 401


async def test_unreachable_backend_is_502(two_servers):
    a, b = two_servers
    dead = f"http://127.0.0.1:{free_port()}/v1"
    async with Router(_backends(a, b, gone=Backend(name="gone", state="ready", url=dead))) as r:
        async with httpx.AsyncClient(base_url=r.url, timeout=30) as c:
            resp = await c.post("/v1/chat/completions", json=_chat("gone", stream=True))
    assert resp.status_code == 502
    err = resp.json()["error"]
    assert err["code"] == 502 and "'gone'" in err["message"] and dead in err["message"]
