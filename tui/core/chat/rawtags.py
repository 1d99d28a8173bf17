"""Incremental parser for thinking and tool calls left as raw tags in ``content``.

Formats (llama-server-protocol.md sections 10 and 16):

* thinking: ``<think>…</think>``; with a forced-open family (the prompt ends with
  ``<think>``: GLM-4.7/GLM-5, Qwen3-2507 thinking, Qwen3.5) the output starts inside the
  reasoning and only ``</think>`` appears;
* GLM-4.5/4.7/5 tool calls: ``<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>…
  </tool_call>``, with or without newlines between the elements;
* Qwen3 hermes: ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``;
* Qwen3.5 / Qwen3-Coder XML: ``<tool_call><function=NAME><parameter=K>\\nV\\n</parameter>
  </function></tool_call>``.

The three tool-call forms are told apart by what follows ``<tool_call>`` (``{``, ``<function=``,
anything else), so every model's calls are recognised whether or not ``tool_call_parser`` is
set; ``reasoning_parser`` only decides whether the output starts in reasoning.

How it stays stable: per fragment the pending tail is prepended, the earliest complete marker
valid in the current state is acted on, and when none is left only the longest suffix that is
a proper prefix of a valid marker is held back; everything else is emitted at once. Decisions
depend only on the text, never on where a read ended, so every chunking of the same text gives
the same events once adjacent deltas are merged (``events.coalesce``).

Decided where the issue is silent:

* Whitespace: leading whitespace is dropped at the start of the output, of the reasoning
  (the newline after ``<think>``), of the answer after ``</think>`` and after ``</tool_call>``;
  trailing whitespace of the reasoning is dropped (it is held back until more text shows it is
  inside), so whitespace-only reasoning yields nothing. Content is never trimmed inside.
* ``<think>`` is honoured only at the start of the output (after whitespace), once;
  ``</think>`` only while in reasoning. A ``</think>`` in content stays text.
* ``<tool_call>`` inside reasoning ends the reasoning (Qwen3.5 and GLM-5.1 open calls inside
  ``<think>``); pass ``tool_call_ends_reasoning=False`` to keep it as reasoning text.
* Argument values: a parameter whose schema type is ``string`` (or ``anyOf``/``oneOf``/a type
  list containing string) streams as it arrives; others buffer to their closing tag and are
  read as JSON, then (typed, non-string schema only) as a Python literal, else kept as the raw
  string. Without a schema a value that parses as JSON is JSON, otherwise a string. Qwen3.5
  values lose one leading and one trailing newline.
* Arguments stream as JSON text built from the tags: ``{``, ``"key": ``, the value, ``, ``,
  ``}`` (``{}`` with no arguments), matching ``json.dumps`` of the final ``arguments``.
* A hermes block is buffered to ``</tool_call>``; its name is announced as soon as the
  ``"name"`` string is complete. ``arguments`` or ``parameters`` are accepted; arguments that are
  a JSON string holding an object are decoded once more.
* At the end (:meth:`flush`) held text is emitted as what it was; unterminated reasoning stays
  reasoning (``reasoning_unterminated``); a call without its closing tag is reported with
  ``ok=False`` and the raw block — except a Qwen3.5 call whose ``</function>`` came, which is
  complete.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from tui.core.chat.events import Content, Reasoning, ToolCall, ToolCallArgs, ToolCallStarted

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"
ARG_KEY = "<arg_key>"
ARG_KEY_END = "</arg_key>"
ARG_VALUE = "<arg_value>"
ARG_VALUE_END = "</arg_value>"
FUNCTION = "<function="
FUNCTION_END = "</function>"
PARAMETER = "<parameter="
PARAMETER_END = "</parameter>"

#: reasoning_parser values whose chat template opens thinking in the prompt
FORCED_THINKING_PARSERS = frozenset({"glm45", "qwen3", "deepseek_r1"})

_CONTENT, _REASONING, _TOOL = 0, 1, 2
# tool sub-states
(_T_START, _G_NAME, _G_KEY, _G_BETWEEN, _G_VALUE, _G_AFTER,
 _Q_NAME, _Q_BODY, _Q_KEY, _Q_VALUE, _Q_END, _HERMES) = range(12)

_HERMES_NAME = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_WS = " \t\r\n"


def _json_text(s: str) -> str:
    """``s`` as the inside of a JSON string (per character, so chunks concatenate)."""
    return json.dumps(s, ensure_ascii=False)[1:-1]


def _hold_len(buf: str, markers: tuple[str, ...]) -> int:
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


def _earliest(buf: str, markers: tuple[str, ...]) -> tuple[int, str]:
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
    """A buffered XML argument value as JSON: see the module docstring."""
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


def _random_id(index: int) -> str:
    return "call_" + uuid.uuid4().hex[:24]


class RawTagParser:
    """``feed(text, out)`` appends events to ``out``; ``flush(out)`` at the end of the turn."""

    def __init__(self, *, starts_in_reasoning: bool = False, tools: list | None = None,
                 schemas: dict[str, dict] | None = None,
                 id_factory: Callable[[int], str] = _random_id, first_index: int = 0,
                 tool_call_ends_reasoning: bool = True) -> None:
        self.schemas = schemas if schemas is not None else tool_schemas(tools)
        self.id_factory = id_factory
        #: the index the next raw call gets (the assembler moves it past server-parsed calls)
        self.next_index = first_index
        self.tool_call_ends_reasoning = tool_call_ends_reasoning
        self.saw_think_end = False
        self.reasoning_unterminated = False
        self._pending = ""
        self._forced = starts_in_reasoning
        self._emitted_any = False
        if starts_in_reasoning:
            self._state = _REASONING
            self._r_strip = True
            self._r_think_ok = True   # GLM-4.5's "\n<think>" at the start is swallowed
            self._think_ok = False
        else:
            self._state = _CONTENT
            self._r_strip = False
            self._r_think_ok = False
            self._think_ok = True     # "<think>" honoured once, at the start
        self._c_strip = True
        self._reset_call()

    # --- public -------------------------------------------------------------------------

    def structured_reasoning_seen(self) -> None:
        """The server sent ``reasoning_content``: raw text that follows is not implicit
        reasoning (section 16: never start content in implicit-reasoning mode then)."""
        if self._forced and self._state == _REASONING and not self._emitted_any:
            self._forced = False
            self._state = _CONTENT   # a held "<think>" prefix is re-read as content
            self._c_strip = True
            self._think_ok = True

    def feed(self, text: str, out: list) -> None:
        st = self._state
        if not self._pending:
            # fast paths: plain text with no tag start in it
            if st == _CONTENT and not self._c_strip and "<" not in text:
                out.append(Content(text))
                return
            if (st == _REASONING and not self._r_strip and "<" not in text and text
                    and text[-1] not in _WS):
                out.append(Reasoning(text))
                return
        self._run(self._pending + text if self._pending else text, out)

    def flush(self, out: list) -> None:
        buf, self._pending = self._pending, ""
        st = self._state
        if st == _CONTENT:
            if self._c_strip:
                buf = buf.lstrip()
            if buf:
                out.append(Content(buf))
                self._emitted_any = True
        elif st == _REASONING:
            if self._r_strip:
                buf = buf.lstrip()
            buf = buf.rstrip()
            if buf:
                out.append(Reasoning(buf))
            self.reasoning_unterminated = True
        else:
            self._block.append(buf)
            if self._sub == _Q_END:
                self._close_call(out)
            else:
                self._fail_call(out)
        self._state = _CONTENT
        self._c_strip = True

    # --- the state machine ---------------------------------------------------------------

    def _run(self, buf: str, out: list) -> None:
        while buf:
            st = self._state
            if st == _CONTENT:
                buf = self._content(buf, out)
            elif st == _REASONING:
                buf = self._reasoning(buf, out)
            else:
                buf = self._tool(buf, out)
            if buf is None:
                return
        self._pending = ""

    def _content(self, buf: str, out: list) -> str | None:
        if self._c_strip:
            buf = buf.lstrip()
            if not buf:
                self._pending = ""
                return None
            if self._think_ok:
                if buf.startswith(THINK_OPEN):
                    self._think_ok = False
                    self._state = _REASONING
                    self._r_strip = True
                    return buf[len(THINK_OPEN):]
                if THINK_OPEN.startswith(buf):
                    self._pending = buf
                    return None
                self._think_ok = False
        i = buf.find(TOOL_OPEN)
        if i != -1:
            if i:
                out.append(Content(buf[:i]))
                self._emitted_any = True
            self._think_ok = False
            self._c_strip = False
            self._start_call()
            return buf[i + len(TOOL_OPEN):]
        h = _hold_len(buf, (TOOL_OPEN,))
        if h < len(buf):
            out.append(Content(buf[:len(buf) - h]))
            self._emitted_any = True
            self._c_strip = False
            self._think_ok = False
        self._pending = buf[len(buf) - h:]
        return None

    def _reasoning(self, buf: str, out: list) -> str | None:
        if self._r_strip:
            buf = buf.lstrip()
            if not buf:
                self._pending = ""
                return None
            if self._r_think_ok:
                if buf.startswith(THINK_OPEN):
                    self._r_think_ok = False
                    return buf[len(THINK_OPEN):]
                if THINK_OPEN.startswith(buf):
                    self._pending = buf
                    return None
                self._r_think_ok = False
        markers = (THINK_CLOSE, TOOL_OPEN) if self.tool_call_ends_reasoning else (THINK_CLOSE,)
        i, m = _earliest(buf, markers)
        if i != -1:
            text = buf[:i].rstrip()
            if text:
                out.append(Reasoning(text))
                self._emitted_any = True
            self._r_strip = False
            self._r_think_ok = False
            self.saw_think_end = True
            self._forced = False
            if m == THINK_CLOSE:
                self._state = _CONTENT
                self._c_strip = True
                self._think_ok = False
            else:
                self._start_call()
            return buf[i + len(m):]
        h = _hold_len(buf, markers)
        head = buf[:len(buf) - h]
        text = head.rstrip()
        if text:
            out.append(Reasoning(text))
            self._emitted_any = True
            self._r_strip = False
            self._r_think_ok = False
        self._pending = head[len(text):] + buf[len(buf) - h:]
        return None

    # --- tool calls -------------------------------------------------------------------

    def _reset_call(self) -> None:
        self._sub = _T_START
        self._index = -1
        self._id = ""
        self._name = ""
        self._started = False
        self._args: dict[str, Any] = {}
        self._nargs = 0
        self._args_closed = False
        self._key = ""
        self._kind: str | None = None
        self._acc: list[str] = []     # name / key / value being read
        self._v_first = False
        self._block: list[str] = []

    def _start_call(self) -> None:
        self._reset_call()
        self._state = _TOOL
        self._index = self.next_index
        self.next_index += 1
        self._id = self.id_factory(self._index)
        self._block.append(TOOL_OPEN)

    def _announce(self, out: list, name: str) -> None:
        if not self._started:
            self._name = name
            self._started = True
            self._emitted_any = True
            out.append(ToolCallStarted(self._index, self._id, name))

    def _begin_key(self, out: list, key: str) -> None:
        self._key = key
        self._kind = schema_kind(self.schemas.get(self._name, {}).get(key))
        out.append(ToolCallArgs(self._index, ("{" if self._nargs == 0 else ", ") + json.dumps(key, ensure_ascii=False) + ": "))
        self._nargs += 1
        self._acc = []

    def _end_value(self, out: list, raw: str) -> None:
        if self._kind == "string":
            out.append(ToolCallArgs(self._index, '"'))
            self._args[self._key] = raw
        else:
            v = convert_value(raw, self._kind)
            self._args[self._key] = v
            out.append(ToolCallArgs(self._index, json.dumps(v, ensure_ascii=False)))

    def _stream_value(self, out: list, text: str) -> None:
        self._acc.append(text)
        if self._kind == "string" and text:
            out.append(ToolCallArgs(self._index, _json_text(text)))

    def _close_call(self, out: list) -> None:
        self._announce(out, self._name)
        self._close_args(out)
        out.append(ToolCall(self._index, self._id, self._name, self._args, "".join(self._block), True))
        self._state = _CONTENT
        self._c_strip = True
        self._reset_call()

    def _close_args(self, out: list) -> None:
        if not self._args_closed:
            self._args_closed = True
            out.append(ToolCallArgs(self._index, "}" if self._nargs else "{}"))

    def _fail_call(self, out: list) -> None:
        if not self._started:
            name = self._name
            if self._sub in (_G_NAME, _Q_NAME):
                name = "".join(self._acc).strip()
            elif self._sub == _HERMES:
                m = _HERMES_NAME.match("".join(self._block)[len(TOOL_OPEN):])
                name = _unescape(m.group(1)) if m else ""
            self._announce(out, name)
        out.append(ToolCall(self._index, self._id, self._name, None, "".join(self._block), False))
        self._reset_call()

    def _take(self, buf: str, n: int) -> str:
        self._block.append(buf[:n])
        return buf[n:]

    def _hold(self, buf: str, h: int) -> None:
        self._pending = buf[len(buf) - h:] if h else ""

    def _skip_ws(self, buf: str) -> str:
        s = buf.lstrip()
        if len(s) != len(buf):
            self._block.append(buf[:len(buf) - len(s)])
        return s

    def _tool(self, buf: str, out: list) -> str | None:
        sub = self._sub
        if sub == _T_START:
            buf = self._skip_ws(buf)
            if not buf:
                self._pending = ""
                return None
            if buf[0] == "{":
                self._sub = _HERMES
                return buf
            if buf.startswith(FUNCTION):
                self._sub = _Q_NAME
                self._acc = []
                return self._take(buf, len(FUNCTION))
            if FUNCTION.startswith(buf):
                self._pending = buf
                return None
            self._sub = _G_NAME
            self._acc = []
            return buf

        if sub == _G_NAME or sub == _G_KEY:
            markers = (ARG_KEY, TOOL_CLOSE) if sub == _G_NAME else (ARG_KEY_END,)
            i, m = _earliest(buf, markers)
            if i == -1:
                h = _hold_len(buf, markers)
                self._acc.append(buf[:len(buf) - h])
                self._block.append(buf[:len(buf) - h])
                self._hold(buf, h)
                return None
            self._acc.append(buf[:i])
            word = "".join(self._acc).strip()
            rest = self._take(buf, i + len(m))
            if sub == _G_NAME:
                self._announce(out, word)
                if m == TOOL_CLOSE:
                    self._close_call(out)
                else:
                    self._sub = _G_KEY
                    self._acc = []
            else:
                self._begin_key(out, word)
                self._sub = _G_BETWEEN
            return rest

        if sub == _G_BETWEEN or sub == _G_AFTER:
            buf = self._skip_ws(buf)
            if not buf:
                self._pending = ""
                return None
            markers = (ARG_VALUE, ARG_KEY, TOOL_CLOSE) if sub == _G_BETWEEN else (ARG_KEY, TOOL_CLOSE)
            i, m = _earliest(buf, markers)
            if i == -1:
                h = _hold_len(buf, markers)
                self._block.append(buf[:len(buf) - h])  # stray text between elements is skipped
                self._hold(buf, h)
                return None
            rest = self._take(buf, i + len(m))
            if m == ARG_VALUE:
                self._sub = _G_VALUE
                self._acc = []
                if self._kind == "string":
                    out.append(ToolCallArgs(self._index, '"'))
                return rest
            if sub == _G_BETWEEN:  # a key without a value
                self._kind = None
                self._end_value(out, "null")
            if m == ARG_KEY:
                self._sub = _G_KEY
                self._acc = []
            else:
                self._close_call(out)
            return rest

        if sub == _G_VALUE:
            i = buf.find(ARG_VALUE_END)
            if i == -1:
                h = _hold_len(buf, (ARG_VALUE_END,))
                self._stream_value(out, buf[:len(buf) - h])
                self._block.append(buf[:len(buf) - h])
                self._hold(buf, h)
                return None
            self._stream_value(out, buf[:i])
            self._end_value(out, "".join(self._acc))
            self._sub = _G_AFTER
            return self._take(buf, i + len(ARG_VALUE_END))

        if sub == _Q_NAME or sub == _Q_KEY:
            i = buf.find(">")
            if i == -1:
                self._acc.append(buf)
                self._block.append(buf)
                self._pending = ""
                return None
            self._acc.append(buf[:i])
            word = "".join(self._acc).strip()
            rest = self._take(buf, i + 1)
            if sub == _Q_NAME:
                self._announce(out, word)
                self._sub = _Q_BODY
            else:
                self._begin_key(out, word)
                self._sub = _Q_VALUE
                self._v_first = True
                if self._kind == "string":
                    out.append(ToolCallArgs(self._index, '"'))
            return rest

        if sub == _Q_BODY or sub == _Q_END:
            buf = self._skip_ws(buf)
            if not buf:
                self._pending = ""
                return None
            markers = (PARAMETER, FUNCTION_END, TOOL_CLOSE) if sub == _Q_BODY else (TOOL_CLOSE,)
            i, m = _earliest(buf, markers)
            if i == -1:
                h = _hold_len(buf, markers)
                self._block.append(buf[:len(buf) - h])
                self._hold(buf, h)
                return None
            rest = self._take(buf, i + len(m))
            if m == PARAMETER:
                self._sub = _Q_KEY
                self._acc = []
            elif m == FUNCTION_END:
                self._close_args(out)
                self._sub = _Q_END
            else:  # </tool_call>
                self._close_call(out)
            return rest

        if sub == _Q_VALUE:
            if self._v_first:
                if buf[0] == "\n":
                    buf = self._take(buf, 1)
                self._v_first = False
                if not buf:
                    self._pending = ""
                    return None
            i = buf.find(PARAMETER_END)
            if i == -1:
                h = _hold_len(buf, (PARAMETER_END,))
                if len(buf) - h > 0 and buf[len(buf) - h - 1] == "\n":
                    h += 1  # a newline right before </parameter> is not part of the value
                self._stream_value(out, buf[:len(buf) - h])
                self._block.append(buf[:len(buf) - h])
                self._hold(buf, h)
                return None
            text = buf[:i]
            self._stream_value(out, text[:-1] if text.endswith("\n") else text)
            self._end_value(out, "".join(self._acc))
            self._sub = _Q_BODY
            return self._take(buf, i + len(PARAMETER_END))

        # hermes: buffer the block up to </tool_call>
        i = buf.find(TOOL_CLOSE)
        if i == -1:
            h = _hold_len(buf, (TOOL_CLOSE,))
            self._block.append(buf[:len(buf) - h])
            self._hold(buf, h)
            if not self._started and sum(map(len, self._block)) < 4096:
                m = _HERMES_NAME.match("".join(self._block)[len(TOOL_OPEN):])
                if m:
                    self._announce(out, _unescape(m.group(1)))
            return None
        self._block.append(buf[:i])
        body = "".join(self._block)[len(TOOL_OPEN):]
        rest = buf[i + len(TOOL_CLOSE):]
        self._block.append(TOOL_CLOSE)
        self._hermes_done(out, body)
        return rest

    def _hermes_done(self, out: list, body: str) -> None:
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            self._fail_call(out)
            self._state = _CONTENT
            self._c_strip = True
            return
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                decoded = json.loads(args)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                args = decoded
        if self._started and self._name != obj["name"]:
            self._name = obj["name"]
        self._announce(out, obj["name"])
        text = json.dumps(args, ensure_ascii=False)
        out.append(ToolCallArgs(self._index, text))
        out.append(ToolCall(self._index, self._id, self._name, args, "".join(self._block), True))
        self._state = _CONTENT
        self._c_strip = True
        self._reset_call()


def _unescape(s: str) -> str:
    try:
        return json.loads('"' + s + '"')
    except ValueError:
        return s
