"""One tool call written as raw tags in the reply's text: what the three formats share.

:class:`~tui.core.chat.rawtags.RawTagParser` opens a :class:`RawCall` at ``<tool_call>`` and,
once the text after it tells the format, hands the call to the format's reader:
:class:`~tui.core.chat.rawcall_glm.GlmCall` (``<arg_key>``/``<arg_value>``),
:class:`~tui.core.chat.rawcall_qwen.QwenXmlCall` (``<function=…><parameter=…>``) or
:class:`~tui.core.chat.rawcall_hermes.HermesCall` (a JSON object). The base keeps what every
format needs: the call's index and id, the raw block it came from, its name, and the argument
text streamed as JSON built from the tags (``{``, ``"key": ``, the value, ``, ``, ``}``).

Argument values: a parameter whose schema type is ``string`` (or ``anyOf``/``oneOf``/a type list
containing string) streams as it arrives; others buffer to their closing tag and are read by
:func:`convert_value`.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from tui.core.chat.events import ToolCall, ToolCallArgs, ToolCallStarted

TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"


def json_text(s: str) -> str:
    """``s`` as the inside of a JSON string (per character, so chunks concatenate)."""
    return json.dumps(s, ensure_ascii=False)[1:-1]


def hold_len(buf: str, markers: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of a marker."""
    longest = max(len(m) for m in markers)
    i = buf.find("<", max(0, len(buf) - longest + 1))
    while i != -1:
        tail = buf[i:]
        for m in markers:
            if m.startswith(tail):
                return len(buf) - i
        i = buf.find("<", i + 1)
    return 0


def earliest(buf: str, markers: tuple[str, ...]) -> tuple[int, str]:
    """Where the first of ``markers`` in ``buf`` starts, and which one (-1, "" when none)."""
    best, which = -1, ""
    for m in markers:
        i = buf.find(m)
        if i != -1 and (best == -1 or i < best):
            best, which = i, m
    return best, which


def schema_kind(schema: Any) -> str | None:
    """``"string"`` when a JSON-schema fragment admits a string, ``"other"`` when it names
    only other types, None when it says nothing."""
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    if isinstance(t, str):
        return "string" if t == "string" else "other"
    if isinstance(t, list) and t:
        return "string" if "string" in t else "other"
    for key in ("anyOf", "oneOf"):
        alts = schema.get(key)
        if isinstance(alts, list) and alts:
            kinds = [schema_kind(a) for a in alts]
            if "string" in kinds:
                return "string"
            if all(k == "other" for k in kinds):
                return "other"
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"] or [None]):
        return "string"
    return None


