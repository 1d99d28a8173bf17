"""Quitting: ``q`` leaves servers running (adopted next time; a running download asks first),
``Q`` stops them all after a confirmation, then quits.

A terminal that goes away quits as ``q`` does. A dropped SSH connection normally sends SIGHUP,
which ends the process; where none arrives (started under ``make``, ``nohup``, some shells),
Textual's input thread reads end-of-file from the dead terminal in a busy loop, 30-65 % of a
core on the inference box, forever. Once a second the app asks the terminal for its settings;
EIO means it was hung up.
"""

from __future__ import annotations

import errno
import sys
import termios

from textual import work

from tui.core.verbs import RUNNING
from tui.ui.messages import StopAllDone


def terminal_gone(fd: int) -> bool:
    """True when the terminal on ``fd`` was hung up (its other side closed)."""
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return exc.args[0] == errno.EIO
    return False


class Quitting:
    """Quit actions; the app provides ``table``, ``backend`` and ``downloads``."""

    def quit_on_hangup(self) -> None:
        """Quit (servers keep running) when the terminal is hung up: see the module's docstring."""
        stdin = sys.__stdin__
        if self.is_headless or stdin is None or not stdin.isatty():
            return
        fd = stdin.fileno()

        def check() -> None:
            if terminal_gone(fd):
                self.exit(0)

        self.set_interval(1.0, check, name="terminal-hangup")

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

