"""Server chunks (parsed JSON) → chat events, for every server the seeds name.

One :class:`DeltaAssembler` per turn. It reads, from each ``chat.completion.chunk``:

* errors first: ``{"error": {…}}`` (llama.cpp, vLLM ≥ 0.10.1), ``{"error": "…"}``, flat
  ``{"object": "error", "message": …}`` (older vLLM/SGLang) and a bare ``{"message": …}``
  without ``choices`` (very old LightLLM);
* ``choices[0].delta`` (only choice 0: llmdeck never asks for ``n > 1``):
  ``reasoning_content`` or ``reasoning`` (the same text under both counts once),
  ``content`` (through :class:`~tui.core.chat.rawtags.RawTagParser`, since servers leave tags
  unparsed when their parser does not match the model), ``tool_calls``;
* ``finish_reason`` (kept; unknown values are passed through), and ``usage``/``timings``
  wherever they appear (finish chunk, ``choices: []`` chunk, every chunk with
  ``timings_per_token``).

Tool-call deltas are joined per ``index`` (a missing index means the last one, unless a new
``id`` shows a new call). A name that arrives again is replaced when it extends the old one
(llama.cpp re-sends the grown name) and appended otherwise. :class:`ToolCallStarted` is
emitted when the first argument text arrives (the name is complete by then) or at the end;
the complete :class:`ToolCall` events come when the turn ends, because a server may still send
fragments for an earlier index until then. Raw-tag calls number on after the server's.
"""

from __future__ import annotations

import json
from typing import Any

from tui.core.chat.errors import error_code, error_message, is_error_payload, one_line
from tui.core.chat.events import Error, Reasoning, ToolCall, ToolCallArgs, ToolCallStarted, Usage
from tui.core.chat.rawtags import RawTagParser


class _Call:
    __slots__ = ("index", "id", "name", "parts", "started")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.parts: list[str] = []
        self.started = False


def _as_text(v: Any, field: str) -> str:
    """A delta's text field: a string, or OpenAI content parts (``[{"type": "text", "text": …}]``)."""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str))
                                   for p in v):
        return "".join(p if isinstance(p, str) else p["text"] for p in v)
    raise ValueError(f"server sent a '{field}' delta that is not text: {json.dumps(v)[:80]}")


def error_from_payload(obj: dict) -> Error | None:
    """The error a stream payload carries, or None (:func:`~tui.core.chat.errors.error_message`
    reads it)."""
    if not is_error_payload(obj):
        return None
    return Error(f"server error during generation: {error_message(obj)}", error_code(obj), "server")


