"""Log rotation, tail from the end, stage detection, and tail -F through rotation/truncation."""

from __future__ import annotations

import os

from tui.core import logfiles


def test_rotate_keeps_n_runs(tmp_path):
    log = tmp_path / "m.log"
    for run in range(5):
        logfiles.rotate(log, keep=2)
        log.write_text(f"run {run}\n")
    assert log.read_text() == "run 4\n"
    assert (tmp_path / "m.log.1").read_text() == "run 3\n"
    assert (tmp_path / "m.log.2").read_text() == "run 2\n"
    assert not (tmp_path / "m.log.3").exists()


def test_tail_reads_from_the_end_and_current_run(tmp_path):
    log = tmp_path / "m.log"
    with open(log, "w") as fh:
        fh.write(logfiles.banner("m", "starting"))
        for i in range(200_000):
            fh.write(f"old line {i}\n")
        fh.write(logfiles.banner("m", "starting"))
        fh.write("load_tensors: loading model tensors\nnew 1\nnew 2\n")
    assert logfiles.tail(log, 2) == ["new 1", "new 2"]
    assert logfiles.tail(log, 10, current_run=True) == ["load_tensors: loading model tensors", "new 1", "new 2"]
    assert logfiles.stage(log) == "loading tensors"


def test_follower_through_append_partial_lines_truncate_and_rotate(tmp_path):
    log = tmp_path / "m.log"
    log.write_text("a\nb\n")
    f = logfiles.Follower(log, backlog=1)
    assert f.poll() == ["b"]
    with open(log, "a") as fh:
        fh.write("c\npart")
    assert f.poll() == ["c"]
    with open(log, "a") as fh:
        fh.write("ial\n")
    assert f.poll() == ["partial"]
    # truncation (copytruncate-style)
    with open(log, "w") as fh:
        fh.write("fresh\n")
    assert f.poll() == ["fresh"]
    # rotation: the old file is renamed, a new one appears at the path
    with open(log, "a") as fh:
        fh.write("last of old\n")
    os.replace(log, tmp_path / "m.log.1")
    log.write_text("new run\n")
    assert f.poll() == ["last of old", "new run"]
    assert f.poll() == []
    f.close()


def test_follower_waits_for_a_missing_file(tmp_path):
    log = tmp_path / "later.log"
    f = logfiles.Follower(log, backlog=10)
    assert f.poll() == []
    log.write_text("hello\n")
    assert f.poll() == ["hello"]
