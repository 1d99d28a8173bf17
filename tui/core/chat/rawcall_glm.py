"""GLM-4.5/4.7/5 tool calls in raw text: ``<tool_call>NAME<arg_key>K</arg_key><arg_value>V
</arg_value>…</tool_call>``, with or without newlines between the elements.

Stray text between the elements is skipped; a key without a value gets ``null``.
"""

from __future__ import annotations

from tui.core.chat.events import ToolCallArgs
from tui.core.chat.rawcall import TOOL_CLOSE, RawCall, earliest, hold_len

ARG_KEY = "<arg_key>"
ARG_KEY_END = "</arg_key>"
ARG_VALUE = "<arg_value>"
ARG_VALUE_END = "</arg_value>"

_NAME, _KEY, _BETWEEN, _VALUE, _AFTER = range(5)


class GlmCall(RawCall):
    """The reader of one GLM call (what follows ``<tool_call>`` is neither ``{`` nor ``<function=``)."""

    FORMAT = "glm"
    sub = _NAME

    def fallback_name(self) -> str:
        return "".join(self.acc).strip() if self.sub == _NAME else self.name

    def step(self, buf: str, out: list) -> str | None:
        sub = self.sub
        if sub == _NAME or sub == _KEY:
            markers = (ARG_KEY, TOOL_CLOSE) if sub == _NAME else (ARG_KEY_END,)
            i, m = earliest(buf, markers)
            if i == -1:
                h = hold_len(buf, markers)
                self.acc.append(buf[:len(buf) - h])
                self.block.append(buf[:len(buf) - h])
                self.hold(buf, h)
                return None
            self.acc.append(buf[:i])
            word = "".join(self.acc).strip()
            rest = self.take(buf, i + len(m))
            if sub == _NAME:
                self.announce(out, word)
                if m == TOOL_CLOSE:
                    self.close(out)
                else:
                    self.sub = _KEY
                    self.acc = []
            else:
                self.begin_key(out, word)
                self.sub = _BETWEEN
            return rest

        if sub == _BETWEEN or sub == _AFTER:
            rest, m = self.skip_to(buf, (ARG_VALUE, ARG_KEY, TOOL_CLOSE) if sub == _BETWEEN else (ARG_KEY, TOOL_CLOSE))
            if rest is None:
                return None
            if m == ARG_VALUE:
                self.sub = _VALUE
                self.acc = []
                if self.kind == "string":
                    out.append(ToolCallArgs(self.index, '"'))
                return rest
            if sub == _BETWEEN:  # a key without a value
                self.kind = None
                self.end_value(out, "null")
            if m == ARG_KEY:
                self.sub = _KEY
                self.acc = []
            else:
                self.close(out)
            return rest

        # _VALUE: up to </arg_value>, a string-typed value streaming
        i = buf.find(ARG_VALUE_END)
        if i == -1:
            h = hold_len(buf, (ARG_VALUE_END,))
            self.stream_value(out, buf[:len(buf) - h])
            self.block.append(buf[:len(buf) - h])
            self.hold(buf, h)
            return None
        self.stream_value(out, buf[:i])
        self.end_value(out, "".join(self.acc))
        self.sub = _AFTER
        return self.take(buf, i + len(ARG_VALUE_END))
