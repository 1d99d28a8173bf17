"""The logs pane: tail -F through rotation and truncation, batching, pause on scroll up with
a new-lines badge, f/End/scroll-to-bottom resume, bounded memory, highlighting.

The log is a real file read by the real ``logfiles.Follower`` (through the fake backend,
which only supplies the path).
"""

from __future__ import annotations

import os

import pytest
from rich.text import Text
from ui_helpers import make_app, wait_until

from tui.ui.widgets.log_pane import FollowLog, LogFeed, LogHighlighter

pytestmark = pytest.mark.timeout(60)


def bytes_read() -> int:
    """Bytes this process (all its threads) has read through read(2) and friends, from any file."""
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def append(path, lines):
    with open(path, "a") as fh:
        fh.write("".join(f"{x}\n" for x in lines))


async def open_logs(pilot, app, name="smollm2"):
    await wait_until(pilot, lambda: app.log_pane is not None, what="panes mounted")
    app.table.select(name)
    await wait_until(pilot, lambda: app.log_pane.model == name and app.log_pane.lines_written >= 7,
                     what="backlog shown")
    await pilot.press("l")
    await wait_until(pilot, lambda: isinstance(app.focused, FollowLog))


async def test_follows_appends_rotation_and_truncation(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    log = be.log_path("smollm2")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app)
        lines = app.log_pane.log.lines
        append(log, [f"appended {i}" for i in range(3)])
        await wait_until(pilot, lambda: lines[-1:] == ["appended 2"], what="appended lines")
        # rotation (the supervisor moves x.log to x.log.1 and starts a new file)
        os.replace(log, log.with_name("smollm2.log.1"))
        append(log, ["new run line 1", "new run line 2"])
        await wait_until(pilot, lambda: app.log_pane.log.lines[-1:] == ["new run line 2"], what="after rotation")
        # truncation (size drops below the offset)
        log.write_text("")
        append(log, ["after truncate"])
        await wait_until(pilot, lambda: app.log_pane.log.lines[-1:] == ["after truncate"], what="after truncation")


async def test_scroll_up_pauses_badge_counts_and_f_resumes(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    log = be.log_path("smollm2")
    append(log, [f"line {i}" for i in range(200)])
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app)
        pane = app.log_pane
        await wait_until(pilot, lambda: pane.log.lines[-1:] == ["line 199"])
        assert not pane.paused
        await pilot.press("k")  # scroll up: following stops
        assert pane.paused
        n_before = pane.log.line_count
        append(log, [f"more {i}" for i in range(25)])
        await wait_until(pilot, lambda: pane.feed.waiting == 25, what="lines waiting")
        badge = str(pane.query_one("#log-badge").render())
        assert "25 new lines" in badge and pane.query_one("#log-badge").has_class("-shown")
        assert pane.log.line_count == n_before  # nothing written while paused
        await pilot.press("f")
        assert not pane.paused and pane.log.lines[-1] == "more 24"
        assert not pane.query_one("#log-badge").has_class("-shown")
        # g/home: to the top (pauses); end resumes
        await pilot.press("g")
        assert pane.paused and pane.log.scroll_y == 0
        append(log, ["x1"])
        await wait_until(pilot, lambda: pane.feed.waiting == 1)
        await pilot.press("end")
        assert not pane.paused and pane.log.lines[-1] == "x1"
        # k then j back to the bottom resumes too
        await pilot.press("k")
        assert pane.paused
        await pilot.press("j", "j")
        await wait_until(pilot, lambda: not pane.paused, what="resume at the bottom")


async def test_paused_lines_are_bounded_and_skips_are_marked(tmp_path, monkeypatch):
    feed = LogFeed("m", max_lines=100)
    feed.push([f"a{i}" for i in range(60)])
    feed.push([f"b{i}" for i in range(190)])
    assert feed.waiting == 250
    lines, dropped = feed.drain()
    assert len(lines) == 100 and lines[-1] == "b189" and dropped == 150
    assert feed.waiting == 0

    app, be = make_app(tmp_path, monkeypatch)
    log = be.log_path("smollm2")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app)
        pane = app.log_pane
        pane.feed._lines = type(pane.feed._lines)(pane.feed._lines, maxlen=50)  # a small buffer
        await pilot.press("k")
        append(log, [f"flood {i}" for i in range(120)])
        await wait_until(pilot, lambda: pane.feed.total >= 120, what="flood read")
        assert len(pane.feed._lines) == 50  # bounded while paused
        await pilot.press("f")
        text = pane.log.lines
        assert text[-1] == "flood 119"
        assert any("70 lines skipped while paused" in x for x in text)


async def test_a_large_log_is_not_read_whole(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    log = be.log_path("smollm2")
    with open(log, "a") as fh:  # ~40 MB
        block = "".join(f"0.00.{i:06d} I srv  slot update: id 0 | task {i} | n_past = {i}\n" for i in range(10_000))
        for _ in range(60):
            fh.write(block)
    size = log.stat().st_size
    read0 = bytes_read()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app)
        # the backlog only (the last 200 lines), read from the end: what this process read from
        # start to the backlog on screen is a small fraction of the file (a count, not a speed,
        # so a loaded machine cannot fail it); reading it whole would read all 40 MB
        read = bytes_read() - read0
        assert read < size // 10, f"read {read} bytes of a {size}-byte log to show its last 200 lines"
        assert app.log_pane.log.line_count <= 201
        assert app.log_pane.log.lines[-1].endswith("n_past = 9999")
        assert app.log_pane.feed.total <= 201


