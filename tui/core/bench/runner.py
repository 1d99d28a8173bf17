"""Run one workload against a server and turn the request records into a result.

``await run_workload(target, workload, prompts, options, on_progress)`` is the whole API. The
callback gets a :class:`Progress` (plain, frozen) every ``progress_interval_s`` and once more at
the end with ``finished=True``; it runs on the event loop, so it must be quick (the TUI posts a
message). Cancelling the task stops the run: in-flight requests are dropped and their
connections closed.

Request ``i`` uses prompt ``i % len(prompts)``; it asks for the prompt's reply length, capped by
``options.max_tokens``, with ``stream_options.include_usage``. Sampling is left to the server's
own settings (they are part of what is being measured); ``ignore_eos`` asks llama.cpp and vLLM to
always generate the full length.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tui.core.bench.client import RequestRecord, StreamClient, monotonic
from tui.core.bench.prompts import Prompt
from tui.core.bench.results import ClientOverhead, WorkloadResult
from tui.core.bench.stats import Histogram, LagHistogram, Summary
from tui.core.bench.workload import Workload

LAG_TICK_S = 0.01
SATURATED_CPU_PCT = 90.0
SATURATED_LAG_MS = 10.0
FD_HEADROOM = 64


class BenchError(Exception):
    """The run cannot start (one-line message saying what to change)."""


@dataclass(frozen=True)
class Target:
    """Where requests go: the OpenAI base URL (…/v1) and the ``model`` name to send."""

    base_url: str
    served_name: str
    api_key: str | None = None


@dataclass(frozen=True)
class BenchOptions:
    requests: int = 100
    max_tokens: int | None = None  # cap on each request's reply length
    seed: int = 0
    timeout_s: float = 600.0  # per request, send to last byte
    ignore_eos: bool = False
    progress_interval_s: float = 0.25


@dataclass(frozen=True)
class Progress:
    """A live view of a run, for progress lines and the TUI."""

    workload: str
    done: int
    total: int
    in_flight: int
    errors: int
    output_tokens: int  # text events seen so far (usage counts replace them at the end)
    elapsed_s: float
    tok_s: float  # over the last second
    req_s: float  # finished requests per second so far
    finished: bool = False


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (its C transports cut the client's per-read cost several
    times, which keeps TTFT timestamps prompt at hundreds of streams), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_sync(coro):
    """Run a coroutine (e.g. :func:`run_workload`) to completion on a fresh loop from
    :func:`new_event_loop`; for the CLI, and for a TUI worker thread (not inside a running loop)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def request_body(target: Target, prompt: Prompt, options: BenchOptions) -> dict:
    n = prompt.output_tokens if options.max_tokens is None else min(prompt.output_tokens, options.max_tokens)
    body = {"model": target.served_name, "messages": [{"role": "user", "content": prompt.text}],
            "max_tokens": max(1, n), "stream": True, "stream_options": {"include_usage": True}}
    if options.ignore_eos:
        body["ignore_eos"] = True
    return body


