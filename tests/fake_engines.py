"""Faithful local stand-ins for vLLM, SGLang and LightLLM (which need GPUs), for supervision tests.

Each is started by the very command llmdeck builds (``vllm serve …``, ``python -m
sglang.launch_server …``, ``python -m lightllm.server.api_server …``) and behaves like the
real server where llmdeck can tell:

* its command line is parsed with the engine's own flag names (only those; an unknown flag
  exits 2 like the real argparse), its defaults for host and port;
* it "loads" before binding the port (vLLM binds only after loading) and logs the engine's
  own ready line; ``GET /health`` answers 200 (vLLM: empty body);
* ``/v1/models`` lists the served name; ``/v1/chat/completions`` and ``/v1/completions``
  reject another ``model`` with vLLM's 404 (vLLM, SGLang; LightLLM does not check), and
  otherwise pass the request to a real llama-server (``$FAKE_ENGINE_UPSTREAM``, its /v1 URL),
  so chat is real generation.

:func:`install` writes the ``vllm`` script and the ``sglang`` / ``lightllm`` packages into a
folder: put ``bin`` on PATH or use it as ``executable``, and ``site`` on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

FLAGS = {
    "vllm": [("--tensor-parallel-size", int), ("--pipeline-parallel-size", int), ("--data-parallel-size", int),
             ("--enable-expert-parallel", bool), ("--speculative-config.method", str),
             ("--speculative-config.num_speculative_tokens", int), ("--tool-call-parser", str),
             ("--reasoning-parser", str), ("--enable-auto-tool-choice", bool), ("--served-model-name", str),
             ("--gpu-memory-utilization", float), ("--max-model-len", int), ("--trust-remote-code", bool),
             ("--host", str), ("--port", int)],
    "sglang": [("--model-path", str), ("--tp-size", int), ("--tool-call-parser", str), ("--reasoning-parser", str),
               ("--speculative-algorithm", str), ("--speculative-num-steps", int),
               ("--speculative-eagle-topk", int), ("--speculative-num-draft-tokens", int),
               ("--mem-fraction-static", float), ("--served-model-name", str), ("--enable-metrics", bool),
               ("--host", str), ("--port", int)],
    "lightllm": [("--model_dir", str), ("--tp", int), ("--max_req_total_len", int), ("--chunked_prefill_size", int),
                 ("--llm_prefill_att_backend", str), ("--llm_decode_att_backend", str),
                 ("--graph_max_batch_size", int), ("--tool_call_parser", str), ("--reasoning_parser", str),
                 ("--mtp_step", int), ("--mtp_mode", str), ("--mtp_draft_model_dir", str), ("--model_name", str),
                 ("--host", str), ("--port", int)],
}
DEFAULTS = {"vllm": ("0.0.0.0", 8000), "sglang": ("127.0.0.1", 30000), "lightllm": ("127.0.0.1", 8000)}
READY_LINE = {"vllm": "INFO:     Application startup complete.",
              "sglang": "The server is fired up and ready to roll!",
              "lightllm": "INFO:     Application startup complete."}
LOAD_S = 0.6


def parse(engine: str, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=engine)
    if engine == "vllm":
        p.add_argument("serve", choices=["serve"])
        p.add_argument("model")
    for flag, typ in FLAGS[engine]:
        if typ is bool:
            p.add_argument(flag, action="store_true")
        else:
            p.add_argument(flag, type=typ)
    a = p.parse_args(argv)
    host, port = DEFAULTS[engine]
    a.host = a.host or host
    a.port = a.port or port
    return a


async def serve(engine: str, a: argparse.Namespace) -> None:
    import aiohttp
    from aiohttp import web

    model = getattr(a, "model", None) or getattr(a, "model_path", None) or getattr(a, "model_dir", None)
    served = getattr(a, "served_model_name", None) or getattr(a, "model_name", None) or model
    upstream = os.environ["FAKE_ENGINE_UPSTREAM"].rstrip("/")
    session = aiohttp.ClientSession()

    async def health(request):
        return web.Response(status=200) if engine == "vllm" else web.json_response({"status": "ok"})

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": served, "object": "model", "owned_by": engine}]})

    async def generate(request):
        body = await request.json()
        if engine != "lightllm" and body.get("model") != served:
            return web.json_response({"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                                "type": "NotFoundError", "param": None, "code": 404}}, status=404)
        async with session.post(upstream + "/" + request.match_info["route"], json=body) as up:
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers["Content-Type"]})
            await resp.prepare(request)
            async for piece in up.content.iter_any():
                await resp.write(piece)
            await resp.write_eof()
            return resp

    print(f"fake {engine}: loading {model} (served as {served}) with {json.dumps(vars(a), sort_keys=True)}",
          flush=True)
    await asyncio.sleep(LOAD_S)  # loading happens before the port is bound
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/{route:chat/completions|completions}", generate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, a.host, a.port).start()
    print(READY_LINE[engine], flush=True)
    await asyncio.Event().wait()


def main(engine: str, argv: list[str] | None = None) -> None:
    a = parse(engine, sys.argv[1:] if argv is None else argv)
    try:
        asyncio.run(serve(engine, a))
    except KeyboardInterrupt:
        pass


def install(folder: Path) -> tuple[Path, Path]:
    """Write the fakes under ``folder``; return (bin dir with ``vllm``, site dir for PYTHONPATH)."""
    here = Path(__file__).resolve().parent
    bindir, site = folder / "bin", folder / "site"
    bindir.mkdir(parents=True, exist_ok=True)
    stub = "import sys; sys.path.insert(0, {here!r}); import fake_engines; fake_engines.main({engine!r})\n"
    vllm = bindir / "vllm"
    vllm.write_text(f"#!{sys.executable}\n" + stub.format(here=str(here), engine="vllm"))
    vllm.chmod(0o755)
    for pkg, mod, engine in (("sglang", "launch_server", "sglang"), ("lightllm/server", "api_server", "lightllm")):
        d = site / pkg
        d.mkdir(parents=True, exist_ok=True)
        for parent in [d, *d.relative_to(site).parents]:
            if str(parent) != ".":
                (site / parent / "__init__.py").touch()
        (d / f"{mod}.py").write_text(stub.format(here=str(here), engine=engine))
    return bindir, site
