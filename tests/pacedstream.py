"""An OpenAI-compatible chat server that streams canned tokens at a fixed rate, run as its own
process (the TUI's chat tests and ``benchmarks/bench_tui.py`` (c)).

    python tests/pacedstream.py --tokens TOKENS.json --rate 2000 [--out TIMES.jsonl]

``TOKENS.json`` is a JSON list of strings, one per token. Every ``POST`` gets them as SSE
``delta.content`` events, ``rate`` per second (sent in 5 ms batches), then a finish event, a
usage event and ``[DONE]``. ``GET /health`` and ``GET /v1/models`` answer as llama-server does,
so an ``external`` model in models.json points at it. After each stream one JSON line
``{"first_sent", "last_sent", "tokens"}`` (``time.monotonic()`` of this machine) is appended to
``--out``. The port is printed on the first line of stdout; it binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


def sse(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def serve(tokens: list[str], rate: float, out: str | None, port: int = 0) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        length = 0
        for h in head.split(b"\r\n"):
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":")[1])
        if length:
            await reader.readexactly(length)
        if line.startswith("GET /health") or line.startswith("GET /v1/models"):
            body = b'{"status":"ok"}' if "health" in line else b'{"object":"list","data":[{"id":"paced"}]}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
            writer.close()
            return
        if not line.startswith("POST"):
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Connection: close\r\n\r\n")
        per = max(1, int(rate * 0.005))
        t0 = time.monotonic()
        i = 0
        try:
            while i < len(tokens):
                due = t0 + i / rate
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                batch = tokens[i:i + per]
                writer.write(b"".join(sse({"choices": [{"index": 0, "delta": {"content": t}}]}) for t in batch))
                await writer.drain()
                i += len(batch)
            last = time.monotonic()
            writer.write(sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            writer.write(sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(tokens),
                                                         "total_tokens": len(tokens) + 5}}))
            writer.write(b"data: [DONE]\n\n")
            await writer.drain()
        except ConnectionError:  # the client cancelled
            writer.close()
            return
        if out:
            with open(out, "a") as fh:
                fh.write(json.dumps({"last_sent": last, "first_sent": t0, "tokens": len(tokens)}) + "\n")
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", port)
    print(srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", required=True, help="a JSON file: the list of tokens to stream")
    ap.add_argument("--rate", type=float, default=200.0, help="tokens per second")
    ap.add_argument("--out", help="append one JSON line of send times per stream here")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    with open(a.tokens) as fh:
        tokens = json.load(fh)
    try:
        asyncio.run(serve(tokens, a.rate, a.out, a.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