class DeltaAssembler:
    """``feed(chunk, out)`` appends events; ``finish(out)`` closes the turn's tool calls."""

    def __init__(self, raw: RawTagParser | None = None) -> None:
        self.raw = raw if raw is not None else RawTagParser()
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.timings: dict | None = None
        #: chunks that carried generated text or call fragments (≈ tokens, for measured t/s)
        self.token_chunks = 0
        self.saw_structured_reasoning = False
        self._calls: dict[int, _Call] = {}
        self._last_index: int | None = None

    def feed(self, obj: Any, out: list) -> Error | None:
        """Read one payload. Returns the Error that ends the turn, if it carried one."""
        if not isinstance(obj, dict):
            return Error(f"server sent a stream payload that is not a JSON object: {one_line(obj)[:200]}",
                         None, "protocol")
        choices = obj.get("choices")
        if "error" in obj or (choices is None and (obj.get("object") == "error" or "message" in obj)):
            err = error_from_payload(obj)
            if err is not None:
                return err
        if choices:
            ch = choices[0]
            if isinstance(ch, dict):
                delta = ch.get("delta") or ch.get("message")
                if delta:
                    try:
                        self._delta(delta, out)
                    except ValueError as exc:
                        return Error(str(exc), None, "protocol")
                fr = ch.get("finish_reason")
                if fr:
                    self.finish_reason = fr
        u = obj.get("usage")
        t = obj.get("timings")
        if u or t:
            if u:
                self.usage = u
            if t:
                self.timings = t
            out.append(Usage(self.usage, self.timings))
        return None

    def _delta(self, delta: dict, out: list) -> None:
        counted = False
        r = delta.get("reasoning_content")
        r2 = delta.get("reasoning")
        if r is not None and type(r) is not str:
            r = _as_text(r, "reasoning_content")
        if r2 is not None and type(r2) is not str:
            r2 = _as_text(r2, "reasoning")
        if r2 and r2 != r:
            r = r + r2 if r else r2
        if r:
            if not self.saw_structured_reasoning:
                self.saw_structured_reasoning = True
                self.raw.structured_reasoning_seen()
            out.append(Reasoning(r))
            counted = True
        c = delta.get("content")
        if c:
            if type(c) is not str:
                c = _as_text(c, "content")
            self.raw.feed(c, out)
            counted = True
        tcs = delta.get("tool_calls")
        if tcs:
            self._tool_calls(tcs, out)
            counted = True
        if counted:
            self.token_chunks += 1

    def _tool_calls(self, tcs: list, out: list) -> None:
        for tc in tcs:
            if not isinstance(tc, dict):
                continue
            idx = tc.get("index")
            cid = tc.get("id")
            if not isinstance(idx, int):
                last = self._calls.get(self._last_index) if self._last_index is not None else None
                if last is None:
                    idx = 0
                elif cid and last.id and cid != last.id:
                    idx = max(self._calls) + 1
                else:
                    idx = last.index
            call = self._calls.get(idx)
            if call is None:
                call = self._calls[idx] = _Call(idx)
                if self.raw.next_index <= idx:
                    self.raw.next_index = idx + 1
            self._last_index = idx
            if cid and not call.id:
                call.id = cid
            fn = tc.get("function") or {}
            name = fn.get("name")
            if name and not call.started:
                call.name = name if name.startswith(call.name) else call.name + name
            args = fn.get("arguments")
            if args is not None and not isinstance(args, str):
                args = json.dumps(args, ensure_ascii=False)  # a server that sent an object
            if args:
                if not call.started:
                    call.started = True
                    out.append(ToolCallStarted(idx, call.id, call.name))
                call.parts.append(args)
                out.append(ToolCallArgs(idx, args))

    def finish(self, out: list) -> None:
        """End of turn (finished, cancelled or interrupted): flush held raw text and report
        every server-parsed call as complete, ``ok`` when its arguments parse."""
        self.raw.flush(out)
        for idx in sorted(self._calls):
            call = self._calls[idx]
            if not call.started:
                call.started = True
                out.append(ToolCallStarted(idx, call.id, call.name))
            raw = "".join(call.parts)
            if not raw.strip():
                out.append(ToolCallArgs(idx, "{}"))
                out.append(ToolCall(idx, call.id, call.name, {}, raw, True))
                continue
            try:
                args = json.loads(raw)
            except ValueError:
                out.append(ToolCall(idx, call.id, call.name, None, raw, False))
            else:
                out.append(ToolCall(idx, call.id, call.name, args, raw, True))
        self._calls.clear()


def payload_from_completion(body: dict) -> dict:
    """A non-streaming ``chat.completion`` (a server that ignored ``stream``) as one chunk."""
    choices = []
    for ch in body.get("choices") or []:
        if isinstance(ch, dict):
            msg = dict(ch.get("message") or {})
            calls = msg.get("tool_calls")
            if isinstance(calls, list):
                msg["tool_calls"] = [dict(c, index=c.get("index", i)) for i, c in enumerate(calls)
                                     if isinstance(c, dict)]
            choices.append({"index": ch.get("index", 0), "delta": msg,
                            "finish_reason": ch.get("finish_reason")})
    out = dict(body)
    out["choices"] = choices
    return out
