"""Deterministic stand-ins for the TUI's backend, for key/pane tests and snapshots.

What is faked and why: server states (snapshots need fixed pids, ports and states; the
real-server behaviour is covered by ``test_ui_server.py`` against a real llama-server),
telemetry (no GPU here: GPUs come from ``tui.core.telemetry.fakenvml`` through the real
``NvmlSource``; host figures are fixed so screens are stable) and chat streams (scripted
core events, including one that never ends, to test cancel). Logs are real files read by
the real ``logfiles.Follower``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from types import SimpleNamespace

from tui.core import logfiles, registry, supervisor
from tui.core.bench import BenchError
from tui.core.bench import list_reports as bench_reports
from tui.core.chat import events as ev
from tui.core.downloads.errors import DownloadError
from tui.core.eval import EvalError
from tui.core.eval import list_reports as eval_reports
from tui.core.supervisor import ModelState
from tui.core.telemetry.fakenvml import FakeGpu, FakeNvml
from tui.core.telemetry.metrics import ServerStats
from tui.core.telemetry.nvml import NvmlSource
from tui.core.telemetry.procs import Usage
from tui.core.telemetry.sampler import History, ModelSample, ServerRef, Snapshot, history_values
from tui.core.telemetry.system import SystemInfo

GIB = 1 << 30

REGISTRY = {
    "settings": {"stop_grace_s": 1},
    "models": {
        "glm-5": {"description": "GLM-5 (744B MoE), split GGUF", "repo_id": "unsloth/GLM-5-GGUF",
                  "quants": {"UD-IQ2_XXS": {"pattern": "UD-IQ2_XXS/*.gguf", "size_gb": 241},
                             "UD-TQ1_0": {"pattern": "UD-TQ1_0/*.gguf", "size_gb": 176}},
                  "default_quant": "UD-IQ2_XXS", "default_port": 8001, "reasoning_parser": "glm45"},
        "qwen3.5": {"repo_id": "unsloth/Qwen3.5-397B-A17B-GGUF",
                    "quants": {"MXFP4_MOE": {"pattern": "MXFP4_MOE/*.gguf", "size_gb": 214}},
                    "default_quant": "MXFP4_MOE", "default_port": 8002},
        "glm-4.7-flash": {"repo_id": "unsloth/GLM-4.7-Flash-GGUF",
                          "quants": {"Q8_0": {"pattern": "*Q8_0.gguf", "size_gb": None}},
                          "default_quant": "Q8_0", "default_port": 8003},
        "smollm2": {"description": "SmolLM2-135M demo model", "model_path": "smollm2.gguf",
                    "default_port": 8010},
    },
}

LOG_LINES = [
    "===== llmdeck: 2026-01-01 12:00:00 +0000 {name}: starting (llama-server, quant -, port {port}) =====",
    "0.00.001.002 I srv  llama_server: initializing ...",
    "0.00.018.476 I srv    load_model: loading model 'models/{name}.gguf'",
    "0.00.015.196 W srv  llama_server: security: no API key is set",
    "0.01.980.810 I srv    load_model: initializing, n_slots = 2, n_ctx_slot = 2048",
    "0.01.999.558 I srv  llama_server: model loaded",
    "0.01.999.570 I srv  llama_server: listening on http://127.0.0.1:{port}",
]
CRASH_LINES = [
    "===== llmdeck: 2026-01-01 12:00:00 +0000 {name}: starting (llama-server, quant Q8_0, port {port}) =====",
    "0.00.018.476 I srv    load_model: loading model 'models/{name}.gguf'",
    "0.00.020.000 E llama_model_load: error loading model: tensor 'blk.3.ffn' data is not within the file bounds",
    "0.00.020.100 E srv    load_model: failed to load model",
    "----- llmdeck: 2026-01-01 12:00:01 +0000 {name}: exited with code 1 -----",
]


def write_registry(root: Path) -> registry.Registry:
    root.mkdir(parents=True, exist_ok=True)
    (root / "smollm2.gguf").write_bytes(b"GGUF" + bytes(60))
    (root / "models.json").write_text(json.dumps(REGISTRY, indent=1))
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    for name, m in REGISTRY["models"].items():
        lines = CRASH_LINES if name == "glm-4.7-flash" else LOG_LINES
        (logs / f"{name}.log").write_text("\n".join(x.format(name=name, port=m["default_port"]) for x in lines) + "\n")
    return registry.load(root / "models.json")


def state(name: str, st: str, **kw) -> ModelState:
    base = dict(name=name, engine="llama-server", state=st)
    base.update(kw)
    return ModelState(**base)


class FakeSampler:
    """Delivers fixed snapshots; ``tick()`` sends the next one (tests drive time)."""

    def __init__(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = snapshots
        self.history = History(60)
        for s in snapshots:
            self.history.record(history_values(s), s.at)
        self.latest = snapshots[-1]
        self._subs = []
        self.started = self.closed = False

    def subscribe(self, fn):
        self._subs.append(fn)
        return lambda: self._subs.remove(fn)

    def start(self) -> None:
        self.started = True
        self.tick()

    def tick(self, snap: Snapshot | None = None) -> None:
        for fn in list(self._subs):
            fn(snap or self.latest)

    def close(self) -> None:
        self.closed = True

    stop = close


def snapshots(n: int = 30) -> list[Snapshot]:
    """A GPU box with two H100s and two servers, as a fixed history of ``n`` samples."""
    out = []
    for i in range(n):
        g0 = FakeGpu("NVIDIA H100 80GB HBM3", total=80 * GIB, used=int((38 + i % 7) * GIB), util=20 + (i * 7) % 60,
                     temp=41 + i % 5, power_mw=(180 + i * 3) * 1000, processes=[(4242, 36 * GIB)])
        g1 = FakeGpu("NVIDIA H100 80GB HBM3", total=80 * GIB, used=int(70.5 * GIB), util=91, temp=67,
                     power_mw=610_000, processes=[(4242, 35 * GIB), (5151, 30 * GIB)])
        src = NvmlSource(lib=FakeNvml([g0, g1]))
        gpu = src.read()
        sysinfo = SystemInfo(ram_used=int(96.4 * GIB), ram_total=256 * GIB, ram_available=int(159.6 * GIB),
                             swap_used=0, swap_total=0, cpu_percent=12.0 + i % 4, cpu_count=64)
        models = (
            ModelSample("glm-5", 4242, Usage(4242, (4242,), rss_bytes=int(12.5 * GIB), cpu_percent=101.0,
                                             vram_bytes=71 * GIB, vram_by_gpu=((0, 36 * GIB), (1, 35 * GIB))), ServerStats(metrics="ok", tokens_per_s=38.5 + i % 3)),
            ModelSample("qwen3.5", 5151, Usage(5151, (5151,), rss_bytes=int(3.2 * GIB), cpu_percent=4.0,
                                               vram_bytes=30 * GIB, vram_by_gpu=((1, 30 * GIB),)), ServerStats(metrics="ok", tokens_per_s=None)),
        )
        out.append(Snapshot(i + 1, 1_700_000_000.0 + i, gpu, sysinfo, models))
    return out


class FakeChatSession:
    """Scripted replies: each ``stream()`` plays the next script; ``gate`` holds a reply open."""

    def __init__(self, scripts: list[list] | None = None, delay: float = 0.0) -> None:
        self.scripts = list(scripts or [])
        self.thinking: bool | None = None
        self.sent: list[str] = []
        self.tool_results_sent: list[dict] = []
        self.resets = 0
        self.delay = delay
        self.gate: asyncio.Event | None = None
        self.cancelled = False

    async def _play(self):
        script = self.scripts.pop(0) if self.scripts else [ev.Content("ok"), ev.Done("stop")]
        self.cancelled = False
        try:
            for item in script:
                if item == "wait":
                    self.gate = asyncio.Event()
                    await self.gate.wait()
                    if self.cancelled:  # as the core client does: the reply ends "cancelled"
                        yield ev.Done("cancelled")
                        return
                    continue
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield item
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def stream(self, text: str):
        self.sent.append(text)
        return self._play()

    def tool_results(self, results: dict):
        self.tool_results_sent.append(dict(results))
        return self._play()

    def regenerate(self):
        if not self.sent:
            return None
        self.regenerated = getattr(self, "regenerated", 0) + 1
        return self.sent[-1], self._play()

    def reset(self) -> None:
        self.resets += 1

    async def cancel(self):
        self.cancelled = True
        if self.gate is not None:
            self.gate.set()
        return None


def reply(reasoning: str = "", content: str = "", tokens: int = 42) -> list:
    out: list = []
    if reasoning:
        out += [ev.Reasoning(w + " ") for w in reasoning.split()]
    if content:
        out += [ev.Content(w + " ") for w in content.split(" ")]
    stats = ev.Stats(ttft_s=0.12, elapsed_s=1.5, prompt_tokens=20, completion_tokens=tokens, tokens_per_s=35.2,
                     tokens_per_s_source="server")
    out.append(ev.Done("stop", stats=stats))
    return out


class FakeBackend:
    """The UI's door (:class:`tui.ui.door.CoreDoor`) over fixed states; records every verb.

    Implements every method of the door (``tests/test_backend_protocol.py`` checks the names
    and signatures). Where the real core is cheap and local it is used (logs, the files a
    delete would remove, saved bench/eval reports); what needs a network, a GPU or a running
    server answers as the core does when that is missing: a one-line error (download plans,
    bench and eval sessions; tests that need them set ``be.bench_session = …``), no memory
    fit, no router, no first-frame states (the first status poll fills the table).
    """

    def __init__(self, reg: registry.Registry, states: dict[str, ModelState] | None = None,
                 sampler: FakeSampler | None = None, chat: dict[str, FakeChatSession] | None = None) -> None:
        self.registry = reg
        self.states = dict(states or {n: state(n, "stopped") for n in reg.models})
        self.calls: list[tuple[str, str]] = []
        self.fake_sampler = sampler or FakeSampler(snapshots(1))
        self.chat = chat or {}
        self.lock = threading.Lock()
        self.ready_after_polls = 1
        self._polls: dict[str, int] = {}
        self.verb_gate: threading.Event | None = None  # holds verbs in flight (pending tests)

    # servers
    def first_status(self):
        return {}

    def router_view(self):
        return None, {}

    def status(self):
        with self.lock:
            for n, s in self.states.items():
                if s.state in ("starting", "loading"):
                    self._polls[n] = self._polls.get(n, 0) + 1
                    if self._polls[n] >= self.ready_after_polls:
                        self.states[n] = state(n, "ready", pid=s.pid, port=s.port, url=s.url)
            return [self.states[n] for n in self.registry.models]

    def state_of(self, name):
        return next(s for s in self.status() if s.name == name)

    def _verb(self, verb, name, new):
        if self.verb_gate is not None:
            self.verb_gate.wait(10)
        with self.lock:
            self.calls.append((verb, name))
            self.states[name] = new
            return new

    def start(self, name):
        port = self.registry.models[name].default_port
        return self._verb("start", name, state(name, "starting", pid=10_000 + len(self.calls), port=port,
                                               url=f"http://127.0.0.1:{port}/v1"))

    def stop(self, name):
        return self._verb("stop", name, state(name, "stopped"))

    def kill(self, name):
        return self._verb("kill", name, state(name, "stopped"))

    def restart(self, name):
        port = self.registry.models[name].default_port
        return self._verb("restart", name, state(name, "starting", pid=20_000 + len(self.calls), port=port,
                                                 url=f"http://127.0.0.1:{port}/v1"))

    def stop_all(self):
        with self.lock:
            for n, s in self.states.items():
                if s.running:
                    self.calls.append(("stop", n))
                    self.states[n] = state(n, "stopped")
            self.calls.append(("stop_all", "*"))
        return []

    def delete_files(self, name):
        return self._verb("delete_files", name, self.states[name])

    def command_line(self, name):
        return f"llama-server -m models/{name}.gguf --port {self.registry.models[name].default_port}"

    # files
    def files(self):
        return {"glm-5": "partial", "qwen3.5": "missing", "glm-4.7-flash": "present", "smollm2": "present"}

    def download_rows(self, name):
        if name == "glm-5":
            return {"UD-IQ2_XXS": {"status": "partial", "bytes_done": 61 * GIB, "bytes_total": 241 * 10**9},
                    "UD-TQ1_0": {"status": "missing", "bytes_done": 0, "bytes_total": None}}
        return {}

    def deletable(self, name):
        return supervisor.delete_files(self.registry, name, dry_run=True)

    def download_plan(self, name):
        raise DownloadError(f"{name}: the fake backend reaches no Hub")

    def memory_fit(self, name, plan):
        return None

    def download_run(self, plan, on_progress, cancel):
        raise DownloadError("the fake backend downloads nothing")

    # logs
    def log_path(self, name):
        return self.registry.log_file(name)

    def follower(self, name, backlog=200):
        return logfiles.Follower(self.log_path(name), backlog=backlog)

    def connect(self, name):
        from tui.core.connect import connect

        m = self.registry.models[name]
        return connect(m, f"http://127.0.0.1:{m.default_port}/v1", ssh_host="me@gpu-box")

    def last_log_lines(self, name, n=15):
        return logfiles.tail(self.log_path(name), n, current_run=True)

    # telemetry
    def sampler(self, servers, interval=1.0):
        return self.fake_sampler

    def server_ref(self, state):
        return ServerRef(state.name, state.pid, state.url)

    # bench and eval
    def bench_session(self, name, workloads, options):
        raise BenchError(f"{name}: the fake backend runs no benchmark")

    def bench_reports(self, name, last=5):
        return bench_reports(self.registry.logs_dir, name, last)

    def eval_session(self, name, options):
        raise EvalError(f"{name}: the fake backend runs no eval")

    def eval_reports(self, name, last=5):
        return eval_reports(self.registry.logs_dir, name, last)

    # chat
    def chat_session(self, name):
        return self.chat.setdefault(name, FakeChatSession())


def demo_states() -> dict[str, ModelState]:
    """glm-5 ready, qwen3.5 loading, glm-4.7-flash crashed, smollm2 stopped."""
    return {
        "glm-5": state("glm-5", "ready", pid=4242, port=8001, url="http://127.0.0.1:8001/v1", quant="UD-IQ2_XXS",
                       uptime_s=3720),
        "qwen3.5": state("qwen3.5", "loading", pid=5151, port=8002, url="http://127.0.0.1:8002/v1",
                         quant="MXFP4_MOE", stage="loading tensors", load_elapsed_s=40, load_eta_s=95),
        "glm-4.7-flash": state("glm-4.7-flash", "crashed", exit={"code": 1, "signal": None,
                                                                 "reason": "exited with code 1", "at": 0},
                               last_error="server exited with code 1",
                               last_log_lines=[x.format(name="glm-4.7-flash", port=8003) for x in CRASH_LINES[1:]]),
        "smollm2": state("smollm2", "stopped"),
    }


def simple_ns(**kw):
    return SimpleNamespace(**kw)
