#!/usr/bin/env python3
"""How fast ``llmdeck eval`` scores BFCL cases against a server that answers instantly.

The test server (``tests/bfclserver.py``, a separate process on 127.0.0.1) answers every BFCL
case from its possible answer at once. In the same run, with the same concurrency:

* **harness**: the eval runner — llmdeck's chat client (streaming, delta assembly, raw-tag
  parsing), BFCL's checker on every reply, the results kept — over the same cases;
* **bare**: the same requests sent by a plain ``httpx`` loop (one shared keep-alive client,
  the body read and dropped): the rate the server and the loopback allow at all.

Target (issue 15): the harness ≥ 150 cases/s at concurrency 8 on this 2-core machine (the
whole single-turn suite of about 3,600-4,400 cases in under 30 s), so the harness is never
what a real model waits on. Each side runs ``--runs`` times, interleaved; the best run counts.
Run: ``.venv/bin/python benchmarks/bench_eval.py [--cases N] [--concurrency N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 150.0


def pick_cases(n: int):
    """``n`` cases drawn across every category in proportion (BFCL's order within each)."""
    from tui.core.eval import bfcl

    per = {c: bfcl.cases(c) for c in bfcl.categories()}
    total = sum(len(v) for v in per.values())
    out = []
    for c, cs in per.items():
        out += cs[:max(1, round(n * len(cs) / total))]
    return out[:n] if len(out) > n else out


async def bare(base_url: str, cases, concurrency: int, model: str) -> float:
    import httpx

    todo = list(cases)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as cl:
        async def worker():
            while todo:
                c = todo.pop()
                body = {"model": model, "messages": c.messages, "tools": c.tools, "stream": True}
                async with cl.stream("POST", base_url + "/chat/completions", json=body) as r:
                    async for _ in r.aiter_bytes():
                        pass
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return len(cases) / (time.perf_counter() - t0)


async def harness(base_url: str, cases, concurrency: int, model: str) -> tuple[float, float]:
    from tui.core.chat.client import ChatTarget
    from tui.core.eval import run_cases

    t0 = time.perf_counter()
    res = await run_cases(ChatTarget(base_url=base_url, model=model), cases, concurrency=concurrency)
    dt = time.perf_counter() - t0
    assert len(res) == len(cases)
    return len(cases) / dt, 100.0 * sum(r.valid for r in res) / len(res)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--form", default="rotate", help="openai, glm, hermes or rotate (default)")
    args = ap.parse_args()
    from tui.core.bench.runner import new_event_loop

    cases = pick_cases(args.cases)
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "bfclserver.py")], stdout=subprocess.PIPE,
                            text=True)
    try:
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}/v1"
        best_h, best_b, acc = 0.0, 0.0, 0.0
        for i in range(args.runs):
            loop = new_event_loop()
            try:
                b = loop.run_until_complete(bare(base, cases, args.concurrency, args.form))
                h, acc = loop.run_until_complete(harness(base, cases, args.concurrency, args.form))
            finally:
                loop.close()
            print(f"run {i + 1}: harness {h:7.1f} cases/s   bare requests {b:7.1f} req/s")
            best_h, best_b = max(best_h, h), max(best_b, b)
    finally:
        proc.kill()
        proc.wait(10)
    print(f"{len(cases)} BFCL cases, concurrency {args.concurrency}, answers '{args.form}' "
          f"(accuracy {acc:.2f}%, BFCL's checker on every case)")
    print(f"harness: {best_h:.1f} cases/s (target >= {TARGET:.0f}); bare requests: {best_b:.1f} req/s "
          f"(harness at {100 * best_h / best_b:.0f}% of it); whole suite (3,641 cases) in "
          f"{3641 / best_h:.1f} s")
    ok = best_h >= TARGET
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
