"""The selected model's verbs: start, stop, restart, kill (after asking), delete its files
(after asking) and download (the flow lives in the downloads pane). Whether a verb applies
now is the core's rule (:func:`tui.core.verbs.verdict`): the footer hides what does not
apply and greys what applies but not now."""

from __future__ import annotations

from textual import work
from textual.widgets import Input

from tui.core import verbs
from tui.ui.messages import ActionDone, FilesChanged
from tui.ui.widgets.format import human_bytes, short_path


class ModelVerbs:
    """Verb actions, their worker and its result; the app provides ``table``, ``backend``, ``registry``."""

    def action_allowed(self, action: str) -> bool:
        return self.check_action(action, ()) is True

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Textual's question for every key of the app: True (shown), False (hidden), None (greyed).
        A letter key is hidden while an input has the keyboard; a verb follows the core's rule for
        the selected model's row (no row shown: no verb)."""
        if action == "back":  # a priority binding: dialogs and the palette get their own esc
            return self._main is not None and self.screen is self._main
        focused = self._main.focused if self._main is not None else None
        typing = isinstance(focused, Input)  # on the main screen (not the palette's input)
        single_letter = {"start", "stop", "restart", "kill", "download", "delete_files", "show_pane", "filter",
                         "quit_keep",
                         "stop_all_quit", "help", "focus_models", "zoom"}
        if typing and action in single_letter:
            return False  # the key is text in an input (the footer hides it)
        if action not in verbs.VERBS:
            return True
        name = self.selected
        if name is None or name not in self.registry.models or name not in self.table.shown:
            return False  # no row shown (a filter hides them all): no verb for a row not on screen
        return self.verb_verdict(action, name).allowed

    def verb_verdict(self, verb: str, name: str):
        """The core's verb rule (tui.core.verbs) for ``name`` as this app knows it now."""
        st = self.states.get(name)
        return verbs.verdict(verb, self.registry.models[name], st.state if st else "unknown",
                             busy=self.pending.get(name), downloading=name in self.downloads,
                             restarting=bool(st is not None and st.restarting_in_s),
                             where=short_path(self.registry.path))

    def _refused(self, verb: str) -> bool:
        """True when ``verb`` may not run on the selected model now, with a toast saying why
        (the keys of such verbs are hidden or greyed; the palette or a script may still ask)."""
        name = self.selected
        if name is None:
            return True
        if self.action_allowed(verb):
            return False
        why = self.verb_verdict(verb, name).why if name in self.registry.models else ""
        if why:
            self.notify(why, severity="warning")
        return True

    def action_start(self) -> None:
        self._verb("start")

    def action_stop(self) -> None:
        self._verb("stop")

    def action_restart(self) -> None:
        self._verb("restart")

    def action_kill(self) -> None:
        from tui.ui.screens.confirm import ConfirmScreen

        name = self.selected
        if self._refused("kill"):
            return
        st = self.states.get(name)
        pid = f" (pid {st.pid})" if st and st.pid else ""

        def done(yes: bool | None) -> None:
            if yes:
                self._verb("kill", name)

        self.push_screen(ConfirmScreen(f"Kill {name}{pid} now with SIGKILL?\nRequests in flight are lost.",
                                       yes="Kill"), done)

    def action_delete_files(self) -> None:
        from tui.ui.backend import one_line
        from tui.ui.screens.confirm import ConfirmScreen

        name = self.selected
        if self._refused("delete_files"):
            return
        try:
            files, size = self.backend.deletable(name)
        except Exception as exc:  # noqa: BLE001 — one line in a notification
            self.notify(f"delete {name}: {one_line(exc)}", severity="error")
            return
        if not files:
            self.notify(f"{name}: nothing downloaded to delete")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._verb("delete_files", name)

        self.push_screen(ConfirmScreen(f"Delete {len(files)} file(s) of {name}, {human_bytes(size)}, in\n"
                                       f"{files[0].parent}?\nThey would have to be downloaded again.",
                                       yes="Delete"), done)

    def _verb(self, verb: str, name: str | None = None) -> None:
        name = name or self.selected
        if name is None or (verb not in ("kill", "delete_files") and self._refused(verb)):
            return
        self.pending[name] = verb
        self.table.redraw_row(name)
        self.refresh_bindings()
        self._run_verb(name, verb)

    @work(thread=True, group="verbs", exit_on_error=False)
    def _run_verb(self, name: str, verb: str) -> None:
        from tui.ui.backend import one_line

        try:
            st = getattr(self.backend, verb)(name)
            self.post_message(ActionDone(name, verb, state=st))
        except Exception as exc:  # noqa: BLE001 — one line in a notification
            self.post_message(ActionDone(name, verb, error=one_line(exc)))

    def on_action_done(self, message: ActionDone) -> None:
        if not self._alive():
            return
        self.pending.pop(message.name, None)
        if message.error:
            self.notify(f"{message.verb} {message.name}: {message.error}", severity="error", timeout=10)
        elif message.state is not None:
            self.table.set_state(message.state)
        if message.verb in ("start", "restart") and not message.error:
            model = self.registry.models.get(message.name)
            if model is not None and (exposed := model.exposure()):
                self.notify(exposed, severity="warning", timeout=12)
        if message.verb == "delete_files":
            if not message.error:
                self.notify(f"{message.name}: downloaded files deleted")
            self.table.load_files()
        self.table.redraw_row(message.name)
        self.refresh_bindings()
        self.poll_now()

    @property
    def downloads(self) -> dict:
        """Model → cancel event of each running download (the downloads pane owns them)."""
        return self.downloads_pane.running if self.downloads_pane is not None else {}

    async def action_download(self) -> None:
        name = self.selected
        if self._refused("download"):
            return
        self.notify(f"planning the download of {name}…")
        await self.plan_download(name)

    async def plan_download(self, name: str) -> None:
        self.show_pane("downloads")
        (await self.ensure_downloads()).plan(name)

    def on_files_changed(self, message: FilesChanged) -> None:
        if self._alive():
            self.table.load_files()
            self.refresh_bindings()

