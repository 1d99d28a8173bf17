"""One router per registry (issue 16): a second ``llmdeck serve`` over the registry of a running
one refuses with one line naming the running router's pid and address, before it listens; the
running one is untouched; once it is gone (even by ``kill -9``) a new one starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent


def _serve(reg: Path, port: int, **kw):
    return subprocess.Popen([sys.executable, "-m", "tui.cli.main", "--registry", str(reg), "serve",
                             "--port", str(port)],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, **kw)


def test_a_second_router_over_one_registry_refuses_naming_the_first(tmp_path):
    reg = tmp_path / "models.json"
    reg.write_text(json.dumps({"settings": {}, "models": {"m": {"model_path": "/nowhere.gguf", "on_demand": True}}}))
    p1, port1 = None, free_port()
    try:
        p1 = _serve(reg, port1)
        wait_http_ok(f"http://127.0.0.1:{port1}/health", 30, p1)
        run_file = tmp_path / "run" / "router.json"
        deadline = time.monotonic() + 10  # the first has written its address (every half second)
        while not (run_file.exists() and json.loads(run_file.read_text()).get("address")):
            assert time.monotonic() < deadline, "no address in run/router.json"
            time.sleep(0.1)
        port2 = free_port()
        r = subprocess.run([sys.executable, "-m", "tui.cli.main", "--registry", str(reg), "serve", "--port",
                            str(port2)], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip().splitlines() == [
            f"llmdeck: error: another 'llmdeck serve' already serves {reg} (pid {p1.pid}, "
            f"http://127.0.0.1:{port1}): use that one, or stop it first (kill {p1.pid})"], r.stderr
        with socket.socket() as s:  # it refused before listening: its port is free
            s.bind(("127.0.0.1", port2))
        assert httpx.get(f"http://127.0.0.1:{port1}/health", timeout=5).status_code == 200  # the first serves on
        assert json.loads((tmp_path / "run" / "router.json").read_text())["pid"] == p1.pid
        # kill -9: the kernel drops the lock, the next router starts
        os.kill(p1.pid, signal.SIGKILL)
        p1.wait(10)
        p1 = _serve(reg, port2)
        wait_http_ok(f"http://127.0.0.1:{port2}/health", 30, p1)
    finally:
        if p1 is not None and p1.poll() is None:
            p1.terminate()
            p1.communicate(timeout=10)


def test_another_registry_gets_its_own_router(tmp_path):
    procs = []
    try:
        for sub in ("a", "b"):
            (tmp_path / sub).mkdir()
            reg = tmp_path / sub / "models.json"
            reg.write_text(json.dumps({"settings": {}, "models": {}}))
            port = free_port()
            procs.append(_serve(reg, port))
            wait_http_ok(f"http://127.0.0.1:{port}/health", 30, procs[-1])
    finally:
        for p in procs:
            p.terminate()
            p.communicate(timeout=10)
