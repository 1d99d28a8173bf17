"""64 concurrent streams through the router vs straight to the backend, measured in the same run.

Targets (issue 7): throughput loss <= 5 %, time-to-first-token p50 added <= 5 ms.

Two backends, both printed:

1. **fake** (the headline): a local streaming server in its own process that answers
   ``/v1/chat/completions`` like llama-server (same chunk shape, ``[DONE]``), with a 20 ms
   "prefill" and one token every 10 ms per stream — 100 tokens/s per stream, 6,400 tokens/s
   over 64 streams, the order of seed 004's LightLLM figures on 4x H200. On this 2-core box a
   real llama-server is itself the bottleneck (it decodes far slower than the router relays),
   so it cannot show the router's own cost.
2. **llama-server**: the real SmolLM2 server (``--parallel 64``, one thread), 64 ``/v1/completions``
   streams of 8 tokens after a 4-token prompt.

Rounds alternate direct / router (ABBA order) and the medians are reported. The router and the backend
each run in their own process (as ``llmdeck serve`` would); the client is aiohttp in this one.
The router, backend and client use uvloop where installed (as ``llmdeck serve`` does).
Run: ``.venv/bin/python benchmarks/bench_router.py`` (about a minute; ``--skip-llama``: 25 s).

A request that fails (any non-200 answer, such as a 502 from the router, or a stream without
``[DONE]``) is printed and makes the run exit 1: the router must not fail requests a backend
would have served. The client itself retries a connection the server dropped before answering.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tui.router.app import run  # noqa: E402  (uvloop where installed, for all three parties)

STREAMS = 64
FAKE_TOKENS = 200
FAKE_TOKEN_S = 0.010
FAKE_PREFILL_S = 0.020
ROUNDS = 4
ARRIVAL_GAP_S = 0.008  # requests arrive 8 ms apart (all 64 streams overlap: each lasts ~2 s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the fake backend (its own process) -------------------------------------------------------

def run_fake_backend(port: int) -> None:
    """The llama-server-shaped backend. Also used by tests/test_router_faults.py: ``"stream": false``
    answers one ``chat.completion`` after the same prefill and per-token time, and ``GET /stats``
    counts requests, answers completed, and disconnects (a client that went away before the end:
    the handler is cancelled, as vLLM and SGLang stop generating)."""
    from aiohttp import web

    stats = {"requests": 0, "completed": 0, "disconnects": 0, "max_body": 0}

    def chunk(delta: dict, finish=None) -> bytes:
        return b"data: " + json.dumps({
            "choices": [{"finish_reason": finish, "index": 0, "delta": delta}], "created": 1767225600,
            "id": "chatcmpl-0123456789abcdef0123456789abcdef", "model": "fake", "system_fingerprint": "b1-fake",
            "object": "chat.completion.chunk"}, separators=(",", ":")).encode() + b"\n\n"

    first = chunk({"role": "assistant", "content": None})
    token = chunk({"content": " token"})
    last = chunk({}, "length") + b"data: [DONE]\n\n"

    async def generate(request: web.Request, body: dict, n: int) -> web.StreamResponse:
        if not body.get("stream", True):
            await asyncio.sleep(FAKE_PREFILL_S + n * FAKE_TOKEN_S)
            return web.json_response({
                "choices": [{"finish_reason": "length", "index": 0,
                             "message": {"role": "assistant", "content": " token" * n}}],
                "created": 1767225600, "id": "chatcmpl-0123456789abcdef0123456789abcdef",
                "model": body.get("model"), "object": "chat.completion",
                "usage": {"completion_tokens": n, "prompt_tokens": 1, "total_tokens": n + 1}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await asyncio.sleep(FAKE_PREFILL_S)
        await resp.write(first + token)
        t = time.monotonic()
        for i in range(1, n):
            t += FAKE_TOKEN_S
            await asyncio.sleep(max(0.0, t - time.monotonic()))
            await resp.write(token)
        await resp.write(last)
        await resp.write_eof()
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        stats["requests"] += 1
        raw = await request.read()
        stats["max_body"] = max(stats["max_body"], len(raw))
        body = json.loads(raw)
        try:
            resp = await generate(request, body, int(body.get("max_tokens", FAKE_TOKENS)))
        except (asyncio.CancelledError, ConnectionResetError):
            stats["disconnects"] += 1
            raise
        stats["completed"] += 1
        return resp

    async def health(request):
        return web.json_response({"status": "ok"})

    async def get_stats(request):
        return web.json_response(stats)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", get_stats)

    async def main():
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    run(main())


def run_router(port: int, backend_url: str) -> None:
    from tui.router.app import make_app, serve
    from tui.router.backends import Backend

    backends = [Backend(name="bench", state="ready", url=backend_url, served_name="bench", engine="llama-server")]
    stop = asyncio.Event()

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await serve(make_app(lambda: backends, ttl=3600), "127.0.0.1", port, stop=stop)

    run(main())


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def wait_ok(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise TimeoutError(url)


# --- the load ---------------------------------------------------------------------------------

async def one_round(base: str, n_tokens: int, extra: dict | None = None) -> dict:
    """64 streams; ``extra={"prompt": …}`` makes them /v1/completions (short prompt, cheap prefill)."""
    import aiohttp

    if extra and "prompt" in extra:
        path, marker = "/v1/completions", b'"text":"'
        body = {"model": "bench", "max_tokens": n_tokens, "stream": True, "temperature": 0, **extra}
    else:
        path, marker = "/v1/chat/completions", b'"content":"'
        body = {"model": "bench", "messages": [{"role": "user", "content": "Tell me about the sea."}],
                "max_tokens": n_tokens, "stream": True, "temperature": 0, **(extra or {})}
    conn = aiohttp.TCPConnector(limit=0)
    failures: list[str] = []
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=600)) as s:
        async def stream(i: int) -> tuple[float, int]:
            await asyncio.sleep(i * ARRIVAL_GAP_S)
            t0 = time.monotonic()
            ttft = None
            buf = bytearray()
            for attempt in range(3):  # llama-server may drop a connection it accepted under load
                try:
                    r = await s.post(base + path, json=body)
                    break
                except aiohttp.ClientOSError:
                    retries.append(base)
                    if attempt == 2:
                        raise
            async with r:
                if r.status != 200:  # a 502 from the router is a failed run, never a figure
                    failures.append(f"{base}: stream {i}: HTTP {r.status}: {(await r.text())[:200]}")
                    return float("nan"), 0
                async for piece in r.content.iter_any():
                    if ttft is None and marker in piece:
                        ttft = time.monotonic() - t0
                    buf += piece
            tokens = buf.count(marker)  # chunks carrying text (the role chunk has content null)
            if not buf.endswith(b"data: [DONE]\n\n"):
                failures.append(f"{base}: stream {i}: did not end with [DONE]")
            return ttft if ttft is not None else float("nan"), tokens

        retries: list[str] = []
        t0 = time.monotonic()
        res = await asyncio.gather(*(stream(i) for i in range(STREAMS)))
        wall = time.monotonic() - t0
    tokens = sum(n for _, n in res)
    ttfts = sorted(t for t, _ in res if t == t) or [float("nan")]
    if retries:
        print(f"  ({len(retries)} request(s) to {retries[0]} retried after a dropped connection)")
    for f in failures:
        print(f"  FAILED {f}")
    return {"tps": tokens / wall, "ttft_p50": statistics.median(ttfts), "ttft_p90": ttfts[int(0.9 * len(ttfts))],
            "tokens": tokens, "wall": wall, "failures": failures}


def failures(*groups: list[dict]) -> list[str]:
    """Every failed request of the rounds given (a non-200 answer, a stream cut short)."""
    return [f for rows in groups for row in rows for f in row["failures"]]


async def compare(direct: str, routed: str, n_tokens: int, rounds: int, extra: dict | None = None,
                  warm: bool = True):
    d, r = [], []
    if warm:  # warm both paths (connections, caches); their failures count, their figures do not
        d.append({**await one_round(direct, 2, extra), "warm": True})
        r.append({**await one_round(routed, 2, extra), "warm": True})
    for i in range(rounds):  # ABBA order: neither path always runs first
        first, second = ((direct, d), (routed, r)) if i % 2 == 0 else ((routed, r), (direct, d))
        first[1].append(await one_round(first[0], n_tokens, extra))
        second[1].append(await one_round(second[0], n_tokens, extra))
    return d, r


def report(title: str, d: list[dict], r: list[dict]) -> tuple[float, float]:
    failed = failures(d, r)
    d, r = [x for x in d if not x.get("warm")], [x for x in r if not x.get("warm")]
    med = lambda rows, k: statistics.median(x[k] for x in rows)  # noqa: E731
    dt, rt = med(d, "tps"), med(r, "tps")
    dp, rp = med(d, "ttft_p50") * 1000, med(r, "ttft_p50") * 1000
    loss = (dt - rt) / dt * 100
    added = rp - dp
    print(f"\n{title}: {STREAMS} concurrent streams, {len(d)} rounds each, medians")
    print(f"  {'':14}{'tokens/s':>10}{'TTFT p50 ms':>13}{'TTFT p90 ms':>13}{'tokens':>8}")
    print(f"  {'direct':14}{dt:10.0f}{dp:13.1f}{med(d, 'ttft_p90') * 1000:13.1f}{d[0]['tokens']:8d}")
    print(f"  {'via router':14}{rt:10.0f}{rp:13.1f}{med(r, 'ttft_p90') * 1000:13.1f}{r[0]['tokens']:8d}")
    print(f"  throughput loss {loss:+.1f} % (target <= 5 %)   TTFT p50 added {added:+.1f} ms (target <= 5 ms)")
    if failed:
        print(f"  FAILED: {len(failed)} request(s) did not complete (listed above); the figures do not count")
    return loss, added


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("fake", "router"))
    ap.add_argument("--port", type=int)
    ap.add_argument("--backend")
    ap.add_argument("--skip-llama", action="store_true", help="only the fake backend")
    a = ap.parse_args()
    if a.role == "fake":
        run_fake_backend(a.port)
        return 0
    if a.role == "router":
        run_router(a.port, a.backend)
        return 0

    procs: list[subprocess.Popen] = []
    try:
        fp, rp = free_port(), free_port()
        procs.append(spawn("--role", "fake", "--port", str(fp)))
        wait_ok(f"http://127.0.0.1:{fp}/health", procs[-1])
        procs.append(spawn("--role", "router", "--port", str(rp), "--backend", f"http://127.0.0.1:{fp}/v1"))
        wait_ok(f"http://127.0.0.1:{rp}/health", procs[-1])
        print(f"router benchmark on {os.cpu_count()} CPUs; fake backend: {FAKE_PREFILL_S * 1000:.0f} ms prefill, "
              f"{FAKE_TOKENS} tokens at {1 / FAKE_TOKEN_S:.0f} tokens/s per stream")
        d, r = run(compare(f"http://127.0.0.1:{fp}", f"http://127.0.0.1:{rp}", FAKE_TOKENS, ROUNDS))
        loss, added = report("fake streaming backend (headline)", d, r)
        failed = failures(d, r)
        verdict = loss <= 5 and added <= 5 and not failed
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
        procs.clear()

        if not a.skip_llama:
            from tui.core import provision

            binp, model = provision.cached_llama_server(), provision.demo_model()
            if not binp.exists():
                print("\nllama-server: not built yet (run 'llmdeck setup'); skipped")
            else:
                lp, rp = free_port(), free_port()
                procs.append(subprocess.Popen(
                    [str(binp), "-m", str(model), "--host", "127.0.0.1", "--port", str(lp), "-c", str(64 * 160),
                     "--parallel", "64", "--threads", "1", "--alias", "bench"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                    start_new_session=True))
                wait_ok(f"http://127.0.0.1:{lp}/health", procs[-1])
                procs.append(spawn("--role", "router", "--port", str(rp), "--backend", f"http://127.0.0.1:{lp}/v1"))
                wait_ok(f"http://127.0.0.1:{rp}/health", procs[-1])
                d, r = run(compare(f"http://127.0.0.1:{lp}", f"http://127.0.0.1:{rp}", 8, 2,
                                     {"prompt": "Once upon a time", "ignore_eos": True}))
                failed += failures(d, r)
                report("real llama-server, SmolLM2-135M on 1 CPU thread (the server is the bottleneck: its\n"
                       "TTFT is prefill batching, which varies run to run far more than the router adds)", d, r)
        print(f"\nheadline (fake backend): {'PASS' if verdict else 'MISS'}")
        if failed:
            print(f"FAILED: {len(failed)} request(s) failed (a 502 from the router is a bug, not noise)")
            return 1
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
