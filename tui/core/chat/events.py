"""The chat event stream: plain dataclasses, the same whichever server produced them.

A turn yields any number of text and tool-call events and ends with exactly one terminal
event, :class:`Done` or :class:`Error`. Text events are deltas: the same reply may arrive
in different pieces, so compare streams with :func:`coalesce`, which merges adjacent deltas
of the same kind (the property the raw-tag parser guarantees: every chunking of the same
bytes gives the same coalesced events).

Decisions the issue left open:

* A cancelled turn ends with ``Done(finish_reason="cancelled")`` (the user asked for it; it
  is not an error). A stream that closes without a finish reason ends with
  ``Error(kind="interrupted")``; the text received before stays in the history.
* ``ToolCall.raw`` is the text the call came from: the joined ``arguments`` string for
  server-parsed calls, the tag block (``<tool_call>…``) for calls parsed from raw text.
  ``ok`` is true when the arguments parsed as JSON (``arguments`` is then the value); when
  false, ``arguments`` is None and ``raw`` is what arrived.
* ``Error.kind`` is one of :data:`ERROR_KINDS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

ERROR_KINDS = (
    "context_overflow",  # HTTP 400 exceed_context_size_error (or vLLM's wording)
    "auth",              # HTTP 401/403
    "loading",           # HTTP 503 while the model loads
    "connect",           # connection refused / DNS / unreachable
    "timeout",           # no byte within the read timeout
    "http",              # any other HTTP error status
    "server",            # an {"error": …} payload inside the stream
    "interrupted",       # the stream closed without a finish reason
    "protocol",          # the server sent something that is not an SSE/JSON chunk
)


@dataclass(slots=True)
class _Text:
    """A text delta (the base of :class:`Reasoning` and :class:`Content`)."""

    text: str


@dataclass(slots=True)
class Reasoning(_Text):
    """Thinking text (``reasoning_content``/``reasoning`` or raw ``<think>`` text)."""

    type: ClassVar[str] = "reasoning"


@dataclass(slots=True)
class Content(_Text):
    """Answer text."""

    type: ClassVar[str] = "content"


@dataclass(slots=True)
class _Call:
    """What names one tool call (the base of :class:`ToolCallStarted` and :class:`ToolCall`)."""

    index: int
    id: str
    name: str


@dataclass(slots=True)
class ToolCallArgs:
    """A fragment of a call's arguments as JSON text (join them per ``index``)."""

    index: int
    text: str
    type: ClassVar[str] = "tool_call_args"


@dataclass(slots=True)
class ToolCallStarted(_Call):
    """A tool call whose name is complete; its arguments follow as :class:`ToolCallArgs`."""

    type: ClassVar[str] = "tool_call_started"


@dataclass(slots=True)
class ToolCall(_Call):
    """A complete tool call (``index``, ``id``, ``name``): ``arguments`` is the parsed JSON
    when ``ok``."""

    arguments: Any
    raw: str
    ok: bool
    type: ClassVar[str] = "tool_call"

    def arguments_json(self) -> str:
        """The arguments as a JSON string, as the OpenAI history wants them."""
        import json

        if not self.ok:
            return self.raw
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(slots=True)
class Usage:
    """Token counts and server timings, whenever a chunk carries them."""

    usage: dict | None
    timings: dict | None
    type: ClassVar[str] = "usage"


@dataclass(slots=True)
class Stats:
    """What a turn cost. ``tokens_per_s_source`` is ``"server"`` (llama.cpp ``timings``) or
    ``"measured"`` (completion tokens over the time from first to last token)."""

    ttft_s: float | None = None
    elapsed_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    tokens_per_s: float | None = None
    tokens_per_s_source: str | None = None
    prompt_tokens_per_s: float | None = None
    #: a forced-thinking reply that ended without ``</think>`` (all of it shown as reasoning)
    reasoning_unterminated: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class Done:
    """The turn finished: ``stop``, ``length``, ``tool_calls``, ``cancelled`` or whatever the
    server said (unknown values are passed through)."""

    finish_reason: str | None
    usage: dict | None = None
    timings: dict | None = None
    stats: Stats = field(default_factory=Stats)
    type: ClassVar[str] = "done"


