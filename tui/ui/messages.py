"""Messages that workers post to the app; handlers on the app and panes own all state.

Workers (threads or async tasks) never touch widgets: they call ``post_message`` with one
of these. Messages that only carry the latest value (``StatesPolled``, ``TelemetrySampled``,
``LogsPending``, ``DownloadProgress``) may replace an older queued one of the same kind, so a
busy UI drops stale samples instead of falling behind.

They are dataclasses, as Textual's own are (``Input.Changed``): ``Message.__post_init__``
does what ``Message.__init__`` did, and the generated ``__init__`` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class StatesPolled(Message):
    """One ``supervisor.status`` result: a ModelState per model (``partial``: only some)."""

    states: list[Any]
    partial: bool = False

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatesPolled) and not self.partial and not message.partial


@dataclass
class ActionDone(Message):
    """A start/stop/restart/kill finished: ``state`` after it, or ``error`` (one line)."""

    name: str
    verb: str
    state: Any = None
    error: str | None = None


@dataclass
class StopAllDone(Message):
    errors: list[str]


@dataclass
class TelemetrySampled(Message):
    """A telemetry snapshot (and the sampler's history, read-only)."""

    snapshot: Any
    history: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TelemetrySampled)


@dataclass
class LogsPending(Message):
    """New lines wait in a log feed's buffer for ``model`` (the pane drains it)."""

    model: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LogsPending) and message.model == self.model


@dataclass
class DownloadProgress(Message):
    model: str
    event: Any

    def can_replace(self, message: Message) -> bool:
        return (isinstance(message, DownloadProgress) and message.model == self.model
                and getattr(message.event, "kind", None) == getattr(self.event, "kind", None) == "progress")


@dataclass
class DownloadFinished(Message):
    model: str
    ok: bool
    text: str


@dataclass
class DownloadPlanned(Message):
    model: str
    plan: Any = None
    error: str | None = None
    fit: Any = None  # memfit.Fit: will it fit this machine's memory (None when not known)


@dataclass
class FilesChanged(Message):
    """Files on disk changed (a download ended, or found the quant already there): read them again."""


@dataclass
class FilesRead(Message):
    """The models table read the files on disk (it bubbles to the app: the downloads pane follows)."""


@dataclass
class RegistryReloaded(Message):
    """models.json changed on disk: the new registry, or the problems that keep the old one."""

    registry: Any = None
    problems: list[str] = field(default_factory=list)
