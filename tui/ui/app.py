"""The llmdeck TUI: models on the left/top, the selected model's logs, chat, downloads,
gauges and bench in tabs, keys in the footer.

Threading (harlequin's rule, textual-practice.md §2): every call into the core goes through
``self.backend`` inside a worker; workers only post messages (:mod:`tui.ui.messages`);
handlers on the widget that owns the state change it.

This module is the layout, the selection and the wiring; each other job has its own module:

* the models table (:mod:`tui.ui.widgets.models_table`) owns the models' states, rows and
  the status worker (every ``status_interval`` s, every 0.1 s while a model is starting,
  loading or stopping), with a toast when a model becomes ready, crashes or stops;
* the downloads pane (:mod:`tui.ui.widgets.downloads`) owns the download flow, as the bench,
  eval, chat and log panes own theirs;
* mixins of this app, one job each: the verbs on the selected model (:mod:`tui.ui.model_verbs`,
  its rule is :func:`tui.core.verbs.verdict`), the panes and the zoom (:mod:`tui.ui.panes`),
  ``esc`` and the focus (:mod:`tui.ui.esc_rule`), the ``/`` filter (:mod:`tui.ui.filter_bar`),
  models.json hot reload and ``a`` (:mod:`tui.ui.registry_reload`), the sampler
  (:mod:`tui.ui.telemetry_view`), the details dialog (:mod:`tui.ui.detail`), the palette
  (:mod:`tui.ui.palette`) and quitting (:mod:`tui.ui.quitting`); GC tuning is
  :mod:`tui.ui.gc_tuning`.

Decisions where the issue is silent: stopping (``x``) does not ask (it is SIGTERM with the
grace period, and ``s`` undoes it); killing (``K``) and stop-all-and-quit ask. ``enter``
opens a details dialog rather than a new screen so the layout stays one screen. ``q``
leaves servers running (adopted next time); ``Q`` stops them first, after a confirmation.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static

from tui.core.verbs import RUNNING
from tui.ui import keys
from tui.ui.detail import ModelDetail
from tui.ui.esc_rule import EscRule
from tui.ui.filter_bar import FilterBar, ModelFilter
from tui.ui.gc_tuning import tune_gc, untune_gc
from tui.ui.messages import FilesRead, StatesPolled
from tui.ui.model_verbs import ModelVerbs
from tui.ui.palette import ActionsProvider, PaletteActions
from tui.ui.panes import Panes, PaneSwitching
from tui.ui.quitting import Quitting
from tui.ui.registry_reload import RegistryReload
from tui.ui.telemetry_view import TelemetryView
from tui.ui.widgets.footer import FitFooter
from tui.ui.widgets.format import short_path
from tui.ui.widgets.gauges import GaugesView
from tui.ui.widgets.models_table import ModelsTable

if TYPE_CHECKING:
    from textual.widgets import TabbedContent  # the panes' tabs, imported after the first frame

    from tui.ui.widgets.log_pane import LogPane


class MainScreen(Screen):
    """The main screen: the title, the models column (#left) and the panes, the footer. Its own
    type, so that app.tcss can lay it out (MainScreen.-wide) without touching the dialogs."""


class LlmdeckApp(ModelVerbs, PaneSwitching, EscRule, ModelFilter, RegistryReload, TelemetryView, ModelDetail,
                 PaletteActions, Quitting, App):
    """``LlmdeckApp(registry)``; tests pass ``backend=`` (same methods as ui.backend.Backend)."""

    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses live elsewhere
    TITLE = "llmdeck"
    # the footer lists keys in this order and leaves out what does not fit from the end: help,
    # then the selected model's verbs, then the other global keys
    BINDINGS = sorted(keys.bindings("global") + keys.bindings("models"),
                      key=lambda b: (b.id != "help", b.id not in {a.id for a in keys.in_scope("models")}))
    COMMANDS = App.COMMANDS | {ActionsProvider}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]  # on every screen; app.tcss uses MainScreen's
    # esc leaves the zoom through the one esc rule (esc_step), after a cancel: Textual's own
    # escape-to-minimize would run first and swallow a cancel of a zoomed chat's reply
    ESCAPE_TO_MINIMIZE = False

    def __init__(self, registry, backend=None, *, status_interval: float = 1.0, fast_interval: float = 0.1,
                 telemetry: bool = True, telemetry_interval: float = 1.0, hide_thoughts: bool | None = None,
                 initial_pane: str = "logs", select: str | None = None, first_states=None) -> None:
        super().__init__()
        if backend is None:
            from tui.ui.backend import Backend

            backend = Backend(registry)
        self.registry = registry
        self.backend = backend
        self.status_interval = status_interval
        self.fast_interval = fast_interval
        self.telemetry_enabled = telemetry
        self.telemetry_interval = telemetry_interval
        if hide_thoughts is None:
            hide_thoughts = os.environ.get("LLMDECK_HIDE_THOUGHTS", "") not in ("", "0", "no", "false")
        self.hide_thoughts = hide_thoughts
        self.initial_pane = initial_pane
        self.initial_select = select
        # the first frame shows real states: () -> {name: ModelState}, by default the backend's
        # cheap first read (pid files + one /health each; the CLI starts it before Textual loads)
        self._first_states_fn = first_states or backend.first_status
        self.sampler = None
        self.selected: str | None = None
        self.table: ModelsTable | None = None
        self.tabs: TabbedContent | None = None  # the panes: mounted after the first frame
        self.log_pane: LogPane | None = None
        self.gauges_view: GaugesView | None = None
        self.chat_deck = None  # mounted on first use (ensure_chat)
        self.downloads_pane = None  # mounted on first use (ensure_downloads)
        self.bench_pane = None  # mounted on first use (ensure_bench)
        self.eval_pane = None  # mounted on first use (ensure_eval)
        self._mount_lock = asyncio.Lock()
        self._panes_mounted = asyncio.Event()
        self._pending_pane: str | None = None  # a pane asked for before the panes were mounted
        self._main: Screen | None = None  # the main screen (App.query_one sees only the top screen)
        self.user_keymap: dict[str, str] = {}
        self.keymap_problems = self._apply_keymap(registry)  # shown on mount

    # -- layout --------------------------------------------------------------------------

    # the models table owns the models' states, files and verbs in flight (tests read them here)
    states = property(lambda self: self.table.states)
    files = property(lambda self: self.table.files)
    pending = property(lambda self: self.table.pending)
    ready_seen_at = property(lambda self: self.table.ready_seen_at)
    filter_text = property(lambda self: self.table.filter_text if self.table is not None else "")

    def compose(self) -> ComposeResult:
        self.table = table = ModelsTable(self.registry, self.backend, first_states=self._first_states_fn,
                                         status_interval=self.status_interval, fast_interval=self.fast_interval,
                                         id="models")
        self._first_states_fn = None
        # hidden until needed, so mounted right after the first frame (mount_after_first_frame);
        # they exist from here so that nothing has to ask whether they do
        self.filter_bar = FilterBar()
        self.filter_input = self.filter_bar.input
        self.models_note = Static("", id="models-note")
        self.side_gauges = GaugesView(compact=True, id="side-gauges")
        # the screen lays these out itself (title and footer docked; the left column above the
        # panes, or beside them when wide): every widget before the first frame costs it ~10 M
        # instructions (its message pump, compose, mount, styles, layout), 3-4 ms here
        yield Static(self._title_text(), id="title")
        with Vertical(id="left"):
            yield table
        # the panes are mounted right after the first frame (the model list), after #left
        yield FitFooter(compact=True)

    async def mount_after_first_frame(self) -> None:
        """Mount what the first frame does not show: the filter bar, the note under the table,
        the compact gauges (each widget mounted before that frame costs it ~10 M instructions).
        Idempotent: ``/`` pressed before it ran mounts them itself."""
        async with self._mount_lock:
            if not self.filter_bar.is_attached:
                await self.table.parent.mount(self.filter_bar, before=self.table)
                await self.table.parent.mount_all([self.models_note, self.side_gauges], after=self.table)

    def get_default_screen(self) -> Screen:
        return MainScreen(id="_default")

    def _panes(self) -> "Panes":
        return Panes(self.backend, self.initial_pane)

    def _title_text(self) -> Text:
        n_run = sum(1 for s in self.states.values() if s.state in RUNNING)
        n = len(self.registry.models)
        models = f"{n} model{'' if n == 1 else 's'}"
        if self.filter_text:  # a hidden row is always counted: "1 of 3 models shown"
            models = f"{len(self.table.matching())} of {models} shown"
        t = Text.assemble(("llmdeck", "bold"), " · ", short_path(self.registry.path), " · ",
                          f"{models}, {n_run} running")
        width = (self.size.width or 80) - 2
        for hint in ("  ? help · ctrl+p actions", "  ? help"):  # whole, never cut
            if len(t) + len(hint) <= width:
                t.append(hint, style="dim")
                break
        return t

    def _update_title(self) -> None:
        text = self._title_text()
        if text != getattr(self, "_title_shown", None):  # an update is a layout pass: only on change
            self._title_shown = text
            self.title_bar.update(text)

    def _alive(self) -> bool:
        """False before mount and while exiting: late worker messages must not touch widgets."""
        return self._main is not None and not self._exit and self.table.is_attached

    def on_mount(self) -> None:
        self._main = main = self.screen
        # widgets are looked up once: App.query_one sees only the top screen (a dialog)
        self.title_bar = main.query_one("#title", Static)
        # a widget that is not visible never has the focus: when the focus is lost (its tab
        # hidden) or lands on something hidden, the models list takes it
        main.AUTO_FOCUS = "#models"
        self.watch(main, "focused", self._focus_moved, init=False)
        if self.hide_thoughts:
            self._main.add_class("-hide-thoughts")
        table = self.table
        table.rebuild()
        if self.initial_select in self.registry.models:
            table.select(self.initial_select)
        table.focus()
        for problem in self.keymap_problems:  # one line each; those entries are not applied
            self.notify(f"{short_path(self.registry.path)}: {problem}", severity="warning", timeout=12)
        # the model list is the first frame; threads that compete for the GIL start after it
        self.call_after_refresh(self._after_first_frame)

    async def _after_first_frame(self) -> None:
        if not self._alive():
            return
        await self.mount_after_first_frame()
        panes = self._panes()
        await self._main.mount(panes, after=self.table.parent)
        self.tabs = panes.query_one("#panes")  # the TabbedContent
        self.log_pane = panes.query_one("#log-pane")
        self.gauges_view = panes.query_one("#gauges-view", GaugesView)
        self._panes_mounted.set()
        tune_gc()
        self.quit_on_hangup()
        pending, self._pending_pane = self._pending_pane, None
        if pending:
            self.call_after_refresh(lambda: self.run_worker(self.action_show_pane(pending)))
        self._select(self.table.selected)
        self.table.poll()
        self.table.load_files()
        if self.telemetry_enabled:
            self._start_sampler()

    def on_unmount(self) -> None:
        untune_gc()
        self.table.poll_now()  # its status worker ends now
        if self.sampler is not None:
            try:
                self.sampler.close()
            except Exception:  # noqa: BLE001 — closing must not stop the exit
                pass
        if self.downloads_pane is not None:
            self.downloads_pane.cancel_all()

    # -- selection -----------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#models")
    def _on_highlight(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value if event.row_key is not None else None
        self._select(name)

    def _select(self, name: str | None) -> None:
        if name == self.selected and name is not None and self.log_pane and self.log_pane.model == name:
            return
        self.selected = name
        if self.tabs is None:  # before the panes are mounted: they follow the selection then
            return
        self.log_pane.follow_model(name)
        self._show_downloads()
        if self.bench_pane is not None:
            self.bench_pane.show_model(name)
        if self.eval_pane is not None:
            self.eval_pane.show_model(name)
        if self.tabs.active == "chat":
            self.run_worker(self._show_chat(), exclusive=True, group="chat-show")
        self.refresh_bindings()

    # -- states (the models table polls them and applies them first) -----------------------

    def poll_now(self) -> None:
        self.table.poll_now()

    def on_states_polled(self, message: StatesPolled) -> None:
        if not self._alive():
            return
        self._update_title()
        self._update_models_note()  # a model started or stopped: its VRAM n/a reason comes or goes
        st = self.states.get(self.selected or "")
        if (self.selected, st.state if st else None) != getattr(self, "_selected_state", None):
            self._selected_state = (self.selected, st.state if st else None)
            self.refresh_bindings()
        self._update_chat_state()

    def on_files_read(self, message: FilesRead) -> None:
        if self._alive():
            self._update_title()
            self._show_downloads()

    # -- layout, keys ----------------------------------------------------------------------

    def on_resize(self) -> None:
        if self._alive():
            self._update_title()  # its hint is left out whole where it does not fit
        if self._alive() and self._main.has_class("-wide") and self.side_gauges.snapshot is not None:
            self.side_gauges.show(self.side_gauges.snapshot, self.side_gauges.history)

    def action_focus_models(self) -> None:
        """``m``: the keys go to the models list (its cursor row lights up, the footer lists the
        model's verbs; from an input the footer's ``typing:`` entry goes away)."""
        self.table.focus()
        self.table.scroll_visible(animate=False)

    def step_model(self, step: int) -> None:
        """Select the previous (-1) / next (+1) model of the list; the panes follow it."""
        table = self.table
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)), animate=False)

    def action_help(self) -> None:
        from tui.ui.screens.help import HelpScreen

        self.push_screen(HelpScreen())
