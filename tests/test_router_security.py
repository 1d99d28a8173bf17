"""Who can use a model through the router, and what a hostile request gets (issue 13).

* A router without a key never lends a model's own key (real llama-server with ``--api-key``),
  never passes a server's CORS headers on, and answers only requests addressed to this machine
  (Host check) from pages on this machine (Origin check).
* Bad requests are 4xx, never 500: nested JSON, non-UTF-8 headers, bodies over the limit
  (checked before buffering); a large body is read and inspected without stalling the loop.

The router runs in-process (aiohttp) or as ``llmdeck serve``; clients are httpx or raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_http_ok
from tui.router.app import host_allowed, make_app, serve
from tui.router.backends import Backend

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]


class Router:
    def __init__(self, backends, **kw):
        self.backends, self.kw = backends, kw
        self.stop = asyncio.Event()

    async def __aenter__(self):
        got = asyncio.get_running_loop().create_future()
        app = make_app(lambda: self.backends, ttl=0.2, **self.kw)
        self.task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=got.set_result, stop=self.stop))
        self.port = (await asyncio.wait_for(got, 10))[0][1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


def _chat(model: str, n: int = 2) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": n, "temperature": 0}


async def _raw(port: int, head: bytes, body: bytes = b"", read_timeout: float = 10) -> tuple[int, bytes]:
    """Send bytes as they are (headers aiohttp would not let a client build); the status and body back."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(head + body)
    await w.drain()
    data = await asyncio.wait_for(r.read(), read_timeout) if b"Connection: close" in head else b""
    if not data:
        data = await asyncio.wait_for(r.read(65536), read_timeout)
    w.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


# --- keys ------------------------------------------------------------------------------------

async def test_keyless_router_does_not_lend_a_models_key(llama_server):
    locked = llama_server("--api-key", "backend-secret", alias="locked")
    plain = llama_server(alias="plain")
    assert httpx.post(locked.base_url + "/chat/completions", json=_chat("locked")).status_code == 401
    backends = [Backend(name="locked", state="ready", url=locked.base_url, served_name="locked",
                        api_key="backend-secret"),
                Backend(name="plain", state="ready", url=plain.base_url, served_name="plain")]
    async with Router(backends) as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        for path, body in (("/v1/chat/completions", _chat("locked")),
                           ("/api/locked/v1/chat/completions", _chat("x")),
                           ("/api/locked/props", None)):
            resp = await (c.post(path, json=body) if body else c.get(path))
            assert resp.status_code == 401, (path, resp.text)
            err = resp.json()["error"]
            assert "'locked'" in err["message"] and "llmdeck serve --api-key-env NAME" in err["message"]
        resp = await c.post("/v1/chat/completions", json=_chat("plain"))  # a model without a key still works
        assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]
    # with a key on the router, its clients get the model (the router sends the model's key)
    async with Router(backends, api_key="router-secret") as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        resp = await c.post("/v1/chat/completions", json=_chat("locked"),
                            headers={"Authorization": "Bearer router-secret"})
        assert resp.status_code == 200, resp.text


