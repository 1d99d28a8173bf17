"""The router's front page (issue 18) in a real browser: Debian's chromium, driven by Playwright.

Against ``llmdeck serve`` (a subprocess) with a real llama-server and the SmolLM2 demo model:
the model shows as ready, a chat answer streams into the page, a line written to the model's
log appears, start/stop work with the router's key and are refused without it; every answer
carries the CSP, the JSON never shows a key or an ``env`` value. Screenshots at 1280×800 and
at a narrow width are saved under ``logs/test-artifacts/`` (and the test's tmp_path).

Waits use Playwright's locator assertions: the page's CSP (``script-src 'self'``, no eval)
refuses ``wait_for_function`` strings, which is itself a check that the CSP is in force.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port, kill_servers, wait_http_ok
from inproc import inproc_router
from tui.core import supervisor

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "logs" / "test-artifacts"
ROUTER_KEY = "router-key-9f3a7c"
ENV_SECRET = "env-secret-51d0e2"

pytestmark = [pytest.mark.server, pytest.mark.timeout(240)]

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():  # the Makefile's test target installs it (scripts/ensure-chromium.sh)
    pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh", pytrace=False)
expect = playwright_api.expect


def _serve(reg_path: Path, port: int, key: str | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    extra = []
    if key:
        env["PAGE_TEST_KEY"] = key
        extra = ["--api-key-env", "PAGE_TEST_KEY"]
    return subprocess.Popen([sys.executable, "-m", "tui.cli.main", "--registry", str(reg_path), "serve",
                             "--port", str(port), *extra], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def deck(make_deck):
    reg = make_deck({"smol": {"env": {"HF_TOKEN": ENV_SECRET}}, "idle": {}})
    supervisor.start(reg, "smol")
    assert supervisor.wait_ready(reg, "smol", timeout=60).state == "ready"
    yield reg
    supervisor.stop_all(reg, grace=5)


@pytest.fixture
def router(deck):
    procs = []

    def start(key: str | None = None) -> str:
        port = free_port()
        proc = _serve(deck.path, port, key)
        procs.append(proc)
        wait_http_ok(f"http://127.0.0.1:{port}/health", 30, proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


def _page(browser, base: str, width: int = 1280, height: int = 800):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # through a tunnel the page is reached as localhost:<any port>: the same as here
    page.goto(base.replace("127.0.0.1", "localhost") + "/")
    return page, errors


def _shot(page, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    page.screenshot(path=str(out))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, ARTIFACTS / name)
    assert out.stat().st_size > 10_000  # a real picture, not a blank one
    return out


def test_page_keyless_models_chat_logs_read_only(deck, router, browser, tmp_path):
    base = router()
    # headers: CSP on the page, its JSON and the API; no CORS for another site
    for path in ("/", "/ui/app.js", "/ui/status", "/v1/models", "/nope"):
        r = httpx.get(base + path)
        assert "script-src 'self'" in r.headers.get("content-security-policy", ""), path
        assert r.headers.get("x-content-type-options") == "nosniff", path
    r = httpx.get(base + "/ui/status", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    # the JSON: status --json's objects (plus the server's figures), no secret anywhere
    status = httpx.get(base + "/ui/status").json()
    cli = json.loads(subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(deck.path), "status",
                                     "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout)
    assert [m["name"] for m in status["models"]] == [m["name"] for m in cli] == ["smol", "idle"]
    assert set(cli[0]) <= set(status["models"][0])
    assert status["keyed"] is False and status["models"][0]["state"] == "ready"
    for path in ("/ui/status", "/", "/ui/app.js", "/ui/logs/smol"):
        assert ENV_SECRET not in httpx.get(base + path).text, path
    # read-only: no start/stop without a router key
    r = httpx.post(base + "/ui/models/smol/stop")
    assert r.status_code == 403 and "--api-key-env" in r.json()["error"]["message"]

    page, errors = _page(browser, base)
    row = page.locator("#models tr[data-name=smol]")
    expect(row.locator(".badge")).to_have_text("ready", timeout=15000)
    expect(page.locator("#models tr[data-name=idle] .badge")).to_have_text("stopped")
    # keyboard: Tab reaches the model names first; Enter on one selects it for logs and chat
    page.keyboard.press("Tab")
    expect(row.locator("button.name")).to_be_focused()
    for _ in range(3):  # its Logs and Chat buttons (Start/Stop are not there: read-only), then the next name
        page.keyboard.press("Tab")
    expect(page.locator("#models tr[data-name=idle] button.name")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#pick")).to_have_value("idle")
    expect(page.locator("#models tr[data-name=idle]")).to_have_class(re.compile(r"\bsel\b"))
    page.locator("#pick").select_option("smol")
    expect(page.locator("#mode")).to_contain_text("read-only")
    assert row.locator("button:has-text('Stop')").is_hidden()
    # logs: the selected model's log, following; a line written now shows up, errors marked
    expect(page.locator("#log")).to_contain_text("listening on", timeout=10000)
    with open(deck.log_file("smol"), "a") as fh:
        fh.write("page-test: error: a line written by the test\n")
    expect(page.locator("#log .error", has_text="page-test: error")).to_be_visible(timeout=10000)
    # chat through the router's /v1: the answer streams in, with a stats line
    page.click("#tab-chat")
    page.fill("#q", "What is the capital of France?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant .content").last
    expect(answer).not_to_be_empty(timeout=60000)
    expect(page.locator("#send")).to_be_enabled(timeout=90000)  # the stream has ended
    stats = page.locator(".msg.assistant .stats").last
    expect(stats).to_have_text(re.compile(r"TTFT \d+ ms · \d+ tokens · [\d.]+ tok/s"))
    assert int(re.search(r"(\d+) tokens", stats.text_content()).group(1)) > 1
    _shot(page, tmp_path, "front-page-1280x800.png")
    page.click("#tab-logs")
    page.set_viewport_size({"width": 420, "height": 900})
    expect(page.locator("#models-sec")).to_be_visible()
    _shot(page, tmp_path, "front-page-narrow.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= 420  # no sideways scrolling
    assert not errors, errors


def test_page_keyed_start_stop(deck, router, browser, tmp_path):
    base = router(ROUTER_KEY)
    auth = {"Authorization": f"Bearer {ROUTER_KEY}"}
    # the page itself is open (a navigation sends no header); its data needs the key
    assert httpx.get(base + "/").status_code == 200
    assert httpx.get(base + "/ui/status").status_code == 401
    assert httpx.post(base + "/ui/models/smol/stop").status_code == 401
    r = httpx.post(base + "/ui/models/smol/stop", headers={**auth, "Origin": "http://evil.example"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = httpx.options(base + "/ui/models/smol/stop", headers={"Origin": "http://evil.example",
                                                              "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    status = httpx.get(base + "/ui/status", headers=auth)
    assert status.json()["keyed"] is True and ROUTER_KEY not in status.text and ENV_SECRET not in status.text

    page, errors = _page(browser, base)
    expect(page.locator("#keyform")).to_be_visible(timeout=10000)
    expect(page.locator("#keymsg")).to_contain_text("needs its API key")
    page.fill("#key", ROUTER_KEY)
    page.keyboard.press("Enter")
    row = page.locator("#models tr[data-name=smol]")
    expect(row.locator(".badge")).to_have_text("ready", timeout=15000)
    assert page.evaluate("sessionStorage.length") == 1  # kept for this tab only
    expect(row.locator("button:has-text('Stop')")).to_be_visible()
    _shot(page, tmp_path, "front-page-keyed-1280x800.png")
    row.locator("button:has-text('Stop')").click()
    expect(row.locator(".badge")).to_have_text("stopped", timeout=30000)
    assert supervisor.state_of(deck, "smol", probe=False).state == "stopped"
    row.locator("button:has-text('Start')").click()
    expect(row.locator(".badge")).to_have_text("ready", timeout=60000)
    assert supervisor.state_of(deck, "smol").state == "ready"
    assert not [e for e in errors if "status of 401" not in e], errors  # the first ask, before the key


@contextlib.contextmanager
def _inproc_router(reg_path: Path):
    """``llmdeck serve``'s app in this process, so a test can swap the process-wide GPU source;
    yields its base URL and the app."""
    from tui.router.app import make_app
    from tui.router.backends import RegistryBackends

    app = make_app(RegistryBackends(reg_path))
    with inproc_router(app) as base:
        yield base, app


def test_page_gpu_gauges_with_history(deck, browser, tmp_path):
    """GPU cards from the telemetry sampler: the router runs in this process with a fake NVML
    (this machine has no GPU), so the page shows the gauges and their sparklines; with a chat
    answer this is the README's screenshot (docs/front-page.png)."""
    from tui.core.telemetry import nvml
    from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml

    gpu = FakeGpu("NVIDIA H200", total=141 << 30, used=40 << 30, util=63, temp=51, power_mw=312_000)
    old = nvml.set_default_source(nvml.NvmlSource(FakeNvml([gpu])))
    try:
        with _inproc_router(deck.path) as (base, _app):
            page, errors = _page(browser, base)
            card = page.locator("#gpus .gpu")
            expect(card.locator("h3")).to_have_text("GPU 0 · NVIDIA H200", timeout=15000)
            expect(card).to_contain_text("40 GiB / 141 GiB")
            expect(card).to_contain_text("63 %")
            expect(card).to_contain_text("51 °C")
            expect(card).to_contain_text("312 / 700 W")
            gpu.util = 20  # the history moves: a second point makes the sparkline
            expect(card.locator("svg.spark polyline.s-util")).to_have_count(1, timeout=10000)
            expect(card).to_contain_text("20 %", timeout=10000)
            expect(page.locator("#models tr[data-name=smol] .badge")).to_have_text("ready")
            page.click("#tab-chat")
            page.fill("#q", "Name three colours.")
            page.keyboard.press("Enter")
            expect(page.locator("#send")).to_be_enabled(timeout=90000)
            expect(page.locator(".msg.assistant .content").last).not_to_be_empty()
            _shot(page, tmp_path, "front-page-gpus-1280x800.png")
            assert not errors, errors
    finally:
        nvml.set_default_source(old)


