"""Registry verbs: list, check, add, edit, remove; and setup (llama-server + demo model)."""

from __future__ import annotations

import argparse
import json

from tui.cli.common import Failed, UsageError, load_model, load_registry, registry_path
from tui.cli.output import EXIT_FAIL, EXIT_OK, error, info, print_json, table, warn
from tui.core.text import human_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="registered models and, per quant, what is on disk")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", help="validate models.json (exit 2 on errors)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("add", help="add a model: NAME JSON, or REPO[:QUANT] from the Hugging Face Hub")
    p.add_argument("model", metavar="NAME|REPO[:QUANT]",
                   help="a new model's name (then JSON), or a Hub repo (org/name, hf.co/org/name, a URL)")
    p.add_argument("entry", nargs="?",
                   help='NAME form: the entry as JSON, e.g. \'{"model_path": "x.gguf", "default_port": 8003}\'')
    p.add_argument("--replace", action="store_true", help="NAME form: replace an existing entry")
    p.add_argument("--name", help="REPO form: the model's name (default: from the repo, GLM-5-GGUF → glm-5)")
    p.add_argument("--port", type=int, help="REPO form: default_port (default: the first free from 8001)")
    p.add_argument("--dry-run", action="store_true", help="REPO form: print the entry, write nothing")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("edit", help="set keys of a model entry: KEY=JSON … (KEY= removes)")
    p.add_argument("model")
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("remove", help="remove a model entry (its files are left alone)")
    p.add_argument("model")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("delete", help="delete a quant's downloaded files (asks first; --yes to skip)")
    p.add_argument("model")
    p.add_argument("--quant", help="the quant (default: the model's default_quant)")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("setup", help="get llama-server (build once, cached) and the SmolLM2 demo model")
    p.set_defaults(func=cmd_setup)


def _quant_rows(reg, m):
    """(quant label, status, bytes on disk, total bytes or None) per quant of a model."""
    from tui.core.modelfiles import download_status, local_files

    if m.engine == "external":
        return [("-", "external", None, None)]
    if m.model_path:
        lf = local_files(reg, m)
        return [("(model_path)", lf.status, lf.bytes or None, lf.bytes or None)]
    rows = []
    for q, d in download_status(reg, m).items():
        label = q + (" *" if q == m.default_quant else "")
        rows.append((label, d["status"], d["bytes_done"] or None, d["bytes_total"]))
    return rows or [("-", "no quants", None, None)]


def _size(n: float | None) -> str:
    return human_bytes(n) if n else ""


def cmd_list(args) -> int:
    reg = load_registry(args)
    if args.json:
        out = []
        for m in reg.models.values():
            out.append({"name": m.name, "engine": m.engine, "repo_id": m.repo_id, "alias": m.served_name,
                        "port": m.default_port, "default_quant": m.default_quant,
                        "quants": [{"quant": q.strip(" *"), "status": s, "bytes_on_disk": b or 0,
                                    "size_bytes": t} for q, s, b, t in _quant_rows(reg, m)]})
        print_json(out)
        return EXIT_OK
    rows = []
    for m in reg.models.values():
        for i, (q, s, b, t) in enumerate(_quant_rows(reg, m)):
            have = ""
            if s == "partial" and b:
                have = f"{_size(b)}" + (f" of {_size(t)} ({100 * b / t:.0f}%)" if t else "")
            elif b:
                have = _size(b)
            rows.append([m.name if i == 0 else "", m.engine if i == 0 else "",
                         (m.default_port or "") if i == 0 else "", q, s, have,
                         _size(t) if t else ("unknown" if m.engine != "external" else "")])
    table(["MODEL", "ENGINE", "PORT", "QUANT", "ON DISK", "HAVE", "SIZE"], rows)
    return EXIT_OK


def cmd_check(args) -> int:
    from tui.core import registry

    problems = registry.check(registry_path(args))
    if not problems:  # the TUI's key overrides (the core does not know the TUI's action ids)
        from tui.ui.keys import keymap_problems

        reg = registry.load(registry_path(args))
        problems = [f"{reg.path}: {p}" for p in keymap_problems(reg.settings.keymap)[1]]
    if problems:
        raise UsageError("\n".join(problems))
    for m in reg.models.values():
        if exposed := m.exposure():
            warn(exposed)
    print(f"{reg.path}: ok ({len(reg.models)} models)")
    return EXIT_OK


def cmd_add(args) -> int:
    from tui.core import registry

    if "/" in args.model:  # a model name never contains '/': a Hub repo
        from tui.cli.cmd_hub import add_from_hub

        return add_from_hub(args)
    if args.entry is None:
        raise UsageError(f"add '{args.model}': give the entry as JSON (`llmdeck add NAME JSON`), or a Hub repo "
                         "(`llmdeck add org/name[:QUANT]`)")
    try:
        entry = json.loads(args.entry)
    except json.JSONDecodeError as exc:
        raise UsageError(f"entry for '{args.model}': invalid JSON at column {exc.colno}: {exc.msg}") from None
    if not isinstance(entry, dict):
        raise UsageError(f"entry for '{args.model}' must be a JSON object")
    registry.add_model(registry_path(args), args.model, entry)
    info(f"added '{args.model}' to {registry_path(args)}")
    return EXIT_OK


def cmd_edit(args) -> int:
    from tui.core import registry

    updates = {}
    for a in args.assignments:
        key, sep, val = a.partition("=")
        if not sep or not key:
            raise UsageError(f"'{a}': expected KEY=VALUE (VALUE is JSON, or a plain string)")
        if val == "":
            updates[key] = None
            continue
        try:
            updates[key] = json.loads(val)
        except json.JSONDecodeError:
            updates[key] = val
    registry.update_model(registry_path(args), args.model, updates)
    info(f"updated '{args.model}' in {registry_path(args)}")
    return EXIT_OK


def cmd_remove(args) -> int:
    from tui.core import registry, supervisor

    try:
        reg, model = load_model(args)
    except registry.UnknownModel:
        pass  # remove_model says so
    except registry.RegistryError as exc:
        error(str(exc))  # said; removing the entry may be what fixes it
    else:
        st = supervisor.state_of(reg, model, probe=False)
        if st.pid:
            raise Failed(f"'{args.model}' is running (pid {st.pid}): stop it first ('llmdeck stop {args.model}')")
    registry.remove_model(registry_path(args), args.model)
    info(f"removed '{args.model}' from {registry_path(args)} (files left in place)")
    return EXIT_OK


def cmd_delete(args) -> int:
    import sys

    from tui.core import supervisor

    reg, model = load_model(args)
    files, size = supervisor.delete_files(reg, model, args.quant, dry_run=True)
    if not files:
        info(f"{args.model}: nothing downloaded to delete")
        return EXIT_OK
    where = files[0].parent
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"deleting {len(files)} file(s), {_size(size) or '0 B'}, in {where}: pass --yes to confirm")
        answer = input(f"Delete {len(files)} file(s), {_size(size) or '0 B'}, in {where}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            info("nothing deleted")
            return EXIT_FAIL
    files, size = supervisor.delete_files(reg, model, args.quant)
    info(f"{args.model}: deleted {len(files)} file(s), {_size(size) or '0 B'}, from {where}")
    return EXIT_OK


def cmd_setup(args) -> int:
    from tui.core import provision

    try:
        print(f"llama-server: {provision.build_llama_server()}")
        print(f"demo model:   {provision.demo_model()}")
        print(f"templates:    {provision.templates_dir()}")
        print(f"BFCL (eval):  {provision.bfcl_package()}")
    except provision.ProvisionError as exc:
        raise Failed(str(exc)) from None
    return EXIT_OK
