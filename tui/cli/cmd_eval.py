"""``llmdeck eval MODEL``: BFCL function-calling accuracy of a running model (seed 004's table).

Sends BFCL v4's single-turn cases (all 13 categories, or ``-c``) through llmdeck's chat client
and scores each with BFCL's own checker; prints one row per category (the seed's figure beside
it when the model is seed 004's GLM-4.7-Flash), the overall row, failures by reason and the
first failed cases, and saves every case to ``logs/eval/<model>-<timestamp>.json``.
``--history`` prints the saved runs side by side instead of running.

Exit codes (as ``bench``): 0 the run finished (whatever the accuracy); 1 some requests failed
(server error or timeout; those cases count as wrong, the table is still printed and saved),
the server could not be reached or BFCL's package could not be had; 2 usage or registry error
(unknown model or category); 130 cancelled with Ctrl-C (what finished is printed and saved,
marked partial).
"""

from __future__ import annotations

import argparse

from tui.cli.common import UsageError, add_report_options, exits, load_registry, print_history
from tui.cli.output import EXIT_FAIL, EXIT_OK, EXIT_USAGE, error, info, live_line, print_json, table, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="function-calling accuracy of a running model (BFCL; the seed's table)",
        description="Run BFCL's function-calling cases against a running model through llmdeck's chat "
                    "client and score them with BFCL's own checker (bfcl-eval, fetched into the cache).")
    p.add_argument("model")
    p.add_argument("-c", "--category", action="append", metavar="CATEGORY",
                   help="a BFCL v4 category (simple_python, simple_java, simple_javascript, multiple, parallel, "
                        "parallel_multiple, irrelevance, live_simple, live_multiple, live_parallel, "
                        "live_parallel_multiple, live_irrelevance, live_relevance) or the seed's v3 name "
                        "(simple, java, javascript); repeatable; default all")
    p.add_argument("--limit", type=int, metavar="N", help="the first N cases of each category (a quick run)")
    p.add_argument("--concurrency", type=int, metavar="N",
                   help="requests in flight (default: the server's slots from /props, else 4)")
    p.add_argument("--no-think", action="store_true", help="turn thinking off (chat_template_kwargs.enable_thinking)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="cap on each reply's length (default: none)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds a case may wait for the server's next byte (default 600)")
    p.add_argument("--failures", type=int, default=5, metavar="N",
                   help="how many failed cases to print (default 5; all are in the saved report)")
    add_report_options(p, "eval", history_help="print the saved runs of MODEL side by side", last=5, noun="runs")
    p.set_defaults(func=cmd_eval)


def _progress_printer():
    line, clear = live_line(0.1)
    if line is None:
        return lambda _p: None, clear
    return (lambda p: line(p.line(), force=p.done >= p.total)), clear


def print_report(report, failures: int) -> None:
    table(report.headers(), report.rows())
    print(f"Accuracy over the cases run; {report.summary_line()}.")
    reasons = report.reasons()
    if reasons:
        print("Failures: " + " · ".join(f"{k} {v}" for k, v in reasons.items()))
    failed = report.failures()
    for r in failed[:max(0, failures)]:
        print(f"  {r.id} ({r.reason}): {_short(r.error or '-', 150)}")
    if len(failed) > failures > 0:
        where = f" in {report.path}" if report.path else ""
        print(f"  … {len(failed) - failures} more failed case(s){where}")


def _short(s: str, n: int) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[:n - 1] + "…"


def cmd_eval(args: argparse.Namespace) -> int:
    from tui.core import eval as ev

    if args.history:
        return print_history(args, "eval", ev.list_reports, lambda r: r.to_dict(with_cases=False), _history_table)
    reg = load_registry(args)
    for flag, v in (("--limit", args.limit), ("--concurrency", args.concurrency), ("--max-tokens", args.max_tokens)):
        if v is not None and v < 1:
            raise UsageError(f"{flag} must be 1 or more")
    if args.timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    with exits(EXIT_USAGE, ev.BfclError):
        cats = [ev.parse_category(c) for c in args.category or []]
    model = reg.get(args.model)
    options = ev.EvalOptions(categories=cats, limit=args.limit, concurrency=args.concurrency,
                             thinking=False if args.no_think else None, max_tokens=args.max_tokens,
                             timeout_s=args.timeout)
    with exits(EXIT_FAIL, ev.BfclError, ev.EvalError):
        session = ev.EvalSession(reg, model.name, options, progress=lambda m: info(m))
    report = session.report
    if not args.json:
        info(f"eval {model.name} at {report.base_url}: {session.total} BFCL {ev.BFCL_VERSION} cases in "
             f"{len(session.categories)} categories, {session.concurrency} in flight, "
             + ("thinking off" if args.no_think else "thinking on"))
    show, clear = _progress_printer()
    interrupted = False
    try:
        session.run(show)
    except KeyboardInterrupt:
        interrupted = True
        warn(f"interrupted: reporting the {len(report.cases)} case(s) that finished (marked partial)")
    finally:
        clear()
    if not args.no_save and report.cases:
        path = session.save()
        if not args.json:
            info(f"saved {path}")
    if args.json:
        print_json(report.to_dict(with_cases=False) | ({"path": str(report.path)} if report.path else {}))
    else:
        print_report(report, args.failures)
    if interrupted:
        return 130
    failed = [r for r in report.cases if r.reason in ("server error", "timeout")]
    if failed:
        error(f"{len(failed)} of {len(report.cases)} requests failed (counted as wrong): {_short(failed[0].error, 200)}")
        return EXIT_FAIL
    return EXIT_OK


def _history_table(reports) -> None:
    from tui.core import eval as ev

    headers, rows = ev.history_table(reports)
    table(headers, rows)
    for line in ev.history_legend(reports):
        print(line)
