"""Runs tests/tmux_e2e.sh: the installed ``llmdeck`` in tmux against a real llama-server with
SmolLM2 — start, ready, chat, stop, quit — asserting on capture-pane text."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent


def test_tmux_end_to_end(llama_server_bin, smollm_gguf, tmp_path):
    tmux = shutil.which("tmux") or "/usr/bin/tmux"
    assert Path(tmux).exists(), "tmux is needed for this test (apt-get install tmux)"
    llmdeck = Path(sys.executable).parent / "llmdeck"
    assert llmdeck.exists(), f"{llmdeck} missing: pip install -e . installs the llmdeck command"
    proc = subprocess.run(
        ["bash", str(ROOT / "tests" / "tmux_e2e.sh"), str(llmdeck), str(llama_server_bin), str(smollm_gguf),
         str(free_port()), str(tmp_path / "e2e")],
        capture_output=True, text=True, timeout=280, env={"TMUX_BIN": tmux, "PATH": "/usr/bin:/bin",
                                                          "HOME": str(Path.home())})
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("smollm2 is ready", "the answer streamed", "smollm2 stopped", "llmdeck quit with exit status 0"):
        assert step in proc.stdout
