"""The selected model's panes in tabs: mounted after the first frame, each heavy pane on
first use (``ensure_*``); switching, following the selection, and the zoom (``z``)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container
from typing import TYPE_CHECKING

from tui.ui.widgets.gauges import GaugesView

if TYPE_CHECKING:  # imported where the panes are composed, after the first frame
    from textual.widgets import TabbedContent


class Panes(Container):
    """The selected model's panes, in tabs. Chat and downloads are mounted when first shown
    (Markdown and friends cost ~150 ms of imports that an idle TUI does not need)."""

    DEFAULT_CSS = """
    Panes { height: 1fr; }
    Panes #panes { height: 1fr; }
    Panes #panes > ContentSwitcher { height: 1fr; }
    Panes TabPane { padding: 0; height: 1fr; }
    """

    def __init__(self, backend, initial: str) -> None:
        super().__init__()
        self.backend = backend
        self.initial = initial

    def compose(self) -> ComposeResult:
        from textual.widgets import TabbedContent, TabPane

        from tui.ui.widgets.log_pane import LogPane  # after the first frame

        with TabbedContent(id="panes", initial=self.initial):
            with TabPane("Logs", id="logs"):
                yield LogPane(self.backend, id="log-pane")
            with TabPane("Chat", id="chat"):
                yield Container(id="chat-slot")
            with TabPane("Downloads", id="downloads"):
                yield Container(id="downloads-slot")
            with TabPane("Gauges", id="gauges"):
                yield GaugesView(id="gauges-view")
            with TabPane("Bench", id="bench"):
                yield Container(id="bench-slot")
            with TabPane("Eval", id="eval"):
                yield Container(id="eval-slot")


class PaneSwitching:
    """Mounting and showing the panes; the app provides ``_main``, ``tabs``, ``backend``, ``selected``
    and the ``*_pane`` / ``chat_deck`` slots."""

    async def _ensure(self, attr: str, slot: str, make):
        """The pane in ``self.<attr>``, mounted into ``#<slot>`` on first use (after the panes)."""
        await self._panes_mounted.wait()  # a key pressed in the first ~0.1 s waits for them
        async with self._mount_lock:
            if getattr(self, attr) is None:
                pane = make()
                await self._main.query_one(f"#{slot}").mount(pane)
                setattr(self, attr, pane)
                if attr == "downloads_pane":
                    self._show_downloads()
                elif attr != "chat_deck":
                    pane.show_model(self.selected)
        return getattr(self, attr)

    async def ensure_chat(self):
        from tui.ui.widgets.chat_pane import ChatDeck

        return await self._ensure("chat_deck", "chat-slot", lambda: ChatDeck(self.backend, id="chat-deck"))

    async def ensure_downloads(self):
        from tui.ui.widgets.downloads import DownloadsPane

        return await self._ensure("downloads_pane", "downloads-slot",
                                  lambda: DownloadsPane(self.backend, id="downloads-pane"))

    async def ensure_bench(self):
        from tui.ui.widgets.bench_pane import BenchPane

        return await self._ensure("bench_pane", "bench-slot", lambda: BenchPane(self.backend, id="bench-pane"))

    async def ensure_eval(self):
        from tui.ui.widgets.eval_pane import EvalPane

        return await self._ensure("eval_pane", "eval-slot", lambda: EvalPane(self.backend, id="eval-pane"))

    async def _show_chat(self):
        deck = await self.ensure_chat()
        pane = await deck.show_model(self.selected)
        if pane is not None:
            st = self.states.get(pane.model)
            pane.set_ready(bool(st and st.state == "ready"), st.state if st else "…", st.url if st else None)
        return pane

    def _show_downloads(self) -> None:
        if self.downloads_pane is None:
            return
        model = self.registry.models.get(self.selected) if self.selected else None
        self.downloads_pane.show_model(model, self.table.download_rows.get(self.selected or ""))

    def _update_chat_state(self) -> None:
        if self.chat_deck is None:
            return
        for name, pane in self.chat_deck.panes.items():
            st = self.states.get(name)
            pane.set_ready(bool(st and st.state == "ready"), st.state if st else "…", st.url if st else None)

    def show_pane(self, pane: str) -> None:
        if self.tabs is not None:
            self.tabs.active = pane

    async def action_show_pane(self, pane: str) -> None:
        if self.tabs is None:  # pressed in the first ~0.1 s: done once the panes are mounted
            self._pending_pane = pane
            return
        self.show_pane(pane)
        if pane == "logs":
            self.log_pane.log.focus()
        elif pane == "chat":
            chat = await self._show_chat()
            if chat is not None:
                chat.prompt.focus()
        elif pane == "downloads":
            (await self.ensure_downloads()).focus()
        elif pane == "bench":
            (await self.ensure_bench()).focus_form()
        elif pane == "eval":
            (await self.ensure_eval()).focus_form()
        elif pane == "gauges":
            view = self.gauges_view
            if view.snapshot is not None:
                view.show(view.snapshot, view.history)

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.tabbed_content.id != "panes":
            return
        pane = event.pane.id
        if pane == "chat":
            await self._show_chat()
        elif pane == "downloads":
            await self.ensure_downloads()
        elif pane == "bench":
            await self.ensure_bench()
        elif pane == "eval":
            await self.ensure_eval()
        elif pane == "gauges":
            view = self.gauges_view
            if view.snapshot is not None:
                view.show(view.snapshot, view.history)

    async def action_zoom(self) -> None:
        """``z``: the panes (the tab bar and the shown pane, whichever) on the whole screen, and back.

        Textual's ``Screen.maximize``: the footer stays; ``esc`` leaves the zoom before anything
        else (like closing a screen), and so does focus moving out of it (``m``, ``/``). Pressed
        in the models list, the shown pane takes the focus first (the list is hidden).
        """
        main = self._main
        if main is None or self.tabs is None:
            return
        if main.maximized is not None:
            main.minimize()
            self.refresh_bindings()  # the footer's first entry says what esc does: no longer unzoom
            return
        tabs = self.tabs
        focused = main.focused
        if focused is None or tabs not in focused.ancestors:
            await self.action_show_pane(tabs.active or "logs")
            focused = main.focused
            if focused is None or tabs not in focused.ancestors:  # a pane without keys (gauges)
                tabs.query_one("ContentTabs").focus()
        main.maximized = tabs
        self.refresh_bindings()  # no binding changed, but the footer's first entry is now 'esc unzoom'

    def on_descendant_focus(self, event) -> None:
        """Focus moving out of the zoomed panes (``m``, ``/``, a click) leaves the zoom."""
        main = self._main
        zoomed = main.maximized if main is not None else None
        if zoomed is not None and event.widget.screen is main and zoomed not in event.widget.ancestors_with_self:
            main.minimize()