def test_page_thinking_tool_calls_and_crash(llama_server_bin, browser, tmp_path):
    """The chat's thinking block and tool-call block (a canned stream from an external model),
    and a model whose server crashed, with the exit reason, in the table."""
    from chatstreams import USAGE, sse, vllm
    from streamserver import Reply, StreamServer, json_reply, split_every
    from tui.core import registry

    call = {"id": "call-1", "type": "function", "index": 0,
            "function": {"name": "get_weather", "arguments": '{"city": "Tokyo", "days": 3}'}}
    body = sse(vllm({"role": "assistant", "content": ""}), vllm({"reasoning_content": "Need the forecast."}),
               vllm({"tool_calls": [call]}), vllm({"content": "Sunny in Tokyo."}), vllm(finish="tool_calls"),
               vllm(choices=False, usage=USAGE))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file\n" * 64)
    with StreamServer() as srv:
        srv.default("/health", json_reply({"status": "ok"}))
        srv.default("/v1/chat/completions", Reply(body=split_every(body, 40), delay=0.02))
        reg_path = tmp_path / "models.json"
        reg_path.write_text(json.dumps({"settings": {"llama_server": str(llama_server_bin)}, "models": {
            "canned": {"engine": "external", "base_url": srv.base_url},
            "broken": {"model_path": str(bad), "default_port": free_port(), "params": {"threads": 1}}}}))
        reg = registry.load(reg_path)
        try:
            supervisor.start(reg, "broken")
        except Exception as exc:  # refused before it ran: the page must then show it stopped
            pytest.fail(f"start of a broken gguf was refused before the server ran: {exc}")
        try:
            with _inproc_router(reg_path) as (base, _app):
                page, errors = _page(browser, base)
                broken = page.locator("#models tr[data-name=broken]")
                expect(broken.locator(".badge")).to_have_text("crashed", timeout=30000)
                expect(broken.locator(".note")).not_to_be_empty()
                page.select_option("#pick", "canned")
                page.click("#tab-chat")
                page.fill("#q", "Weather in Tokyo?")
                page.keyboard.press("Enter")
                msg = page.locator(".msg.assistant").last
                expect(msg.locator(".content")).to_have_text("Sunny in Tokyo.", timeout=15000)
                expect(msg.locator("details.think")).to_be_visible()
                expect(msg.locator("details.think")).not_to_have_attribute("open", "")  # folded
                expect(msg.locator("details.think pre")).to_have_text("Need the forecast.")
                expect(msg.locator(".tool b")).to_have_text("tool call: get_weather")
                expect(msg.locator(".tool pre")).to_have_text('{"city": "Tokyo", "days": 3}')
                expect(msg.locator(".stats")).to_contain_text("TTFT")
                assert srv.chat_requests()[-1]["json"]["stream"] is True
                assert not errors, errors
        finally:
            kill_servers(reg)


