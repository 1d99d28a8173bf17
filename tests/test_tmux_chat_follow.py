"""The installed ``llmdeck`` in a real terminal (tmux) follows a long chat answer to its end.

A stream longer than the pane comes from ``tests/pacedstream.py`` (another process) and ends in
a marker word; ``capture-pane`` gives the cells a person sees. Checked at 80x24 and 160x48, at
200 and 2,000 tok/s: the marker and then the stats line end up on the screen. At 80x24: PageUp
from the message box holds the view still while tokens arrive and a badge counts the new
lines; PageDown to the end follows again. Each test uses its own tmux server socket (``-L``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tmuxterm

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
MARKER = "ZEBRAFINISH"
STATS = " tok/s · "
BADGE = "PageDown to the end follows"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()


def tokens(n: int) -> list[str]:
    out = []
    for i in range(n - 1):
        out.append((" " if i % 12 else "") + WORDS[i % len(WORDS)] + ("\n\n" if i % 12 == 11 else ""))
    return out + [" " + MARKER]


class Term(tmuxterm.Term):
    """``llmdeck`` over a paced stream of ``n`` tokens at ``rate`` tok/s (tests/pacedstream.py)."""

    def __init__(self, tmp: Path, cols: int, rows: int, n: int, rate: float) -> None:
        (tmp / "tokens.json").write_text(json.dumps(tokens(n)))
        self.srv = subprocess.Popen([sys.executable, str(HERE / "pacedstream.py"), "--tokens",
                                     str(tmp / "tokens.json"), "--rate", str(rate)], stdout=subprocess.PIPE, text=True)
        port = int(self.srv.stdout.readline())
        (tmp / "models.json").write_text(json.dumps({"settings": {}, "models": {
            "paced": {"engine": "external", "base_url": f"http://127.0.0.1:{port}/v1"}}}))
        try:
            super().__init__(tmp, cols, rows, prefix="llmdeck-follow")
        except BaseException:
            self.stop_stream()
            raise

    def stop_stream(self) -> None:
        self.srv.kill()
        self.srv.wait(5)

    def close(self) -> None:
        super().close()
        self.stop_stream()

    def open_chat_and_ask(self) -> None:
        self.wait(lambda rows: any(" ready " in r for r in rows), 30, "the model ready")
        self.keys("c")
        self.wait(lambda rows: any("message…" in r for r in rows), 10, "the chat open")
        self.keys("g", "o", "Enter")


def row_of(rows: list[str], needle: str) -> int | None:
    return next((i for i, r in enumerate(rows) if needle in r), None)


def marker_then_stats(rows: list[str]) -> bool:
    m, s = row_of(rows, MARKER), row_of(rows, STATS)
    return m is not None and s is not None and s > m


@pytest.mark.parametrize("rate,n", [(200, 600), (2000, 6000)], ids=["200tok/s", "2000tok/s"])
@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_the_real_tui_shows_the_end_of_a_long_answer_and_its_stats_line(tmp_path, size, rate, n):
    term = Term(tmp_path, *size, n=n, rate=rate)
    try:
        term.open_chat_and_ask()
        rows = term.wait(marker_then_stats, 40, "the marker and then the stats line on the screen")
        # the app drew the whole terminal (not an 80x24 corner of it)
        assert len(rows) == size[1] and max(len(r.rstrip()) for r in rows) > size[0] - 10, rows
        stats = rows[row_of(rows, STATS)]
        assert f"{n} tokens" in stats
        # the stats line sits just above the message box: the view is at the end
        assert "message…" in rows[row_of(rows, STATS) + 1]
    finally:
        term.close()


def test_the_real_tui_holds_the_view_on_pageup_and_follows_again_on_pagedown(tmp_path):
    term = Term(tmp_path, 80, 24, n=2000, rate=200)
    try:
        term.open_chat_and_ask()
        # the answer outgrows the pane: the prompt line "› go" has scrolled off the top
        term.wait(lambda rows: any("alpha" in r for r in rows) and not any("› go" in r for r in rows), 20,
                  "the answer longer than the pane")
        term.keys("PageUp")
        rows = term.wait(lambda rows: any(BADGE in r for r in rows), 5, "the badge")

        def view(rows: list[str]) -> list[str]:  # the transcript's rows, its scrollbar column left out
            return [r[:78].rstrip() for r in rows[6:-3]]

        def count(rows: list[str]) -> int:
            return int(rows[row_of(rows, BADGE)].split("↓ ")[1].split()[0])

        held, n0 = view(rows), count(rows)
        time.sleep(1.0)  # 200 more tokens arrive
        rows = term.screen()
        assert view(rows) == held, "the view moved while paused"
        assert count(rows) >= n0 + 10, "the badge did not count the new lines"
        assert MARKER not in "\n".join(rows)
        for _ in range(300):  # PageDown from the message box until the end: following again
            rows = term.screen()
            if not any(BADGE in r for r in rows):
                break
            term.keys("PageDown")
            time.sleep(0.05)
        assert not any(BADGE in r for r in term.screen())
        term.wait(marker_then_stats, 30, "the marker and the stats line on the screen")
    finally:
        term.close()
