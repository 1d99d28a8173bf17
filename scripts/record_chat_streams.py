#!/usr/bin/env python3
"""Record real llama-server chat streams (raw bytes) into tests/fixtures/chat/.

Run: ``.venv/bin/python scripts/record_chat_streams.py [--only NAME ...]`` (about a minute on
an idle 2-core machine). It starts the cached llama-server (``llmdeck setup`` builds it) with
the SmolLM2 demo model on 127.0.0.1, in three set-ups:

* ``own``:  the model's own template;
* ``glm``:  llama.cpp's ``GLM-4.7-Flash.jinja`` (prompt ends with ``<think>``; the server
  parses reasoning and tool calls into ``reasoning_content`` / ``tool_calls``);
* ``raw``:  the same template with ``--skip-chat-parsing``: the exact raw output lands in
  ``content`` (only ``</think>``, tool-call tags as text);

plus ``small`` (``-c 256``) and ``auth`` (``--api-key``) for the HTTP errors. The tiny model is
steered with a per-request GBNF ``grammar`` (the text it must produce, tokenised by the real
tokenizer, so tags split across tokens as they would) or, for real ``tool_calls`` deltas, with
``tool_choice: "required"``, ``enable_thinking: false`` and a ``logit_bias`` favouring the
tokens of ``<tool_call>`` (the tool grammar is lazy: it starts when that text appears).

Each stream is saved as ``llamacpp_<name>.sse``; non-200 answers as ``llamacpp_<name>.json``
(``{"status", "body"}``). ``llamacpp_recorded.json`` lists every request and set-up, so the
fixtures say how they were made. Outputs are deterministic (temperature 0, seed 42) on one
build; the tests check structure and the forced texts, not incidental wording.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "tests" / "fixtures" / "chat"

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast for the next days",
    "parameters": {"type": "object", "properties": {"days": {"type": "integer"}, "metric": {"type": "boolean"}},
                   "required": ["days", "metric"]}}}
RAW_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}}
TOOL_STEER = {"tool_choice": "required", "chat_template_kwargs": {"enable_thinking": False},
              "logit_bias": {"<tool_call>": 5}, "temperature": 0, "seed": 42}


def gbnf(text: str) -> str:
    """A grammar whose only sentence is ``text``."""
    lit = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'root ::= "{lit}"'


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


#: name -> (set-up, request body without stream/stream_options)
SCENARIOS: dict[str, tuple[str, dict]] = {
    "plain": ("own", {"messages": user("Say hello."), "max_tokens": 16, "temperature": 0, "seed": 42}),
    "raw_think": ("own", {"messages": user("Hi"), "max_tokens": 60,
                          "grammar": gbnf("<think>\nThe user greets me.\n</think>\n\nHello! How can I help?")}),
    "reasoning": ("glm", {"messages": user("Hi"), "max_tokens": 60,
                          "grammar": gbnf("I should greet them.</think>Hello there!")}),
    "tool_call": ("glm", {"messages": user("What is the weather in Tokyo?"), "max_tokens": 200,
                          "tools": [WEATHER_TOOL], "parallel_tool_calls": False, **TOOL_STEER}),
    "parallel_tool_calls": ("glm", {"messages": user("What is the weather in Tokyo?"), "max_tokens": 200,
                                    "tools": [WEATHER_TOOL], "parallel_tool_calls": True, **TOOL_STEER}),
    "midstream_error": ("glm", {"messages": user("What is the weather in Tokyo?"), "max_tokens": 300,
                                "tools": [WEATHER_TOOL], "parallel_tool_calls": True,
                                **dict(TOOL_STEER, logit_bias={"<tool_call>": 2})}),
    "raw_glm47_think": ("raw", {"messages": user("Hi"), "max_tokens": 60,
                                "grammar": gbnf("I should greet them.</think>Hello there!")}),
    "raw_glm47_tool": ("raw", {"messages": user("Weather in Tokyo?"), "max_tokens": 120, "grammar": gbnf(
        "Tokyo, three days.</think><tool_call>get_weather<arg_key>city</arg_key><arg_value>東京 Tokyo"
        "</arg_value><arg_key>days</arg_key><arg_value>3</arg_value></tool_call>")}),
    "raw_glm45_tool": ("raw", {"messages": user("Weather in Tokyo?"), "max_tokens": 240, "grammar": gbnf(
        "\n<think>Tokyo.</think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Tokyo"
        "</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>")}),
    "raw_qwen35_tool": ("raw", {"messages": user("Weather in New York?"), "max_tokens": 120, "grammar": gbnf(
        "Need the weather.\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nNew York\n"
        "</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>")}),
    "raw_hermes_tool": ("raw", {"messages": user("Weather in Paris?"), "max_tokens": 120, "grammar": gbnf(
        '<think>\nParis.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Paris", "days": 1}}\n</tool_call>')}),
    "overflow": ("small", {"messages": user("Please summarise this. " + "The quick brown fox jumps. " * 60),
                           "max_tokens": 8}),
    "unauthorized": ("auth", {"messages": user("Hi"), "max_tokens": 4}),
}

SETUPS = {
    "own": [],
    "glm": ["--chat-template-file", "{templates}/GLM-4.7-Flash.jinja"],
    "raw": ["--chat-template-file", "{templates}/GLM-4.7-Flash.jinja", "--skip-chat-parsing"],
    "small": [],
    "auth": ["--api-key", "recorded-secret"],
}
CTX = {"small": 256}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary: Path, model: Path, args: list[str], ctx: int, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", str(ctx),
            "-np", "1", "--threads", "2", "--alias", "smollm2", *args]
    proc = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama-server exited: {log.read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except Exception:
            time.sleep(0.1)
    raise SystemExit("llama-server did not become ready")


def record(port: int, body: dict) -> tuple[int, str, bytes]:
    import httpx

    full = dict(body, stream=True, stream_options={"include_usage": True})
    with httpx.Client(timeout=600) as c, c.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                                                 json=full) as r:
        data = b"".join(r.iter_raw())
        return r.status_code, r.headers.get("content-type", ""), data


def main() -> int:
    ap = argparse.ArgumentParser(description="Record real llama-server chat streams into tests/fixtures/chat/")
    ap.add_argument("--only", nargs="*", help="scenario names (default: all)")
    a = ap.parse_args()
    from tui.core import provision

    binary = provision.build_llama_server()
    model = provision.demo_model()
    templates = provision.templates_dir()
    OUT.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "llamacpp_recorded.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    names = a.only or list(SCENARIOS)
    by_setup: dict[str, list[str]] = {}
    for n in names:
        by_setup.setdefault(SCENARIOS[n][0], []).append(n)
    with tempfile.TemporaryDirectory() as tmp:
        for setup, todo in by_setup.items():
            args = [x.replace("{templates}", str(templates)) for x in SETUPS[setup]]
            proc, port = start(binary, model, args, CTX.get(setup, 2048), Path(tmp) / f"{setup}.log")
            try:
                for n in todo:
                    body = SCENARIOS[n][1]
                    t0 = time.monotonic()
                    status, ctype, data = record(port, body)
                    for old in (OUT / f"llamacpp_{n}.sse", OUT / f"llamacpp_{n}.json"):
                        old.unlink(missing_ok=True)
                    if status == 200:
                        (OUT / f"llamacpp_{n}.sse").write_bytes(data)
                    else:
                        (OUT / f"llamacpp_{n}.json").write_text(json.dumps(
                            {"status": status, "content_type": ctype, "body": data.decode()}, indent=2) + "\n")
                    manifest[n] = {"setup": setup, "server_args": [x.replace(str(templates), "<templates>")
                                                                   for x in args],
                                   "ctx": CTX.get(setup, 2048), "request": body, "status": status}
                    print(f"{n}: HTTP {status}, {len(data)} bytes, {time.monotonic() - t0:.1f} s", flush=True)
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    manifest = {k: manifest[k] for k in SCENARIOS if k in manifest}
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
