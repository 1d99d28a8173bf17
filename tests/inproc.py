"""``llmdeck serve``'s router app run inside the test process (a thread with its own event loop), so a
test can hand it a fake GPU source or read its state directly."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


@contextlib.contextmanager
def inproc_router(app):
    """Serve ``app`` (from :func:`tui.router.app.make_app`) on a free 127.0.0.1 port; yields its base URL."""
    from tui.router.app import serve

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    bound: list = []
    t = threading.Thread(target=loop.run_until_complete,
                         args=(serve(app, "127.0.0.1", 0, ready=bound.extend, stop=stop),), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 15
        while not bound and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bound, "the in-process router did not start"
        yield f"http://127.0.0.1:{bound[0][1]}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(15)
