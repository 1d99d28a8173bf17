"""Shared fixtures: the real llama-server binary and the real SmolLM2 model.

Both come from :mod:`tui.core.provision` (cached in ~/.cache/llmdeck; the first run builds
llama-server, about 10 minutes on 2 cores). ``llama_server`` starts a bare llama-server
process on a free loopback port for tests that do not go through the supervisor.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


#: the files that take longest (a quiet 2-core run: the eval run alone is minutes of llama.cpp work), run
#: first: make test spreads whole files over xdist workers (-n 3 --dist loadfile), and a long file
#: handed out last would run alone at the end
SLOW_FILES_FIRST = ("test_eval_cli.py", "test_router_ondemand.py", "test_hub_add.py", "test_ui_keys.py",
                    "test_chat_live.py", "test_soak.py", "test_bench_server.py", "test_ui_bench.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    from tui.core import provision

    return provision.build_llama_server()


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    from tui.core import provision

    return provision.demo_model()


@pytest.fixture(scope="session")
def templates_dir() -> Path:
    from tui.core import provision

    return provision.templates_dir()


def wait_http_ok(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


class RunningServer:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log
        self.base = f"http://127.0.0.1:{port}"
        self.base_url = self.base + "/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class LlamaServers:
    """Starts bare llama-server processes (not through the supervisor), each on a free loopback
    port, and kills them all at :meth:`stop_all`. Call it: ``start(*extra_args, model=…,
    parallel=…, template=…, ctx=…, threads=…, alias=…, metrics=…)`` → a ready RunningServer (its
    /health answered 200), or a RuntimeError with the tail of its log. ``model``: a GGUF path (the
    SmolLM2 demo model by default); ``parallel``: ``-np`` (llama-server's own default if None);
    ``template``: a chat template's file name in llama.cpp's templates dir (``--jinja
    --chat-template-file``); ``metrics``: ``--metrics``."""

    def __init__(self, bin_: Path, gguf: Path, templates: Path, log_dir: Path):
        self.bin, self.gguf, self.templates, self.log_dir = bin_, gguf, templates, log_dir
        self.started: list[RunningServer] = []

    def __call__(self, *extra: str, model: Path | None = None, parallel: int | None = None,
                 template: str | None = None, ctx: int = 2048, threads: int = 2, alias: str = "smollm2",
                 metrics: bool = True, timeout: float = 120) -> RunningServer:
        port = free_port()
        log = self.log_dir / f"llama-{alias}-{port}.log"
        argv = [str(self.bin), "-m", str(model or self.gguf), "--host", "127.0.0.1", "--port", str(port),
                "-c", str(ctx), "--threads", str(threads), "--alias", alias]
        if parallel is not None:
            argv += ["--parallel", str(parallel)]
        if template is not None:
            argv += ["--jinja", "--chat-template-file", str(self.templates / template)]
        if metrics:
            argv.append("--metrics")
        with open(log, "wb") as fh:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([*argv, *extra], stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        srv = RunningServer(proc, port, log)
        self.started.append(srv)
        try:
            wait_http_ok(srv.base + "/health", timeout, proc)
        except Exception:
            srv.stop()
            raise RuntimeError(f"llama-server failed to start: {log.read_text()[-2000:]}")
        return srv

    def stop_all(self) -> None:
        for s in self.started:
            s.stop()


@pytest.fixture
def llama_server(llama_server_bin, smollm_gguf, templates_dir, tmp_path):
    """Factory (:class:`LlamaServers`): ``llama_server(*extra_args, parallel=2, template=…)`` → a
    ready RunningServer, killed at the end of the test."""
    servers = LlamaServers(llama_server_bin, smollm_gguf, templates_dir, tmp_path)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def module_llama_server(llama_server_bin, smollm_gguf, templates_dir, tmp_path_factory):
    """The same factory for module- and class-scoped fixtures: what it started is killed at the
    module's end at the latest (a class-scoped fixture stops its own server sooner)."""
    servers = LlamaServers(llama_server_bin, smollm_gguf, templates_dir, tmp_path_factory.mktemp("llama"))
    yield servers
    servers.stop_all()


def kill_servers(reg) -> None:
    """SIGKILL every server a test registry has running (only the ones its pid files name)."""
    from tui.core import supervisor

    for st in supervisor.status(reg, probe=False):
        if st.pid:
            try:
                os.killpg(st.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def make_deck(tmp_path, llama_server_bin, smollm_gguf):
    """Factory: ``make_deck({"name": {extra keys}}, stop_grace_s=10)`` → a loaded Registry of
    SmolLM2 models on free ports (small context, one thread); their servers are killed at the end."""
    from tui.core import registry

    made = []

    def make(models: dict, *, stop_grace_s: float = 10, file: str = "models.json"):
        entries = {}
        for name, extra in models.items():
            entry = {"model_path": str(smollm_gguf), "default_port": free_port(),
                     "params": {"ctx_size": 512, "threads": 1, "parallel": 1}}
            entry.update(extra)
            entries[name] = entry
        p = tmp_path / file
        p.write_text(json.dumps({"settings": {"llama_server": str(llama_server_bin), "stop_grace_s": stop_grace_s},
                                 "models": entries}, indent=2))
        reg = registry.load(p)
        made.append(reg)
        return reg

    yield make
    for reg in made:
        kill_servers(reg)


# --- the local Hub (tests/hubserver.py): one server per module, reset for each test ------------------

@pytest.fixture(scope="module")
def hub_spec():
    """What this module's ``hub`` serves (hubserver.HubSpec); a module overrides this fixture
    (e.g. hubsearch's GLM repos on a SearchHubServer, or a private repo's token)."""
    from hubserver import HubSpec

    return HubSpec()


@pytest.fixture(scope="module")
def hub(hub_spec, tmp_path_factory):
    """The module's local Hub-protocol server (the real Hub is never reached), started once;
    tests reset it through ``hub_env``. ``hub.repos`` is what ``hub_spec.populate`` returned."""
    root = tmp_path_factory.mktemp("hub")
    repos = hub_spec.populate(root)
    with hub_spec.server(root) as srv:
        srv.token, srv.repos = hub_spec.token, repos
        yield srv


@pytest.fixture
def hub_env(hub, tmp_path, monkeypatch) -> dict[str, str]:
    """Per test: the hub reset (hubserver.HubServer.reset), and this process's environment
    pointed at it as ``hubserver.hub_environ`` says; returns that environment for subprocesses."""
    from hubserver import hub_environ

    hub.reset()
    env = hub_environ(hub, tmp_path)
    for k in [k for k in os.environ if k.startswith(("HF_", "HUGGING"))]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        if k.startswith("HF_"):
            monkeypatch.setenv(k, v)
    return env
