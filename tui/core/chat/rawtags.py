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
set; ``reasoning_parser`` only decides whether the output starts in reasoning. This module
reads the thinking and the answer and dispatches each call to its format's reader, one module
per format: :mod:`~tui.core.chat.rawcall_glm`, :mod:`~tui.core.chat.rawcall_hermes`,
:mod:`~tui.core.chat.rawcall_qwen` (what they share: :mod:`~tui.core.chat.rawcall`).

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

import uuid
from collections.abc import Callable

from tui.core.chat.events import Content, Reasoning
from tui.core.chat.rawcall import TOOL_OPEN, RawCall, earliest, hold_len, tool_schemas
from tui.core.chat.rawcall import convert_value, schema_kind  # noqa: F401 (importable from here as before)
from tui.core.chat.rawcall_glm import GlmCall
from tui.core.chat.rawcall_hermes import HermesCall
from tui.core.chat.rawcall_qwen import QwenXmlCall

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

#: reasoning_parser values whose chat template opens thinking in the prompt
FORCED_THINKING_PARSERS = frozenset({"glm45", "qwen3", "deepseek_r1"})

_CONTENT, _REASONING, _TOOL = 0, 1, 2
_WS = " \t\r\n"


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
        self._call: RawCall | None = None  # the tool call being read

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
            self._call.block.append(buf)
            self._call.finish(out)
            self._call = None
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
        h = hold_len(buf, (TOOL_OPEN,))
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
        i, m = earliest(buf, markers)
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
        h = hold_len(buf, markers)
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

    def _start_call(self) -> None:
        self._state = _TOOL
        index = self.next_index
        self.next_index += 1
        self._call = RawCall(index, self.id_factory(index), self.schemas)

    def _tool(self, buf: str, out: list) -> str | None:
        """Inside a call: what follows ``<tool_call>`` tells the format (``{`` hermes,
        ``<function=`` Qwen XML, else GLM); that format's reader does the rest."""
        call = self._call
        if call.FORMAT is None:
            buf = call.skip_ws(buf)
            if not buf:
                self._pending = ""
                return None
            if buf[0] == "{":
                reader: type[RawCall] = HermesCall
            else:
                opens = QwenXmlCall.opens(buf)
                if opens is None:  # "<function=" may still be coming
                    self._pending = buf
                    return None
                reader = QwenXmlCall if opens else GlmCall
            call = self._call = reader.taking_over(call)
        rest = call.step(buf, out)
        if rest is None:
            self._pending = call.pending
        if call.done:
            self._call = None
            self._state = _CONTENT
            self._c_strip = True
        return rest
