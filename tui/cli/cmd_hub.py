"""Models from the Hugging Face Hub: ``llmdeck quants REPO``, ``llmdeck search TEXT`` and the
``llmdeck add REPO[:QUANT]`` form of ``add`` (the ``add NAME JSON`` form lives in
:mod:`tui.cli.cmd_models`, which hands a name containing ``/`` here).

Exit codes: 0 ok, 1 the Hub refused or failed (one line on stderr), 2 a usage or registry
error (a bad repo id, a name clash, an unknown quant).
"""

from __future__ import annotations

import argparse
import contextlib

from tui.cli.common import UsageError, exits, registry_path
from tui.cli.output import EXIT_FAIL, EXIT_OK, EXIT_USAGE, human_bytes, info, is_tty, print_json, table, warn

VERDICT_TEXT = {"vram": "fits in VRAM", "vram+ram": "fits in VRAM + RAM", "no": "does not fit"}
VERDICT_STYLE = {"vram": "green", "vram+ram": "yellow", "no": "red"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quants", help="every quant of a Hub GGUF repo: files, exact size, header, memory fit")
    p.add_argument("repo", help="org/name, hf.co/org/name or a Hub URL")
    p.add_argument("--json", action="store_true", help="a list of objects (quant, files, size_bytes, shards, "
                   "header, memory)")
    p.set_defaults(func=cmd_quants)

    p = sub.add_parser("search", help="GGUF repos on the Hub matching TEXT, most downloaded first")
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)


@contextlib.contextmanager
def _hub_errors():
    """The Hub refused or failed: exit 1; a bad repo id, name or quant: exit 2."""
    from tui.core.downloads.errors import DownloadError, HubError

    with exits(EXIT_USAGE, DownloadError), exits(EXIT_FAIL, HubError):
        yield


def _load_table(text: str):
    from tui.core.downloads import quants

    repo, quant = quants.parse_repo(text)
    return quants.quant_table(repo), quant


def _facts(row) -> tuple[str, str, str, str, str]:
    s = row.facts()
    if not s:
        return "?", "", "", "", ""
    experts = f"{s['expert_count']}/{s['expert_used_count'] or '?'}" if s.get("expert_count") else ""
    return (s.get("architecture") or "?", str(s.get("context_length") or ""), str(s.get("block_count") or ""),
            experts, s.get("file_type") or "")


def print_table(t) -> None:
    print(f"{t.repo_id} @ {t.revision[:12]}: {len(t.quants)} quants, {len(t.mmproj)} mmproj, "
          f"{len(t.other)} other files ({t.seconds:.2f} s)")
    rows, styles = [], {}
    for i, r in enumerate(t.quants):
        arch, ctx, layers, experts, ftype = _facts(r)
        verdict = r.fit.verdict if r.fit else "no"
        mem = VERDICT_TEXT[verdict]
        if verdict == "vram+ram" and r.fit is not None and not r.fit.machine.gpu_free:
            mem = "fits in RAM (CPU)"
        mem += "" if r.fit is None or r.fit.kv is not None else " (weights)"
        rows.append([r.quant, human_bytes(r.size_bytes), r.shards if not r.missing else f"{r.shards}!",
                     arch, ctx, layers, experts, ftype, mem])
        styles[i] = VERDICT_STYLE[verdict]
    table(["QUANT", "SIZE", "FILES", "ARCH", "CTX", "LAYERS", "EXPERTS", "TYPE", "MEMORY"], rows,
          styles if is_tty() else None)
    for r in t.quants:
        if r.missing:
            print(f"  {r.quant}: the repo lacks {', '.join(r.missing)}")
        if r.header_error:
            print(f"  {r.quant}: header not read ({r.header_error})")
    for p, n in t.mmproj:
        print(f"mmproj: {p} ({human_bytes(n)})")
    m = t.machine
    if m is not None:
        vram = ("VRAM free " + " + ".join(human_bytes(x) for x in m.gpu_free)) if m.gpu_free \
            else f"no GPU ({m.gpu_note})"
        print(f"memory: weights + KV cache at the model's context; {vram}, RAM available "
              f"{human_bytes(m.ram_available)}")
    print(f"add one: llmdeck add {t.repo_id}:{t.quants[0].quant} (without :QUANT, the largest that fits)")


def cmd_quants(args) -> int:
    with _hub_errors():
        t, _q = _load_table(args.repo)
    if args.json:
        print_json(t.to_json())
    else:
        print_table(t)
    return EXIT_OK


def cmd_search(args) -> int:
    from tui.core.downloads import quants

    with _hub_errors():
        hits = quants.search(args.text, limit=args.limit)
    if args.json:
        print_json([h.to_json() for h in hits])
        return EXIT_OK
    if not hits:
        info(f"no GGUF repos match '{args.text}'")
        return EXIT_OK
    table(["REPO", "DOWNLOADS", "LIKES", "MODIFIED", "PARAMS"],
          [[h.repo_id, h.downloads if h.downloads is not None else "", h.likes if h.likes is not None else "",
            (h.last_modified or "")[:10], _params(h.params)] for h in hits])
    return EXIT_OK


def _params(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def add_from_hub(args) -> int:
    """``llmdeck add REPO[:QUANT] [--name N] [--port P] [--dry-run]``."""
    import json

    from tui.core import hubentry, registry

    path = registry_path(args)
    reg = None
    try:
        reg = registry.load(path)
    except registry.RegistryError as exc:
        if not (exc.problems and exc.problems[0].startswith("file not found")):
            raise
    if args.entry is not None:
        raise UsageError(f"invalid model name '{args.model}': a name matches [a-z0-9][a-z0-9._-]* (no '/'); as a "
                         "Hub repo id, `llmdeck add REPO[:QUANT]` takes no JSON")
    with _hub_errors():
        t, quant = _load_table(args.model)
        built = hubentry.build(t, quant=quant, name=args.name, port=args.port, registry=reg)
    for w in built.warnings:
        warn(w)
    for n in built.notes:
        info(n)
    row = t.row(built.quant)
    if row is not None and row.fit is not None:
        tier = hubentry.tier(row, t.machine)
        what = "fits in RAM (CPU)" if tier == "vram+ram" and not t.machine.gpu_free else VERDICT_TEXT[tier]
        info(f"{built.quant}: {human_bytes(row.size_bytes)}, {what} with ctx {hubentry.judge_ctx(row):,}")
        info(f"at the model's own context: {row.fit.line}")
    if args.dry_run:
        print(json.dumps({built.name: built.entry}, indent=2, ensure_ascii=False))
        return EXIT_OK
    registry.add_model(path, built.name, built.entry)
    info(f"added '{built.name}' ({t.repo_id}, default quant {built.quant}, port "
         f"{built.entry['default_port']}) to {path}: `llmdeck download {built.name}` fetches it")
    return EXIT_OK
