"""Which models the router can reach: a table of :class:`Backend`, refreshed from the supervisor.

A request names a model by its registry name or by its alias (the name the server itself
answers to). The table is refreshed at most every ``ttl`` seconds, and again — at most every
``min_gap`` seconds — when a request names a model that is unknown or not ready yet (a model
just started shows up without waiting for the next period). ``supervisor.status`` probes
``/health`` with blocking HTTP, so it runs in a worker thread, one refresh at a time.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: states in which a request is forwarded
READY_STATES = ("ready",)
#: states in which the model is coming: 503 with Retry-After
COMING_STATES = ("starting", "loading")
#: states listed by /v1/models (a running process, or a reachable external server)
LISTED_STATES = ("starting", "loading", "ready", "unhealthy", "stopping")


@dataclass(frozen=True)
class Backend:
    """One model as the router sees it."""

    name: str
    state: str
    url: str | None = None  # OpenAI base URL, ends in /v1
    aliases: tuple[str, ...] = ()
    served_name: str | None = None  # what the server expects in "model" (None: it does not care)
    api_key: str | None = field(default=None, repr=False)  # the backend's own key, sent by the router
    engine: str = ""
    port: int | None = None
    since: float | None = None
    detail: str | None = None  # last error, stage … for messages

    @property
    def origin(self) -> str | None:
        """``http://host:port`` (the URL without its ``/v1``)."""
        if not self.url:
            return None
        u = self.url.rstrip("/")
        return u[:-3] if u.endswith("/v1") else u

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


Provider = Callable[[], "Iterable[Backend] | Awaitable[Iterable[Backend]]"]


class BackendTable:
    """A cached view over a provider (``backends()`` callable, sync or async)."""

    def __init__(self, provider: Provider, *, ttl: float = 1.0, min_gap: float = 0.2):
        self._provider = provider
        self.ttl, self.min_gap = ttl, min_gap
        self._items: list[Backend] = []
        self._by_name: dict[str, Backend] = {}
        self._at = float("-inf")
        self._task: asyncio.Task | None = None
        self.last_error: str | None = None

    async def refresh(self) -> None:
        """Fetch once; concurrent callers share the same fetch."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._fetch())
        await asyncio.shield(self._task)

    async def _fetch(self) -> None:
        try:
            if inspect.iscoroutinefunction(self._provider):
                items = await self._provider()
            else:
                items = await asyncio.to_thread(lambda: list(self._provider()))
                if inspect.isawaitable(items):  # a sync callable that returned an awaitable
                    items = await items
            items = list(items)
            self.last_error = None
        except Exception as exc:  # keep serving the last good table
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._at = time.monotonic()
            return
        by: dict[str, Backend] = {}
        for b in items:  # registry names win over aliases
            by.setdefault(b.name, b)
        for b in items:
            for a in b.aliases:
                by.setdefault(a, b)
        self._items, self._by_name, self._at = items, by, time.monotonic()

    async def all(self) -> list[Backend]:
        if time.monotonic() - self._at > self.ttl:
            await self.refresh()
        return list(self._items)

    async def lookup(self, model: str) -> Backend | None:
        """The backend for a model name or alias; refreshes when it is unknown or not ready."""
        if time.monotonic() - self._at > self.ttl:
            await self.refresh()
        b = self._by_name.get(model)
        if (b is None or b.state not in READY_STATES) and time.monotonic() - self._at > self.min_gap:
            await self.refresh()
            b = self._by_name.get(model)
        return b

    def known(self) -> list[str]:
        return [b.name for b in self._items if b.state in LISTED_STATES]


# --- the supervisor as provider --------------------------------------------------------------

class RegistryBackends:
    """``backends()`` for ``llmdeck serve``: the registry (re-read when models.json changes)
    and ``supervisor.status`` for the state and URL of each model."""

    def __init__(self, registry_path: str | Path, status: Callable[[Any], list[Any]] | None = None):
        self.path = Path(registry_path)
        self._status = status
        self._reg = None
        self._mtime: float | None = None

    def registry(self):
        from tui.core import registry

        try:
            m = self.path.stat().st_mtime
        except OSError:
            m = None
        if self._reg is None or m != self._mtime:
            try:
                self._reg = registry.load(self.path)
            except registry.RegistryError:
                if self._reg is None:
                    raise
                # a half-edited models.json: keep the last good one
            self._mtime = m
        return self._reg

    def __call__(self) -> list[Backend]:
        from tui.core import engines

        reg = self.registry()
        if self._status is None:
            from tui.core import supervisor

            self._status = supervisor.status
        out = []
        for st in self._status(reg):
            m = reg.models.get(st.name)
            if m is None:
                continue
            eng = engines.get_engine(m.engine)
            served = eng.served_name(m) if hasattr(eng, "served_name") else m.served_name
            aliases = tuple(dict.fromkeys(a for a in (m.alias, served) if a and a != m.name))
            try:
                key = m.api_key()
            except Exception:
                key = None
            detail = st.last_error or (f"stage {st.stage}" if getattr(st, "stage", None) else None)
            out.append(Backend(name=m.name, state=st.state, url=st.url, aliases=aliases, served_name=served,
                               api_key=key, engine=m.engine, port=st.port, since=st.since, detail=detail))
        return out