def test_serve_refuses_to_start_keyless_when_every_model_is_keyed(tmp_path):
    reg = tmp_path / "models.json"
    reg.write_text(json.dumps({"models": {
        "a": {"engine": "external", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "A_KEY"},
        "b": {"engine": "external", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "B_KEY"}}}))
    r = subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(reg), "serve", "--port",
                        str(free_port())], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmdeck: error: ")
    assert "own API key" in lines[0] and "llmdeck serve --api-key-env NAME" in lines[0]

    # some keyed: it starts, says once which ones it will refuse, and refuses them
    reg.write_text(json.dumps({"models": {
        "a": {"engine": "external", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "A_KEY"},
        "open": {"engine": "external", "base_url": "http://127.0.0.1:9/v1"}}}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli.main", "--registry", str(reg), "serve", "--port",
                             str(port)], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, A_KEY="model-secret"))
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 30, proc)
        resp = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=_chat("a"), timeout=30)
        assert resp.status_code == 401 and "--api-key-env" in resp.json()["error"]["message"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    warnings = [ln for ln in err.splitlines() if ln.startswith("llmdeck: warning:")]
    assert len(warnings) == 1 and "model a has an API key of its own" in warnings[0] and "401" in warnings[0]
    assert "Traceback" not in err


# --- CORS, Host and Origin --------------------------------------------------------------------

async def test_cors_headers_of_a_server_are_never_passed_on(llama_server):
    srv = llama_server(alias="smol")
    direct = httpx.get(srv.base_url + "/models", headers={"Origin": "http://localhost:5173"})
    assert direct.headers.get("access-control-allow-origin")  # the server itself does send them
    backends = [Backend(name="smol", state="ready", url=srv.base_url, served_name="smol")]

    async with Router(backends) as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        local = {"Origin": "http://localhost:5173"}
        for resp in (await c.get("/api/smol/v1/models", headers=local),
                     await c.post("/v1/chat/completions", json=_chat("smol"), headers=local)):
            assert resp.status_code == 200, resp.text
            assert not [h for h in resp.headers if h.lower().startswith("access-control-")], resp.headers
        # no key: a pre-flight is refused, whatever the path (none is forwarded to the server)
        for path in ("/v1/chat/completions", "/api/smol/v1/chat/completions"):
            pre = await c.options(path, headers={**local, "Access-Control-Request-Method": "POST"})
            assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
            assert "--api-key-env" in pre.json()["error"]["message"]

    async with Router(backends, api_key="k") as r, httpx.AsyncClient(base_url=r.url, timeout=60) as c:
        site = {"Origin": "https://app.example"}
        pre = await c.options("/v1/chat/completions", headers={
            **site, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in pre.headers
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        assert "POST" in pre.headers["access-control-allow-methods"]
        for resp in (await c.post("/v1/chat/completions", json=_chat("smol"),
                                  headers={**site, "Authorization": "Bearer k"}),
                     await c.get("/api/smol/v1/models", headers={**site, "Authorization": "Bearer k"}),
                     await c.get("/v1/models", headers=site)):  # 401, still readable by the page
            assert resp.headers["access-control-allow-origin"] == "*", resp.headers
            assert "access-control-allow-credentials" not in resp.headers
        assert resp.status_code == 401


def test_host_allowed():
    for host in ("127.0.0.1:8888", "localhost:8888", "[::1]:8888", "localhost:40123", "127.0.0.1",
                 "LOCALHOST:1", "192.168.1.7:8888", "[fe80::1]:8888", "localhost.:8888"):
        assert host_allowed(host, "127.0.0.1"), host
    assert host_allowed("gpu-box.lan:8888", "gpu-box.lan")
    for host in ("evil.example:8888", "evil.example", "localhost.evil.example:8888", "127.0.0.1.nip.io:8888",
                 "gpu-box.lan:8888", "", "[::1", "\udcff"):
        assert not host_allowed(host, "127.0.0.1"), host


async def test_host_and_origin_checks_without_a_key():
    backends = [Backend(name="m", state="ready", url="http://127.0.0.1:9/v1")]
    async with Router(backends) as r, httpx.AsyncClient(base_url=r.url, timeout=30) as c:
        for host in ("localhost:8888", f"127.0.0.1:{r.port}", "[::1]:1234", "10.0.0.5:8888"):
            assert (await c.get("/v1/models", headers={"Host": host})).status_code == 200, host
        for path in ("/v1/models", "/health", "/api/m/props"):
            resp = await c.get(path, headers={"Host": "rebind.evil.example:8888"})
            assert resp.status_code == 421, path
            msg = resp.json()["error"]["message"]
            assert "'rebind.evil.example'" in msg and "--api-key-env" in msg
        for origin in ("https://evil.example", "null", "http://203.0.113.5"):
            resp = await c.post("/v1/chat/completions", content=json.dumps(_chat("m")),
                                headers={"Origin": origin, "Content-Type": "text/plain"})
            assert resp.status_code == 403, origin
            assert "cross-origin" in resp.json()["error"]["message"]
        resp = await c.get("/v1/models", headers={"Origin": "http://127.0.0.1:3000"})
        assert resp.status_code == 200
    # with a key, any name may be used (the key is the guard)
    async with Router(backends, api_key="k") as r, httpx.AsyncClient(base_url=r.url, timeout=30) as c:
        resp = await c.get("/v1/models", headers={"Host": "gpu.example.org", "Origin": "https://evil.example",
                                                  "Authorization": "Bearer k"})
        assert resp.status_code == 200


# --- bad requests: 4xx, never 500 ------------------------------------------------------------

async def test_nested_json_and_bad_headers_are_4xx():
    backends = [Backend(name="m", state="ready", url="http://127.0.0.1:9/v1")]
    async with Router(backends) as r, httpx.AsyncClient(base_url=r.url, timeout=30) as c:
        for body in (b"[" * 100_000, b'{"model": "m", "x": ' + b"[" * 100_000,
                     b'{"model": "m", "pad": "' + b"x" * 400_000 + b'", "x": ' + b"[" * 100_000 + b"]" * 100_000
                     + b"}"):
            resp = await c.post("/v1/chat/completions", content=body)
            assert resp.status_code == 400, (len(body), resp.text[:200])
            assert resp.json()["error"]["type"] == "invalid_request_error"
        resp = await c.post("/api/m/completion", content=b'{"model": "m", "x": ' + b"[" * 100_000,
                            headers={"Content-Type": "application/json"})
        assert resp.status_code == 400
        status, _ = await _raw(r.port, b"GET /v1/models HTTP/1.1\r\nHost: \xff\xfe:1\r\nConnection: close\r\n\r\n")
        assert status == 421
    async with Router(backends, api_key="k") as r:
        for header in (b"Authorization: Bearer \xff\xfe\xc3", b"X-Api-Key: \xff\xfe", b"Authorization: \xe9t\xe9"):
            status, body = await _raw(r.port, b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n" + header
                                      + b"\r\nConnection: close\r\n\r\n")
            assert status == 401, (header, body)
            assert json.loads(body)["error"]["type"] == "authentication_error"


async def test_requests_the_http_parser_rejects_are_one_line_on_stderr(capfd):
    backends = [Backend(name="m", state="ready", url="http://127.0.0.1:9/v1")]
    async with Router(backends) as r:
        for line in (b"GET /v1/models/\xff HTTP/1.1", b"GET /v1/models?x=\xff HTTP/1.1", b"NOT HTTP AT ALL"):
            status, _ = await _raw(r.port, line + b"\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert status == 400, line
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err.strip(), "nothing said about the bad requests"
    assert all(ln.startswith("llmdeck serve: ") for ln in err.strip().splitlines()), err
    assert "Invalid char in url path" in err and "Invalid char in url query" in err


async def test_body_limit_is_checked_before_buffering():
    backends = [Backend(name="m", state="ready", url="http://127.0.0.1:9/v1")]
    async with Router(backends, max_body=1 << 20) as r, httpx.AsyncClient(base_url=r.url, timeout=30) as c:
        # Content-Length over the limit: answered before one byte of the body is sent
        t0 = time.monotonic()
        status, body = await _raw(r.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                                  b"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n", b"{")
        assert status == 413 and time.monotonic() - t0 < 5
        assert "1 MB" in json.loads(body)["error"]["message"] and "--max-body-mb" in json.loads(body)["error"]["message"]

        # a chunked body: stopped while reading
        async def chunks():
            for _ in range(40):
                yield b'{"model": "m", "pad": "' + b"x" * 60_000 + b'"}'
        resp = await c.post("/v1/chat/completions", content=chunks())
        assert resp.status_code == 413
        # under the limit: read and judged (here: no such model)
        resp = await c.post("/v1/chat/completions", json={"model": "nobody", "pad": "x" * 900_000})
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found"
    async with Router(backends) as r:  # the default: 32 MB
        status, body = await _raw(r.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                                  b"Content-Length: 33554433\r\n\r\n")
        assert status == 413 and "32 MB" in json.loads(body)["error"]["message"]


def _rss_peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_bodies_neither_stall_the_router_nor_balloon_its_memory(tmp_path):
    """28 MB bodies of numbers (json.loads: about a second each here, holding the GIL): one alone,
    then three at once. /health keeps answering, and the peak memory stays a small multiple of
    the bodies (it was 1.16 GB for one 200 MB body)."""
    reg = tmp_path / "models.json"
    reg.write_text(json.dumps({"models": {}}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli.main", "--registry", str(reg), "serve", "--port",
                             str(port), "--max-body-mb", "30"], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"model": "nobody", "input": [[i % 1000 + 1000 for i in range(1000)]
                                                    for _ in range(4800)]}).encode()
    assert 26 << 20 < len(body) < 30 << 20

    def under_load(n: int) -> tuple[float, list[httpx.Response]]:
        """n uploads at once; the slowest /health answer meanwhile (polled from another process,
        so that the uploading threads here do not count)."""
        poller = subprocess.Popen([sys.executable, "-c", POLLER, base], stdout=subprocess.PIPE, text=True)
        assert poller.stdout.readline().strip() == "polling"
        results: list[httpx.Response] = []
        senders = [threading.Thread(target=lambda: results.append(
            httpx.post(base + "/v1/embeddings", content=body, timeout=60))) for _ in range(n)]
        for s in senders:
            s.start()
        for s in senders:
            s.join(90)
        poller.terminate()
        return float(poller.communicate(timeout=10)[0].split()[-1] or "nan"), results

    try:
        wait_http_ok(base + "/health", 30, proc)
        rss0 = _rss_peak_kb(proc.pid)
        alone, results = under_load(1)
        together, results3 = under_load(3)
        assert [x.status_code for x in results + results3] == [404] * 4
        assert "'nobody'" in results[0].json()["error"]["message"]
        grew_mb = (_rss_peak_kb(proc.pid) - rss0) / 1024
        assert alone < 0.5, f"/health stalled {alone:.2f} s during one upload"
        assert together < 1.0, f"/health stalled {together:.2f} s during three uploads"
        assert grew_mb < 300, f"peak memory grew {grew_mb:.0f} MB for 3 x {len(body) >> 20} MB"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


POLLER = """
import signal, sys, time, httpx
worst = 0.0
signal.signal(signal.SIGTERM, lambda *a: (print(worst, flush=True), sys.exit(0)))
with httpx.Client(base_url=sys.argv[1], timeout=30) as c:
    c.get("/health")
    print("polling", flush=True)
    while True:
        t = time.monotonic()
        c.get("/health")
        worst = max(worst, time.monotonic() - t)
        time.sleep(0.01)
"""


def test_serve_max_body_flag(tmp_path):
    reg = tmp_path / "models.json"
    reg.write_text(json.dumps({"models": {}}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli.main", "--registry", str(reg), "serve", "--port",
                             str(port), "--max-body-mb", "1"], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 30, proc)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "x", "pad": "y" * (2 << 20)})
        assert r.status_code == 413 and "--max-body-mb" in r.json()["error"]["message"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(reg), "serve",
                          "--max-body-mb", "0"], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "llmdeck: error: --max-body-mb 0 is not a size: give megabytes above 0"]