@dataclass(slots=True)
class Error:
    """The turn failed; ``message`` is one line saying what happened and what to do."""

    message: str
    status: int | None = None
    kind: str = "http"
    type: ClassVar[str] = "error"


Event = Reasoning | Content | ToolCallStarted | ToolCallArgs | ToolCall | Usage | Done | Error
TERMINAL = (Done, Error)


def coalesce(events: list) -> list:
    """Merge adjacent Reasoning/Content deltas and adjacent ToolCallArgs of one call."""
    out: list = []
    for ev in events:
        prev = out[-1] if out else None
        if prev is not None and type(prev) is type(ev):
            if isinstance(ev, (Reasoning, Content)):
                out[-1] = type(ev)(prev.text + ev.text)
                continue
            if isinstance(ev, ToolCallArgs) and prev.index == ev.index:
                out[-1] = ToolCallArgs(ev.index, prev.text + ev.text)
                continue
        out.append(ev)
    return out


class EventHandler:
    """A visitor over the chat events: the one place that switches on an event's kind.

    :meth:`handle` calls the subclass's ``on_<type>(ev)`` for the event's :attr:`type`
    (``on_reasoning``, ``on_content``, ``on_tool_call_started``, ``on_tool_call_args``,
    ``on_tool_call``, ``on_usage``, ``on_done``, ``on_error``) and returns what it returns; an
    event whose method the subclass does not define is passed over (None).
    """

    def handle(self, ev: Any) -> Any:
        method = getattr(self, "on_" + ev.type, None)
        return None if method is None else method(ev)


def stats_line(stats: Stats | None, finish_reason: str | None) -> str:
    """The line both front ends show after a reply (the TUI under the answer, ``llmdeck chat``
    on stderr), e.g. ``first token 0.21 s · 41.7 tok/s · 58 tokens · prompt 31 (24 cached) ·
    2.4 s``. Figures the turn does not have are left out; ``finish: REASON`` ends the line
    unless the reply simply stopped (``length``, ``tool_calls``, ``cancelled``, …)."""
    bits = []
    if stats is not None:
        if stats.ttft_s is not None:
            bits.append(f"first token {stats.ttft_s:.2f} s")
        if stats.tokens_per_s is not None:
            bits.append(f"{stats.tokens_per_s:.1f} tok/s")
        if stats.completion_tokens is not None:
            bits.append(f"{stats.completion_tokens} tokens")
        if stats.prompt_tokens is not None:
            cached = f" ({stats.cached_tokens} cached)" if stats.cached_tokens else ""
            bits.append(f"prompt {stats.prompt_tokens}{cached}")
        if stats.elapsed_s is not None:
            bits.append(f"{stats.elapsed_s:.1f} s")
    if finish_reason and finish_reason != "stop":
        bits.append(f"finish: {finish_reason}")
    return " · ".join(bits) or (finish_reason or "")


class _JsonLine(EventHandler):
    def on_reasoning(self, ev: Reasoning | Content) -> dict:
        return {"type": ev.type, "text": ev.text}

    on_content = on_reasoning

    def on_tool_call(self, ev: ToolCall) -> dict:
        return {"type": "tool_call", "index": ev.index, "id": ev.id, "name": ev.name,
                "arguments": ev.arguments if ev.ok else ev.raw}

    def on_done(self, ev: Done) -> dict:
        return {"type": "done", "finish_reason": ev.finish_reason, "usage": ev.usage, "timings": ev.timings}

    def on_error(self, ev: Error) -> dict:
        return {"type": "error", "message": ev.message}


_JSON_LINE = _JsonLine()


def to_json(ev: Any) -> dict | None:
    """The ``llmdeck chat --json`` line for an event, or None for events not printed there
    (started/args fragments and usage: the complete call and ``done`` carry them)."""
    return _JSON_LINE.handle(ev)
