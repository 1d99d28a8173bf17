"""The errors a user sees, each carrying the exit code a command ends with.

A core operation that fails in a way the user must fix raises a :class:`LlmdeckError`
subclass whose message is one line (or one line per problem, as :class:`RegistryError
<tui.core.registry.RegistryError>` does) naming the file, model or field and what to do.
The CLI's ``main`` catches them once, prints each line as ``llmdeck: error: …`` and exits with
``exit_code``: :data:`EXIT_USAGE` (2) for what the user asked wrongly (an unknown model, a bad
registry, a bad option), :data:`EXIT_FAIL` (1) for an operation that could not be done (a
server that will not start, a port in use). The TUI and the router show the same message.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class LlmdeckError(Exception):
    """An error with a one-line message for the user and the exit code it ends a command with."""

    exit_code: int = EXIT_FAIL


class UsageError(LlmdeckError):
    """What was asked cannot be: a bad option value, an unknown name, an invalid file (exit 2)."""

    exit_code = EXIT_USAGE


class Failed(LlmdeckError):
    """What was asked could not be done (exit 1)."""

    exit_code = EXIT_FAIL


class SupervisorError(Failed):
    """An operation on a server failed (start, stop, delete its files); one line (exit 1)."""
