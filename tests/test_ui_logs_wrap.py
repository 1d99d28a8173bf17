"""Readable logs, read from the rendered screen: long lines wrap (``w`` toggles), ``z`` zooms the
active pane to the whole screen, and on a wide terminal the panes get most of the width.

Every assertion reads what the compositor draws (:func:`screen`, :func:`cells`), never the
log's lines: a line the log holds but the screen cuts is the bug these tests pin.
"""

from __future__ import annotations

import pytest
from ui_helpers import make_app, wait_until

from tui.ui.widgets.log_pane import FollowLog

pytestmark = pytest.mark.timeout(60)

# 300 characters, none of its 10-character windows repeats, then a marker
LONG = "".join(f"<{i:03d}>" for i in range(60)) + "#END"
assert len(LONG) == 304


def screen(app) -> list[str]:
    """The visible screen, one string per terminal row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def cells(app) -> list[list[tuple[str, object]]]:
    """The visible screen as (character, rich style) per cell."""
    rows = []
    for strip in app.screen._compositor.render_strips():
        row = []
        for seg in strip:
            if seg.control:
                continue
            row.extend((ch, seg.style) for ch in seg.text)
        rows.append(row)
    return rows


def is_match(style) -> bool:
    """The search match's style as drawn: bold on yellow (the theme makes it its own yellow)."""
    if style is None or not style.bold or style.bgcolor is None:
        return False
    r, g, b = style.bgcolor.get_truecolor()
    return r > 200 and g > 120 and b < 100


def log_rows(app) -> list[str]:
    """The rows of the screen where the log's text is drawn (its scrollbar left out)."""
    log = app.log_pane.log
    r = log.scrollable_content_region
    return [row[r.x:r.x + r.width] for row in screen(app)[r.y:r.y + r.height]]


def nospace(rows: list[str]) -> str:
    """Rows joined without spaces (a row broken after a space is padded to the pane's width)."""
    return "".join(rows).replace(" ", "")


def append(path, lines):
    with open(path, "a") as fh:
        fh.write("".join(f"{x}\n" for x in lines))


async def open_logs(pilot, app, be, name="smollm2", extra=()):
    append(be.log_path(name), [*extra, LONG])
    await wait_until(pilot, lambda: app.log_pane is not None, what="panes mounted")
    app.table.select(name)
    await wait_until(pilot, lambda: app.log_pane.model == name and app.log_pane.log.lines[-1:] == [LONG],
                     what="the long line loaded")
    await pilot.press("l")
    await wait_until(pilot, lambda: isinstance(app.focused, FollowLog))
    await pilot.pause(0.05)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
async def test_a_long_line_wraps_to_its_last_character_and_w_cuts_it(tmp_path, monkeypatch, size):
    app, be = make_app(tmp_path, monkeypatch)
    async with app.run_test(size=size) as pilot:
        await open_logs(pilot, app, be)
        rows = log_rows(app)
        width = len(rows[0])
        assert width < len(LONG)  # the line is longer than the pane: it has to wrap
        joined = "".join(rows)  # wrapped rows are exactly the pane's width: joined, the line is whole
        assert LONG in joined, "\n".join(rows)
        assert sum("#END" in r for r in screen(app)) == 1  # its last characters, on screen, once
        assert "w wrap on" in "".join(screen(app))  # the state and the key, in the pane's head
        # w: cut at the pane's edge (documented: like less -S, ←/→ scroll sideways)
        await pilot.press("w")
        await pilot.pause(0.05)
        shown = screen(app)
        assert not any("#END" in r for r in shown)
        assert any(r.startswith(LONG[:width - 1]) for r in log_rows(app))
        assert "w wrap off" in "".join(shown)
        await pilot.press("w")
        await pilot.pause(0.05)
        assert LONG in "".join(log_rows(app))


async def test_words_are_not_cut_in_two(tmp_path, monkeypatch):
    """A row breaks after a space near the edge; a run without spaces fills its rows."""
    app, be = make_app(tmp_path, monkeypatch)
    words = " ".join(f"w{i:02d}x" for i in range(60)) + " #END"
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app, be, extra=[words])
        await pilot.press("end")
        rows = [r.strip() for r in log_rows(app)]
        first = next(i for i, r in enumerate(rows) if r.startswith("w00x"))
        last = next(i for i, r in enumerate(rows) if r.endswith("#END") and i >= first)
        mine = rows[first:last + 1]
        assert " ".join(mine).split() == words.split(), mine
        for r in mine:  # every row holds whole words only
            assert all(len(w) == 4 or w == "#END" for w in r.split()), r
        assert len(mine[0]) > 70  # and rows are used up to near the edge