def test_errors_and_warnings_are_highlighted():
    h = LogHighlighter()
    for line, colour in [("0.00.020.000 E llama_model_load: error loading model: x", "red"),
                         ("0.00.015.196 W srv  llama_server: security: no API key", "yellow"),
                         ("===== llmdeck: 2026-01-01 smollm2: starting =====", "cyan"),
                         ("srv  llama_server: model loaded", "green")]:
        t = Text(line)
        h.highlight(t)
        assert t.spans and t.spans[0].style.color.name == colour, line
    t = Text("0.00.001 I srv  update_slots: all good")
    h.highlight(t)
    assert t.spans == []


async def test_width_of_wide_and_tabbed_lines_is_measured_in_cells(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    log = be.log_path("smollm2")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app)
        await pilot.press("w")  # not wrapped: the log is as wide as its widest line
        append(log, ["x" * 90, "日本語" * 40, "a\tb"])
        await wait_until(pilot, lambda: app.log_pane.log.lines[-1:] == ["a\tb"])
        assert app.log_pane.log.virtual_size.width == 240  # 120 wide characters, 2 cells each


async def test_search_highlights_counts_and_walks_matches(tmp_path, monkeypatch):
    """/ text: matches highlighted and counted; enter = newest match (pauses following);
    n older, N newer, bell at the ends; smart case; esc clears; f resumes following."""
    from tui.ui.widgets.log_pane import SearchInput

    app, be = make_app(tmp_path, monkeypatch)
    log = be.log_path("smollm2")
    append(log, [f"line {i}" + (" slot error: x" if i in (20, 90, 150) else "") + (" Error" if i == 90 else "")
                 for i in range(180)])
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app)
        pane = app.log_pane
        await wait_until(pilot, lambda: pane.log.lines[-1:] == ["line 179"])
        idx = {n: pane.log.lines.index(next(x for x in pane.log.lines if x.startswith(f"line {n} "))) for n in (20, 90, 150)}
        await pilot.press("slash")
        assert isinstance(app.focused, SearchInput)
        await pilot.press(*"error")
        info = pane.query_one("#log-search-info")
        await wait_until(pilot, lambda: "3 matching lines" in str(info.render()), what="count")
        assert pane.matching_lines() == [idx[20], idx[90], idx[150]]
        # every occurrence is highlighted in the rendered line (both on line 90: case-insensitive)
        t = Text(pane.log.lines[idx[90]])
        pane.log.highlighter.highlight(t)
        assert [t.plain[s.start:s.end] for s in t.spans if s.style == pane.log.highlighter.MATCH] == ["error", "Error"]
        assert not pane.paused
        await pilot.press("enter")  # the newest match at or above the view
        assert isinstance(app.focused, FollowLog) and pane.paused
        assert pane.log.current_line == idx[150] and "match 3 of 3" in str(info.render())
        await pilot.press("n")
        assert pane.log.current_line == idx[90]
        y = int(pane.log.scroll_y)
        assert y <= idx[90] < y + pane.log.scrollable_content_region.height  # on screen
        await pilot.press("n")
        assert pane.log.current_line == idx[20] and "match 1 of 3" in str(info.render())
        await pilot.press("n")  # no older match: stays
        assert pane.log.current_line == idx[20]
        await pilot.press("N", "N")
        assert pane.log.current_line == idx[150]
        # smart case: a capital makes it case-sensitive
        await pilot.press("slash")
        await pilot.press("ctrl+u", *"Error")
        await wait_until(pilot, lambda: pane.matching_lines() == [idx[90]], what="smart case")
        await pilot.press("enter")
        assert pane.log.current_line == idx[90]
        # esc in the log clears the search (and the marks); the row hides; f still follows
        await pilot.press("escape")
        assert pane.search is None and pane.log.highlighter.search is None and pane.log.current_line is None
        assert not pane.query_one("#log-search-row").has_class("-shown") and app.focused is pane.log
        await pilot.press("f")
        assert not pane.paused
        # esc in the search row leaves it, the next esc clears it; n with no search opens the row
        await pilot.press("n")
        assert isinstance(app.focused, SearchInput)
        await pilot.press(*"zzz")
        await wait_until(pilot, lambda: "no match" in str(info.render()), what="no match")
        await pilot.press("escape")  # esc's one rule: it leaves the input first, the search stays
        assert pane.search is not None and app.focused is pane.log
        await pilot.press("escape")  # then clears it
        assert pane.search is None and app.focused is pane.log


async def test_brackets_switch_the_log_to_the_previous_and_next_model(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    names = list(be.registry.models)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app, names[1])
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: app.log_pane.model == names[2], what="next model's log")
        assert app.selected == names[2] and isinstance(app.focused, FollowLog)
        await pilot.press("left_square_bracket", "left_square_bracket")
        await wait_until(pilot, lambda: app.log_pane.model == names[0], what="previous model's log")
        await pilot.press("left_square_bracket")  # the first stays first
        assert app.selected == names[0]
