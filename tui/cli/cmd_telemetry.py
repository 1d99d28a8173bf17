"""``llmdeck gpus [--json]``: every NVIDIA GPU's gauges and the processes on it, by model.

One NVML read (no ``nvidia-smi``). Processes are attributed to a registered model when the
PID is in the process tree of that model's running server; the registry is optional (no
models.json here → no MODEL column). Exit 0 when NVML answered, 1 when GPUs cannot be read
(the one-line reason goes to stderr; with ``--json`` the same reason is in the output).
"""

from __future__ import annotations

import argparse
import os

from tui.cli.output import EXIT_FAIL, EXIT_OK, error, human_bytes, print_json, table, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpus", help="GPU memory, utilisation, temperature and power, with the processes "
                       "on each GPU and the model they serve (NVML)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_gpus)


def _model_pids(args) -> dict[int, str]:
    """Root PID → model name for the running servers of the registry, if there is one."""
    from tui.cli.common import load_registry, registry_path

    path = registry_path(args)
    explicit = bool(args.registry or os.environ.get("LLMDECK_REGISTRY"))
    if not explicit and not os.path.exists(path):
        return {}
    from tui.core import registry, supervisor

    try:
        reg = load_registry(args)
    except registry.RegistryError as exc:
        first = str(exc).splitlines()[0] if str(exc) else path
        warn(f"models are not shown: {first}")
        return {}
    return {st.pid: st.name for st in supervisor.status(reg, probe=False) if st.pid and st.running}


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.0f}%"


def gpus_json(reading, owners: dict[int, str], names: dict[int, str], foreign: set[int]) -> dict:
    return {
        "state": reading.state,
        "message": reading.message,
        "driver": reading.driver,
        "nvml_version": reading.nvml_version,
        "gpus": [{
            "index": g.index, "name": g.name, "uuid": g.uuid, "state": g.state, "note": g.note,
            "memory_used_bytes": g.mem_used, "memory_total_bytes": g.mem_total, "memory_free_bytes": g.mem_free,
            "utilization_percent": g.util_percent, "memory_utilization_percent": g.mem_util_percent,
            "temperature_c": g.temp_c, "power_w": g.power_w, "power_limit_w": g.power_limit_w,
            "mig": g.mig, "unsupported": list(g.unsupported),
            "processes": None if g.processes is None else [{
                "pid": p.pid, "used_bytes": p.used_bytes, "kind": p.kind,
                "model": owners.get(p.pid), "name": names.get(p.pid),
                "visible": p.pid not in foreign,
            } for p in g.processes],
        } for g in reading.gpus],
        "foreign_pids": sorted(foreign),
    }


def cmd_gpus(args) -> int:
    import psutil

    from tui.core.telemetry.nvml import default_source
    from tui.core.telemetry.procs import ProcessTable, foreign_gpu_pids, foreign_note

    reading = default_source().read()
    owners: dict[int, str] = {}
    names: dict[int, str] = {}
    foreign: set[int] = set()
    if reading.ok:
        table_ = ProcessTable(rescan_every=0)
        table_.refresh()
        foreign = foreign_gpu_pids(reading, table_)
        roots = _model_pids(args) if reading.processes() else {}
        for root, model in roots.items():
            for pid in table_.tree(root):
                owners[pid] = model
        for _, p in reading.processes():
            if p.pid not in foreign:
                try:
                    names[p.pid] = psutil.Process(p.pid).name()
                except psutil.Error:
                    pass

    if args.json:
        print_json(gpus_json(reading, owners, names, foreign))
        if not reading.ok:
            error(reading.message or reading.state)
        return EXIT_OK if reading.ok else EXIT_FAIL
    if not reading.ok:
        error(reading.message or reading.state)
        return EXIT_FAIL

    rows = []
    styles = {}
    for i, g in enumerate(reading.gpus):
        mem = "n/a" if g.mem_total is None else f"{human_bytes(g.mem_used)} / {human_bytes(g.mem_total)}"
        power = "n/a" if g.power_w is None else f"{g.power_w:.0f} W" + (
            f" / {g.power_limit_w:.0f} W" if g.power_limit_w is not None else "")
        note = g.note or ""
        if g.unsupported:
            note = "; ".join(filter(None, [note, "not supported: " + ", ".join(g.unsupported)]))
        rows.append([g.index, g.name or "?", g.state if g.state != "ok" else mem, _pct(g.util_percent),
                     "n/a" if g.temp_c is None else f"{g.temp_c}°C", power, note])
        if g.state != "ok":
            styles[i] = "red"
    table(["GPU", "NAME", "MEMORY", "UTIL", "TEMP", "POWER", "NOTE"], rows, styles)
    procs = reading.processes()
    print(f"\ndriver {reading.driver or '?'}" + (f", NVML {reading.nvml_version}" if reading.nvml_version else ""))
    if procs:
        print()
        table(["GPU", "PID", "VRAM", "MODEL", "PROCESS"],
              [[gi, p.pid, human_bytes(p.used_bytes), owners.get(p.pid, ""),
                names.get(p.pid, "(not visible here)" if p.pid in foreign else "?")] for gi, p in procs])
    else:
        print("no processes on the GPUs" if all(g.processes is not None for g in reading.gpus)
              else "NVML would not list the GPU processes")
    if foreign:
        warn(foreign_note(foreign))
    return EXIT_OK
