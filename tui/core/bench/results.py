"""Benchmark results: one workload's figures, a saved report, the seed's table.

A report is one ``llmdeck bench`` invocation (one or more workloads over the same prompts),
saved as ``logs/bench/<model>-<YYYYmmdd-HHMMSS>.json`` beside the model's server log, with the
model's registry entry, the server's own settings (``/props``) and the prompt set, so runs can be
compared later (``llmdeck bench MODEL --history``; the TUI shows the last runs side by side).
Values of ``env`` keys that look secret (TOKEN, KEY, SECRET, PASSWORD) are masked.

The seed table (seed 004, LightLLM GLM-4.7-Flash) has the columns Workload, Output (tok/s),
TTFT (ms) and end-to-end latency (ms). Its single figures are shown here as medians (p50); the
detail table and the JSON carry mean, p90 and p99 too. Output tok/s under 100 gets one decimal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.bench.stats import Histogram, Summary
from tui.core.reports import load_reports, now_iso, save_json  # noqa: F401 — now_iso for the sessions

FORMAT_VERSION = 1
SEED_HEADERS = ["Workload", "Output (tok/s)", "TTFT (ms)", "E2E latency (ms)"]
DETAIL_HEADERS = ["Workload", "Requests", "Errors", "Req/s", "TTFT p90", "TTFT p99", "E2E p90",
                  "E2E p99", "TPOT p50", "Client CPU"]
_SECRET = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD", re.I)


@dataclass
class ClientOverhead:
    """What the load generator itself cost, so a saturated client can be told from a slow server.

    ``cpu_pct`` is the process's CPU time over the run's wall time (100 = one full core).
    ``loop_lag_ms`` is how late a 10 ms timer fired (p50/p99/max; includes the ~1 ms timer
    granularity): the delay the client may add to the end of a stream (first tokens are stamped
    by a watcher thread apart from the loop). ``send_lag_ms`` is how late
    requests left against their schedule (burst and rate). ``connections`` is how many TCP
    connections were opened (keep-alive reuse keeps it near the peak in flight). ``saturated``
    is set when the CPU reached 90 % of a core or the loop's p99 lag exceeded 10 ms.
    """

    cpu_s: float = 0.0
    cpu_pct: float = 0.0
    loop_lag_ms: dict[str, float | None] = field(default_factory=dict)
    send_lag_ms: Summary = field(default_factory=lambda: Summary.of([]))
    peak_in_flight: int = 0
    connections: int = 0
    max_rss_mb: float = 0.0
    saturated: bool = False

    def to_dict(self) -> dict:
        return {"cpu_s": round(self.cpu_s, 3), "cpu_pct": round(self.cpu_pct, 1),
                "loop_lag_ms": {k: (round(v, 2) if v is not None else None) for k, v in self.loop_lag_ms.items()},
                "send_lag_ms": self.send_lag_ms.to_dict(), "peak_in_flight": self.peak_in_flight,
                "connections": self.connections, "max_rss_mb": round(self.max_rss_mb, 1),
                "saturated": self.saturated}

    @classmethod
    def from_dict(cls, d: dict | None) -> "ClientOverhead":
        d = d or {}
        return cls(d.get("cpu_s", 0.0), d.get("cpu_pct", 0.0), dict(d.get("loop_lag_ms") or {}),
                   Summary.from_dict(d.get("send_lag_ms")), d.get("peak_in_flight", 0),
                   d.get("connections", 0), d.get("max_rss_mb", 0.0), bool(d.get("saturated", False)))


@dataclass
class WorkloadResult:
    """One workload's figures. Times in ms; throughput over the run's wall time (first send to
    last response), counting successful requests only."""

    workload: str  # the spec, e.g. "concurrency=512"
    title: str  # the table row name, e.g. "concurrency (512)"
    requests: int
    completed: int
    errors: int
    error_kinds: dict[str, int]
    duration_s: float
    output_tokens: int
    prompt_tokens: int
    output_tok_s: float
    req_s: float
    ttft_ms: Summary
    e2e_ms: Summary
    tpot_ms: Summary  # time per output token after the first
    server_prompt_ms: Summary  # llama.cpp timings.prompt_ms (server-side prefill), when sent
    ttft_hist: Histogram
    e2e_hist: Histogram
    client: ClientOverhead
    records: list = field(default_factory=list, repr=False, compare=False)  # RequestRecord, not saved

    def seed_row(self) -> list[str]:
        return [self.title, _fmt(self.output_tok_s, 0 if self.output_tok_s >= 100 else 1),
                _fmt(self.ttft_ms.p50, 0), _fmt(self.e2e_ms.p50, 0)]

    def detail_row(self) -> list[str]:
        return [self.title, str(self.requests), str(self.errors), _fmt(self.req_s, 2),
                _fmt(self.ttft_ms.p90, 0), _fmt(self.ttft_ms.p99, 0), _fmt(self.e2e_ms.p90, 0),
                _fmt(self.e2e_ms.p99, 0), _fmt(self.tpot_ms.p50, 1),
                f"{self.client.cpu_pct:.0f}%" + (" (saturated)" if self.client.saturated else "")]

    def to_dict(self) -> dict:
        return {
            "workload": self.workload, "title": self.title, "requests": self.requests,
            "completed": self.completed, "errors": self.errors, "error_kinds": self.error_kinds,
            "duration_s": round(self.duration_s, 3), "output_tokens": self.output_tokens,
            "prompt_tokens": self.prompt_tokens, "output_tok_s": round(self.output_tok_s, 2),
            "req_s": round(self.req_s, 3), "ttft_ms": self.ttft_ms.to_dict(), "e2e_ms": self.e2e_ms.to_dict(),
            "tpot_ms": self.tpot_ms.to_dict(), "server_prompt_ms": self.server_prompt_ms.to_dict(),
            "histograms": {"ttft_ms": self.ttft_hist.to_dict(), "e2e_ms": self.e2e_hist.to_dict()},
            "client": self.client.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "WorkloadResult":
        h = d.get("histograms") or {}
        return cls(
            workload=d.get("workload", "?"), title=d.get("title", d.get("workload", "?")),
            requests=d.get("requests", 0), completed=d.get("completed", 0), errors=d.get("errors", 0),
            error_kinds=dict(d.get("error_kinds") or {}), duration_s=d.get("duration_s", 0.0),
            output_tokens=d.get("output_tokens", 0), prompt_tokens=d.get("prompt_tokens", 0),
            output_tok_s=d.get("output_tok_s", 0.0), req_s=d.get("req_s", 0.0),
            ttft_ms=Summary.from_dict(d.get("ttft_ms")), e2e_ms=Summary.from_dict(d.get("e2e_ms")),
            tpot_ms=Summary.from_dict(d.get("tpot_ms")),
            server_prompt_ms=Summary.from_dict(d.get("server_prompt_ms")),
            ttft_hist=Histogram.from_dict(h.get("ttft_ms")), e2e_hist=Histogram.from_dict(h.get("e2e_ms")),
            client=ClientOverhead.from_dict(d.get("client")),
        )


@dataclass
class BenchReport:
    """One invocation: target, settings, prompt set and the workloads' results."""

    model: str
    base_url: str
    started_at: str  # local time, ISO 8601 with offset
    settings: dict[str, Any]  # the registry entry (masked) + quant/engine
    server: dict[str, Any]  # from /props when the server has it
    prompts: dict[str, Any]
    options: dict[str, Any]
    runs: list[WorkloadResult] = field(default_factory=list)
    path: Path | None = None  # where it was saved / read from

    def to_dict(self) -> dict:
        return {"llmdeck_bench": FORMAT_VERSION, "model": self.model, "base_url": self.base_url,
                "started_at": self.started_at, "settings": self.settings, "server": self.server,
                "prompts": self.prompts, "options": self.options, "runs": [r.to_dict() for r in self.runs]}

    @classmethod
    def from_dict(cls, d: dict, path: Path | None = None) -> "BenchReport":
        return cls(model=d.get("model", "?"), base_url=d.get("base_url", ""), started_at=d.get("started_at", ""),
                   settings=d.get("settings") or {}, server=d.get("server") or {}, prompts=d.get("prompts") or {},
                   options=d.get("options") or {}, runs=[WorkloadResult.from_dict(r) for r in d.get("runs") or []],
                   path=path)

    def settings_summary(self) -> str:
        """A short line to tell runs apart: quant, slots, context, build."""
        parts = []
        if self.settings.get("quant"):
            parts.append(str(self.settings["quant"]))
        params = self.settings.get("params") or {}
        slots = self.server.get("total_slots") or params.get("parallel")
        if slots:
            parts.append(f"{slots} slots")
        if self.server.get("n_ctx"):
            parts.append(f"ctx {self.server['n_ctx']}/slot")
        elif params.get("ctx_size"):
            parts.append(f"ctx {params['ctx_size']}")
        if self.server.get("build_info"):
            parts.append(str(self.server["build_info"]))
        return " · ".join(parts)


def masked_entry(raw: dict[str, Any]) -> dict[str, Any]:
    entry = json.loads(json.dumps(raw, default=str))
    env = entry.get("env")
    if isinstance(env, dict):
        entry["env"] = {k: ("***" if _SECRET.search(k) else v) for k, v in env.items()}
    return entry


def bench_dir(logs_dir: Path) -> Path:
    return Path(logs_dir) / "bench"


def save(report: BenchReport, logs_dir: Path) -> Path:
    """Write the report atomically to ``<logs>/bench/<model>-<timestamp>.json``; never overwrites."""
    report.path = save_json(bench_dir(logs_dir), report.model, report.to_dict(), indent=2)
    return report.path


def list_reports(logs_dir: Path, model: str, last: int | None = None) -> list[BenchReport]:
    """Saved reports of ``model``, oldest first (the last ``last`` of them). Unreadable files are skipped."""
    return load_reports(bench_dir(logs_dir), model, last, lambda d: bool(d.get("llmdeck_bench")),
                        BenchReport.from_dict)


def _fmt(v: float | None, digits: int) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}"
