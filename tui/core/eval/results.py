"""Eval results: one case's verdict, per-category accuracy, the saved report, the seed's table.

A report is one ``llmdeck eval`` run, saved as ``logs/eval/<model>-<YYYYmmdd-HHMMSS>.json`` with
every case (id, question, expected, what the model called, valid, BFCL's error text), so a
user can see why a case failed; ``--history`` and the TUI compare saved runs side by side.

Decisions where the issue is silent:

* Accuracy is correct over the cases that finished (a cancelled run is marked ``partial`` and
  its categories count only what finished); a case whose request failed (server error,
  timeout) counts as wrong, as BFCL counts a missing result.
* The overall row is the case-weighted accuracy (all correct / all finished cases). BFCL's own
  section scores (Non-Live AST, Live AST, Irrelevance, as its leaderboard code computes them)
  are given beside it when every category of a section ran; BFCL's overall score also weighs
  multi-turn and agentic categories, which this suite does not run.
* Failure reasons are llmdeck's own grouping (BFCL's checker decides valid or not; its error
  text and ``error_type`` are kept per case): the request failed (``server error``,
  ``timeout``), ``unwanted call`` (an irrelevance case answered with a call), ``no call``,
  ``arguments not JSON``, ``wrong count`` (number of calls), ``wrong function`` (the names
  differ), else ``wrong value or type``.
* Accuracy is printed with two decimals, like the seed's table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.eval.bfcl import BFCL_VERSION, NOT_IN_V4, SEED_004, SEED_004_MODEL, V3_NAMES
from tui.core.reports import load_reports, now_iso, save_json  # noqa: F401 — now_iso for the sessions

FORMAT_VERSION = 1
REASONS = ("no call", "unwanted call", "wrong count", "wrong function", "wrong value or type",
           "arguments not JSON", "server error", "timeout")
TABLE_HEADERS = ["Category", "Cases", "Accuracy (%)"]
GOT_TEXT_MAX = 2000


@dataclass
class CaseResult:
    id: str
    category: str
    question: str
    expected: Any                 # BFCL's ground truth, or "no call" / "a call"
    got: Any                      # [{"name", "arguments"}] or the reply's text
    valid: bool
    reason: str | None = None     # one of REASONS when not valid
    error: str = ""               # BFCL's error text (or the request's error)
    error_type: str = ""
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {"id": self.id, "category": self.category, "question": self.question, "expected": self.expected,
                "got": self.got, "valid": self.valid, "reason": self.reason, "error": self.error,
                "error_type": self.error_type, "elapsed_s": round(self.elapsed_s, 3)}

    @classmethod
    def from_dict(cls, d: dict) -> "CaseResult":
        return cls(d.get("id", "?"), d.get("category", "?"), d.get("question", ""), d.get("expected"),
                   d.get("got"), bool(d.get("valid")), d.get("reason"), d.get("error", ""),
                   d.get("error_type", ""), d.get("elapsed_s", 0.0))


def reason_for(expected_calls: list | None, category: str, calls: list[dict] | None, bad_json: bool) -> str:
    """Why an invalid case failed (see the module's docstring)."""
    if "irrelevance" in category:
        return "unwanted call"
    if not calls:
        return "no call"
    if bad_json:
        return "arguments not JSON"
    if expected_calls is None:  # relevance: any call passes, so a call that failed did not decode
        return "arguments not JSON"
    if len(calls) != len(expected_calls):
        return "wrong count"
    want = sorted(next(iter(c)).replace(".", "_") for c in expected_calls)
    have = sorted(str(c.get("name", "")).replace(".", "_") for c in calls)
    return "wrong function" if want != have else "wrong value or type"


@dataclass
class CategoryResult:
    category: str
    cases: int                    # finished cases
    correct: int
    planned: int = 0              # cases the run meant to send
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return round(100.0 * self.correct / self.cases, 2) if self.cases else None

    def to_dict(self) -> dict:
        return {"category": self.category, "cases": self.cases, "correct": self.correct,
                "accuracy": self.accuracy, "planned": self.planned,
                "reasons": {k: v for k, v in self.reasons.items() if v}}


def label(category: str) -> str:
    """The table's name for a category: the v4 name, the seed's v3 name in brackets."""
    return f"{category} [{V3_NAMES[category]}]" if category in V3_NAMES else category


def is_seed_model(model: str, settings: dict | None = None) -> bool:
    """True when the model is seed 004's (GLM-4.7-Flash): by name, served name or repo."""
    s = settings or {}
    names = [model, s.get("alias"), s.get("repo_id"), s.get("model_path"), s.get("served_model_name")]
    return any(SEED_004_MODEL in str(n).lower() for n in names if n)


@dataclass
class EvalReport:
    model: str
    base_url: str
    started_at: str
    settings: dict[str, Any]
    server: dict[str, Any]
    options: dict[str, Any]
    cases: list[CaseResult] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)   # category → cases meant to run
    partial: bool = False
    duration_s: float = 0.0
    bfcl_summary: dict[str, float] = field(default_factory=dict)
    bfcl_version: str = BFCL_VERSION
    path: Path | None = None

    # --- figures ---

    def categories(self) -> list[CategoryResult]:
        by: dict[str, CategoryResult] = {c: CategoryResult(c, 0, 0, n) for c, n in self.planned.items()}
        reasons: dict[str, Counter] = {c: Counter() for c in by}
        for r in self.cases:
            cr = by.setdefault(r.category, CategoryResult(r.category, 0, 0, 0))
            cr.cases += 1
            cr.correct += r.valid
            if not r.valid:
                reasons.setdefault(r.category, Counter())[r.reason or "?"] += 1
        for c, cr in by.items():
            cr.reasons = dict(reasons.get(c, {}))
        return list(by.values())

    def overall(self) -> dict[str, Any]:
        done = len(self.cases)
        correct = sum(r.valid for r in self.cases)
        return {"formula": "case-weighted: correct cases / finished cases over every category run",
                "cases": done, "correct": correct,
                "accuracy": round(100.0 * correct / done, 2) if done else None,
                "bfcl_sections": dict(self.bfcl_summary)}

    def reasons(self) -> dict[str, int]:
        c = Counter(r.reason for r in self.cases if not r.valid)
        return {k: c[k] for k in (*REASONS, "?") if c.get(k)}

    def failures(self) -> list[CaseResult]:
        return [r for r in self.cases if not r.valid]

    @property
    def seed(self) -> bool:
        return is_seed_model(self.model, self.settings)

    # --- tables ---

    def headers(self) -> list[str]:
        return TABLE_HEADERS + (["Seed 004 (%)"] if self.seed else [])

    def rows(self) -> list[list[str]]:
        """The seed-004-style table: one row per category, rest/sql as not in BFCL v4, overall."""
        seed = self.seed
        rows = []
        for cr in self.categories():
            row = [label(cr.category), _cases_cell(cr), _pct(cr.accuracy)]
            if seed:
                row.append(_pct(SEED_004.get(cr.category)))
            rows.append(row)
        for c in NOT_IN_V4:
            rows.append([c, "-", "not in BFCL v4"] + ([_pct(SEED_004[c])] if seed else []))
        ov = self.overall()
        rows.append(["overall (case-weighted)", str(ov["cases"]), _pct(ov["accuracy"])]
                    + ([_pct(SEED_004["overall"])] if seed else []))
        return rows

    def summary_line(self) -> str:
        parts = [f"BFCL {self.bfcl_version}"]
        names = {"non_live_ast": "Non-Live AST", "live_ast": "Live AST", "irrelevance": "Irrelevance"}
        for k, v in self.bfcl_summary.items():
            parts.append(f"{names.get(k, k)} {v:.2f}% (BFCL's formula)")
        return " · ".join(parts)

    def settings_summary(self) -> str:
        """A short line to tell runs apart: quant, engine, thinking, temperature."""
        parts = []
        if self.settings.get("quant"):
            parts.append(str(self.settings["quant"]))
        if self.settings.get("engine"):
            parts.append(str(self.settings["engine"]))
        parts.append("thinking off" if self.options.get("thinking") is False else "thinking on")
        if self.options.get("limit"):
            parts.append(f"limit {self.options['limit']}")
        if self.partial:
            parts.append("partial")
        return " · ".join(parts)

    # --- JSON ---

    def to_dict(self, with_cases: bool = True) -> dict:
        d = {"suite": "bfcl", "llmdeck_eval": FORMAT_VERSION, "bfcl_version": self.bfcl_version,
             "model": self.model, "base_url": self.base_url, "started_at": self.started_at,
             "partial": self.partial, "duration_s": round(self.duration_s, 3), "settings": self.settings,
             "server": self.server, "options": self.options,
             "categories": [c.to_dict() for c in self.categories()],
             "not_in_bfcl_v4": list(NOT_IN_V4), "overall": self.overall(), "reasons": self.reasons()}
        if self.seed:
            d["seed_004"] = dict(SEED_004)
        if with_cases:
            d["cases"] = [r.to_dict() for r in self.cases]
        return d

    @classmethod
    def from_dict(cls, d: dict, path: Path | None = None) -> "EvalReport":
        planned = {c["category"]: c.get("planned") or c.get("cases", 0)
                   for c in d.get("categories") or [] if isinstance(c, dict) and "category" in c}
        rep = cls(model=d.get("model", "?"), base_url=d.get("base_url", ""), started_at=d.get("started_at", ""),
                  settings=d.get("settings") or {}, server=d.get("server") or {}, options=d.get("options") or {},
                  cases=[CaseResult.from_dict(c) for c in d.get("cases") or [] if isinstance(c, dict)],
                  planned=planned, partial=bool(d.get("partial")), duration_s=d.get("duration_s", 0.0),
                  bfcl_summary=dict((d.get("overall") or {}).get("bfcl_sections") or {}),
                  bfcl_version=d.get("bfcl_version", "?"), path=path)
        return rep


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _cases_cell(cr: CategoryResult) -> str:
    return str(cr.cases) if not cr.planned or cr.cases == cr.planned else f"{cr.cases}/{cr.planned}"


