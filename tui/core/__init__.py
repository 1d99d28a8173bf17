"""The UI-free core of llmdeck.

Nothing under ``tui.core`` may import ``textual`` or ``rich`` (tests/test_import_hygiene.py
checks it in a subprocess). Front ends (``tui.cli``, ``tui.ui``) call into the core and
turn its plain dataclasses and events into output.
"""
