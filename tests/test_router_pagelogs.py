"""The front page's log reader (tui/router/pagelogs.py): backlog, then lines added by cursor;
a partial line waits for its newline; truncation and rotation start over; links are refused."""

from __future__ import annotations

import os

from tui.router import pagelogs


def test_backlog_then_follow_partial_truncate_rotate(tmp_path):
    log = tmp_path / "m.log"
    log.write_text("".join(f"line {i}\n" for i in range(300)) + "half")
    first = pagelogs.read(log, None)
    assert [t for t, _ in first["lines"]] == [f"line {i}" for i in range(100, 300)]  # the last 200
    assert first["reset"] is False and first["missing"] is False
    cur = first["cursor"]
    assert pagelogs.read(log, cur)["lines"] == []  # "half" has no newline yet
    with open(log, "a") as fh:
        fh.write(" done\nerror: boom\nwarning: careful\n")
    nxt = pagelogs.read(log, cur)
    assert nxt["lines"] == [["half done", ""], ["error: boom", "error"], ["warning: careful", "warn"]]
    assert pagelogs.read(log, nxt["cursor"])["lines"] == []
    log.write_text("short\n")  # truncated (same inode, smaller than the cursor)
    again = pagelogs.read(log, nxt["cursor"])
    assert again["reset"] is True and again["lines"] == [["short", ""]]
    os.rename(log, tmp_path / "m.log.1")  # rotated: a new run's file
    log.write_text("new run\n")
    rot = pagelogs.read(log, again["cursor"])
    assert rot["reset"] is True and rot["lines"] == [["new run", ""]]


def test_missing_and_link_refused(tmp_path):
    assert pagelogs.read(tmp_path / "none.log", None)["missing"] is True
    assert pagelogs.read(None, None)["missing"] is True
    secret = tmp_path / "secret.txt"
    secret.write_text("do not show\n")
    link = tmp_path / "m.log"
    link.symlink_to(secret)
    out = pagelogs.read(link, None)
    assert out["missing"] is True and out["lines"] == []
