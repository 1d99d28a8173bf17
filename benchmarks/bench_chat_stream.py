#!/usr/bin/env python3
"""How fast llmdeck's chat client consumes a stream, against the official SDK and a bare loop.

A 100,000-token llama.cpp-shaped stream (one token per ``data:`` event, the ids, keys and
envelope llama-server writes; the text carries raw ``<think>…</think>`` tags split over tokens,
``<`` characters that are not tags, and a raw GLM tool call at the end, so llmdeck's raw-tag
parser works on every token) is served as fast as the socket takes it by a separate process on
127.0.0.1, and consumed in the same run by:

* **llmdeck**: ``ChatClient.stream`` — SSE framing, JSON, delta assembly, raw-tag parsing,
  typed events — with the events joined per kind;
* **openai SDK**: ``OpenAI().chat.completions.create(stream=True)``, joining ``delta.content``;
* **bare loop**: ``httpx`` ``iter_lines`` + ``json.loads``, joining ``delta.content``.

Targets (issue 3): llmdeck ≥ 10× the SDK and within 2× of the bare loop. Each consumer runs
a few times, interleaved, and its best run counts. Run:
``.venv/bin/python benchmarks/bench_chat_stream.py [--tokens N] [--runs N]``. The SDK is a
benchmark-only dependency (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = [" the", " model", " is", " thinking", " about", " a", " <", " b", " and", " 東京", " weather", ",",
         " so", " it", " answers", "."]


def build_stream(n_tokens: int) -> tuple[bytes, str, str]:
    """The body, and the reasoning and answer texts llmdeck must get out of it."""
    envelope_head = '{"choices":[{"finish_reason":null,"index":0,"delta":{"content":'
    envelope_tail = ('}}],"created":1795645482,"id":"chatcmpl-So6AOGI5rGt1ij1tW0Mw4vMbwn0RM13M",'
                     '"model":"glm-4.7","system_fingerprint":"b11434-1a2b3c4d","object":"chat.completion.chunk"}')
    think_tokens = n_tokens * 3 // 10
    tool = ["<tool", "_call", ">get", "_weather", "<arg", "_key", ">city", "</arg", "_key", ">", "<arg", "_value",
            ">Tok", "yo", "</arg", "_value", ">", "</tool", "_call", ">"]
    tokens = ["<", "think", ">"]
    tokens += [WORDS[i % len(WORDS)] for i in range(think_tokens - 3)]
    tokens += ["</", "think", ">"]
    rest = n_tokens - len(tokens) - len(tool)
    tokens += [WORDS[(i * 7) % len(WORDS)] for i in range(rest)]
    tokens += tool
    assert len(tokens) == n_tokens
    parts = [b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],'
             b'"created":1795645482,"id":"chatcmpl-So6AOGI5rGt1ij1tW0Mw4vMbwn0RM13M","model":"glm-4.7",'
             b'"system_fingerprint":"b11434-1a2b3c4d","object":"chat.completion.chunk"}\n\n']
    for t in tokens:
        parts.append(("data: " + envelope_head + json.dumps(t, ensure_ascii=False) + envelope_tail + "\n\n").encode())
    parts.append(b'data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1795645482,'
                 b'"id":"chatcmpl-So6AOGI5rGt1ij1tW0Mw4vMbwn0RM13M","model":"glm-4.7","object":"chat.completion.chunk"}'
                 b'\n\n')
    parts.append(('data: {"choices":[],"created":1795645482,"id":"chatcmpl-So6AOGI5rGt1ij1tW0Mw4vMbwn0RM13M",'
                  '"model":"glm-4.7","object":"chat.completion.chunk","usage":{"completion_tokens":%d,'
                  '"prompt_tokens":12,"total_tokens":%d}}\n\n' % (n_tokens, n_tokens + 12)).encode())
    parts.append(b"data: [DONE]\n\n")
    think_text = "".join(tokens[3:think_tokens]).strip()
    answer = "".join(tokens[think_tokens + 3:n_tokens - len(tool)]).lstrip()
    return b"".join(parts), think_text, answer


MESSAGES = [{"role": "user", "content": "Go"}]


async def consume_llmdeck(base_url: str) -> tuple[str, str, int]:
    from tui.core.chat.client import ChatClient

    reasoning: list[str] = []
    content: list[str] = []
    calls = 0
    async with ChatClient(base_url, model="bench") as client:
        async for ev in client.stream(MESSAGES):
            t = ev.type
            if t == "content":
                content.append(ev.text)
            elif t == "reasoning":
                reasoning.append(ev.text)
            elif t == "tool_call":
                calls += ev.ok
            elif t == "error":
                raise SystemExit(f"llmdeck client error: {ev.message}")
    return "".join(reasoning), "".join(content), calls


def consume_sdk(base_url: str) -> str:
    from openai import OpenAI

    out: list[str] = []
    with OpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        for chunk in client.chat.completions.create(model="bench", messages=MESSAGES, stream=True):
            if chunk.choices:
                c = chunk.choices[0].delta.content
                if c:
                    out.append(c)
    return "".join(out)


def consume_bare(base_url: str) -> str:
    import httpx

    out: list[str] = []
    with httpx.Client(timeout=60) as client, client.stream(
            "POST", base_url + "/chat/completions", json={"model": "bench", "messages": MESSAGES, "stream": True}) as r:
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[6:]
            if payload == "[DONE]":
                break
            obj = json.loads(payload)
            choices = obj.get("choices")
            if choices:
                c = choices[0]["delta"].get("content")
                if c:
                    out.append(c)
    return "".join(out)


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3, help="runs of llmdeck and the bare loop (the SDK runs once)")
    a = ap.parse_args()
    try:
        import openai  # noqa: F401
    except ImportError:
        print("the openai SDK is missing: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    body, think, answer = build_stream(a.tokens)
    with tempfile.NamedTemporaryFile(suffix=".sse", delete=False) as fh:
        fh.write(body)
        path = fh.name
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "streamserver.py"), "--file", path],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        base_url = f"http://127.0.0.1:{port}/v1"
        print(f"stream: {a.tokens:,} tokens, {len(body) / 1e6:.1f} MB, llama.cpp chunk shape, served from "
              f"127.0.0.1:{port} by a separate process; {os.cpu_count()} CPU(s)")
        best = {"llmdeck": float("inf"), "bare": float("inf")}
        for _ in range(a.runs):
            dt, text = timed(consume_bare, base_url)
            assert text.count("<think>") == 1 and len(text) > a.tokens, "bare loop read the wrong stream"
            best["bare"] = min(best["bare"], dt)
            dt, (r_text, c_text, calls) = timed(lambda: asyncio.run(consume_llmdeck(base_url)))
            assert r_text == think and c_text == answer and calls == 1, "llmdeck got different text"
            best["llmdeck"] = min(best["llmdeck"], dt)
        dt, text = timed(consume_sdk, base_url)
        assert text.count("<think>") == 1, "SDK read the wrong stream"
        best["sdk"] = dt
    finally:
        server.kill()
        server.wait(10)
        os.unlink(path)

    rate = {k: a.tokens / v for k, v in best.items()}
    print(f"{'consumer':<12}{'seconds':>10}{'tokens/s':>14}")
    for k, label in (("llmdeck", "llmdeck"), ("sdk", "openai SDK"), ("bare", "bare loop")):
        print(f"{label:<12}{best[k]:>10.3f}{rate[k]:>14,.0f}")
    vs_sdk = rate["llmdeck"] / rate["sdk"]
    vs_bare = best["llmdeck"] / best["bare"]
    ok_sdk, ok_bare = vs_sdk >= 10, vs_bare <= 2
    print(f"llmdeck / SDK throughput: {vs_sdk:.1f}x (target >= 10x) {'OK' if ok_sdk else 'MISSED'}")
    print(f"llmdeck time / bare-loop time: {vs_bare:.2f}x (target <= 2x) {'OK' if ok_bare else 'MISSED'}")
    return 0 if ok_sdk and ok_bare else 1


if __name__ == "__main__":
    sys.exit(main())
