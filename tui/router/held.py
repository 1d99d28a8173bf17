"""One model request through the router's on-demand layer (:mod:`tui.router.ondemand`).

:func:`serve_request` counts the request while it is open, holds it while its model starts
(when the model is on demand and not running) and then hands it to the proxy; a model that the
table still listed as ready but whose server is gone is started as if it had been found
stopped.
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from tui.router.ondemand import OnDemand, Refusal, _Answered


def _wants_stream(parsed, raw: bytes) -> bool:
    if parsed.obj is not None:
        return parsed.obj.get("stream") is True
    return re.search(rb'"stream"\s*:\s*true', raw) is not None


async def serve_request(request: web.Request, ond: OnDemand, model: str, parsed, raw: bytes, *, check, refuse,
                        forward) -> web.StreamResponse:
    """One model request through the on-demand layer: counted while open, its model started
    when on demand and not running. ``check()``: the router's ready-or-error answer;
    ``refuse(backend)``: an answer refusing it before anything starts (a keyed model behind a
    keyless router), or None; ``forward(backend, prepared)``: the proxying."""
    b = await ond.table.lookup(model)
    if b is None:
        return await check()
    if (no := refuse(b)) is not None:
        return no
    u = ond.begin(b.name)
    try:
        name, state = b.name, b.state
        for attempt in (1, 2):
            try:
                prepared = await ond.ready(request, name, _wants_stream(parsed, raw), state, chunk_model=model)
            except Refusal as exc:
                return exc.response()
            except _Answered as done:
                return done.resp
            got = await check()
            if isinstance(got, web.Response):
                return got if prepared is None else await _error_into(prepared, got)
            answer = await forward(got, prepared)
            if not (attempt == 1 and prepared is None and answer.status == 502 and not answer.prepared
                    and (pol := ond.policies().get(got.name)) is not None and pol.on_demand):
                return answer
            # the table still said ready, but the server is gone (stopped by hand a moment ago):
            # start it as if the request had found it stopped
            await ond.table.refresh()
            name, state = got.name, "stopped"
        return answer
    finally:
        ond.end(u)


async def _error_into(prepared: web.StreamResponse, got: web.Response) -> web.StreamResponse:
    from tui.router import proxy

    return await proxy._error_event(prepared, json.loads(got.body))