def eval_dir(logs_dir: Path) -> Path:
    return Path(logs_dir) / "eval"


def save(report: EvalReport, logs_dir: Path) -> Path:
    """Write the report atomically to ``<logs>/eval/<model>-<timestamp>.json``; never overwrites."""
    report.path = save_json(eval_dir(logs_dir), report.model, report.to_dict(), indent=1)
    return report.path


def list_reports(logs_dir: Path, model: str, last: int | None = None) -> list[EvalReport]:
    """Saved reports of ``model``, oldest first (the last ``last``). Unreadable files are skipped."""
    return load_reports(eval_dir(logs_dir), model, last, lambda d: d.get("suite") == "bfcl", EvalReport.from_dict)


def history_table(reports: list[EvalReport]) -> tuple[list[str], list[list[str]]]:
    """Saved runs side by side: one row per category, one column per run (accuracy %)."""
    cats: list[str] = []
    per_run = []
    for rep in reports:
        accs = {}
        for cr in rep.categories():
            if cr.category not in cats:
                cats.append(cr.category)
            accs[cr.category] = cr.accuracy
        per_run.append(accs)
    headers = ["Category"] + [f"#{i + 1}" for i in range(len(reports))]
    rows = [[label(c)] + [_pct(a.get(c)) for a in per_run] for c in cats]
    rows.append(["overall"] + [_pct(r.overall()["accuracy"]) for r in reports])
    return headers, rows


def history_legend(reports: list[EvalReport]) -> list[str]:
    return [f"#{i + 1} {r.started_at[:16].replace('T', ' ')} · {r.settings_summary()}" for i, r in enumerate(reports)]
