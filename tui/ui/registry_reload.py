"""models.json edited while the TUI runs (the models table's worker watches it) or a model added
from the Hub (``a``): new rows, the user keymap applied again, servers left running."""

from __future__ import annotations

from tui.ui import keys
from tui.ui.messages import RegistryReloaded
from tui.ui.widgets.format import short_path


class RegistryReload:
    """Hot reload and the add screen; the app provides ``table``, ``registry``, ``backend``."""

    def _apply_keymap(self, registry) -> list[str]:
        """Use settings.keymap of models.json: the entries that can be applied are; returns one
        line per entry that cannot (those are skipped)."""
        good, problems = keys.keymap_problems(registry.settings.keymap)
        if good != self.user_keymap:
            self.user_keymap = good
            self.set_keymap(good)
        return problems

    def on_registry_reloaded(self, message: RegistryReloaded) -> None:
        """models.json changed: show the new models (servers keep running), or say why not."""
        if not self._alive():
            return
        where = short_path(self.registry.path)
        if message.problems:
            more = f" (and {len(message.problems) - 1} more: llmdeck check)" if len(message.problems) > 1 else ""
            self.notify(f"{message.problems[0]}{more} — still using the last good {where}",
                        severity="error", timeout=15)
            return
        reg, old = message.registry, self.registry.models
        added = [n for n in reg.models if n not in old]
        removed = [n for n in old if n not in reg.models]
        changed = [n for n in reg.models if n in old and reg.models[n] != old[n]]
        if not (added or removed or changed or reg.settings != self.registry.settings):
            return
        still_running = [self.states[n] for n in removed if self.states.get(n) and self.states[n].running]
        self.registry = reg
        self.backend.registry = reg
        self.table.set_registry(reg)
        self._select(self.table.selected)
        self._update_title()
        self.table.load_files()
        for problem in self._apply_keymap(reg):
            self.notify(f"{where}: {problem}", severity="warning", timeout=12)
        what = [f"{label} {', '.join(names)}" for label, names in
                (("added", added), ("removed", removed), ("changed", changed)) if names]
        self.notify(f"{where} reloaded: {'; '.join(what) or 'settings changed'}")
        for st in still_running:
            self.notify(f"{st.name} was removed from {where} but its server still runs (pid {st.pid}, port "
                        f"{st.port}): add it back to manage it from llmdeck", severity="warning", timeout=15)
        self.poll_now()

    def action_add_model(self) -> None:
        from tui.ui.backend import HubAdd
        from tui.ui.screens.add import AddScreen

        self.push_screen(AddScreen(HubAdd(self.registry.path)), self._model_added)

    def _model_added(self, result: tuple | None) -> None:
        """The add screen wrote an entry: show it now (not at the watcher's next look), select
        it and ask the download question, as ``d`` would."""
        if not result or not self._alive():
            return
        name, reg, messages = result
        self.on_registry_reloaded(RegistryReloaded(reg))
        for m in messages:
            self.notify(m, timeout=10)
        if name in self.table.shown:
            self.table.select(name)
            self._select(name)
        self.run_worker(self.plan_download(name))

