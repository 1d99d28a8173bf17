"""llmdeck: a control panel for local LLM servers.

``tui.core`` is the UI-free core (it never imports textual or rich); ``tui.cli`` and
``tui.ui`` are the two front ends over it.
"""

__version__ = "0.1.0"
