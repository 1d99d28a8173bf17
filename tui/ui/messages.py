"""Messages that workers post to the app; handlers on the app and panes own all state.

Workers (threads or async tasks) never touch widgets: they call ``post_message`` with one
of these. Messages that only carry the latest value (``StatesPolled``, ``TelemetrySampled``,
``LogsPending``, ``DownloadProgress``) may replace an older queued one of the same kind, so a
busy UI drops stale samples instead of falling behind.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class StatesPolled(Message):
    """One ``supervisor.status`` result: a ModelState per model (``partial``: only some)."""

    def __init__(self, states: list[Any], partial: bool = False) -> None:
        super().__init__()
        self.states = states
        self.partial = partial

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatesPolled) and not self.partial and not message.partial


class ActionDone(Message):
    """A start/stop/restart/kill finished: ``state`` after it, or ``error`` (one line)."""

    def __init__(self, name: str, verb: str, state: Any = None, error: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.verb = verb
        self.state = state
        self.error = error


class StopAllDone(Message):
    def __init__(self, errors: list[str]) -> None:
        super().__init__()
        self.errors = errors


class TelemetrySampled(Message):
    """A telemetry snapshot (and the sampler's history, read-only)."""

    def __init__(self, snapshot: Any, history: Any) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.history = history

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TelemetrySampled)


class LogsPending(Message):
    """New lines wait in a log feed's buffer for ``model`` (the pane drains it)."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LogsPending) and message.model == self.model


class DownloadProgress(Message):
    def __init__(self, model: str, event: Any) -> None:
        super().__init__()
        self.model = model
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return (isinstance(message, DownloadProgress) and message.model == self.model
                and getattr(message.event, "kind", None) == getattr(self.event, "kind", None) == "progress")


class DownloadFinished(Message):
    def __init__(self, model: str, ok: bool, text: str) -> None:
        super().__init__()
        self.model = model
        self.ok = ok
        self.text = text


class DownloadPlanned(Message):
    def __init__(self, model: str, plan: Any = None, error: str | None = None, fit: Any = None) -> None:
        super().__init__()
        self.model = model
        self.plan = plan
        self.error = error
        self.fit = fit  # memfit.Fit: will it fit this machine's memory (None when not known)


class RegistryReloaded(Message):
    """models.json changed on disk: the new registry, or the problems that keep the old one."""

    def __init__(self, registry: Any = None, problems: list[str] | None = None) -> None:
        super().__init__()
        self.registry = registry
        self.problems = problems or []
