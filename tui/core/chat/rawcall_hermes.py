"""Qwen3 hermes tool calls in raw text: ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``.

The block is buffered to ``</tool_call>``; the name is announced as soon as the ``"name"``
string is complete. ``arguments`` or ``parameters`` are accepted; arguments that are a JSON
string holding an object are decoded once more.
"""

from __future__ import annotations

import json
import re

from tui.core.chat.events import ToolCall, ToolCallArgs
from tui.core.chat.rawcall import TOOL_CLOSE, TOOL_OPEN, RawCall, hold_len

_HERMES_NAME = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"')


def unescape(s: str) -> str:
    try:
        return json.loads('"' + s + '"')
    except ValueError:
        return s


class HermesCall(RawCall):
    """The reader of one hermes call (``{`` follows ``<tool_call>``)."""

    FORMAT = "hermes"

    def fallback_name(self) -> str:
        m = _HERMES_NAME.match("".join(self.block)[len(TOOL_OPEN):])
        return unescape(m.group(1)) if m else ""

    def step(self, buf: str, out: list) -> str | None:
        i = buf.find(TOOL_CLOSE)
        if i == -1:
            h = hold_len(buf, (TOOL_CLOSE,))
            self.block.append(buf[:len(buf) - h])
            self.hold(buf, h)
            if not self.started and sum(map(len, self.block)) < 4096:
                m = _HERMES_NAME.match("".join(self.block)[len(TOOL_OPEN):])
                if m:
                    self.announce(out, unescape(m.group(1)))
            return None
        self.block.append(buf[:i])
        body = "".join(self.block)[len(TOOL_OPEN):]
        rest = buf[i + len(TOOL_CLOSE):]
        self.block.append(TOOL_CLOSE)
        self._done(out, body)
        return rest

    def _done(self, out: list, body: str) -> None:
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            self.fail(out)
            return
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                decoded = json.loads(args)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                args = decoded
        if self.started and self.name != obj["name"]:
            self.name = obj["name"]
        self.announce(out, obj["name"])
        text = json.dumps(args, ensure_ascii=False)
        out.append(ToolCallArgs(self.index, text))
        out.append(ToolCall(self.index, self.id, self.name, args, "".join(self.block), True))
        self.done = True
