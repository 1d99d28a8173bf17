"""The TUI's only door to the core: :class:`Backend` implements :class:`tui.ui.door.CoreDoor`.

Widgets and the app never call the supervisor, HTTP, NVML or the file system directly: they
ask a :class:`Backend`. Its methods may block (psutil, ``/health`` probes, the stop grace
period, HTTP): the app calls them from thread workers and posts the results as messages.
Tests hand the app another implementation of the door (``tests/ui_fakes.py``; a test checks
both against it) to get deterministic screens; the real-server tests use this one.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from tui.core.registry import Registry
from tui.core.verbs import download_refusal


class _OnFirstUse:
    """A core module imported when first used. The supervisor pulls in psutil and http.client
    (~40 ms): the first frame does without them (its states come from
    :func:`tui.core.states.first_status`), the status worker imports it after that frame."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


supervisor = _OnFirstUse("tui.core.supervisor")
# the log pane and the files read come after the first frame too
logfiles = _OnFirstUse("tui.core.logfiles")
modelfiles = _OnFirstUse("tui.core.modelfiles")


def one_line(exc: BaseException) -> str:
    """An exception as one line for a notification."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class ChatSession:
    """One model's conversation for the session: the core ``Conversation`` over a
    ``ChatClient`` aimed at the running server.

    ``url`` is set by the app from the supervisor's state (never looked up here, so nothing
    blocks the event loop); when the server moves (a restart on another port) the client is
    replaced and the history kept. ``thinking``: None leaves the server's default, True/False
    sends ``enable_thinking``.
    """

    def __init__(self, registry: Registry, name: str, *, tools: list | None = None,
                 max_tokens: int | None = None, system: str | None = None) -> None:
        self.registry = registry
        self.name = name
        self.url: str | None = None
        self.thinking: bool | None = None
        self.tools = tools
        self.max_tokens = max_tokens
        self.system = system
        self._conv = None
        self._client_url: str | None = None
        self.last_cancel_report = None

    def _conversation(self):
        from tui.core.chat.client import ChatClient, ChatTarget
        from tui.core.chat.conversation import Conversation

        if self._conv is None or self._client_url != self.url:
            client = ChatClient(ChatTarget.from_registry(self.registry, self.name, url=self.url))
            if self._conv is None:
                self._conv = Conversation(client, system=self.system, tools=self.tools,
                                          max_tokens=self.max_tokens)
            else:
                old, self._conv.client = self._conv.client, client
                self._closing = old  # closed after the next turn (it may hold a connection)
            self._client_url = self.url
        self._conv.thinking = self.thinking
        return self._conv

    async def _run(self, text: str | None):
        conv = self._conversation()
        old = getattr(self, "_closing", None)
        if old is not None:
            self._closing = None
            await old.aclose()
        async for ev in conv.send(text):
            yield ev

    def stream(self, text: str):
        """The reply to a new user message, as core chat events."""
        return self._run(text)

    def regenerate(self) -> tuple[str, object] | None:
        """(the last prompt, the new reply's events) after forgetting the last reply; None when
        nothing was asked yet."""
        conv = self._conversation()
        text = conv.drop_last_exchange()
        return None if text is None else (text, self._run(text))

    def tool_results(self, results: dict[str, str]):
        """Answer the last reply's tool calls (id → result text) and continue."""
        conv = self._conversation()
        for call_id, text in results.items():
            conv.add_tool_result(call_id, text)
        return self._run(None)

    async def cancel(self) -> str | None:
        """Stop the running reply (closes the stream); one line on whether the server stopped."""
        if self._conv is None:
            return None
        report = await self._conv.cancel(wait=3.0)
        self.last_cancel_report = report
        return report.message if report is not None and report.busy is not False else None

    def reset(self) -> None:
        if self._conv is not None:
            self._conv.reset()

    @property
    def history(self) -> list[dict]:
        return list(self._conv.messages) if self._conv is not None else []


class RegistryWatch:
    """Notices edits of models.json (by hand, ``llmdeck add/edit``, another TUI) from the
    status thread: ``check()`` is a ``stat`` when nothing changed, and on a change returns
    ``("ok", Registry)`` or ``("error", [one line per problem])`` — the last good registry stays
    in use then, and the same broken file is reported once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.stamp = self._stamp()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def check(self) -> tuple[str, Any] | None:
        from tui.core import registry as registry_mod

        stamp = self._stamp()
        if stamp == self.stamp:
            return None
        self.stamp = stamp
        try:
            return "ok", registry_mod.load(self.path)
        except registry_mod.RegistryError as exc:
            return "error", [f"{exc.path}: {p}" for p in exc.problems] or [str(exc)]


class Backend:
    """The real core: ``tui.core.supervisor``, logs, model files, telemetry, chat, downloads.

    ``chat_options`` go to every :class:`ChatSession` (``tools``, ``max_tokens``, ``system``).
    """

    def __init__(self, registry: Registry, *, chat_options: dict | None = None) -> None:
        self.registry = registry
        self.chat_options = dict(chat_options or {})

    # -- servers -------------------------------------------------------------------------

    def first_status(self) -> dict[str, Any]:
        """The states a cheap read can tell, for the first frame (``tui.core.states.first_status``:
        pid files and one ``/health`` each, no psutil); the others come from :meth:`status`."""
        from tui.core.states import first_status

        return first_status(self.registry)

    def status(self) -> list[supervisor.ModelState]:
        return supervisor.status(self.registry)

    def router_view(self) -> tuple[dict | None, dict[str, dict]]:
        """The running router's run file (None: no router) and each model's on-demand fields."""
        from tui.core import ondemand

        router = ondemand.read_router(self.registry.run_dir)
        return router, ondemand.status_fields(self.registry, router)

    def state_of(self, name: str) -> supervisor.ModelState:
        return supervisor.state_of(self.registry, name)

    def start(self, name: str) -> supervisor.ModelState:
        from tui.core import ondemand

        ondemand.stop_group_for(self.registry, name)  # swap_group: the others of its group stop first
        return supervisor.start(self.registry, name)

    def stop(self, name: str) -> supervisor.ModelState:
        return supervisor.stop(self.registry, name)

    def kill(self, name: str) -> supervisor.ModelState:
        """SIGKILL at once: a stop with no grace period."""
        return supervisor.stop(self.registry, name, grace=0)

    def deletable(self, name: str) -> tuple[list, int]:
        """The default quant's downloaded files and their bytes (nothing is removed)."""
        return supervisor.delete_files(self.registry, name, dry_run=True)

    def delete_files(self, name: str) -> supervisor.ModelState:
        """Delete the default quant's downloaded files (refused while its server runs)."""
        supervisor.delete_files(self.registry, name)
        return supervisor.state_of(self.registry, name, probe=False)

    def restart(self, name: str) -> supervisor.ModelState:
        return supervisor.restart(self.registry, name)

    def stop_all(self) -> list[str]:
        """Stop every running server; returns one line per failure."""
        errors = []
        for st in supervisor.status(self.registry, probe=False):
            if st.engine == "external" or not (st.pid or st.restarting_in_s):
                continue
            try:
                supervisor.stop(self.registry, st.name)
            except Exception as exc:  # noqa: BLE001 — go on with the others, report each
                errors.append(f"{st.name}: {one_line(exc)}")
        return errors

    def command_line(self, name: str) -> str:
        """The exact command a start would run (or why it cannot)."""
        model = self.registry.get(name)
        if model.engine == "external":
            return f"(engine external: llmdeck does not start it; it is reached at {model.base_url})"
        try:
            spec = supervisor.launch_spec(self.registry, name, dry_run=True)
        except Exception as exc:  # noqa: BLE001 — shown in the details dialog
            return f"(cannot build the command: {one_line(exc)})"
        return spec.shell_line()

    # -- files -----------------------------------------------------------------------------

    def files(self) -> dict[str, str]:
        """Model name → on-disk status of its default quant: present/partial/incomplete/missing/remote."""
        out = {}
        for name, model in self.registry.models.items():
            if model.engine == "external":
                out[name] = "remote"
                continue
            try:
                out[name] = modelfiles.local_files(self.registry, model).status
            except OSError:
                out[name] = "unknown"
        return out

    # -- logs ------------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.registry.log_file(name)

    def follower(self, name: str, backlog: int = 200) -> logfiles.Follower:
        return logfiles.Follower(self.log_path(name), backlog=backlog)

    def connect(self, name: str):
        """How to reach the model's server (connect.Connect): where it runs now, else its default port."""
        from tui.core.connect import connect

        spec = supervisor.endpoints(self.registry, name)
        return connect(self.registry.get(name), spec.base_url) if spec.base_url else None

    def last_log_lines(self, name: str, n: int = 15) -> list[str]:
        return logfiles.tail(self.log_path(name), n, current_run=True)

    # -- telemetry ---------------------------------------------------------------------------

    def sampler(self, servers: Callable[[], list[Any]], interval: float = 1.0):
        """A telemetry sampler over ``servers()`` (ServerRef list); started by the app."""
        from tui.core.telemetry.sampler import Sampler

        return Sampler(servers, interval=interval)

    def server_ref(self, state: supervisor.ModelState):
        from tui.core.telemetry.sampler import ServerRef

        key = None
        try:
            key = self.registry.get(state.name).api_key()
        except Exception:  # noqa: BLE001 — the model left the registry meanwhile
            pass
        return ServerRef(state.name, state.pid, state.url, key)

    # -- downloads ---------------------------------------------------------------------------

    def download_rows(self, name: str) -> dict[str, dict]:
        """Per quant: ``{"status", "bytes_done", "bytes_total"}`` from the disk (no network)."""
        model = self.registry.get(name)
        if download_refusal(model):  # nothing to download: no quant table (tui.core.verbs)
            return {}
        return modelfiles.download_status(self.registry, model)

    def download_plan(self, name: str):
        """The plan of the default quant (lists the Hub: network)."""
        from tui.core.downloads import make_plan

        return make_plan(self.registry, self.registry.get(name))

    def memory_fit(self, name: str, plan):
        """Will the planned model fit this machine's VRAM + RAM (reads NVML and psutil now)."""
        from tui.core import memfit

        return memfit.of_plan(plan, self.registry.get(name))

    def download_run(self, plan, on_progress, cancel):
        """Run a plan to the end (or until ``cancel`` is set); returns the core's Result."""
        from tui.core.downloads import Download

        return Download(plan, cancel=cancel).run(on_progress)

    # -- bench -------------------------------------------------------------------------------

    def bench_session(self, name: str, workloads: list, options):
        """A core ``BenchSession`` (checks the model and its server: blocks, raises one-line errors)."""
        from tui.core.bench import BenchSession

        return BenchSession(self.registry, name, workloads=workloads, options=options)

    def bench_reports(self, name: str, last: int = 5) -> list:
        """The last ``last`` saved reports of ``name`` (``logs/bench/``), oldest first."""
        from tui.core.bench import list_reports

        return list_reports(self.registry.logs_dir, name, last)

    # -- eval --------------------------------------------------------------------------------

    def eval_session(self, name: str, options):
        """A core ``EvalSession`` (checks the model and its server, fetches BFCL's package the
        first time: blocks, raises one-line errors)."""
        from tui.core.eval import EvalSession

        return EvalSession(self.registry, name, options)

    def eval_reports(self, name: str, last: int = 5) -> list:
        """The last ``last`` saved eval reports of ``name`` (``logs/eval/``), oldest first."""
        from tui.core.eval import list_reports

        return list_reports(self.registry.logs_dir, name, last)

    # -- chat --------------------------------------------------------------------------------

    def chat_session(self, name: str) -> ChatSession:
        return ChatSession(self.registry, name, **self.chat_options)


class HubAdd:
    """The add screen's door to the Hub (``a``): search, a repo's quant table, and writing the
    entry (:mod:`tui.core.downloads.quants`, :mod:`tui.core.hubentry`). Blocking: call from
    thread workers. Every error is a one-line ``DownloadError``/``RegistryError``."""

    def __init__(self, registry_path: Path) -> None:
        self.registry_path = registry_path

    def parse(self, text: str) -> tuple[str, str | None]:
        from tui.core.downloads.quants import parse_repo

        return parse_repo(text)

    def search(self, text: str, limit: int = 30) -> list:
        from tui.core.downloads.quants import search

        return search(text, limit=limit)

    def table(self, repo_id: str):
        from tui.core.downloads.quants import quant_table

        return quant_table(repo_id)

    def add(self, table, quant: str) -> tuple[str, Registry, list[str]]:
        """Write the entry for ``quant``: (name, the new registry, warnings and notes)."""
        from tui.core import hubentry, registry

        reg = registry.load(self.registry_path)
        built = hubentry.build(table, quant=quant, registry=reg)
        new = registry.add_model(self.registry_path, built.name, built.entry)
        return built.name, new, built.warnings + built.notes
