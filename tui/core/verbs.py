"""The verb rules: may this model be started / stopped / restarted / killed / downloaded /
have its files deleted now, and why not — one pure function for the CLI and the TUI.

``verdict(verb, model, state)`` answers with a :class:`Verdict`:

* ``allowed is True``: the verb may run now;
* ``allowed is None``: the verb applies to this model but not now (a verb already in flight,
  a download or a server using the files) — the TUI greys its key;
* ``allowed is False``: the verb does not apply to this model in this state (an external
  model is never started, a ``model_path`` model never downloaded) — the TUI hides its key,
  the CLI refuses with ``why``.

``why`` is one line naming the model and what to do ("" when allowed). The function reads
only what it is given (a registry ``Model``, a state name, flags): no files, no network.

Decisions where the issue is silent: a verb in flight on the model greys every verb, even
one that would not apply (the footer then shows the model as busy rather than changing its
keys twice); an ``external`` model has nothing to download (its server lives elsewhere), in
the TUI as in ``llmdeck download``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tui.core.states import RUNNING_STATES

#: the verbs this module rules on (the TUI's action names)
VERBS = ("start", "stop", "restart", "kill", "download", "delete_files")
#: states of a model whose server process exists (or is being started/stopped), as states.py names them
RUNNING = RUNNING_STATES


class Verdict(NamedTuple):
    """``allowed``: True (now), None (applies, not now), False (does not apply); ``why``: one line.
    (A NamedTuple, as the other immutable records read before the TUI's first frame: a frozen
    dataclass costs ~1.4 ms to define on Python 3.11, a NamedTuple ~0.2 ms.)"""

    allowed: bool | None
    why: str = ""

    def __bool__(self) -> bool:
        return self.allowed is True


YES = Verdict(True)


def download_refusal(model: Any, where: Any = None) -> str:
    """Why ``model`` has nothing to download ("" when it has: a ``repo_id``, no ``model_path``,
    not external). ``where``: the registry's path, named in the no-repo_id line."""
    name = model.name
    if model.engine == "external":
        return f"model '{name}' is engine external (a server elsewhere): there is nothing to download"
    if model.model_path:
        return (f"model '{name}' uses model_path {model.model_path} (local files): there is nothing to "
                "download; remove model_path and set repo_id to download from the Hub")
    if not model.repo_id:
        return (f"model '{name}' has no repo_id{f' in {where}' if where else ''}: add one, e.g. "
                f"llmdeck edit {name} repo_id=unsloth/GLM-5-GGUF")
    return ""


def verdict(verb: str, model: Any, state: str | None = "unknown", *, busy: str | None = None,
            downloading: bool = False, restarting: bool = False, where: Any = None) -> Verdict:
    """May ``verb`` run on ``model`` (a registry Model) whose server is in ``state`` now?

    ``busy``: the verb already in flight on this model (None: none); ``downloading``: a download
    of the model runs; ``restarting``: the supervisor restarts a crashed server after a delay
    (``ModelState.restarting_in_s``); ``where``: the registry's path, for the messages.
    """
    if verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r}; known: {', '.join(VERBS)}")
    name = model.name
    state = state or "unknown"
    if busy:
        return Verdict(None, f"model '{name}' is busy: {busy.replace('_', ' ')} is in progress")
    running = state in RUNNING and state != "stopping"
    if verb == "download":
        refusal = download_refusal(model, where)
        if refusal:
            return Verdict(False, refusal)
        if downloading:
            return Verdict(None, f"a download of {name} is already running")
        return YES
    if verb == "delete_files":
        if model.model_path:
            return Verdict(False, f"model '{name}' uses model_path {model.model_path}: those files are yours; "
                                  "llmdeck only deletes what it downloaded")
        if model.engine == "external" or not model.repo_id:
            return Verdict(False, f"model '{name}' has no downloaded files (no repo_id)")
        if downloading:
            return Verdict(None, f"a download of {name} is running: cancel it first")
        if state in RUNNING:
            return Verdict(None, f"model '{name}' is {state}: stop it first")
        return YES
    if model.engine == "external":
        return Verdict(False, f"model '{name}' is engine external (a server elsewhere): llmdeck does not "
                              f"{verb} it")
    if verb == "start":
        if running:
            return Verdict(False, f"model '{name}' is already {state}")
        if state == "stopping":
            return Verdict(False, f"model '{name}' is stopping: start it once it stopped")
        return YES
    # stop, restart, kill
    if running or restarting:
        return YES
    return Verdict(False, f"model '{name}' is not running ({state})")
