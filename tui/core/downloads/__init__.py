"""Downloads from the Hugging Face Hub: plan (files, sizes, commit, disk, header), transfer
(resumable, verified, cancellable, with progress events) and a header-only GGUF reader.

Typical use (the CLI and the TUI do exactly this)::

    from tui.core.downloads import make_plan, Download
    plan = make_plan(registry, model, "UD-IQ2_XXS")     # raises DownloadError (one line)
    plan.check_space()                                  # NotEnoughSpace unless it fits
    dl = Download(plan)                                 # dl.cancel is a threading.Event
    result = dl.run(on_progress)                        # Progress events from worker threads

Submodules are imported lazily by the names below so ``import tui.core.downloads`` stays cheap.
"""

from __future__ import annotations

from tui.core.downloads.errors import (Busy, Cancelled, DownloadError, HubError, NotEnoughSpace,
                                       VerifyError)

__all__ = ["Busy", "Cancelled", "Download", "DownloadError", "HubError", "NotEnoughSpace", "Plan",
           "PlanFile", "Progress", "Result", "VerifyError", "download", "make_plan"]


def __getattr__(name: str):
    if name in ("Plan", "PlanFile", "make_plan"):
        from tui.core.downloads import plan

        return getattr(plan, name)
    if name in ("Download", "Progress", "Result", "download"):
        from tui.core.downloads import transfer

        return getattr(transfer, name)
    raise AttributeError(name)
