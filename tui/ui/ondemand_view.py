"""What the TUI shows of the router's on-demand work (issue 16), from ``run/router.json``.

The backend reads the run file on each full status poll (:meth:`tui.ui.backend.Backend.router_view`);
these helpers turn it into the state cell (``ready 4:32``: the countdown to the TTL unload; the
column is 11 wide, so the words are in the note line), the note line under the table for the
selected model (``glm-5: unloads in 4:32 (router http://…)``) and one toast per router action
(started, swapped out, unloaded, failed…) with its reason. Actions the router recorded before
the TUI first read the file are not replayed.

The lasting record is a line in the model's own log, written by the router
(:meth:`tui.router.ondemand.OnDemand._log_line`: ``----- llmdeck: <time> qwen3.5: router
swapped out: glm-5 needs 230.0 GiB, 190.0 GiB free on GPUs …``): the TUI's log pane (``l``)
follows that file, so the line is on screen under the model's other log lines, stays after the
toast has gone, and is there for actions taken while no TUI was running.
"""

from __future__ import annotations

# tui.core.ondemand is imported where a router's figures are shown: not before the first frame


def state_cell(state: str, fields: dict | None) -> str | None:
    """``ready 4:32`` for a ready model the router will unload, else None (the state as is)."""
    if fields and state == "ready" and fields.get("unload_in_s") is not None:
        from tui.core import ondemand

        return f"ready {ondemand.clock(fields['unload_in_s'])}"
    return None


def note(name: str | None, fields: dict | None, router: dict | None) -> str:
    """The selected model's on-demand line ("" when it has none)."""
    if not name or not fields:
        return ""
    from tui.core import ondemand

    text = ondemand.note(fields, router is not None)
    if not text:
        return ""
    return f"{name}: {text}" + (f" (router {router.get('address') or 'pid ' + str(router.get('pid'))})" if router else "")


def new_events(router: dict | None, seen: float | None) -> tuple[list[str], float | None]:
    """(toast texts of router actions after ``seen``, the new ``seen``). ``seen`` None: the
    first read — nothing is toasted, only remembered."""
    events = [e for e in (router or {}).get("events") or [] if isinstance(e, dict)
              and isinstance(e.get("at"), (int, float))]
    latest = max([e["at"] for e in events], default=seen)
    if seen is None:
        return [], latest if latest is not None else 0.0
    out = [f"router {e.get('action')} {e.get('model')}: {e.get('reason')}" for e in events if e["at"] > seen]
    return out, max(latest or 0.0, seen)