async def test_wide_characters_and_tabs_wrap_whole(tmp_path, monkeypatch):
    """A double-width character never straddles the edge (it starts the next row): every one
    of 120 is on screen, in order."""
    app, be = make_app(tmp_path, monkeypatch)
    cjk = "".join(chr(0x4E00 + i) for i in range(120)) + "#END"
    async with app.run_test(size=(80, 24)) as pilot:  # 79 columns of text: odd, a cut falls mid-character
        await open_logs(pilot, app, be, extra=[cjk, "a\tb" + "x" * 100])
        await pilot.press("end")
        await wait_until(pilot, lambda: any("#END" in r for r in screen(app)), what="the wide line")
        rows = log_rows(app)
        # the screen text has a placeholder after each wide character; drop those
        text = "".join(r.rstrip() for r in rows).replace("\u200b", "")
        shown = "".join(ch for ch in text if ord(ch) >= 0x4E00 or ch in "#END")
        assert cjk in shown, rows
        assert ("a" + " " * 7 + "b" + "x" * 100) in "".join(rows)  # the tab expanded, wrapped whole


async def test_wrapped_log_follows_new_lines_and_keeps_the_view_on_resize(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    log = be.log_path("smollm2")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app, be)
        for k in range(3):
            append(log, [f"batch {k} line {i} " + LONG for i in range(15)] + [f"last of batch {k}"])
            await wait_until(pilot, lambda k=k: any(f"last of batch {k}" in r for r in screen(app)),
                             what=f"batch {k} on screen")
            rows = [r.rstrip() for r in log_rows(app)]
            while rows and not rows[-1]:
                rows.pop()
            # following: the newest line is the last row drawn, right above the pane's end
            assert rows[-1] == f"last of batch {k}", rows
            assert rows[-2].endswith("#END")  # the long line before it, wrapped to its end
        assert not app.log_pane.paused
        # a resize re-wraps and still shows the end
        await pilot.resize_terminal(100, 30)
        await pilot.pause(0.2)
        rows = [r.rstrip() for r in log_rows(app)]
        assert len(log_rows(app)[0]) > 78
        assert "last of batch 2" in rows and LONG in "".join(log_rows(app))
        # paused (k), new lines wait under the badge; f shows them at the bottom
        await pilot.press("k")
        append(log, ["while paused " + LONG])
        await wait_until(pilot, lambda: any("1 new line" in r for r in screen(app)), what="badge")
        assert not any("while paused" in r for r in screen(app))
        await pilot.press("f")
        await wait_until(pilot, lambda: ("while paused " + LONG) in "".join(log_rows(app)), what="resumed")


async def test_search_highlights_and_jumps_in_wrapped_lines(tmp_path, monkeypatch):
    """A match at the end of a line wrapped over 4 rows is drawn highlighted (even split over two rows); enter/n bring matches into view."""
    app, be = make_app(tmp_path, monkeypatch)
    extra = [f"line {i} " + LONG + (" needle here" if i in (5, 60) else "") for i in range(100)]
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app, be, extra=extra)
        await pilot.press("slash", *"needle", "enter")
        await wait_until(pilot, lambda: app.log_pane.paused and isinstance(app.focused, FollowLog))
        await pilot.pause(0.05)

        def highlighted() -> str:
            """The highlighted characters on screen, in reading order (a match may wrap)."""
            return "".join(ch for row in cells(app) for ch, style in row
                           if is_match(style))

        # the newest match (line 60): its rows shown, the match highlighted on the row it wrapped to
        joined = nospace(log_rows(app))
        assert nospace(["line 60 " + LONG + " needle here"]) in joined
        assert highlighted() == "needle"
        await pilot.press("n")  # the older one, far above: scrolled into view, highlighted
        await pilot.pause(0.05)
        assert nospace(["line 5 " + LONG + " needle here"]) in nospace(log_rows(app))
        assert highlighted() == "needle"
        assert "match 1 of 2" in "".join(screen(app))


