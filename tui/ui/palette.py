"""The command palette (ctrl+p): every action of the key registry by its description, run in
the scope it belongs to; plus the app's system commands."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import SystemCommand
from textual.command import Hit, Hits, Provider
from textual.screen import Screen

from tui.ui import keys


class ActionsProvider(Provider):
    """The command palette: every action of the key registry, by its description."""

    def _commands(self):
        app = self.app
        for a in keys.ACTIONS:
            if not a.palette:
                continue
            if a.scope in ("global", "models") and not app.action_allowed(a.action):
                continue
            yield a, f"{a.description}  ({keys.display(a, app.user_keymap)})"

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for a, text in self._commands():
            score = matcher.match(text)
            if score > 0:
                # equal matches: the selected model's verbs first ("stop": "Stop the server"
                # before "Stop all servers and quit"), then in registry order
                score += 0.5 if a.scope == "models" else 0.0
                yield Hit(score, matcher.highlight(text), self._runner(a), help=f"{keys.SCOPE_TITLES[a.scope]}")

    async def discover(self) -> Hits:
        from textual.command import DiscoveryHit

        for a, text in self._commands():
            yield DiscoveryHit(text, self._runner(a), help=keys.SCOPE_TITLES[a.scope])

    def _runner(self, a: keys.Action):
        app = self.app

        async def run() -> None:
            await app.run_scoped_action(a)

        return run


class PaletteActions:
    """The app's side of the palette: run a registry action where it belongs; hide/show thoughts."""

    def action_toggle_hide_thoughts(self) -> None:
        self.hide_thoughts = not self.hide_thoughts
        self._main.set_class(self.hide_thoughts, "-hide-thoughts")
        for pane in (self.chat_deck.panes.values() if self.chat_deck else ()):
            pane.turns.set_hide_thoughts(self.hide_thoughts)
        self.notify("thoughts hidden" if self.hide_thoughts else "thoughts shown")

    async def run_scoped_action(self, a: keys.Action) -> None:
        """Run a registry action from the palette in the scope it belongs to."""
        if a.scope in ("global", "models"):
            await self.run_action(a.action)
            return
        if self.tabs is None:  # the panes are not mounted yet (the first ~0.1 s)
            return
        if a.scope == "chat":
            pane = await self._show_chat()
            self.show_pane("chat")
            if pane is not None:
                await self.run_action(a.action, pane)
            return
        if a.scope == "logs":
            self.show_pane("logs")
            await self.run_action(a.action, self.log_pane.log)
            return
        if a.scope in ("downloads", "bench", "eval"):  # panes mounted on first use
            self.show_pane(a.scope)
            await self.run_action(a.action, await getattr(self, f"ensure_{a.scope}")())
            return
        if a.scope == "list":
            await self.run_action(a.action, self.table)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Hide/show thoughts", "Hide every thinking block in the chat (setting)",
                            self.action_toggle_hide_thoughts)