def _ensure_fds(need: int, label: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(hard, max(want, soft))
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < want:
        raise BenchError(f"workload {label} needs {need} connections open at once but the open-file "
                         f"limit is {soft}: raise it (ulimit -n {want}) or use fewer concurrent requests")


async def run_workload(target: Target, workload: Workload, prompts: Sequence[Prompt],
                       options: BenchOptions = BenchOptions(),
                       on_progress: Callable[[Progress], None] | None = None) -> WorkloadResult:
    n = options.requests
    if n < 1:
        raise BenchError("--requests must be 1 or more")
    if not prompts:
        raise BenchError("no prompts")
    label = workload.label
    if workload.kind == "concurrency":
        _ensure_fds(min(int(workload.value), n), label)
    elif workload.kind == "burst":
        _ensure_fds(n, label)
    else:
        _ensure_fds(0, label)

    client = StreamClient(target.base_url, api_key=target.api_key, timeout_s=options.timeout_s)
    records: list[RequestRecord | None] = [None] * n
    st = {"in_flight": 0, "peak": 0, "done": 0, "errors": 0}
    lag = LagHistogram()
    finished = asyncio.Event()
    tasks: set[asyncio.Task] = set()

    def body(i: int) -> bytes:
        return client.encode(request_body(target, prompts[i % len(prompts)], options))

    async def one(i: int, scheduled: float | None) -> None:
        rec = RequestRecord(i, scheduled)
        records[i] = rec
        st["in_flight"] += 1
        if st["in_flight"] > st["peak"]:
            st["peak"] = st["in_flight"]
        try:
            await client.send(rec, body(i))
        finally:
            st["in_flight"] -= 1
            st["done"] += 1
            if rec.error is not None:
                st["errors"] += 1
            if st["done"] == n:
                finished.set()

    def progress(now: float, window: collections.deque, done: bool = False) -> Progress:
        window.append((now, client.tokens_seen))
        while len(window) > 2 and now - window[0][0] > 1.0:
            window.popleft()
        (t_a, k_a), (t_b, k_b) = window[0], window[-1]
        elapsed = now - t0
        return Progress(label, st["done"], n, st["in_flight"], st["errors"], client.tokens_seen, elapsed,
                        (k_b - k_a) / (t_b - t_a) if t_b > t_a else 0.0,
                        st["done"] / elapsed if elapsed > 0 else 0.0, done)

    async def ticker() -> None:
        window: collections.deque = collections.deque()
        last_report = monotonic()
        while not finished.is_set():
            t = monotonic()
            await asyncio.sleep(LAG_TICK_S)
            now = monotonic()
            lag.add((now - t - LAG_TICK_S) * 1000.0)
            if on_progress is not None and now - last_report >= options.progress_interval_s:
                last_report = now
                client.flush()
                on_progress(progress(now, window))

    def spawn(i: int, scheduled: float | None) -> None:
        task = asyncio.create_task(one(i, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def worker(counter) -> None:
        for i in counter:
            await one(i, None)

    cpu0 = time.process_time()
    t0 = monotonic()
    tick = asyncio.create_task(ticker())
    try:
        if workload.kind == "burst":
            for i in range(n):
                spawn(i, t0)
        elif workload.kind == "concurrency":
            counter = iter(range(n))
            for _ in range(min(int(workload.value), n)):
                task = asyncio.create_task(worker(counter))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        else:
            for i, off in enumerate(workload.arrivals(n, options.seed)):
                when = t0 + off
                delay = when - monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                spawn(i, when)
        await finished.wait()
        await tick
    finally:
        tick.cancel()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
    cpu = time.process_time() - cpu0
    wall = monotonic() - t0
    if on_progress is not None:
        on_progress(progress(monotonic(), collections.deque(), done=True))
    recs = [r for r in records if r is not None]
    return summarize(workload, recs, t0, cpu, wall, lag, st["peak"], client.connections_opened)


def summarize(workload: Workload, recs: list[RequestRecord], t0: float, cpu_s: float, wall_s: float,
              lag: LagHistogram, peak: int, connections: int = 0) -> WorkloadResult:
    ok = [r for r in recs if r.ok]
    ends = [r.end for r in recs if r.end is not None]
    duration = (max(ends) - t0) if ends else wall_s
    out_tokens = sum(r.output_tokens for r in ok)
    ttft = [r.ttft * 1000 for r in ok if r.first is not None]
    e2e = [r.latency * 1000 for r in ok]
    tpot = [(r.latency - r.ttft) * 1000 / (r.output_tokens - 1) for r in ok
            if r.first is not None and r.output_tokens > 1]
    kinds = collections.Counter(r.error for r in recs if r.error)
    lag_ms = {"p50": lag.quantile(50), "p99": lag.quantile(99), "max": lag.max_ms if lag.n else None}
    cpu_pct = 100.0 * cpu_s / wall_s if wall_s > 0 else 0.0
    client = ClientOverhead(
        cpu_s=cpu_s, cpu_pct=cpu_pct, loop_lag_ms=lag_ms,
        send_lag_ms=Summary.of((r.start - r.scheduled) * 1000 for r in recs
                               if r.scheduled is not None and r.start is not None),
        peak_in_flight=peak, connections=connections,
        max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        saturated=cpu_pct >= SATURATED_CPU_PCT or (lag_ms["p99"] or 0) > SATURATED_LAG_MS)
    return WorkloadResult(
        workload=workload.label, title=workload.title, requests=len(recs), completed=len(ok),
        errors=len(recs) - len(ok), error_kinds=dict(kinds.most_common(5)), duration_s=duration,
        output_tokens=out_tokens, prompt_tokens=sum(r.prompt_tokens or 0 for r in ok),
        output_tok_s=out_tokens / duration if duration > 0 else 0.0,
        req_s=len(ok) / duration if duration > 0 else 0.0,
        ttft_ms=Summary.of(ttft), e2e_ms=Summary.of(e2e), tpot_ms=Summary.of(tpot),
        server_prompt_ms=Summary.of(r.server_prompt_ms for r in ok if r.server_prompt_ms is not None),
        ttft_hist=Histogram.of(ttft), e2e_hist=Histogram.of(e2e), client=client, records=recs)
