"""``llmdeck eval``: BFCL function-calling accuracy of a running model (seed 004's table).

Modules, one job each:

* :mod:`.bfcl` — the only module that touches ``bfcl_eval``: fetching its wheel into the
  cache, loading its checker with a stand-in model table, the categories, the cases (tools as
  BFCL's OpenAI FC handler sends them) and BFCL's verdict on a reply.
* :mod:`.runner` — sends cases through llmdeck's chat client, N in flight, scores each.
* :mod:`.results` — :class:`CaseResult` / :class:`EvalReport`, the seed table, failure
  reasons, JSON files in ``logs/eval/``, history side by side.
* :mod:`.session` — :class:`EvalSession`: checks, runs, cancels, saves (for the CLI and the TUI).

Everything here is UI-free.
"""

from tui.core.eval.bfcl import (BFCL_VERSION, NOT_IN_V4, SEED_004, BfclError, Case, categories,
                                parse_category)
from tui.core.eval.results import (REASONS, CaseResult, CategoryResult, EvalReport, history_legend,
                                   history_table, label, list_reports, save)
from tui.core.eval.runner import EvalOptions, Progress, run_cases
from tui.core.eval.session import EvalError, EvalSession

__all__ = [
    "BFCL_VERSION", "BfclError", "Case", "CaseResult", "CategoryResult", "EvalError", "EvalOptions", "EvalReport",
    "EvalSession", "NOT_IN_V4", "Progress", "REASONS", "SEED_004", "categories", "history_legend", "history_table",
    "label", "list_reports", "parse_category", "run_cases", "save",
]