def test_sampler_runs_only_while_a_page_asks(deck, monkeypatch):
    """The page's telemetry sampler (NVML reads, /metrics scrapes) starts with the first
    /ui/status and stops once no page has asked for IDLE_STOP_S."""
    from tui.router import page as rpage

    monkeypatch.setattr(rpage, "IDLE_STOP_S", 0.6)
    with _inproc_router(deck.path) as (base, app):
        data = app[rpage.PAGE]
        assert data.sampler is None
        assert httpx.get(base + "/ui/status").status_code == 200
        sampler = data.sampler
        assert sampler is not None and sampler.running
        deadline = time.monotonic() + 10
        # dropped by the page, then its thread ends (close() does not wait for it)
        while (data.sampler is not None or sampler.running) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert data.sampler is None and not sampler.running
        assert httpx.get(base + "/ui/status").json()["models"][0]["name"] == "smol"  # starts again
        assert data.sampler is not None


def test_page_renders_loading_crashed_and_on_demand(make_deck, browser, tmp_path):
    """States a real run passes through too quickly to catch (loading with stage and %, a crash
    with a restart pending, on demand with 'unloads in'): the page's own /ui/status answer is
    replaced in the browser by one with those states (the rest of the page is the real router's)."""
    reg = make_deck({"a": {}})
    objs = [
        {"name": "loader", "engine": "llama-server", "state": "loading", "pid": 1, "port": 9001, "quant": "Q4_K_M",
         "stage": "loading tensors", "load_pct": 42.0, "load_eta_s": 75, "vram_bytes": 3 << 30, "rss_bytes": 1 << 30},
        {"name": "crasher", "engine": "llama-server", "state": "crashed", "exit": {"reason": "out of memory (exit 1)"},
         "restarting_in_s": 4},
        {"name": "lazy", "engine": "llama-server", "state": "ready", "pid": 2, "port": 9002, "on_demand": True,
         "unloads_in_s": 95, "server": {"tokens_per_s": 12.5, "busy_slots": 1, "total_slots": 4}},
    ]
    status = {"models": objs, "gpus": {"state": "ok", "gpus": []}, "keyed": False, "at": time.time()}
    with _inproc_router(reg.path) as (base, _app):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.route("**/ui/status", lambda route: route.fulfill(status=200, content_type="application/json",
                                                                 body=json.dumps(status)))
        page.goto(base.replace("127.0.0.1", "localhost") + "/")
        loader = page.locator("#models tr[data-name=loader]")
        expect(loader.locator(".badge")).to_have_text("loading", timeout=10000)
        expect(loader.locator(".note")).to_have_text("loading tensors, ETA 1m15 · 42%")
        expect(loader.locator(".pbar")).to_be_visible()
        assert loader.locator(".pbar > i").evaluate("e => e.style.width") == "42%"
        expect(loader).to_contain_text("Q4_K_M")
        expect(loader).to_contain_text("3.0 GiB")
        crasher = page.locator("#models tr[data-name=crasher]")
        expect(crasher.locator(".badge")).to_have_text("crashed")
        expect(crasher.locator(".note")).to_have_text("out of memory (exit 1); restarting in 4s")
        lazy = page.locator("#models tr[data-name=lazy]")
        expect(lazy).to_contain_text("yes, unloads in 1m35")
        expect(lazy).to_contain_text("12.5")
        expect(lazy).to_contain_text("1/4")
        expect(page.locator("#gpu-msg")).to_have_text("no GPU found")
