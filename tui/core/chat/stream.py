"""One turn's response body → events: SSE framing, JSON, delta assembly, timing.

:class:`TurnDecoder` is the whole pipeline without the network, so tests and benchmarks can
feed it bytes in any chunking. It ends the turn exactly once:

* ``data: [DONE]`` → ``Done`` (``finish_reason`` as the server sent it);
* an error payload → the server's ``Error`` (vLLM sends ``[DONE]`` after it, llama.cpp just
  closes; either way the error ends the turn);
* end of body after a finish reason (a server that skips ``[DONE]``) → ``Done``;
* end of body without one → ``Error(kind="interrupted")``, after the text that arrived;
* :meth:`cancel` → ``Done(finish_reason="cancelled")``.

Before the terminal event, held raw text is flushed and tool calls are completed, so the
partial text of an interrupted or cancelled turn is never lost.

Stats: TTFT is from the request start to the read that brought the first generated text or
call fragment; tokens/s is the server's ``timings.predicted_per_second`` when present, else
completion tokens (``usage``, else ``timings.predicted_n``, else the count of chunks that
carried text — one per token on llama.cpp) after the first, over the time from the first to
the last such read.
"""

from __future__ import annotations

from json import loads

from tui.core.chat.deltas import DeltaAssembler, payload_from_completion
from tui.core.chat.events import Done, Error, Stats
from tui.core.chat.sse import SSEDecoder

INTERRUPTED = ("the stream closed before the model finished (no finish_reason): the reply is "
               "incomplete; the text received so far is kept")


class TurnDecoder:
    __slots__ = ("sse", "asm", "t0", "t_first", "t_last", "done")

    def __init__(self, assembler: DeltaAssembler, t0: float) -> None:
        self.sse = SSEDecoder()
        self.asm = assembler
        self.t0 = t0
        self.t_first: float | None = None
        self.t_last: float | None = None
        #: the terminal event has been produced; later bytes are ignored
        self.done = False

    def feed(self, chunk: bytes, now: float) -> list:
        if self.done:
            return []
        payloads = self.sse.feed(chunk)
        if not payloads:
            return []
        out: list = []
        self._payloads(payloads, out, now)
        return out

    def _payloads(self, payloads: list[bytes], out: list, now: float) -> None:
        asm = self.asm
        n0 = asm.token_chunks
        end = None
        for p in payloads:
            if p == b"[DONE]":
                end = "done"
                break
            if not p or p.isspace():
                continue
            try:
                obj = loads(p.decode())  # str is faster to parse than bytes (no encoding sniffing)
            except ValueError:  # bad JSON or bad UTF-8
                end = Error("server sent a stream payload that is not JSON: "
                            + p[:120].decode("utf-8", "replace").replace("\n", " "), None, "protocol")
                break
            err = asm.feed(obj, out)
            if err is not None:
                end = err
                break
        if asm.token_chunks != n0:
            if self.t_first is None:
                self.t_first = now
            self.t_last = now
        if end == "done":
            self._end(out, None, now)
        elif end is not None:
            self._end(out, end, now)

    def feed_completion(self, body: object, now: float) -> list:
        """A whole non-streamed ``chat.completion`` body (a server that ignored ``stream``)."""
        out: list = []
        if isinstance(body, dict) and "choices" in body:
            body = payload_from_completion(body)
        n0 = self.asm.token_chunks
        err = self.asm.feed(body, out)
        if self.asm.token_chunks != n0:
            self.t_first = self.t_last = now
        self._end(out, err, now)
        return out

    def close(self, now: float) -> list:
        """End of body."""
        if self.done:
            return []
        out: list = []
        rest = self.sse.close()
        if rest:
            self._payloads(rest, out, now)
            if self.done:
                return out
        if self.asm.finish_reason is not None:
            self._end(out, None, now)
        else:
            self._end(out, Error(INTERRUPTED, None, "interrupted"), now)
        return out

    def cancel(self, now: float) -> list:
        if self.done:
            return []
        out: list = []
        self.asm.finish(out)
        self.done = True
        out.append(Done("cancelled", self.asm.usage, self.asm.timings, self.stats(now)))
        return out

    def fail(self, error: Error, now: float) -> list:
        """End the turn with an error found outside the body (timeout, connection lost)."""
        if self.done:
            return []
        out: list = []
        self._end(out, error, now)
        return out

    def _end(self, out: list, error: Error | None, now: float) -> None:
        self.asm.finish(out)
        self.done = True
        if error is not None:
            out.append(error)
        else:
            a = self.asm
            out.append(Done(a.finish_reason, a.usage, a.timings, self.stats(now)))

    def stats(self, now: float) -> Stats:
        a = self.asm
        u = a.usage if isinstance(a.usage, dict) else {}
        t = a.timings if isinstance(a.timings, dict) else {}
        prompt = u.get("prompt_tokens")
        if prompt is None and "prompt_n" in t:
            prompt = (t.get("prompt_n") or 0) + (t.get("cache_n") or 0)
        completion = u.get("completion_tokens")
        if completion is None:
            completion = t.get("predicted_n")
        if completion is None and a.token_chunks:
            completion = a.token_chunks
        details = u.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if cached is None:
            cached = t.get("cache_n")
        s = Stats(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
                  elapsed_s=now - self.t0,
                  reasoning_unterminated=a.raw.reasoning_unterminated)
        if self.t_first is not None:
            s.ttft_s = self.t_first - self.t0
        tps = t.get("predicted_per_second")
        if isinstance(tps, (int, float)):
            s.tokens_per_s, s.tokens_per_s_source = float(tps), "server"
        elif completion and completion > 1 and self.t_first is not None and self.t_last > self.t_first:
            s.tokens_per_s = (completion - 1) / (self.t_last - self.t_first)
            s.tokens_per_s_source = "measured"
        pps = t.get("prompt_per_second")
        if isinstance(pps, (int, float)):
            s.prompt_tokens_per_s = float(pps)
        return s
