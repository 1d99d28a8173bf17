"""Chat with any OpenAI-compatible server, thinking and tool calls kept apart.

Modules, one job each: :mod:`events` (the event dataclasses, the :class:`~.events.EventHandler`
visitor over them, the one stats line), :mod:`sse` (bytes → SSE payloads), :mod:`rawtags` (raw
``<think>``/``<tool_call>`` text → events; one reader per tool-call format in :mod:`rawcall_glm`,
:mod:`rawcall_qwen`, :mod:`rawcall_hermes`, what they share in :mod:`rawcall`), :mod:`deltas`
(server chunks → events), :mod:`stream` (one response body → events, with stats),
:mod:`errors` (HTTP failures and the server's error payloads → one-line errors), :mod:`client`
(httpx streaming, cancel, ``/slots``), :mod:`conversation` (history), :mod:`tools` (tool
definitions from a file).

Importing this package loads only the events; the client (and httpx) load on first use.
"""

from tui.core.chat.events import (  # noqa: F401
    Content, Done, Error, Reasoning, Stats, ToolCall, ToolCallArgs, ToolCallStarted, Usage, coalesce,
)

_LAZY = {"ChatClient": "client", "ChatTarget": "client", "SlotsReport": "client",
         "Conversation": "conversation", "Turn": "conversation", "load_tools": "tools", "ToolsError": "tools"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"tui.core.chat.{_LAZY[name]}"), name)
    raise AttributeError(name)
