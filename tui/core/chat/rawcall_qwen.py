"""Qwen3.5 / Qwen3-Coder XML tool calls in raw text: ``<tool_call><function=NAME>
<parameter=K>\\nV\\n</parameter></function></tool_call>``.

Values lose one leading and one trailing newline. A call whose ``</function>`` came is complete
even when the output ends before ``</tool_call>``.
"""

from __future__ import annotations

from tui.core.chat.events import ToolCallArgs
from tui.core.chat.rawcall import TOOL_CLOSE, RawCall, hold_len

FUNCTION = "<function="
FUNCTION_END = "</function>"
PARAMETER = "<parameter="
PARAMETER_END = "</parameter>"

_OPEN, _NAME, _BODY, _KEY, _VALUE, _END = range(6)


class QwenXmlCall(RawCall):
    """The reader of one Qwen XML call (``<function=`` follows ``<tool_call>``)."""

    FORMAT = "qwen_xml"
    sub = _OPEN
    v_first = False

    @staticmethod
    def opens(buf: str) -> bool | None:
        """True when ``buf`` (the text after ``<tool_call>``) starts this format, None while
        it may still (a prefix of ``<function=``), else False."""
        if buf.startswith(FUNCTION):
            return True
        return None if FUNCTION.startswith(buf) else False

    def fallback_name(self) -> str:
        return "".join(self.acc).strip() if self.sub == _NAME else self.name

    def finish(self, out: list) -> None:
        if self.sub == _END:  # </function> came: the call is complete
            self.close(out)
        else:
            self.fail(out)

    def step(self, buf: str, out: list) -> str | None:
        sub = self.sub
        if sub == _OPEN:
            self.sub = _NAME
            return self.take(buf, len(FUNCTION))

        if sub == _NAME or sub == _KEY:
            i = buf.find(">")
            if i == -1:
                self.acc.append(buf)
                self.block.append(buf)
                self.pending = ""
                return None
            self.acc.append(buf[:i])
            word = "".join(self.acc).strip()
            rest = self.take(buf, i + 1)
            if sub == _NAME:
                self.announce(out, word)
                self.sub = _BODY
            else:
                self.begin_key(out, word)
                self.sub = _VALUE
                self.v_first = True
                if self.kind == "string":
                    out.append(ToolCallArgs(self.index, '"'))
            return rest

        if sub == _BODY or sub == _END:
            rest, m = self.skip_to(buf, (PARAMETER, FUNCTION_END, TOOL_CLOSE) if sub == _BODY else (TOOL_CLOSE,))
            if rest is None:
                return None
            if m == PARAMETER:
                self.sub = _KEY
                self.acc = []
            elif m == FUNCTION_END:
                self.close_args(out)
                self.sub = _END
            else:  # </tool_call>
                self.close(out)
            return rest

        # _VALUE: up to </parameter>, one newline after the tag and one before the end dropped
        if self.v_first:
            if buf[0] == "\n":
                buf = self.take(buf, 1)
            self.v_first = False
            if not buf:
                self.pending = ""
                return None
        i = buf.find(PARAMETER_END)
        if i == -1:
            h = hold_len(buf, (PARAMETER_END,))
            if len(buf) - h > 0 and buf[len(buf) - h - 1] == "\n":
                h += 1  # a newline right before </parameter> is not part of the value
            self.stream_value(out, buf[:len(buf) - h])
            self.block.append(buf[:len(buf) - h])
            self.hold(buf, h)
            return None
        text = buf[:i]
        self.stream_value(out, text[:-1] if text.endswith("\n") else text)
        self.end_value(out, "".join(self.acc))
        self.sub = _BODY
        return self.take(buf, i + len(PARAMETER_END))
