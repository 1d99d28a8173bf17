"""Deleting a quant's downloaded files: only what llmdeck downloaded, never while it is served."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tui.core import registry, supervisor


def make(tmp_path):
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"models": {
        "big": {"repo_id": "org/Big-GGUF", "default_port": 9100, "default_quant": "Q2",
                "quants": {"Q2": {"pattern": "Q2/*.gguf", "size_gb": None}}},
        "mine": {"model_path": "mine.gguf", "default_port": 9101}}}))
    d = tmp_path / "models" / "Big-GGUF" / "Q2"
    d.mkdir(parents=True)
    for name in ("Big-Q2-00001-of-00002.gguf", "Big-Q2-00002-of-00002.gguf.part", ".llmdeck-download.json",
                 "notes.txt"):
        (d / name).write_bytes(b"x" * 100)
    (tmp_path / "mine.gguf").write_bytes(b"GGUF")
    return p, d


def cli(p, *args):
    return subprocess.run([sys.executable, "-m", "tui", "--registry", str(p), *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_delete_asks_then_removes_only_downloaded_files(tmp_path):
    p, d = make(tmp_path)
    r = cli(p, "delete", "big")
    assert r.returncode == 2 and "pass --yes" in r.stderr and "3 file(s)" in r.stderr
    assert (d / "Big-Q2-00001-of-00002.gguf").exists()
    r = cli(p, "delete", "big", "--yes")
    assert r.returncode == 0, r.stderr
    assert sorted(f.name for f in d.iterdir()) == ["notes.txt"]  # not ours: left alone
    r = cli(p, "delete", "mine", "--yes")
    assert r.returncode == 1 and "those files are yours" in r.stderr
    assert (tmp_path / "mine.gguf").exists()


def test_delete_refused_while_the_server_runs(tmp_path):
    p, d = make(tmp_path)
    reg = registry.load(p)
    # a running server of this model, as the supervisor sees it: a process with the whole
    # identity llmdeck records (start time, the command line of its launch record, that binary)
    argv = [os.path.realpath(sys.executable), "-c", "import time; time.sleep(30)", "--port", "9100"]
    sleeper = subprocess.Popen(argv)
    try:
        import psutil

        from tui.core import runfiles

        since, boot = runfiles.process_start(sleeper.pid)
        rec = runfiles.PidRecord(pid=sleeper.pid, port=9100, create_time=psutil.Process(sleeper.pid).create_time(),
                                 start_since_boot=since, boot_id=boot, cmdline=argv, quant="Q2")
        reg.run_dir.mkdir(mode=0o700)
        rd = runfiles.RunDir(reg.run_dir, "big")
        runfiles.write_json(rd.launch, {"model": "big", "argv": argv, "port": 9100}, mode=0o600)
        reg.pid_file("big").write_text(rec.dumps())
        assert supervisor.state_of(reg, "big", probe=False).running
        with pytest.raises(supervisor.SupervisorError, match="is running"):
            supervisor.delete_files(reg, "big")
        assert (d / "Big-Q2-00001-of-00002.gguf").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