async def test_z_zooms_the_active_pane_and_back(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_logs(pilot, app, be)
        before = screen(app)
        assert any("glm-4.7-flash" in r for r in before)  # the models table
        await pilot.press("z")
        await pilot.pause(0.05)
        shown = screen(app)
        assert not any("glm-4.7-flash" in r for r in shown)  # the table is gone
        # the log spans the terminal: a wrapped row from column 0 to the scrollbar
        full = [r for r in shown if len(r[:159].strip()) == 159 and r[:159] in LONG]
        assert full, shown
        assert LONG in "".join(r[:159] for r in shown)
        assert "^p palette" in shown[-1]  # the footer stays
        await pilot.press("z")
        await pilot.pause(0.05)
        assert any("glm-4.7-flash" in r for r in screen(app))
        # esc leaves the zoom too (before anything else); so does moving to the models list (m)
        await pilot.press("z")
        await pilot.pause(0.05)
        assert not any("glm-4.7-flash" in r for r in screen(app))
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert any("glm-4.7-flash" in r for r in screen(app))
        await pilot.press("l", "z")
        await pilot.pause(0.05)
        await pilot.press("m")
        await pilot.pause(0.05)
        assert any("glm-4.7-flash" in r for r in screen(app)) and app.focused is app.table


async def test_z_from_the_models_list_zooms_the_shown_pane_gauges_too(tmp_path, monkeypatch):
    import ui_fakes as F

    app, be = make_app(tmp_path, monkeypatch, sampler=F.FakeSampler(F.snapshots(5)))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.tabs is not None, what="panes mounted")
        await pilot.press("4")
        await pilot.press("m")  # back to the list; the gauges pane stays the shown one
        await pilot.pause(0.05)
        assert any("glm-4.7-flash" in r for r in screen(app))
        await pilot.press("z")
        await pilot.pause(0.1)
        shown = screen(app)
        assert not any("glm-4.7-flash" in r for r in shown)
        assert any("GPU" in r for r in shown), shown  # the gauges, on the whole screen
        await pilot.press("z")
        await pilot.pause(0.05)
        assert any("glm-4.7-flash" in r for r in screen(app))


async def test_wide_terminal_gives_the_logs_most_of_the_width(tmp_path, monkeypatch):
    app, be = make_app(tmp_path, monkeypatch)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_logs(pilot, app, be)
        shown = screen(app)
        head = next(r for r in shown if "smollm2 · logs/smollm2.log" in r)
        left = head.index("smollm2 · logs")
        assert left <= 68  # the logs pane gets ≥ 92 of the 160 columns (it had 78)
        header = next(r for r in shown if " model " in r and " state " in r)
        for col in ("model", "quant", "files", "state", "port", "VRAM", "RAM"):  # the table keeps these
            assert f" {col}" in header[:left], (col, header)
        for name in be.registry.models:  # every row: no horizontal scrollbar takes the last one
            assert any(r[:left].startswith(f" {name} ") for r in shown), name
        # the log rows are as wide as the pane
        assert len(log_rows(app)[0]) >= 160 - left - 1


async def test_remapped_wrap_and_zoom_keys_work_and_the_head_line_names_them(tmp_path, monkeypatch):
    import json

    import ui_fakes as F

    from tui.core import registry
    from tui.ui.app import LlmdeckApp

    F.write_registry(tmp_path)
    path = tmp_path / "models.json"
    raw = json.loads(path.read_text())
    raw["settings"]["keymap"] = {"log_wrap": "W", "zoom": "Z"}
    path.write_text(json.dumps(raw))
    monkeypatch.chdir(tmp_path)
    reg = registry.load(path)
    be = F.FakeBackend(reg)
    be.ready_after_polls = 10**9
    app = LlmdeckApp(reg, backend=be, status_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app, be)
        assert "W wrap on · Z zoom" in "".join(screen(app))
        await pilot.press("w", "z")  # the old keys do nothing
        await pilot.pause(0.05)
        assert LONG in "".join(log_rows(app)) and any("glm-4.7-flash" in r for r in screen(app))
        await pilot.press("W")
        await pilot.pause(0.05)
        assert "W wrap off · Z zoom" in "".join(screen(app)) and not any("#END" in r for r in screen(app))
        await pilot.press("Z")
        await pilot.pause(0.05)
        assert not any("glm-4.7-flash" in r for r in screen(app))


async def test_paused_view_keeps_its_top_line_through_w_and_resizes(tmp_path, monkeypatch):
    """Scrolled up (paused) into wrapped lines, w and a resize keep the same line at the top."""
    app, be = make_app(tmp_path, monkeypatch)
    extra = [f"L{i:03d} " + "word " * (5 + i % 30) for i in range(150)]
    async with app.run_test(size=(80, 24)) as pilot:
        await open_logs(pilot, app, be, extra=extra)
        for _ in range(40):
            await pilot.press("k")
        await pilot.pause(0.1)
        assert app.log_pane.paused

        def top_line() -> str:
            """The log line the view's top row belongs to (a continuation row: the line above
            the first line that starts on screen)."""
            rows = log_rows(app)
            j = next(i for i, r in enumerate(rows) if r.startswith("L"))
            return rows[j][:4] if j == 0 else f"L{int(rows[j][1:4]) - 1:03d}"

        first = top_line()
        for keys in (["w"], ["w"]):
            await pilot.press(*keys)
            await pilot.pause(0.1)
            assert log_rows(app)[0].startswith(first), (keys, log_rows(app)[:3])
        await pilot.resize_terminal(120, 30)
        await pilot.pause(0.2)
        assert log_rows(app)[0].startswith(first), log_rows(app)[:3]
        assert app.log_pane.paused  # a resize is not the user scrolling
