"""The router's front page (issue 18): page weight and first paint over loopback.

Targets: the page and everything it loads (HTML, script, style, its first /ui/status JSON)
<= 100 KB; first paint <= 300 ms over loopback. Baseline, measured in the same run by the
same browser: the first paint of the router's ``/health`` (a one-line JSON document), so what
the page itself costs over a bare answer is visible.

``llmdeck serve`` runs as a subprocess on 127.0.0.1 with a registry of two SmolLM2 models that
are not running (the page's table, the GPU reading and the telemetry sampler all run; no model
needs to load). Debian's chromium (/usr/bin/chromium) is driven headless by Playwright; each
figure is the median of ``--rounds`` fresh page loads (a new browser context each: no cache).
Exits 1 when a target is missed. Run: ``.venv/bin/python benchmarks/bench_page.py``
(about 15 s).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
WEIGHT_MAX = 100 * 1024
PAINT_MAX_MS = 300.0
FILES = ("/", "/ui/app.js", "/ui/app.css", "/ui/status")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def paint_ms(browser, url: str) -> float:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = ctx.new_page()
        page.goto(url, wait_until="load")
        for _ in range(50):  # the paint entry lands just after load
            entries = page.evaluate("performance.getEntriesByType('paint').map(e => [e.name, e.startTime])")
            fp = dict(entries).get("first-paint") or dict(entries).get("first-contentful-paint")
            if fp is not None:
                return float(fp)
            time.sleep(0.02)
        raise RuntimeError(f"no paint entry for {url}")
    finally:
        ctx.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        reg = Path(tmp) / "models.json"
        reg.write_text(json.dumps({"models": {n: {"model_path": str(Path(tmp) / "smol.gguf"),
                                                   "default_port": free_port()} for n in ("smol", "other")}}))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "tui.cli.main", "--registry", str(reg), "serve", "--port",
                                 str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            sizes = {p: len(httpx.get(base + p, timeout=10).content) for p in FILES}
            total = sum(sizes.values())
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
                paint_ms(browser, base + "/")  # warm the router (first status read, sampler start)
                page_fp, base_fp = [], []
                for _ in range(args.rounds):  # interleaved, so machine load hits both alike
                    base_fp.append(paint_ms(browser, base + "/health"))
                    page_fp.append(paint_ms(browser, base + "/"))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    print("page weight (bytes): " + ", ".join(f"{p} {n}" for p, n in sizes.items()))
    print(f"  total {total / 1024:.1f} KB (target <= {WEIGHT_MAX // 1024} KB)")
    fp, bfp = statistics.median(page_fp), statistics.median(base_fp)
    print(f"first paint, median of {args.rounds}: page {fp:.0f} ms (target <= {PAINT_MAX_MS:.0f} ms); "
          f"baseline /health {bfp:.0f} ms; page - baseline {fp - bfp:+.0f} ms")
    print(f"  page rounds: {', '.join(f'{v:.0f}' for v in page_fp)}")
    ok = total <= WEIGHT_MAX and fp <= PAINT_MAX_MS
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
