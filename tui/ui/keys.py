"""Every key binding of the TUI, in one registry.

Each :class:`Action` has an ``id`` (stable, for keymaps and tests), the key(s), the Textual
action it runs, a description (shown in the footer, the help screen and the command palette)
and the ``scope`` it applies in:

==========  ==========================================================================
global      anywhere on the main screen (the App's bindings)
models      the selected model (App bindings; greyed out by ``check_action`` when they
            do not apply to the model's state, hidden while a text input has focus)
list        the models list (its own widget bindings)
logs        the logs pane
chat        the chat pane (ctrl chords: the prompt input keeps printable keys)
downloads   the downloads pane
bench       the bench pane (ctrl chords: its fields keep printable keys)
eval        the eval pane (ctrl chords, like the bench pane)
details     the details screen (``enter`` on a model)
add         the add screen (``a``: a Hub repo or search, then a quant)
modal       dialogs (confirm, help)
==========  ==========================================================================

Key choices follow k9s/htop/lazydocker (``../shared/notes/textual-practice.md`` §7):
single lower-case letters for safe verbs on the selection, upper case for dangerous ones
(``K`` kill, ``Q`` stop all and quit — both confirm), vim ``g``/``G``, ``f``/``End`` resume
log following, ctrl chords in the chat because its input swallows printable keys.
``ctrl+p`` (the command palette) is Textual's own binding; it is listed here so help and
tests see it.

Users remap keys with ``settings.keymap`` in models.json: ``{"<action id>": "<keys>"}``, e.g.
``{"stop": "X", "log_search": "ctrl+f,slash"}`` (Textual key names; a single character such as
``?`` or ``[`` is accepted as it is). :func:`keymap_problems` checks a keymap (unknown ids with a
did-you-mean, malformed keys, actions that cannot be remapped, two actions of one scope on one
key); ``llmdeck check`` reports the same lines and the TUI shows them and skips those entries.
This module imports no Textual at import time, so the CLI's ``check`` stays fast.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from tui.core.text import did_you_mean

SCOPES = ("global", "models", "list", "logs", "chat", "downloads", "bench", "eval", "details", "add", "modal")

SCOPE_TITLES = {
    "global": "Everywhere",
    "models": "Selected model",
    "list": "Models list",
    "logs": "Logs pane",
    "chat": "Chat pane",
    "downloads": "Downloads pane",
    "bench": "Bench pane",
    "eval": "Eval pane",
    "details": "Details (enter)",
    "add": "Add a model (a)",
    "modal": "Dialogs",
}


class Action(NamedTuple):
    """One entry of the key registry: its keys, the action it runs, where, and how it is described.
    (A NamedTuple: immutable, and ~1.4 ms cheaper to define than a frozen dataclass, before the
    TUI's first frame; its ~100 entries are built faster too.)"""

    id: str
    keys: str  # Textual key names, comma separated
    action: str  # the Textual action (method action_<name> on the scope's owner)
    description: str
    scope: str
    show: bool = True  # shown in the footer
    key_display: str | None = None
    priority: bool = False
    palette: bool = True  # offered in the command palette
    binding: bool = True  # False: documented here, bound by Textual or a widget itself
    label: str = ""  # the footer's short word (default: the description)

    @property
    def display(self) -> str:
        if self.key_display:
            return self.key_display
        names = {"question_mark": "?", "slash": "/", "escape": "esc", "enter": "enter",
                 "down": "↓", "up": "↑", "home": "home", "end": "end",
                 "left_square_bracket": "[", "right_square_bracket": "]"}
        return "/".join(names.get(k, k) for k in self.keys.split(","))


ACTIONS: tuple[Action, ...] = (
    # global
    Action("help", "question_mark,f1", "help", "Help: every key", "global", key_display="?", label="help"),
    Action("palette", "ctrl+p", "command_palette", "Command palette (every action)", "global",
           show=False, binding=False, palette=False),
    Action("quit", "q", "quit_keep", "Quit (servers keep running)", "global", label="quit"),
    Action("quit_stop_all", "Q", "stop_all_quit", "Stop all servers and quit", "global",
           show=False, label="stop all+quit"),
    Action("back", "escape", "back", "Cancel what runs, else leave the input, else clear the filter, else back",
           "global", show=False, palette=False, label="back", priority=True),
    Action("filter", "slash", "filter", "Filter models by name", "global", key_display="/", label="filter"),
    Action("pane_logs", "l,1", "show_pane('logs')", "Logs of the selected model", "global",
           key_display="l", label="logs"),
    Action("pane_chat", "c,2", "show_pane('chat')", "Chat with the selected model", "global",
           key_display="c", label="chat"),
    Action("pane_downloads", "3", "show_pane('downloads')", "Downloads pane", "global",
           show=False, label="downloads"),
    Action("pane_gauges", "4", "show_pane('gauges')", "Gauges pane (GPUs, RAM, CPU)", "global",
           show=False, label="gauges"),
    Action("pane_bench", "b,5", "show_pane('bench')", "Bench the selected model (load, live progress, last runs)",
           "global", key_display="b", show=False, label="bench"),
    Action("pane_eval", "e,6", "show_pane('eval')", "Eval the selected model's tool calls (BFCL accuracy, failed "
           "cases, last runs)", "global", key_display="e", show=False, label="eval"),
    Action("focus_models", "m", "focus_models", "Back to the models list", "global",
           show=False, label="models"),
    Action("zoom", "z", "zoom", "Zoom: the active pane on the whole screen, and back (esc leaves too)",
           "global", show=False, label="zoom"),
    Action("add_model", "a", "add_model", "Add a model from the Hugging Face Hub (repo or search, then a quant)",
           "global", show=False, label="add"),
    # the selected model
    Action("open", "enter", "open_model", "Open: details, command, last log lines", "models", show=False,
           binding=False),
    Action("start", "s", "start", "Start the server", "models", label="start"),
    Action("stop", "x", "stop", "Stop the server (SIGTERM, then SIGKILL after the grace)", "models",
           label="stop"),
    Action("restart", "r", "restart", "Restart the server", "models", label="restart"),
    Action("kill", "K", "kill", "Kill the server now (SIGKILL; asks first)", "models",
           show=False, label="kill"),
    Action("download", "d", "download", "Download the model's default quant", "models", label="download"),
    Action("delete_files", "D", "delete_files", "Delete the default quant's downloaded files (asks first)",
           "models", show=False, label="delete"),
    # the models list
    Action("list_down", "j,down", "cursor_down", "Next model", "list", show=False, palette=False),
    Action("list_up", "k,up", "cursor_up", "Previous model", "list", show=False, palette=False),
    Action("list_top", "g,home", "scroll_top", "First model", "list", show=False, palette=False),
    Action("list_bottom", "G,end", "scroll_bottom", "Last model", "list", show=False, palette=False),
    # logs
    Action("log_follow", "f,end", "follow", "Follow the log (resume after scrolling up)", "logs",
           key_display="f", label="follow"),
    Action("log_top", "g,home", "top", "Top of the loaded lines", "logs", show=False, label="top"),
    Action("log_down", "j", "scroll_down", "Scroll down", "logs", show=False, palette=False),
    Action("log_up", "k", "scroll_up", "Scroll up (pauses following)", "logs", show=False, palette=False),
    Action("log_search", "slash", "search", "Search the log (highlights every match; esc clears)", "logs",
           key_display="/", label="search"),
    Action("log_older", "n", "search_older", "Older match of the search (upwards)", "logs", show=False,
           label="older match"),
    Action("log_newer", "N", "search_newer", "Newer match of the search (downwards)", "logs", show=False,
           label="newer match"),
    Action("log_prev_model", "left_square_bracket", "prev_model", "Log of the previous model", "logs",
           show=False, label="prev model"),
    Action("log_next_model", "right_square_bracket", "next_model", "Log of the next model", "logs",
           show=False, label="next model"),
    Action("log_wrap", "w", "toggle_wrap", "Wrap long lines on/off (off: cut at the edge, ←/→ scroll)", "logs",
           show=False, label="wrap"),
    # chat
    Action("chat_send", "enter", "send", "Send the prompt (or the tool result)", "chat", show=False,
           binding=False, palette=False),
    Action("chat_cancel", "escape", "cancel", "Cancel the running generation (esc's first step)", "chat",
           label="cancel"),
    Action("chat_new", "ctrl+n", "new_chat", "New chat", "chat", label="new"),
    Action("chat_regenerate", "ctrl+r", "regenerate", "Regenerate the last answer (the model forgets the old one)",
           "chat", label="regenerate"),
    Action("chat_thinking", "ctrl+t", "toggle_thinking", "Thinking on/off (next request)", "chat",
           label="thinking"),
    Action("chat_thoughts", "ctrl+y", "toggle_thoughts", "Expand/collapse the thoughts", "chat",
           label="thoughts"),
    Action("chat_copy", "ctrl+o", "copy_answer", "Copy the last answer (OSC 52)", "chat", label="copy"),
    Action("chat_hide", "ctrl+g", "toggle_hide_thoughts", "Hide/show all thoughts (setting)", "chat",
           show=False, label="hide thoughts"),
    Action("chat_history", "up,down", "history", "Previous/next prompt of this session", "chat",
           show=False, binding=False, palette=False),
    # priority, like esc's "back": a key that is not priority runs only after its event has gone
    # through the focused widget and every parent back to the app, so esc pressed after PgUp
    # (keys read in one burst) cancelled first and the late PgUp paused the chat after the
    # cancel's return to the end (the badge stayed). Priority keys run in the order pressed.
    Action("chat_page_up", "pageup", "page_up", "Scroll the chat up a page (pauses following)", "chat",
           show=False, palette=False, key_display="PgUp", label="page up", priority=True),
    Action("chat_page_down", "pagedown", "page_down", "Scroll the chat down a page (at the end: follows again)",
           "chat", show=False, palette=False, key_display="PgDn", label="page down", priority=True),
    # downloads
    Action("dl_cancel", "X", "cancel_download", "Cancel the download (partial files kept)", "downloads",
           label="cancel download"),
    # bench
    Action("bench_run", "ctrl+r", "run_bench", "Run the benchmark (enter in a field runs it too)", "bench",
           label="run"),
    Action("bench_cancel", "escape", "cancel_bench", "Cancel the running benchmark (finished workloads are kept; "
           "esc's first step)", "bench", label="cancel"),
    # eval
    Action("eval_run", "ctrl+r", "run_eval", "Run the BFCL eval (enter in a field runs it too)", "eval",
           label="run"),
    Action("eval_cancel", "escape", "cancel_eval", "Cancel the running eval (finished cases are kept, marked "
           "partial; esc's first step)", "eval", label="cancel"),
    # the details screen
    Action("detail_copy", "ctrl+o", "copy_connect", "Copy how to reach it: ssh -L, base URL, curl (OSC 52)",
           "details", label="copy connect"),
    Action("detail_logs", "l", "go('logs')", "Go to its live log", "details", label="logs"),
    Action("detail_chat", "c", "go('chat')", "Go to its chat", "details", label="chat"),
    Action("detail_close", "escape,q", "close", "Close", "details", key_display="esc", label="close"),
    # the add screen
    Action("add_back", "escape", "back", "Back: quants → results → the input → close", "add",
           key_display="esc", palette=False, label="back"),
    # dialogs
    Action("modal_yes", "y", "yes", "Yes", "modal", palette=False, label="yes"),
    Action("modal_no", "n,escape", "no", "No / close", "modal", palette=False, label="no"),
)

BY_ID = {a.id: a for a in ACTIONS}


def bindings(scope: str) -> list:
    """The Textual bindings of one scope."""
    from textual.binding import Binding

    if scope not in SCOPES:
        raise ValueError(f"unknown key scope {scope!r}")
    return [Binding(a.keys, a.action, a.label or a.description, show=a.show, key_display=a.key_display,
                    priority=a.priority, id=a.id, tooltip=a.description)
            for a in ACTIONS if a.scope == scope and a.binding]


def in_scope(scope: str) -> list[Action]:
    return [a for a in ACTIONS if a.scope == scope]


def help_rows(keymap: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(scope title, keys, description) for the help screen, in registry order."""
    return [(SCOPE_TITLES[a.scope], display(a, keymap), a.description) for a in ACTIONS]


def display(a: Action, keymap: dict[str, str] | None = None) -> str:
    """The keys of ``a`` as the user sees them: their keymap's keys where it remaps ``a``."""
    if keymap and a.id in keymap:
        return "/".join(k.strip() for k in keymap[a.id].split(","))
    return a.display


# -- keymaps ----------------------------------------------------------------------------------

_MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
_KEY_NAME = re.compile(r"^(?:(?:%s)\+)*(?:[a-z][a-z0-9_]*|.)$" % "|".join(_MODIFIERS))
_REPLACEMENTS = {"solidus": "slash", "reverse_solidus": "backslash", "commercial_at": "at",
                 "hyphen_minus": "minus", "plus_sign": "plus", "low_line": "underscore"}
# the scopes whose bindings live on one node (the App): a key may not serve two of their actions
_GROUPS = {"global": "app", "models": "app"}


def normalise_key(key: str) -> str:
    """Textual's name for one key: ``?`` → ``question_mark``, ``[`` → ``left_square_bracket``."""
    key = key.strip()
    if len(key) == 1 and not key.isalnum():
        try:
            key = unicodedata.name(key).lower().replace("-", "_").replace(" ", "_")
        except ValueError:
            return key
        key = _REPLACEMENTS.get(key, key)
    return key


def keymap_problems(keymap: object, where: str = "settings.keymap") -> tuple[dict[str, str], list[str]]:
    """Check a user keymap. Returns (the entries that can be applied, one line per problem)."""
    if not isinstance(keymap, dict):
        return {}, [f"{where}: must be an object of action id -> keys, e.g. {{\"stop\": \"X\"}}"]
    if not keymap:  # nothing remapped: no problem and no clash can come from it
        return {}, []
    good: dict[str, str] = {}
    problems: list[str] = []
    for aid, value in keymap.items():
        a = BY_ID.get(aid)
        if a is None:
            hint = did_you_mean(str(aid), BY_ID) or " (`?` in the TUI lists every action)"
            problems.append(f"{where}: unknown action '{aid}'{hint}")
            continue
        if not a.binding:
            problems.append(f"{where}.{aid}: '{a.display}' is handled by Textual or a widget itself and "
                            "cannot be remapped")
            continue
        parts = [k.strip() for k in value.split(",")] if isinstance(value, str) else []
        if not parts or not all(parts):
            problems.append(f"{where}.{aid}: must be a key name or comma-separated names, e.g. \"ctrl+f\"")
            continue
        bad = [k for k in parts if not _KEY_NAME.match(k.lower() if len(k) > 1 else k)]
        if bad:
            problems.append(f"{where}.{aid}: '{bad[0]}' is not a key name (examples: x, X, ctrl+f, f5, "
                            "slash, left_square_bracket)")
            continue
        good[aid] = ",".join(parts)
    # two actions on one key where they share a node: the later one would never run
    owner: dict[tuple[str, str], str] = {}
    for a in ACTIONS:
        if not a.binding:
            continue
        keys = good[a.id] if a.id in good else a.keys
        for k in (normalise_key(x) for x in keys.split(",")):
            slot = (_GROUPS.get(a.scope, a.scope), k)
            other = owner.get(slot)
            if other is None:
                owner[slot] = a.id
                continue
            if a.id in good or other in good:  # only clashes the keymap made
                mapped = a.id if a.id in good else other
                problems.append(f"{where}.{mapped}: '{k}' is already {other if mapped == a.id else a.id}'s key "
                                f"in the same place ({SCOPE_TITLES[a.scope].lower()}); pick another key")
                good.pop(mapped, None)
    return good, problems
