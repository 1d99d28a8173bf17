"""The llmdeck TUI: models on the left/top, the selected model's logs, chat, downloads,
gauges and bench in tabs, keys in the footer.

Threading (harlequin's rule, textual-practice.md §2): every call into the core goes through
``self.backend`` inside a worker; workers only post messages (:mod:`tui.ui.messages`);
handlers here own all state (``states``, ``files``, ``pending``…).

* **States** come from ``backend.status()`` in a thread worker: every ``status_interval``
  seconds (1 s), and every 0.1 s for models in a passing state (starting, loading,
  stopping) so "ready" shows within 0.3 s of the server being ready. A change to ready
  or crashed gives a notification; a crashed row turns red and ``enter`` shows the exit
  reason and the last log lines.
* **Telemetry**: one core ``Sampler`` thread at 1 Hz over the servers this app knows to be
  running; its subscriber posts a replaceable message.
* **Quit** (``q``) leaves servers running — they are adopted next time (the supervisor's pid
  files). ``Q`` (and the palette's "Stop all servers and quit") stops them first, after a
  confirmation.

Decisions where the issue is silent: stopping (``x``) does not ask (it is SIGTERM with the
grace period, and ``s`` undoes it); killing (``K``) and stop-all-and-quit ask. ``enter``
opens a details dialog rather than a new screen so the layout stays one screen.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.command import Hit, Hits, Provider
from textual.containers import Container, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from tui.core.verbs import RUNNING
from tui.ui import keys
from tui.ui import ondemand_view
from tui.ui.messages import (ActionDone, FilesChanged, FilesRead, RegistryReloaded, StatesPolled, StopAllDone,
                             TelemetrySampled)
from tui.ui.widgets.footer import FitFooter
from tui.ui.widgets.format import short_path
from tui.ui.widgets.gauges import GaugesView
from tui.ui.widgets.models_table import ModelsTable

if TYPE_CHECKING:
    from tui.ui.widgets.log_pane import LogPane

PANES = ("logs", "chat", "downloads", "gauges", "bench", "eval")


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


class Panes(Container):
    """The selected model's panes, in tabs. Chat and downloads are mounted when first shown
    (Markdown and friends cost ~150 ms of imports that an idle TUI does not need)."""

    DEFAULT_CSS = "Panes { height: 1fr; }"

    def __init__(self, backend, initial: str) -> None:
        super().__init__()
        self.backend = backend
        self.initial = initial

    def compose(self) -> ComposeResult:
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


def tune_gc() -> None:
    """Keep garbage collection from stalling the screen.

    A full (generation 2) collection walks every live object: with Textual's widgets, CSS
    and a long chat that took 100-200 ms here and was the largest event-loop stall while
    streaming (bench_tui (c)). Objects alive after the first frame (modules, styles, the
    main widgets) are moved out of the collector's sight with ``gc.freeze()``, and young
    collections run less often. ``LLMDECK_GC=default`` keeps Python's settings. The app
    unfreezes on exit (:func:`untune_gc`) so its objects can be collected (tests run many
    apps in one process). ``llmdeck`` turns collection off until the first frame
    (``cmd_tui``); it is turned back on here, whatever ``LLMDECK_GC`` says.
    """
    import gc

    gc.enable()
    if os.environ.get("LLMDECK_GC") == "default":
        return
    gc.collect()
    gc.freeze()
    g0, g1, g2 = gc.get_threshold()
    gc.set_threshold(max(g0, 10_000), g1, g2)


def untune_gc() -> None:
    import gc

    if os.environ.get("LLMDECK_GC") != "default":
        gc.unfreeze()


class FilterInput(Input):
    """The ``/`` filter. It takes the focus only while its bar is shown: Textual's auto-focus
    (after a dialog or the palette closes) would otherwise pick it, the screen's first input,
    and keys would go into a box nobody sees."""

    typing_what = "filter"

    def allow_focus(self) -> bool:
        return super().allow_focus() and self.has_class("-shown")


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


class LlmdeckApp(App):
    """``LlmdeckApp(registry)``; tests pass ``backend=`` (same methods as ui.backend.Backend)."""

    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses live elsewhere
    TITLE = "llmdeck"
    # the footer lists keys in this order and leaves out what does not fit from the end: help,
    # then the selected model's verbs, then the other global keys
    BINDINGS = sorted(keys.bindings("global") + keys.bindings("models"),
                      key=lambda b: (b.id != "help", b.id not in {a.id for a in keys.in_scope("models")}))
    COMMANDS = App.COMMANDS | {ActionsProvider}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]
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
        self._first_states_fn = first_states or getattr(backend, "first_status", None)
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

    def _apply_keymap(self, registry) -> list[str]:
        """Use settings.keymap of models.json: the entries that can be applied are; returns one
        line per entry that cannot (those are skipped)."""
        good, problems = keys.keymap_problems(registry.settings.keymap)
        if good != self.user_keymap:
            self.user_keymap = good
            self.set_keymap(good)
        return problems

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
        yield Static(self._title_text(), id="title")
        with Container(id="body"):
            with Vertical(id="left"):
                with Horizontal(id="filter-bar"):
                    yield Static("filter:", id="filter-label")
                    yield FilterInput(placeholder="type part of a name", id="filter")
                    yield Static("", id="filter-hint")
                yield table
                yield Static("", id="models-note")
                yield GaugesView(compact=True, id="side-gauges")
            # the panes are mounted right after the first frame (the model list)
            yield Container(id="panes-slot")
        yield FitFooter(compact=True)

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
        self.filter_input = main.query_one("#filter", Input)
        self.filter_bar = main.query_one("#filter-bar")
        self.models_note = main.query_one("#models-note", Static)
        self.side_gauges = main.query_one("#side-gauges", GaugesView)
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
        panes = self._panes()
        await self._main.query_one("#panes-slot").mount(panes)
        self.tabs = panes.query_one(TabbedContent)
        self.log_pane = panes.query_one("#log-pane")
        self.gauges_view = panes.query_one("#gauges-view", GaugesView)
        self._panes_mounted.set()
        tune_gc()
        pending, self._pending_pane = self._pending_pane, None
        if pending:
            self.call_after_refresh(lambda: self.run_worker(self.action_show_pane(pending)))
        self._select(self.table.selected)
        self.table.poll()
        self.table.load_files()
        if self.telemetry_enabled:
            self._start_sampler()

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

    def _update_chat_state(self) -> None:
        if self.chat_deck is None:
            return
        for name, pane in self.chat_deck.panes.items():
            st = self.states.get(name)
            pane.set_ready(bool(st and st.state == "ready"), st.state if st else "…", st.url if st else None)

    # -- telemetry -----------------------------------------------------------------------

    def _start_sampler(self) -> None:
        try:
            self.sampler = self.backend.sampler(lambda: list(self.table.refs), interval=self.telemetry_interval)
        except Exception as exc:  # noqa: BLE001 — gauges off, the rest works
            self.notify(f"telemetry off: {exc}", severity="warning")
            return
        history = self.sampler.history

        def deliver(snap) -> None:
            self.post_message(TelemetrySampled(snap, history))

        self.sampler.subscribe(deliver)
        self.sampler.start()

    def on_telemetry_sampled(self, message: TelemetrySampled) -> None:
        if not self._alive():
            return
        self.table.set_snapshot(message.snapshot)
        self._update_models_note()
        if self.tabs is None:
            return
        # a hidden view keeps the sample and draws it when shown (tab switch, wide layout):
        # an idle TUI must not lay out what nobody sees every second
        for view, shown in ((self.gauges_view, self.tabs.active == "gauges"),
                            (self.side_gauges, self._main.has_class("-wide"))):
            if shown:
                view.show(message.snapshot, message.history)
            else:
                view.snapshot, view.history = message.snapshot, message.history

    def vram_note(self) -> str:
        """Why a running model's VRAM cell says n/a (one line under the table), or ""."""
        snap = self.table.snapshot
        if snap is None:
            return ""
        for name in self.table.matching():
            st = self.states.get(name)
            sample = snap.model(name) if st is not None and st.state in RUNNING else None
            u = sample.usage if sample is not None else None
            if u is not None and u.vram_bytes is None:
                reason = u.note or (snap.gpu.message or snap.gpu.state if not snap.gpu.ok else None)
                return f"VRAM n/a: {reason or 'not reported for this process'}"
        return ""

    def _update_models_note(self) -> None:
        note = self.vram_note()
        if od := ondemand_view.note(self.selected, self.table.router_view[1].get(self.selected or ""),
                                  self.table.router_view[0]):
            note = f"{note} · {od}" if note else od
        if note != getattr(self, "_note_shown", ""):  # an update is a layout pass: only on change
            self._note_shown = note
            self.models_note.update(note)
            self.models_note.tooltip = note or None  # the whole reason where the line is cut
            self.models_note.set_class(bool(note), "-shown")

    # -- actions on the selected model -------------------------------------------------

    def action_allowed(self, action: str) -> bool:
        return self.check_action(action, ()) is True

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "back":  # a priority binding: dialogs and the palette get their own esc
            return self._main is not None and self.screen is self._main
        verbs = ("start", "stop", "restart", "kill", "download", "delete_files")
        focused = self._main.focused if self._main is not None else None
        typing = isinstance(focused, Input)  # on the main screen (not the palette's input)
        single_letter = {"start", "stop", "restart", "kill", "download", "delete_files", "show_pane", "filter",
                         "quit_keep",
                         "stop_all_quit", "help", "focus_models", "zoom"}
        if typing and action in single_letter:
            return False  # the key is text in an input (the footer hides it)
        if action not in verbs:
            return True
        name = self.selected
        if name is None or name not in self.registry.models or name not in self.table.shown:
            return False  # no row shown (a filter hides them all): no verb for a row not on screen
        return self.verb_verdict(action, name).allowed

    def verb_verdict(self, verb: str, name: str):
        """The core's verb rule (tui.core.verbs) for ``name`` as this app knows it now."""
        from tui.core import verbs

        st = self.states.get(name)
        return verbs.verdict(verb, self.registry.models[name], st.state if st else "unknown",
                             busy=self.pending.get(name), downloading=name in self.downloads,
                             restarting=bool(st is not None and st.restarting_in_s), where=short_path(self.registry.path))

    def action_start(self) -> None:
        self._verb("start")

    def action_stop(self) -> None:
        self._verb("stop")

    def action_restart(self) -> None:
        self._verb("restart")

    def action_kill(self) -> None:
        from tui.ui.screens.confirm import ConfirmScreen

        name = self.selected
        if name is None or not self.action_allowed("kill"):
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
        if name is None or not self.action_allowed("delete_files"):
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

        self.push_screen(ConfirmScreen(f"Delete {len(files)} file(s) of {name}, {size / 1e9:.3g} GB, in\n"
                                       f"{files[0].parent}?\nThey would have to be downloaded again.",
                                       yes="Delete"), done)

    def _verb(self, verb: str, name: str | None = None) -> None:
        name = name or self.selected
        if name is None or (verb not in ("kill", "delete_files") and not self.action_allowed(verb)):
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

    # -- adding a model from the Hub (a) ---------------------------------------------------------

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

    # -- downloads (the flow lives in the downloads pane) ----------------------------------

    @property
    def downloads(self) -> dict:
        """Model → cancel event of each running download (the downloads pane owns them)."""
        return self.downloads_pane.running if self.downloads_pane is not None else {}

    async def action_download(self) -> None:
        name = self.selected
        if name is None or not self.action_allowed("download"):
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

    # -- panes, filter, help -------------------------------------------------------------

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

    @on(TabbedContent.TabActivated, "#panes")
    async def _on_tab(self, event: TabbedContent.TabActivated) -> None:
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
            return
        tabs = self.tabs
        focused = main.focused
        if focused is None or tabs not in focused.ancestors:
            await self.action_show_pane(tabs.active or "logs")
            focused = main.focused
            if focused is None or tabs not in focused.ancestors:  # a pane without keys (gauges)
                tabs.query_one("ContentTabs").focus()
        main.maximized = tabs

    def on_descendant_focus(self, event) -> None:
        """Focus moving out of the zoomed panes (``m``, ``/``, a click) leaves the zoom."""
        main = self._main
        zoomed = main.maximized if main is not None else None
        if zoomed is not None and event.widget.screen is main and zoomed not in event.widget.ancestors_with_self:
            main.minimize()

    def step_model(self, step: int) -> None:
        """Select the previous (-1) / next (+1) model of the list; the panes follow it."""
        table = self.table
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)), animate=False)

    def action_filter(self) -> None:
        self._show_filter_bar(True)
        self.filter_input.focus()

    def _show_filter_bar(self, shown: bool) -> None:
        """The filter bar shows whenever a filter is active or being typed: a model row never
        disappears without ``filter: <text>`` on screen."""
        for w in (self.filter_bar, self.filter_input):
            w.set_class(shown, "-shown")
        self._filter_hint()

    def _filter_hint(self) -> None:
        typing = self._main is not None and self._main.focused is self.filter_input
        self._main.query_one("#filter-hint", Static).update(
            "enter keeps it" if typing else ("esc clears" if self.filter_text else ""))

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        table = self.table
        table.set_filter(event.value.strip())
        self._select(table.selected)
        self._update_title()
        self._filter_hint()
        self.refresh_bindings()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.table.focus()
        if not self.filter_text:
            self._show_filter_bar(False)

    def _clear_filter(self) -> None:
        self.filter_input.value = ""  # Changed: the rows come back, the title counts them all
        self.table.set_filter("")
        self._select(self.table.selected)
        self._show_filter_bar(False)
        self._update_title()

    # -- esc: one rule ------------------------------------------------------------------

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

    def action_help(self) -> None:
        from tui.ui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    @on(DataTable.RowSelected, "#models")
    def _on_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_model()

    def action_open_model(self) -> None:
        name = self.selected
        if name is None:
            return
        self._open_detail(name)

    @work(thread=True, group="detail", exclusive=True, exit_on_error=False)
    def _open_detail(self, name: str) -> None:
        from tui.ui.screens.detail import detail_text

        command = self.backend.command_line(name)
        lines = self.backend.last_log_lines(name, 15)
        st = self.states.get(name)
        conn_of = getattr(self.backend, "connect", None)
        try:
            conn = conn_of(name) if conn_of else None
        except Exception:  # noqa: BLE001 — the details still open without these lines
            conn = None
        text = detail_text(self.registry.models[name], st, self.files.get(name, "unknown"), command, lines, conn)
        self.call_from_thread(self._push_detail, text, conn.lines() if conn else [])

    def _push_detail(self, text: Text, copy_lines: list[str] | None = None) -> None:
        if not self._alive():
            return
        from tui.ui.screens.detail import DetailScreen

        def done(where: str | None) -> None:
            if where:
                self.run_worker(self.action_show_pane(where))

        self.push_screen(DetailScreen(text, copy_lines), done)

    # -- chat helpers used by the palette -------------------------------------------------

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
        if a.scope == "downloads":
            self.show_pane("downloads")
            await self.run_action(a.action, await self.ensure_downloads())
            return
        if a.scope == "bench":
            self.show_pane("bench")
            await self.run_action(a.action, await self.ensure_bench())
            return
        if a.scope == "eval":
            self.show_pane("eval")
            await self.run_action(a.action, await self.ensure_eval())
            return
        if a.scope == "list":
            await self.run_action(a.action, self.table)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Hide/show thoughts", "Hide every thinking block in the chat (setting)",
                            self.action_toggle_hide_thoughts)

    # -- quitting ------------------------------------------------------------------------

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
