"""Garbage-collector settings that keep a full collection from stalling the screen."""

from __future__ import annotations

import os


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
