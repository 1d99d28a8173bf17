"""Send BFCL cases through llmdeck's chat client, N in flight, and score each as it finishes.

Every request goes through :class:`tui.core.chat.client.ChatClient` (streaming), so tool calls
a server leaves as raw text (GLM XML, hermes, Qwen3.5 XML) are read exactly as ``llmdeck chat``
reads them, with the model's ``reasoning_parser``. Each worker owns one client (one stream per
client, keep-alive connection reused); the cases come from one shared queue in BFCL's order.

``timeout_s`` is the chat client's read timeout: a case whose server sends nothing for that long
fails as ``timeout``; any other request failure is that case's ``server error`` and the run goes
on. Cancelling (the task is cancelled) keeps every finished case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tui.core.eval import bfcl
from tui.core.eval.results import GOT_TEXT_MAX, CaseResult, reason_for


def _absent_sniffio_fails_fast() -> None:
    """httpcore runs ``import sniffio`` on every request and falls back to asyncio when it is
    missing; a failed import is not cached, so each request searched ``sys.path`` again (about
    1 ms, a third of the harness's time per case). When sniffio is not installed, record it as
    absent (``None`` in ``sys.modules``) so the import fails at once, as it would anyway."""
    import importlib.util
    import sys

    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


DRAIN_S = 0.05
_DONE = b"data: [DONE]"


def _keepalive_transport(concurrency: int):
    """One connection pool for every worker's chat client, whose response bodies are read to
    their end when ``data: [DONE]`` arrives.

    The chat client stops reading at ``[DONE]`` and closes the response; the body's terminating
    chunk is then usually already in the socket buffer but unread, and httpcore closes a
    connection whose response was not read to its end, so every case paid a new connect. Here
    the piece holding ``[DONE]`` is held back until the rest of the body is read (for at most
    ``DRAIN_S``; then everything read is passed on, nothing is dropped), which lets the
    keep-alive connection serve the next case. Closing a client leaves the shared pool open;
    the runner closes ``transport.inner`` at the end. (httpx is imported here, not at module
    import: the core loads it only to send.)"""
    import httpx

    class Drained(httpx.AsyncByteStream):
        def __init__(self, inner) -> None:
            self._inner = inner

        async def __aiter__(self):
            it = self._inner.__aiter__()
            async for chunk in it:
                if _DONE not in chunk:
                    yield chunk
                    continue
                rest = []
                try:
                    async with asyncio.timeout(DRAIN_S):
                        async for more in it:
                            rest.append(more)
                except TimeoutError:
                    pass
                yield chunk
                for more in rest:
                    yield more
                return

        async def aclose(self) -> None:
            await self._inner.aclose()

    class Shared(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport(
                trust_env=False, limits=httpx.Limits(max_connections=concurrency + 4,
                                                     max_keepalive_connections=concurrency + 4))

        async def handle_async_request(self, request):
            resp = await self.inner.handle_async_request(request)
            resp.stream = Drained(resp.stream)
            return resp

        async def aclose(self) -> None:
            pass

    return Shared()


@dataclass
class EvalOptions:
    categories: list[str]
    limit: int | None = None
    concurrency: int | None = None      # None: the server's slots (/props), else 4
    thinking: bool | None = None        # None: send nothing (thinking stays on); False: --no-think
    max_tokens: int | None = None
    timeout_s: float = 600.0

    def to_dict(self) -> dict:
        return {"categories": list(self.categories), "limit": self.limit, "concurrency": self.concurrency,
                "thinking": self.thinking, "max_tokens": self.max_tokens, "timeout_s": self.timeout_s}


@dataclass
class Progress:
    done: int
    total: int
    correct: int
    elapsed_s: float
    in_flight: int
    per_category: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # cat → done, correct, total

    @property
    def cases_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def accuracy(self) -> float | None:
        return 100.0 * self.correct / self.done if self.done else None

    def line(self) -> str:
        acc = "-" if self.accuracy is None else f"{self.accuracy:.1f}%"
        return (f"{self.done}/{self.total} cases · {acc} correct · {self.cases_per_s:.1f} cases/s · "
                f"{self.in_flight} in flight · {self.elapsed_s:.0f}s")


def expected_of(case: bfcl.Case) -> Any:
    if case.answer is not None:
        return case.answer
    return "no call" if "irrelevance" in case.category else "a call"


def score(case: bfcl.Case, events: list, elapsed: float) -> CaseResult:
    """One finished request's events → the case's result (BFCL's checker decides ``valid``)."""
    from tui.core.chat.events import Content, Error, ToolCall

    calls: list[ToolCall] = [e for e in events if isinstance(e, ToolCall)]
    text = "".join(e.text for e in events if isinstance(e, Content))
    err = next((e for e in events if isinstance(e, Error)), None)
    question = case.question()
    if err is not None and not calls:
        reason = "timeout" if err.kind == "timeout" else "server error"
        return CaseResult(case.id, case.category, question, expected_of(case), text[:GOT_TEXT_MAX], False,
                          reason, err.message, f"request:{err.kind}", elapsed)
    got = [{"name": c.name, "arguments": c.arguments if c.ok else c.raw} for c in calls]
    verdict = bfcl.check(case, [(c.name, c.arguments_json()) for c in calls] if calls else None, text)
    reason = None
    if not verdict.valid:
        reason = reason_for(case.answer, case.category, got, any(not c.ok for c in calls))
    return CaseResult(case.id, case.category, question, expected_of(case), got if calls else text[:GOT_TEXT_MAX],
                      verdict.valid, reason, verdict.error, verdict.error_type, elapsed)


async def run_cases(target: Any, cases: list[bfcl.Case], *, concurrency: int, thinking: bool | None = None,
                    params: dict | None = None, max_tokens: int | None = None, timeout_s: float = 600.0,
                    on_result: Callable[[CaseResult], None] | None = None,
                    on_progress: Callable[[Progress], None] | None = None,
                    results: list[CaseResult] | None = None) -> list[CaseResult]:
    """Run ``cases`` against ``target`` (a :class:`ChatTarget` or base URL) with ``concurrency``
    requests in flight; finished results are appended to ``results`` as they come (so a cancel
    keeps them)."""
    from tui.core.chat.client import ChatClient

    _absent_sniffio_fails_fast()
    out = results if results is not None else []
    queue: asyncio.Queue = asyncio.Queue()
    for c in cases:
        queue.put_nowait(c)
    total = len(cases)
    planned: dict[str, int] = {}
    for c in cases:
        planned[c.category] = planned.get(c.category, 0) + 1
    per: dict[str, list[int]] = {k: [0, 0] for k in planned}
    t0 = time.perf_counter()
    state = {"correct": 0, "in_flight": 0}

    def progress() -> Progress:
        return Progress(len(out), total, state["correct"], time.perf_counter() - t0, state["in_flight"],
                        {k: (v[0], v[1], planned[k]) for k, v in per.items()})

    n = max(1, min(concurrency, total or 1))
    transport = _keepalive_transport(n)

    async def worker() -> None:
        client = ChatClient(target, read_timeout=timeout_s, transport=transport)
        try:
            while True:
                try:
                    case = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                state["in_flight"] += 1
                start = time.perf_counter()
                events: list = []
                try:
                    async for ev in client.stream(case.messages, tools=case.tools, max_tokens=max_tokens,
                                                  thinking=thinking, params=params):
                        if ev.type in ("tool_call", "content", "error"):
                            events.append(ev)
                finally:
                    state["in_flight"] -= 1
                res = score(case, events, time.perf_counter() - start)
                out.append(res)
                per[case.category][0] += 1
                per[case.category][1] += res.valid
                state["correct"] += res.valid
                if on_result is not None:
                    on_result(res)
                if on_progress is not None:
                    on_progress(progress())
        finally:
            await client.aclose()

    tasks = [asyncio.ensure_future(worker()) for _ in range(n)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await transport.inner.aclose()
    return out
