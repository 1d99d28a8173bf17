"""``llmdeck bench MODEL``: load a running model and print the seed's speed table.

Runs each ``--workload`` in order over the same prompts, prints the seed table (medians) and a
detail table, and saves one JSON report to ``logs/bench/<model>-<timestamp>.json``.
``--history`` prints the saved runs of a model instead of running.

Exit codes: 0 every request succeeded; 1 some requests failed (the tables are still printed and
the report saved) or the server could not be reached; 2 usage, registry or prompts-file error.
"""

from __future__ import annotations

import argparse

from tui.cli.common import UsageError, add_report_options, exits, load_registry, print_history
from tui.cli.output import EXIT_FAIL, EXIT_OK, EXIT_USAGE, error, info, live_line, print_json, table, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark a running model (burst, concurrency=N, rate=R; the seed's speed table)",
        description="Send a load of streamed chat requests to a running model and print output tok/s, "
                    "TTFT and end-to-end latency (p50/p90/p99) in the seed's table layout.")
    p.add_argument("model")
    p.add_argument("-w", "--workload", action="append", metavar="SPEC",
                   help="burst (all at once), concurrency=N (N in flight), rate=R (Poisson, R req/s), or "
                        "seed (the seed table's four: burst, concurrency=512, rate=10, rate=5); repeatable; "
                        "default burst")
    p.add_argument("-n", "--requests", type=int, default=100, help="requests per workload (default 100)")
    p.add_argument("--prompts", metavar="FILE",
                   help="ShareGPT-format JSON/JSONL to sample prompts from (default: the built-in synthetic set)")
    p.add_argument("--max-tokens", type=int, metavar="N",
                   help="cap on each request's reply length (default: the prompt's own reply length)")
    p.add_argument("--seed", type=int, default=0, help="seed for prompt sampling and arrivals (default 0)")
    p.add_argument("--ignore-eos", action="store_true", help="ask the server to always generate the full length")
    p.add_argument("--timeout", type=float, default=600.0, help="per-request timeout in seconds (default 600)")
    add_report_options(p, "bench", history_help="print the saved runs of MODEL instead of running", last=10,
                       noun="reports")
    p.set_defaults(func=cmd_bench)


def _progress_printer():
    line, clear = live_line()
    if line is None:
        return None, clear

    def show(p) -> None:
        line(f"{p.workload}: {p.done}/{p.total} done · {p.in_flight} in flight · {p.tok_s:,.0f} tok/s · "
             f"{p.errors} errors · {p.elapsed_s:.0f}s")

    return show, clear


def print_tables(runs) -> None:
    from tui.core.bench import DETAIL_HEADERS, SEED_HEADERS

    table(SEED_HEADERS, [r.seed_row() for r in runs])
    print("TTFT and E2E latency are medians (p50), in ms.")
    print()
    table(DETAIL_HEADERS, [r.detail_row() for r in runs])


def cmd_bench(args: argparse.Namespace) -> int:
    from tui.core import bench

    if args.history:
        return print_history(args, "bench", bench.list_reports, lambda r: r.to_dict(), _history_table)
    reg = load_registry(args)
    if args.requests < 1:
        raise UsageError("--requests must be 1 or more")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError("--max-tokens must be 1 or more")
    if args.timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    with exits(EXIT_USAGE, bench.WorkloadError):
        workloads = bench.parse_many(args.workload)
    model = reg.get(args.model)
    options = bench.BenchOptions(requests=args.requests, max_tokens=args.max_tokens, seed=args.seed,
                                 timeout_s=args.timeout, ignore_eos=args.ignore_eos)
    with exits(EXIT_USAGE, bench.PromptsError, prefix="--prompts "), exits(EXIT_FAIL, bench.BenchError):
        session = bench.BenchSession(reg, model.name, workloads=workloads, options=options,
                                     prompts_file=args.prompts)
    report = session.report
    if not args.json:
        extra = report.settings_summary()
        info(f"bench {model.name} at {report.base_url}" + (f" ({extra})" if extra else "")
             + f": {len(workloads)} workload(s) × {args.requests} requests, prompts {report.prompts['source']}")
    show, clear = _progress_printer()
    try:
        session.run(show, lambda _result: clear())
    except bench.BenchError as exc:
        clear()
        error(str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:
        clear()
        if not report.runs:
            raise
        warn("interrupted: reporting the workloads that finished")

    if not args.no_save:
        path = session.save()
        if not args.json:
            info(f"saved {path}")
    if args.json:
        print_json(report.to_dict() | ({"path": str(report.path)} if report.path else {}))
    else:
        print_tables(report.runs)
    failed = 0
    for r in report.runs:
        if r.client.saturated:
            lag = r.client.loop_lag_ms.get("p99")
            warn(f"{r.workload}: the load generator's event loop ran late (p99 {lag} ms, CPU "
                 f"{r.client.cpu_pct:.0f}% of a core): end-to-end latency may include up to that much "
                 "of its own delay (TTFT is stamped apart from the loop)")
        if r.errors:
            failed += r.errors
            kinds = "; ".join(f"{msg} (×{n})" for msg, n in r.error_kinds.items())
            error(f"{r.workload}: {r.errors} of {r.requests} requests failed: {kinds}")
    return EXIT_FAIL if failed else EXIT_OK


def _history_table(reports) -> None:
    from tui.core.bench import SEED_HEADERS

    rows = []
    for rep in reports:
        when = rep.started_at[:16].replace("T", " ")
        for r in rep.runs:
            rows.append([when, *r.seed_row(), str(r.errors), rep.settings_summary()])
    table(["When", *SEED_HEADERS, "Errors", "Settings"], rows)
    print("TTFT and E2E latency are medians (p50), in ms.")
