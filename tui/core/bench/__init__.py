"""``llmdeck bench``: a load generator for OpenAI-compatible servers and the seed's speed table.

Modules, one job each:

* :mod:`.workload` — ``burst``, ``concurrency=N``, ``rate=R`` (Poisson, seeded) and the ``seed``
  suite (the four rows of seed 004's table).
* :mod:`.prompts` — the seeded synthetic prompt set and the ShareGPT loader (streamed, sampled).
* :mod:`.client` — the asyncio HTTP/1.1 + SSE client (bounded memory, bulk parsing): the
  request record and the keep-alive pool, over :mod:`.http1` (the HTTP/1.1 response, chunked
  decoding), :mod:`.sse` (one streamed completion's events, lazy parsing) and
  :mod:`.firsttoken` (the thread that stamps first tokens).
* :mod:`.runner` — runs one workload, reports :class:`Progress`, measures its own overhead.
* :mod:`.results` — :class:`WorkloadResult` / :class:`BenchReport`, JSON files in ``logs/bench/``,
  the seed table rows.
* :mod:`.target` — the model's URL (supervisor or registry), preflight, ``/props``.
* :mod:`.session` — :class:`BenchSession`: checks, runs the workloads, cancels, saves.

Front ends (CLI ``tui/cli/cmd_bench.py``, the TUI bench view) use :class:`BenchSession`:
construct it (every check, one-line errors), ``run(on_progress, on_result)`` in a worker
thread, ``cancel()`` from the UI, ``save()``; the last runs for a side-by-side view come from
:func:`list_reports`. Everything here is UI-free.
"""

from tui.core.bench.client import RequestRecord, StreamClient
from tui.core.bench.prompts import Prompt, PromptsError, load_sharegpt, prompts_info, synthetic
from tui.core.bench.results import (DETAIL_HEADERS, SEED_HEADERS, BenchReport, ClientOverhead,
                                    WorkloadResult, list_reports, now_iso, save)
from tui.core.bench.session import BenchSession
from tui.core.bench.runner import (BenchError, BenchOptions, Progress, Target, new_event_loop, run_sync,
                                   run_workload)
from tui.core.bench.stats import Histogram, Summary, percentile
from tui.core.bench.target import preflight, resolve, server_info
from tui.core.bench.workload import SEED_SUITE, Workload, WorkloadError, parse_many

__all__ = [
    "BenchError", "BenchOptions", "BenchReport", "BenchSession", "ClientOverhead", "DETAIL_HEADERS", "Histogram",
    "Progress", "Prompt", "PromptsError", "RequestRecord", "SEED_HEADERS", "SEED_SUITE", "StreamClient",
    "Summary", "Target", "Workload", "WorkloadError", "WorkloadResult", "list_reports", "load_sharegpt",
    "new_event_loop", "now_iso", "parse_many", "percentile", "preflight", "prompts_info", "resolve", "run_sync", "run_workload", "save",
    "server_info", "synthetic",
]
