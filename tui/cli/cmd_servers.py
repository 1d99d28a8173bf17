"""Server verbs: start, stop, restart, status, logs, health, metrics."""

from __future__ import annotations

import argparse
import sys
import time

from tui.cli.common import Failed, UsageError, load_model, load_registry
from tui.cli.output import EXIT_FAIL, EXIT_OK, error, human_bytes, human_duration, info, print_json, table, warn

STATE_STYLE = {"ready": "green", "loading": "yellow", "starting": "yellow", "unhealthy": "red",
               "crashed": "bold red", "stopping": "magenta", "stopped": "dim"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("start", help="start a model's server")
    p.add_argument("model")
    p.add_argument("--quant", help="quant to load (default: the model's default_quant)")
    p.add_argument("--port", type=int, help="port (default: the model's default_port)")
    p.add_argument("--wait", action="store_true", help="wait until ready (or crashed), showing the stage")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    p.add_argument("--dry-run", action="store_true", help="print the exact command and exit")
    p.add_argument("--cpp-dir", help="a llama.cpp checkout/build to take llama-server from")
    p.add_argument("--llama-server", dest="binary", help="path of the llama-server binary")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("stop", help="stop a model's server (SIGTERM, SIGKILL after the grace period)")
    p.add_argument("model", nargs="?")
    p.add_argument("--all", action="store_true", help="stop every running server")
    p.add_argument("--grace", type=float, help="seconds before SIGKILL (default settings.stop_grace_s)")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("restart", help="stop then start a model's server")
    p.add_argument("model")
    p.add_argument("--quant")
    p.add_argument("--port", type=int)
    p.add_argument("--wait", action="store_true")
    p.add_argument("--grace", type=float)
    p.set_defaults(func=cmd_restart)

    p = sub.add_parser("connect", help="how to reach a model's server: base URL, ssh -L line for your "
                       "laptop, a curl to try it")
    p.add_argument("model")
    p.add_argument("--ssh-host", metavar="USER@HOST", help="what your laptop calls this machine "
                   "(default: this user @ this hostname)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connect)

    p = sub.add_parser("status", help="state of every model's server")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("logs", help="print (or follow) a model's server log")
    p.add_argument("model")
    p.add_argument("-n", type=int, default=50, help="lines to print (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="follow like tail -F")
    p.add_argument("--run", type=int, default=0, help="older run: 1 = the previous one")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("health", help="probe /health of one or every model")
    p.add_argument("model", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("metrics", help="a running server's /metrics as a table (a scrape resets "
                       "llama-server's averaged gauges)")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_metrics)


def cmd_connect(args) -> int:
    from dataclasses import asdict

    from tui.core import supervisor
    from tui.core.connect import connect

    reg, model = load_model(args)
    spec = supervisor.endpoints(reg, model)
    if not spec.base_url:
        raise UsageError(f"model '{model.name}' has no port: set default_port in {reg.path}")
    c = connect(model, spec.base_url, ssh_host=args.ssh_host)
    if args.json:
        print_json(asdict(c))
        return EXIT_OK
    st = supervisor.state_of(reg, model, probe=False)
    if model.engine != "external" and not st.running:
        info(f"{model.name} is not running: 'llmdeck start {model.name}' first (the lines below use its "
             "default port)")
    for line in c.lines():
        print(line)
    return EXIT_OK


def _describe(st) -> str:
    if st.state == "crashed":
        return f"{st.name}: crashed ({(st.exit or {}).get('reason') or st.last_error})"
    extra = f" (pid {st.pid}, port {st.port})" if st.pid else ""
    return f"{st.name}: {st.state}{extra}"


def cmd_start(args) -> int:
    from tui.core import ondemand, supervisor

    reg, model = load_model(args)
    if exposed := model.exposure():
        warn(exposed)
    if args.dry_run:
        spec = supervisor.launch_spec(reg, model, quant=args.quant, port=args.port,
                                      binary=args.binary, cpp_dir=args.cpp_dir, dry_run=True)
        for w in spec.warnings:
            warn(w)
        if spec.port:  # the start would stop here: say so, the command is still printed
            try:
                supervisor.check_port_free(spec.host, spec.port)
            except supervisor.SupervisorError as exc:
                warn(f"{exc} (a start now would fail)")
        print(spec.shell_line())
        _memory_line(model, spec)
        return EXIT_OK
    # swap_group (issue 16): the others of its group stop first
    ondemand.stop_group_for(reg, model.name, on_stop=lambda n: info(
        f"stopping {n}: it shares swap_group {model.swap_group} with {model.name}"))
    st = supervisor.start(reg, model, quant=args.quant, port=args.port, binary=args.binary, cpp_dir=args.cpp_dir)
    info(f"started {model.name}: pid {st.pid}, port {st.port}, log {st.log}")
    if not args.wait:
        return EXIT_OK if st.state != "crashed" else EXIT_FAIL
    return _wait(reg, model, args.timeout)


def _memory_line(model, spec) -> None:
    """For a llama-server whose files are here: will they fit VRAM + RAM (on stderr: stdout is
    the command line, for scripts)."""
    files = [f for f in spec.files if f.is_file()]
    if model.engine != "llama-server" or not files:
        return
    from tui.core import memfit

    info(memfit.of_files(files, model).line)


def _wait(reg, model, timeout: float | None) -> int:
    from tui.core import supervisor

    name = model.name
    t0 = time.monotonic()
    last = [""]

    def show(st) -> None:
        line = f"{st.state}"
        if st.stage:
            line += f" — {st.stage}"
        if st.load_eta_s is not None:
            line += f" (last load {st.last_load_s:.0f}s, ETA {st.load_eta_s:.0f}s)"
        if line != last[0]:
            info(f"{name}: {line} [{time.monotonic() - t0:.1f}s]")
            last[0] = line

    st = supervisor.wait_ready(reg, model, timeout=timeout, on_change=show)
    if st.state == "ready":
        info(f"{name}: ready at {st.url} after {time.monotonic() - t0:.1f}s")
        return EXIT_OK
    if st.state == "crashed":
        error(f"{name}: {st.last_error}")
        for line in st.last_log_lines[-8:]:
            print(f"  | {line}", file=sys.stderr)
        return EXIT_FAIL
    raise Failed(f"{name}: {st.last_error or st.state}")


def cmd_stop(args) -> int:
    from tui.core import supervisor

    reg = load_registry(args)
    if args.all == bool(args.model):
        raise UsageError("give a model name or --all")
    if args.all:
        done = supervisor.stop_all(reg, grace=args.grace)
        info(f"stopped {len(done)} server(s)" + (": " + ", ".join(s.name for s in done) if done else ""))
        return EXIT_OK
    model = reg.get(args.model)
    before = supervisor.state_of(reg, model, probe=False)
    st = supervisor.stop(reg, model, grace=args.grace,
                         on_kill=lambda pid: info(f"{args.model}: still running after the grace period; "
                                                  f"sending SIGKILL to {pid}"))
    if before.last_error and before.last_error.startswith("stale pid file"):
        info(f"{args.model}: {before.last_error}")  # and that process was not signalled
    info(f"{args.model}: stopped" if before.pid else f"{args.model}: was not running")
    return EXIT_OK if st.state in ("stopped", "crashed") else EXIT_FAIL


def cmd_restart(args) -> int:
    from tui.core import supervisor

    reg, model = load_model(args)
    st = supervisor.restart(reg, model, quant=args.quant, port=args.port, grace=args.grace)
    info(f"restarted {model.name}: pid {st.pid}, port {st.port}")
    return _wait(reg, model, None) if args.wait else EXIT_OK


def _usage_by_pid(states) -> dict:
    """VRAM and RSS per running server (empty when none runs: NVML is then not touched)."""
    from tui.core.statusjson import usage_by_pid

    return usage_by_pid(states)


def cmd_status(args) -> int:
    from tui.core import supervisor

    reg = load_registry(args)
    states = supervisor.status(reg)
    usage = _usage_by_pid(states)
    from tui.core import ondemand

    router = ondemand.read_router(reg.run_dir)
    od_fields = ondemand.status_fields(reg, router)  # on demand, TTL (issue 16): from the router's run file
    for st in states:
        if st.last_error and st.last_error.startswith("stale pid file"):
            info(f"{st.name}: {st.last_error}")
    if args.json:
        from tui.core.statusjson import model_objects

        out = model_objects(states, usage)  # the same objects as the router's front page
        for d in out:
            d.update(od_fields.get(d["name"], {}))
            d["router"] = router.get("address") if router else None
        print_json(out)
        return EXIT_OK
    # a GPU column only where the machine evidently has several GPUs (a model on GPU 1, or on two)
    multi = any(len(u.vram_by_gpu) > 1 or any(g for g, _ in u.vram_by_gpu) for u in usage.values())
    rows, styles = [], {}
    for i, st in enumerate(states):
        note = ""
        if st.state in ("loading", "starting"):
            note = (st.stage or "") + (f", ETA {human_duration(st.load_eta_s)}" if st.load_eta_s is not None else "")
        elif st.state == "crashed":
            note = (st.exit or {}).get("reason") or st.last_error or ""
            if st.restarting_in_s:
                note += f"; restarting in {st.restarting_in_s:.0f}s"
        elif st.last_error:
            note = st.last_error
        if od := ondemand.note(od_fields.get(st.name, {}), router is not None):
            note = f"{note}; {od}" if note else od
        u = usage.get(st.pid) if st.pid else None
        row = [st.name, st.state, st.pid or "", st.port or "", st.url or "",
               human_duration(st.uptime_s) if st.pid else "",
               human_bytes(getattr(u, "vram_bytes", None)) if u else "",
               human_bytes(getattr(u, "rss_bytes", None)) if u else "", note]
        if multi:
            row.insert(7, ",".join(str(g) for g, _ in getattr(u, "vram_by_gpu", ())) if u else "")
        rows.append(row)
        styles[i] = STATE_STYLE.get(st.state)
    head = ["MODEL", "STATE", "PID", "PORT", "URL", "UPTIME", "VRAM", "RSS", "NOTE"]
    if multi:
        head.insert(7, "GPU")
    table(head, rows, styles)
    if router:
        info(f"router: {router.get('address') or '?'} (pid {router['pid']}) starts, swaps and unloads models on demand")
    elif any(f["on_demand"] or f["ttl_s"] is not None for f in od_fields.values()):
        info("no router running: on-demand models start and idle ones unload only under 'llmdeck serve'")
    return EXIT_OK


def cmd_logs(args) -> int:
    from tui.core import logfiles

    reg, model = load_model(args)
    path = reg.log_file(model.name)
    if args.run:
        path = path.with_name(f"{path.name}.{args.run}")
    if not path.exists() and not args.follow:
        raise Failed(f"no log for '{args.model}' at {path} (it has not been started yet)")
    if not args.follow:
        for line in logfiles.tail(path, args.n):
            print(line)
        return EXIT_OK
    f = logfiles.Follower(path, backlog=args.n)
    try:
        for batch in f.follow(interval=0.2):
            sys.stdout.write("\n".join(batch) + "\n")
            sys.stdout.flush()
    finally:
        f.close()
    return EXIT_OK


def cmd_health(args) -> int:
    from tui.core import health, supervisor

    reg = load_registry(args)
    models = [reg.get(args.model)] if args.model else list(reg.models.values())
    results = []
    worst = EXIT_OK
    for m in models:
        n = m.name
        url = supervisor.endpoints(reg, m).health_url
        t0 = time.perf_counter()
        p = health.health(url, api_key=m.api_key(), timeout=2.0)
        ms = (time.perf_counter() - t0) * 1000
        verdict = {200: "ok", 503: "loading"}.get(p.status or 0, p.error or f"HTTP {p.status}")
        results.append({"model": n, "url": url, "status": p.status, "result": verdict, "ms": round(ms, 1)})
        if p.status != 200 and args.model:
            worst = EXIT_FAIL
    if args.json:
        print_json(results)
    else:
        table(["MODEL", "URL", "HTTP", "RESULT", "MS"],
              [[r["model"], r["url"], r["status"] or "-", r["result"], r["ms"]] for r in results])
    return worst


def cmd_metrics(args) -> int:
    from tui.core import health, supervisor
    from tui.core.telemetry.metrics import parse_prometheus

    reg, m = load_model(args)
    url = supervisor.endpoints(reg, m).metrics_url
    p = health.get(url, api_key=m.api_key(), timeout=5.0)
    if p.status is None:
        raise Failed(f"{args.model}: cannot reach {url}: {p.error} (is it running? 'llmdeck status')")
    if p.status == 501:
        raise Failed(f"{args.model}: the server was started without --metrics ({url} answered 501)")
    if p.status != 200:
        raise Failed(f"{args.model}: {url} answered HTTP {p.status}")
    text = p.body.decode("utf-8", "replace")
    values = parse_prometheus(text)
    helps, kinds = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            helps[name] = h
        elif line.startswith("# TYPE "):
            name, _, k = line[7:].partition(" ")
            kinds[name] = k
    if args.json:
        print_json({n: {"value": v, "type": kinds.get(n), "help": helps.get(n)} for n, v in values.items()})
        return EXIT_OK
    rows = [[n, f"{v:.6g}", kinds.get(n, ""), helps.get(n, "")] for n, v in values.items()]
    table(["METRIC", "VALUE", "TYPE", "HELP"], rows)
    return EXIT_OK