def convert_value(raw: str, kind: str | None) -> Any:
    """A buffered XML argument value as JSON: a string-typed one as it is; else read as JSON,
    then (typed, non-string schema only) as a Python literal, else kept as the raw string.
    Without a schema a value that parses as JSON is JSON, otherwise a string."""
    if kind == "string":
        return raw
    s = raw.strip()
    try:
        return json.loads(s)
    except ValueError:
        pass
    if kind == "other":
        try:
            v = ast.literal_eval(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
        else:
            if isinstance(v, (dict, list, str, int, float, bool, type(None))):
                return v
    return raw


def tool_schemas(tools: list | None) -> dict[str, dict]:
    """OpenAI tool definitions → ``{function name: {parameter: schema}}``."""
    out: dict[str, dict] = {}
    for t in tools or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            props = params.get("properties") if isinstance(params, dict) else None
            out[fn["name"]] = props if isinstance(props, dict) else {}
    return out




class RawCall:
    """One call from ``<tool_call>`` on, before its format is known (the dispatcher then hands
    it to a format's reader with :meth:`taking_over`) and the base of those readers.

    ``step(buf, out)`` reads what it can of ``buf``, appends events to ``out`` and returns the
    text left after it, or None when it needs more: ``pending`` then holds the tail to read
    again with the next fragment. ``done`` once the call has ended (complete or failed).
    """

    FORMAT: str | None = None  # "glm", "qwen_xml", "hermes" in the readers

    def __init__(self, index: int, call_id: str, schemas: dict[str, dict], block: list[str] | None = None) -> None:
        self.index = index
        self.id = call_id
        self.schemas = schemas
        self.block: list[str] = [TOOL_OPEN] if block is None else block  # the raw text so far
        self.name = ""
        self.started = False
        self.args: dict[str, Any] = {}
        self.nargs = 0
        self.args_closed = False
        self.key = ""
        self.kind: str | None = None
        self.acc: list[str] = []     # name / key / value being read
        self.pending = ""
        self.done = False

    @classmethod
    def taking_over(cls, call: RawCall) -> RawCall:
        """This format's reader for a call opened before its format was known."""
        return cls(call.index, call.id, call.schemas, call.block)

    def step(self, buf: str, out: list) -> str | None:
        raise NotImplementedError

    def finish(self, out: list) -> None:
        """The output ended inside the call (the rest of the text is in ``block``)."""
        self.fail(out)

    def fallback_name(self) -> str:
        """The name to report for a call that failed before its name was announced."""
        return self.name

    # --- events -------------------------------------------------------------------------

    def announce(self, out: list, name: str) -> None:
        if not self.started:
            self.name = name
            self.started = True
            out.append(ToolCallStarted(self.index, self.id, name))

    def begin_key(self, out: list, key: str) -> None:
        self.key = key
        self.kind = schema_kind(self.schemas.get(self.name, {}).get(key))
        sep = "{" if self.nargs == 0 else ", "
        out.append(ToolCallArgs(self.index, sep + json.dumps(key, ensure_ascii=False) + ": "))
        self.nargs += 1
        self.acc = []

    def end_value(self, out: list, raw: str) -> None:
        if self.kind == "string":
            out.append(ToolCallArgs(self.index, '"'))
            self.args[self.key] = raw
        else:
            v = convert_value(raw, self.kind)
            self.args[self.key] = v
            out.append(ToolCallArgs(self.index, json.dumps(v, ensure_ascii=False)))

    def stream_value(self, out: list, text: str) -> None:
        self.acc.append(text)
        if self.kind == "string" and text:
            out.append(ToolCallArgs(self.index, json_text(text)))

    def close(self, out: list) -> None:
        """The call is complete."""
        self.announce(out, self.name)
        self.close_args(out)
        out.append(ToolCall(self.index, self.id, self.name, self.args, "".join(self.block), True))
        self.done = True

    def close_args(self, out: list) -> None:
        if not self.args_closed:
            self.args_closed = True
            out.append(ToolCallArgs(self.index, "}" if self.nargs else "{}"))

    def fail(self, out: list) -> None:
        """The call cannot be read: reported with ``ok=False`` and its raw block."""
        if not self.started:
            self.announce(out, self.fallback_name())
        out.append(ToolCall(self.index, self.id, self.name, None, "".join(self.block), False))
        self.done = True

    # --- reading ------------------------------------------------------------------------

    def take(self, buf: str, n: int) -> str:
        self.block.append(buf[:n])
        return buf[n:]

    def hold(self, buf: str, h: int) -> None:
        self.pending = buf[len(buf) - h:] if h else ""

    def skip_ws(self, buf: str) -> str:
        s = buf.lstrip()
        if len(s) != len(buf):
            self.block.append(buf[:len(buf) - len(s)])
        return s

    def skip_to(self, buf: str, markers: tuple[str, ...]) -> tuple[str | None, str]:
        """Between elements: whitespace and stray text up to the first of ``markers`` go to
        the block. Returns the text after that marker and the marker, or ``(None, "")`` while
        none is complete (``pending`` then holds what may be the start of one)."""
        buf = self.skip_ws(buf)
        if not buf:
            self.pending = ""
            return None, ""
        i, m = earliest(buf, markers)
        if i == -1:
            h = hold_len(buf, markers)
            self.block.append(buf[:len(buf) - h])
            self.hold(buf, h)
            return None, ""
        return self.take(buf, i + len(m)), m
