"""An OpenAI-compatible test server (its own process) that answers BFCL cases from their
possible answers, for ``llmdeck eval`` tests and ``benchmarks/bench_eval.py``.

Run: ``python tests/bfclserver.py`` prints ``PORT`` and serves on 127.0.0.1 until killed.
The request's ``model`` picks the answer (so one server covers every form)::

    openai   OpenAI ``tool_calls`` deltas, each call's arguments fragmented in 7-char pieces
    glm      GLM-4.5/4.7 XML left raw in ``content`` (``<tool_call>NAME<arg_key>…``)
    hermes   Qwen3 hermes JSON left raw in ``content`` (``<tool_call>{"name":…}</tool_call>``)
    rotate   openai / glm / hermes by the case's number modulo 3
    …-spoilK (e.g. ``rotate-spoil5``) spoils every case whose number is a multiple of K
    instant  one fixed empty answer without looking the case up (the bare request rate)

The case is found by its messages and tool names. The answer is the first acceptable value
of every parameter (``""``, BFCL's "may be omitted", is omitted); Java and JavaScript values
are written as those languages' literals (the tools declare them as strings, as BFCL's OpenAI
handler does). Irrelevance cases get a text reply; relevance cases a call of the first tool.
:func:`intended` gives, for the test, the calls each case is answered with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tui.core.eval import bfcl  # noqa: E402

FORMATS = ("openai", "glm", "hermes")
TEXT_REPLY = "I cannot help with that using the tools I have."


def case_number(case_id: str) -> int:
    m = re.search(r"_(\d+)(?:-|$)", case_id)
    return int(m.group(1)) if m else 0


def _literal(v, lang: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return repr(v)
    if lang == "java" and isinstance(v, list):
        return "new ArrayList<>(Arrays.asList(" + ", ".join(_java_item(x) for x in v) + "))"
    return json.dumps(v)


def _java_item(v) -> str:
    return json.dumps(v) if isinstance(v, str) else _literal(v, "java")


def ideal(case: bfcl.Case) -> list[tuple[str, dict]] | None:
    """The calls of the first acceptable answer (None: no call)."""
    if case.answer is None:
        return None if "irrelevance" in case.category else [(case.tools[0]["function"]["name"], {})]
    lang = "java" if case.category == "simple_java" else "js" if case.category == "simple_javascript" else ""
    out = []
    for call in case.answer:
        (name, params), = call.items()
        args = {}
        for k, vals in params.items():
            if not vals or vals[0] == "":
                continue
            args[k] = _literal(vals[0], lang) if lang else vals[0]
        out.append((name.replace(".", "_"), args))
    return out


def intended(case: bfcl.Case, spoil: int = 0) -> list[tuple[str, dict]] | None:
    """What the server answers ``case`` with; every ``spoil``-th case (by number) is spoiled in
    one of three ways: a wrong function name, no call, a wrong argument value."""
    calls = ideal(case)
    n = case_number(case.id)
    if not spoil or n % spoil:
        return calls
    if calls is None:                      # irrelevance: call a tool anyway
        return [(case.tools[0]["function"]["name"], {})]
    how = (n // spoil) % 3
    if how == 0:
        return [(calls[0][0] + "_spoiled", calls[0][1])] + calls[1:]
    if how == 1 or not calls[0][1]:
        return None
    (name, args) = calls[0]
    k = next(iter(args))
    return [(name, {**args, k: "__spoiled__"})] + calls[1:]


def _schema_type(case: bfcl.Case, name: str, key: str):
    for t in case.tools:
        if t["function"]["name"] == name:
            return (t["function"].get("parameters") or {}).get("properties", {}).get(key, {}).get("type")
    return None


def delivered(case: bfcl.Case, form: str, spoil: int = 0) -> list[tuple[str, dict]] | None:
    """The calls as the client reads them back: GLM XML values are untyped text, which the
    parser (llmdeck's, like the servers' GLM parsers) keeps as text where the tool's schema says
    ``string``, so a non-string answer to a string parameter arrives as its text."""
    calls = intended(source(case), spoil)
    if form == "rotate":
        form = FORMATS[case_number(source(case).id) % 3]
    if form != "glm" or not calls:
        return calls
    out = []
    for name, args in calls:
        out.append((name, {k: (json.dumps(v) if not isinstance(v, str) and _schema_type(case, name, k) == "string"
                               else v) for k, v in args.items()}))
    return out


_INDEX: dict | None = None


def source(case: bfcl.Case) -> bfcl.Case:
    """The case whose answer the server sends for ``case``'s request: BFCL has a few requests
    (same messages, same tools) in two categories; the server answers the first of them."""
    global _INDEX
    if _INDEX is None:
        _INDEX = build_index()
    return _INDEX.get(_key(case.messages, case.tools), case)


def _chunk(delta: dict | None = None, finish: str | None = None) -> bytes:
    c = {"id": "chatcmpl-bfcl", "object": "chat.completion.chunk", "created": 0, "model": "bfcl",
         "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    return b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n"


def _pieces(s: str, n: int) -> list[str]:
    return [s[i:i + n] for i in range(0, len(s), n)] or [""]


def sse_answer(calls: list[tuple[str, dict]] | None, form: str) -> list[bytes]:
    out = [_chunk({"role": "assistant", "content": ""})]
    if calls is None:
        out += [_chunk({"content": p}) for p in _pieces(TEXT_REPLY, 9)]
        out.append(_chunk(finish="stop"))
    elif form == "openai":
        for i, (name, args) in enumerate(calls):
            out.append(_chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                               "function": {"name": name, "arguments": ""}}]}))
            for p in _pieces(json.dumps(args), 7):
                out.append(_chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}))
        out.append(_chunk(finish="tool_calls"))
    else:
        text = ""
        for name, args in calls:
            if form == "glm":
                text += f"<tool_call>{name}" + "".join(
                    f"<arg_key>{k}</arg_key><arg_value>{v if isinstance(v, str) else json.dumps(v)}</arg_value>"
                    for k, v in args.items()) + "</tool_call>"
            else:
                text += "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>\n"
        out += [_chunk({"content": p}) for p in _pieces(text, 11)]
        out.append(_chunk(finish="stop"))
    out.append(b'data: {"id":"chatcmpl-bfcl","object":"chat.completion.chunk","choices":[],'
               b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n')
    out.append(b"data: [DONE]\n\n")
    return out


def _key(messages: list, tools: list) -> str:
    names = ",".join(t.get("function", {}).get("name", "") for t in tools or [])
    return json.dumps(messages, sort_keys=True) + "|" + names


def build_index() -> dict[str, bfcl.Case]:
    index: dict[str, bfcl.Case] = {}
    for cat in bfcl.categories():
        for c in bfcl.cases(cat):
            index.setdefault(_key(c.messages, c.tools), c)
    return index


def respond(body: dict, index: dict) -> list[bytes]:
    model = str(body.get("model") or "openai")
    if model == "instant":
        return sse_answer(None, "openai")
    case = index.get(_key(body.get("messages") or [], body.get("tools") or []))
    if case is None:
        return [_chunk({"content": "unknown case"}), _chunk(finish="stop"), b"data: [DONE]\n\n"]
    m = re.search(r"-spoil(\d+)$", model)
    spoil = int(m.group(1)) if m else 0
    form = model.split("-")[0]
    if form == "rotate":
        form = FORMATS[case_number(case.id) % 3]
    return sse_answer(intended(case, spoil), form if form in FORMATS else "openai")


def _http(status: str, ctype: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: dict) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for ln in lines[1:]:
                if ln.lower().startswith("content-length:"):
                    length = int(ln.split(":", 1)[1])
            raw = await reader.readexactly(length) if length else b""
            path = path.split("?")[0]
            if method == "POST" and path.endswith("/chat/completions"):
                pieces = respond(json.loads(raw), index)
                data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" + data)
            elif path == "/props":
                writer.write(_http("200 OK", "application/json", b'{"total_slots": 8}'))
            elif path.endswith("/models"):
                writer.write(_http("200 OK", "application/json", b'{"data": [{"id": "openai"}]}'))
            elif path == "/health":
                writer.write(_http("200 OK", "application/json", b'{"status": "ok"}'))
            else:
                writer.write(_http("404 Not Found", "application/json", b'{"error": "not found"}'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    index = build_index()
    server = await asyncio.start_server(lambda r, w: handle(r, w, index), "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
