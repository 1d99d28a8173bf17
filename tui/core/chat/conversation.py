"""A conversation: history (system prompt, user turns, replies, tool results) and its requests.

Both the CLI and the TUI drive chat through this object::

    conv = Conversation(client, system="Be brief.", tools=tools, thinking=False)
    async for ev in conv.send("What is the weather in Tokyo?"):
        ...                                  # events as ChatClient.stream yields them
    for call in conv.last.tool_calls:         # the model asked for tools
        conv.add_tool_result(call.id, run_tool(call))
    async for ev in conv.send():              # no text: continue after the tool results
        ...

Decisions:

* After a turn the reply joins the history: ``content`` (a string, possibly empty), the
  ``tool_calls`` whose arguments parsed (a call that did not parse cannot be answered), and the
  reasoning as ``reasoning_content``. Reasoning is sent back only for the replies after the last
  user message that made tool calls (the thinking of the running tool loop, which GLM-4.7 and
  Qwen3.5 templates render; templates drop older reasoning anyway).
* A turn that fails before any output (HTTP error, connection refused) leaves the history as it
  was: its user message is taken out again (``Turn.prompt`` keeps the text to retry). A turn
  that produced something — finished, cancelled or interrupted — keeps what arrived.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tui.core.chat.client import ChatClient, SlotsReport
from tui.core.chat.events import (Content, Done, Error, EventHandler, Reasoning, Stats, ToolCall, ToolCallArgs,
                                  ToolCallStarted)


@dataclass
class Turn:
    """What one :meth:`Conversation.send` produced."""

    prompt: str | None = None
    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict | None = None
    timings: dict | None = None
    stats: Stats | None = None
    error: Error | None = None

    @property
    def cancelled(self) -> bool:
        return self.finish_reason == "cancelled"


class _Recorder(EventHandler):
    """Fills a :class:`Turn` from its events; ``produced`` once any part of a reply arrived."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.reasoning: list[str] = []
        self.content: list[str] = []
        self.produced = False

    def on_content(self, ev: Content) -> None:
        self.content.append(ev.text)
        self.produced = True

    def on_reasoning(self, ev: Reasoning) -> None:
        self.reasoning.append(ev.text)
        self.produced = True

    def on_tool_call(self, ev: ToolCall) -> None:
        self.turn.tool_calls.append(ev)
        self.produced = True

    def on_tool_call_started(self, ev: ToolCallStarted | ToolCallArgs) -> None:
        self.produced = True

    on_tool_call_args = on_tool_call_started

    def on_done(self, ev: Done) -> None:
        t = self.turn
        t.finish_reason, t.usage, t.timings, t.stats = ev.finish_reason, ev.usage, ev.timings, ev.stats
        self.produced = True

    def on_error(self, ev: Error) -> None:
        self.turn.error = ev


class Conversation:
    def __init__(self, client: ChatClient, *, system: str | None = None, tools: list | None = None,
                 tool_choice: Any = None, max_tokens: int | None = None, thinking: bool | None = None,
                 params: dict | None = None, extra: dict | None = None) -> None:
        self.client = client
        self.system = system
        self.tools = tools
        self.tool_choice = tool_choice
        self.max_tokens = max_tokens
        self.thinking = thinking
        self.params = dict(params or {})
        self.extra = dict(extra or {})
        #: the history without the system prompt: user, assistant and tool messages
        self.messages: list[dict] = []
        self.turns: list[Turn] = []

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    def reset(self) -> None:
        self.messages.clear()
        self.turns.clear()

    def request_messages(self) -> list[dict]:
        """The messages to send: system prompt, then the history (see the module docstring)."""
        out: list[dict] = [{"role": "system", "content": self.system}] if self.system else []
        last_user = max((i for i, m in enumerate(self.messages) if m.get("role") == "user"), default=-1)
        for i, m in enumerate(self.messages):
            if m.get("role") == "assistant" and "reasoning_content" in m:
                if i < last_user or not m.get("tool_calls"):
                    m = {k: v for k, v in m.items() if k != "reasoning_content"}
            out.append(m)
        return out

    def drop_last_exchange(self) -> str | None:
        """Forget the last user message and everything after it (the reply, its tool calls and
        results), for a regenerate: returns that message's text to send again, or None when
        there is no user message."""
        idx = max((i for i, m in enumerate(self.messages) if m.get("role") == "user"), default=-1)
        if idx < 0:
            return None
        text = self.messages[idx].get("content")
        del self.messages[idx:]
        while self.turns and self.turns[-1].prompt is None:  # continuations after tool results
            self.turns.pop()
        if self.turns:
            self.turns.pop()
        return text if isinstance(text, str) else None

    def add_tool_result(self, tool_call_id: str, content: Any) -> None:
        """Answer a tool call; ``content`` that is not a string is sent as JSON."""
        if not isinstance(content, str):
            import json

            content = json.dumps(content, ensure_ascii=False)
        self.messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": content})

    def unanswered_tool_calls(self) -> list[ToolCall]:
        """The last turn's complete calls that have no tool result yet."""
        if not self.last:
            return []
        answered = {m.get("tool_call_id") for m in self.messages if m.get("role") == "tool"}
        return [c for c in self.last.tool_calls if c.ok and c.id not in answered]

    async def send(self, text: str | None = None) -> AsyncIterator[Any]:
        """Send ``text`` as the next user message (None: continue after tool results) and yield
        the reply's events."""
        if text is not None:
            self.messages.append({"role": "user", "content": text})
        turn = Turn(prompt=text)
        self.turns.append(turn)
        rec = _Recorder(turn)
        try:
            async for ev in self.client.stream(self.request_messages(), tools=self.tools,
                                               tool_choice=self.tool_choice, max_tokens=self.max_tokens,
                                               thinking=self.thinking, params=self.params, extra=self.extra):
                rec.handle(ev)
                yield ev
        finally:
            turn.reasoning = "".join(rec.reasoning)
            turn.content = "".join(rec.content)
            if rec.produced:
                msg: dict[str, Any] = {"role": "assistant", "content": turn.content}
                calls = [c for c in turn.tool_calls if c.ok]
                if calls:
                    msg["tool_calls"] = [{"id": c.id, "type": "function",
                                          "function": {"name": c.name, "arguments": c.arguments_json()}}
                                         for c in calls]
                if turn.reasoning:
                    msg["reasoning_content"] = turn.reasoning
                self.messages.append(msg)
            elif text is not None and self.messages and self.messages[-1].get("content") == text:
                self.messages.pop()

    async def cancel(self, wait: float = 3.0) -> SlotsReport | None:
        return await self.client.cancel(wait)
