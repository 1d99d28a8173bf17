"""The soak test of the whole, 60 seconds (benchmarks/soak.py; the README has a 10-minute run):
CLI start/stop/restart loops with two starts at once, the router serving chat requests, and a
fault injector (kill -9 of servers, watchers and CLI processes; planted pid files), on three real
llama-servers with the demo model. Every invariant must hold: no violation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parent.parent


def test_soak_60_seconds(llama_server_bin, smollm_gguf, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--seconds", "60", "--seed", "7",
                           "--workdir", str(tmp_path / "soak"), "--json"],
                          capture_output=True, text=True, timeout=400)
    out = proc.stdout
    summary = json.loads(out[out.index("{\n"):])
    assert summary["violations"] == [], "\n".join(summary["violations"]) + "\n" + proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the run did something of each kind
    assert summary["operations_total"] >= 10, summary
    assert summary["faults_total"] >= 5, summary
    assert summary["operations"].get("double-start", 0) >= 1, summary
    assert sum(summary["servers_seen_ready"].values()) >= 3, summary
    assert sum(v for k, v in summary["requests"].items() if k == "200") >= 1, summary
