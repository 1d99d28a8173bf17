"""Messages that workers post to the app; handlers on the app and panes own all state.

Workers (threads or async tasks) never touch widgets: they call ``post_message`` with one
of these. Messages that only carry the latest value (``StatesPolled``, ``TelemetrySampled``,
``LogsPending``, ``DownloadProgress``) may replace an older queued one of the same kind, so a
busy UI drops stale samples instead of falling behind.

They are dataclasses, as Textual's own are (``Input.Changed``): ``Message.__post_init__``
does what ``Message.__init__`` did, and the generated ``__init__`` calls it. ``event`` makes
them with ``eq=False, repr=False``: two messages are never the same event because their fields
match, Textual's own repr stays, and the class is made in a third of the time (they are all
made before the TUI's first frame). Each has a docstring, which also spares dataclasses
building one from the signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

#: the dataclass decorator of every message here (see the module's docstring)
event = dataclass(eq=False, repr=False)


@event
class StatesPolled(Message):
    """One ``supervisor.status`` result: a ModelState per model (``partial``: only some)."""

    states: list[Any]
    partial: bool = False

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatesPolled) and not self.partial and not message.partial


@event
class ActionDone(Message):
    """A start/stop/restart/kill finished: ``state`` after it, or ``error`` (one line)."""

    name: str
    verb: str
    state: Any = None
    error: str | None = None


@event
class StopAllDone(Message):
    """Every server stopped (q's stop all and quit); the ones that would not stop, one line each."""

    errors: list[str]


@event
class TelemetrySampled(Message):
    """A telemetry snapshot (and the sampler's history, read-only)."""

    snapshot: Any
    history: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TelemetrySampled)


@event
class LogsPending(Message):
    """New lines wait in a log feed's buffer for ``model`` (the pane drains it)."""

    model: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LogsPending) and message.model == self.model


@event
class DownloadProgress(Message):
    """One event of a running download (progress, a file done, a retry)."""

    model: str
    event: Any

    def can_replace(self, message: Message) -> bool:
        return (isinstance(message, DownloadProgress) and message.model == self.model
                and getattr(message.event, "kind", None) == getattr(self.event, "kind", None) == "progress")


@event
class DownloadFinished(Message):
    """A download ended: done, cancelled or failed, said in one line."""

    model: str
    ok: bool
    text: str


@event
class DownloadPlanned(Message):
    """A download's plan (or why there is none), and whether it fits this machine's memory."""

    model: str
    plan: Any = None
    error: str | None = None
    fit: Any = None  # memfit.Fit: will it fit this machine's memory (None when not known)


@event
class FilesChanged(Message):
    """Files on disk changed (a download ended, or found the quant already there): read them again."""


@event
class FilesRead(Message):
    """The models table read the files on disk (it bubbles to the app: the downloads pane follows)."""


@event
class RegistryReloaded(Message):
    """models.json changed on disk: the new registry, or the problems that keep the old one."""

    registry: Any = None
    problems: list[str] = field(default_factory=list)
