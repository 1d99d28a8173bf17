"""The one rule for ``esc`` on the main screen (the help screen and the footer say it) and the
focus rule: a widget that is not visible never has the focus."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Input


def typing_what(widget) -> str:
    """What an input on the main screen is for, as the footer's ``typing:`` entry says it."""
    what = getattr(widget, "typing_what", None)
    if what:
        return what
    wid = widget.id or ""
    if wid.startswith(("bench-", "eval-")):
        return wid.split("-", 1)[1].replace("-", " ")
    if wid == "log-search":
        return "log search"
    if "prompt" in widget.classes:
        return "tool result" if str(widget.placeholder).startswith("result of") else "message"
    return "text"


def shown_on_screen(widget) -> bool:
    """True when the widget and every container above it are displayed (a hidden tab's
    content, a hidden bar: False)."""
    node = widget
    while node is not None and not isinstance(node, Screen):
        if not node.display or not node.visible:
            return False
        node = node.parent
    return node is not None


class EscRule:
    """``esc_step`` / ``action_back`` and the refocus; the app provides the panes and the filter bar."""

    def _running_pane(self):
        """(the shown pane, what runs in it) when a reply or a bench run can be cancelled."""
        if self.tabs is None:
            return None, ""
        if self.tabs.active == "chat" and self.chat_deck is not None:
            pane = self.chat_deck.panes.get(self.selected or "")
            if pane is not None and pane.check_action("cancel", ()) is True:
                return pane, ("reply" if pane.generating else "tool results")
        if self.tabs.active == "bench" and self.bench_pane is not None:
            if self.bench_pane.check_action("cancel_bench", ()) is True:
                return self.bench_pane, "bench run"
        if self.tabs.active == "eval" and self.eval_pane is not None:
            if self.eval_pane.check_action("cancel_eval", ()) is True:
                return self.eval_pane, "eval run"
        return None, ""

    def esc_step(self) -> tuple[str, str] | None:
        """What ``esc`` does now on the main screen, by the one rule (the help screen says it):

        1. ``("cancel", what)``: cancel what runs in the shown pane (a reply, pending tool
           results, a bench run) — the focus stays where it is;
        2. ``("leave", what)``: leave the input that has the keyboard (to the log for the log
           search, else to the models list);
        3. ``("clear", "search" | "filter")``: clear the log search (keys in the log), else the
           models filter;
        4. ``("unzoom", "zoom")``: leave the zoom (``z``), like closing a screen;
        5. ``("back", "models")``: back to the models list from a pane.

        None: nothing to do. Dialogs close on esc themselves; the footer's first entry shows
        this step (:mod:`tui.ui.widgets.footer`).
        """
        main = self._main
        if main is None or self.table is None:
            return None
        pane, what = self._running_pane()
        if pane is not None:
            return "cancel", what
        focused = main.focused
        if isinstance(focused, Input):
            return "leave", typing_what(focused)
        log = self.log_pane
        if log is not None and log.searching and focused is log.log:
            return "clear", "search"
        if self.filter_text or self.filter_bar.has_class("-shown"):
            return "clear", "filter"
        if main.maximized is not None:
            return "unzoom", "zoom"
        if focused is not self.table:
            return "back", "models"
        return None

    async def action_back(self) -> None:
        step = self.esc_step()
        if step is None:
            return
        kind, what = step
        focused = self._main.focused
        if kind == "cancel":
            pane, _ = self._running_pane()
            # the panes' own actions (ids chat_cancel, bench_cancel): the same cancel as the palette's
            await self.run_action({"bench run": "cancel_bench", "eval run": "cancel_eval"}.get(what, "cancel"), pane)
        elif kind == "leave":
            log = self.log_pane
            zoomed = self._main.maximized
            if log is not None and focused is not None and log in focused.ancestors:
                log.log.focus()  # out of the log search's input; the search stays
            elif zoomed is not None and focused is not None and zoomed in focused.ancestors:
                # zoomed: the keys go to what the pane shows (the chat's transcript), the zoom stays
                target = next((w for w in focused.ancestors if hasattr(w, "turns")), None)
                (target.turns if target is not None else zoomed.query_one("ContentTabs")).focus()
            else:
                self.table.focus()
            if focused is self.filter_input and not self.filter_text:
                self._show_filter_bar(False)
        elif kind == "clear" and what == "search":
            self.log_pane.close_search()
        elif kind == "clear":
            self._clear_filter()
            self.table.focus()
        elif kind == "unzoom":
            self._main.minimize()  # the focus stays in the pane
        else:
            self.table.focus()
        self.refresh_bindings()

    def _focus_moved(self, focused) -> None:
        """A widget that is not visible never has the focus (see on_mount)."""
        if self.filter_bar.has_class("-shown"):
            self._filter_hint()
        if self.screen is not self._main:
            return
        if focused is None or not shown_on_screen(focused):
            self.call_after_refresh(self._refocus)

    def _refocus(self) -> None:
        main = self._main
        if not self._alive() or self.screen is not main:
            return
        if main.focused is None or not shown_on_screen(main.focused):
            self.table.focus()

