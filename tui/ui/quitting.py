"""Quitting: ``q`` leaves servers running (adopted next time; a running download asks first),
``Q`` stops them all after a confirmation, then quits."""

from __future__ import annotations

from textual import work

from tui.core.verbs import RUNNING
from tui.ui.messages import StopAllDone


class Quitting:
    """Quit actions; the app provides ``table``, ``backend`` and ``downloads``."""

    def action_quit_keep(self) -> None:
        """Quit; servers keep running and are adopted next time."""
        if self.downloads:
            from tui.ui.screens.confirm import ConfirmScreen

            def done(yes: bool | None) -> None:
                if yes:
                    self.downloads_pane.cancel_all()
                    self.exit(0)

            self.push_screen(ConfirmScreen("A download is running. Quit anyway? It stops; partial files are "
                                           "kept and d resumes it.", yes="Quit"), done)
            return
        self.exit(0)

    def action_stop_all_quit(self) -> None:
        from tui.ui.screens.confirm import ConfirmScreen

        running = [n for n, s in self.states.items() if s.state in RUNNING and s.engine != "external"]

        def done(yes: bool | None) -> None:
            if yes:
                self.notify(f"stopping {len(running)} server(s)…", timeout=30)
                for n in running:
                    self.pending[n] = "stop"
                    self.table.redraw_row(n)
                self._stop_all()

        what = ", ".join(running) if running else "no server is running"
        self.push_screen(ConfirmScreen(f"Stop all servers and quit?\n({what})", yes="Stop all"), done)

    @work(thread=True, group="verbs", exit_on_error=False)
    def _stop_all(self) -> None:
        try:
            errors = self.backend.stop_all()
        except Exception as exc:  # noqa: BLE001
            errors = [str(exc)]
        self.post_message(StopAllDone(errors))

    def on_stop_all_done(self, message: StopAllDone) -> None:
        if message.errors:
            self.notify("; ".join(message.errors), severity="error", timeout=15)
            self.pending.clear()
            self.table.redraw_rows()
            return
        self.exit(0)