def test_the_large_body_scan_agrees_with_json_loads(monkeypatch):
    """The scan that finds ``model`` in a large body (tui/router/body.py) against ``json.loads``,
    on random JSON with decoys (``"model"`` in strings, nested ``model`` keys, escaped quotes
    and backslashes, brackets in strings), cut into pieces of every small size."""
    import random

    from tui.router import body as rbody

    rnd = random.Random(13)
    decoys = ["model", '"model"', "a\\", "x]y", "{[", '\\"model\\": \\"', "é", "\\\\", "", "}", 'mo"del',
              '\\\\\\"model', '"model": "z"']

    def value(d: int = 0):
        k = rnd.random()
        if d > 4 or k < 0.3:
            return rnd.choice([1, 2.5, None, True, rnd.choice(decoys)])
        if k < 0.6:
            return [value(d + 1) for _ in range(rnd.randint(0, 3))]
        return {rnd.choice(["model", "a", rnd.choice(decoys)]): value(d + 1) for _ in range(rnd.randint(0, 3))}

    for piece in (1, 2, 3, 5, 8, 64):
        monkeypatch.setattr(rbody, "PIECE", piece)
        for _ in range(400):
            obj = {rnd.choice(["model", "a", "messages", rnd.choice(decoys)]): value() for _ in range(rnd.randint(0, 5))}
            if rnd.random() < 0.5:
                obj["model"] = rnd.choice(["m", 'x"y', "é", "model", 7, None, ["model"], "a\\\\b"])
            raw = json.dumps(obj, ensure_ascii=rnd.random() < 0.5, indent=rnd.choice([None, 1])).encode()
            got = rbody.scan(raw)
            want = obj.get("model") if isinstance(obj.get("model"), str) else None
            assert got.model == want, (piece, raw)
            if got.span:
                spliced = rbody.retarget(got, raw, "served")
                assert json.loads(spliced) == {**obj, "model": "served"}
        with pytest.raises(rbody.TooDeep):
            rbody.scan(b'{"model": "m", "x": "\\\\\\"[[[", "y": ' + b"[" * 600 + b"]" * 600 + b"}")
        assert rbody.scan(b'{"model": "m", "x": "' + b"[" * 2000 + b'", "y": ' + b"[" * 500 + b"]" * 500
                          + b"}").model == "m"
