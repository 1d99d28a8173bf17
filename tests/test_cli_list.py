"""`llmdeck list`: per quant present / partial (how much) / missing, from the disk."""

from __future__ import annotations

import json
import subprocess
import sys


def test_list_shows_present_partial_missing(tmp_path):
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"models": {"big": {
        "repo_id": "org/Big-GGUF", "default_port": 9100, "default_quant": "Q2",
        "quants": {"Q2": {"pattern": "Q2/*.gguf", "size_gb": 0.000002},
                   "Q4": {"pattern": "Q4/*.gguf", "size_gb": 0.000004},
                   "Q8": {"pattern": "Q8/*.gguf", "size_gb": None}}}}}))
    q2 = tmp_path / "models" / "Big-GGUF" / "Q2"
    q2.mkdir(parents=True)
    (q2 / "Big-Q2-00001-of-00002.gguf").write_bytes(b"x" * 1000)
    (q2 / "Big-Q2-00002-of-00002.gguf").write_bytes(b"x" * 1000)
    q4 = tmp_path / "models" / "Big-GGUF" / "Q4"
    q4.mkdir(parents=True)
    (q4 / "Big-Q4.gguf.part").write_bytes(b"x" * 1000)
    r = subprocess.run([sys.executable, "-m", "tui", "--registry", str(p), "list", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    quants = {q["quant"]: q for q in json.loads(r.stdout)[0]["quants"]}
    assert quants["Q2"]["status"] == "present" and quants["Q2"]["bytes_on_disk"] == 2000
    assert quants["Q4"]["status"] == "partial" and quants["Q4"]["bytes_on_disk"] == 1000
    assert quants["Q4"]["size_bytes"] == 4000
    assert quants["Q8"]["status"] == "missing" and quants["Q8"]["size_bytes"] is None
    r = subprocess.run([sys.executable, "-m", "tui", "--registry", str(p), "list"],
                       capture_output=True, text=True, timeout=60)
    line = next(ln for ln in r.stdout.splitlines() if "Q4" in ln)
    assert "partial" in line and "(25%)" in line
    assert "unknown" in next(ln for ln in r.stdout.splitlines() if "Q8" in ln)
