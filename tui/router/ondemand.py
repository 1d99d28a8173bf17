"""Models on demand in the router (issue 16): start on request, swap, idle unload, run file.

The decisions are :mod:`tui.core.ondemand`'s pure functions; this module carries them out with
the supervisor (``start`` / ``wait_ready`` / ``stop``, blocking, each in a worker thread) and
records what it did in ``run/router.json`` (:data:`RUN_FILE`), which ``llmdeck status`` and the
TUI read. How it behaves:

* Every request the router forwards counts: ``in_flight`` while it is open, ``last_request``
  when it begins and ends. A model with a request in flight is never stopped (TTL, swap,
  memory): the model is marked *stopping* in the same turn of the event loop that saw
  ``in_flight == 0``, and a request that arrives for a model being stopped waits for the stop
  and then starts it again (when on demand) instead of being cut.
* Concurrent requests for one stopped model share one start (one task per model). A request
  that goes away does not cancel the start.
* A held streaming request gets ``200 text/event-stream`` at once and an SSE comment every
  :data:`PROGRESS_EVERY_S` (``: loading m — loading tensors 45 %, about 2 min left``), or with
  ``settings.loading_in_reasoning`` the same text as ``reasoning_content`` deltas. Its status
  line is sent, so a failure to load reaches it as one ``data: {"error": …}`` event.
* A start that fails: 502 with the exit reason and the log's last lines (crashed), 504 with the
  stage (not ready within ``load_timeout_s`` / ``settings.start_timeout_s``; the model is left
  loading), 503 with ``Retry-After`` when memory cannot be made (held by models in use after
  ``settings.swap_wait_s``, or by ``keep_loaded`` ones).
* On start the router reads the last request times of its predecessor's run file (TTLs
  resume) and adopts models that are loading (their watcher kept them going).
* Every action (started, swapped out, unloaded, failed, not preloaded) is an event in the run
  file (the TUI toasts it), a line on stderr, and a note line with its reason in the model's
  own log (the TUI's log pane shows it; :meth:`OnDemand._log_line`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
import time
from pathlib import Path

from aiohttp import web

from tui.core import ondemand as od
from tui.core import runfiles

RUN_FILE = od.ROUTER_FILE
#: held (flock) by the one router that serves a registry (:meth:`OnDemand.claim`)
LOCK_FILE = "router.lock"
PROGRESS_EVERY_S = 2.0
TICK_S = 0.5
EVENTS_KEPT = 50


class RouterBusy(Exception):
    """Another router holds this registry's ``run/router.lock``: the one-line message names it."""


class Refusal(Exception):
    """A start that cannot be made: the answer to give."""

    def __init__(self, status: int, message: str, code: str | int | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.retry_after = status, message, code or status, retry_after

    def body(self) -> dict:
        kind = {502: "server_error", 504: "timeout_error"}.get(self.status, "unavailable_error")
        return {"error": {"message": self.message, "type": kind, "code": self.code}}

    def response(self) -> web.Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        return web.json_response(self.body(), status=self.status, headers=headers)


def progress_text(name: str, st) -> str:
    """``loading glm-5 — loading tensors 45 %, about 2 min left`` from a ModelState (or None)."""
    if st is None:
        return f"loading {name}"
    parts = [st.stage or st.state]
    if st.load_pct is not None:
        parts[0] += f" {st.load_pct:.0f} %"
    if st.load_eta_s:
        eta = st.load_eta_s
        parts.append(f"about {eta / 60:.0f} min left" if eta >= 90 else f"about {eta:.0f} s left")
    return f"loading {name} — " + ", ".join(parts)


def _gpu_source():
    from tui.core.telemetry import nvml

    return nvml.default_source()


class OnDemand:
    """The on-demand part of one router. ``provider``: the router's RegistryBackends;
    ``table``: its BackendTable; ``gpu_source``: NVML or a fake (tests)."""

    def __init__(self, provider, table, *, gpu_source=None, address: str | None = None):
        self.provider, self.table = provider, table
        self.gpu_source = gpu_source
        self.address = address
        self.usage: dict[str, od.Usage] = {}
        self.progress: dict[str, object] = {}
        self._starts: dict[str, asyncio.Task] = {}
        self._stopping: dict[str, asyncio.Task] = {}
        self._needs: dict[tuple, int | None] = {}
        self.decisions: dict[str, dict | None] = {}  # model -> memory figures of its last start decision
        self.events: collections.deque = collections.deque(maxlen=EVENTS_KEPT)
        self._ticker: asyncio.Task | None = None
        self._bg: set[asyncio.Task] = set()
        self.started_at = time.time()
        self.starts_made = 0  # supervisor.start calls this router made (tests, benchmarks)

    # --- registry view ---------------------------------------------------------------------
    def reg(self):
        return self.provider.registry()

    def policies(self) -> dict[str, od.Policy]:
        reg = self.reg()
        return {n: od.policy(m, reg.settings) for n, m in reg.models.items() if m.engine != "external"}

    def run_file(self) -> Path:
        return self.reg().run_dir / RUN_FILE

    async def _states(self, fresh: bool = False) -> dict[str, tuple[str, float | None]]:
        if fresh:
            await self.table.refresh()
        items = await self.table.all()
        return {b.name: (b.state, b.since) for b in items}

    def _need(self, name: str) -> int | None:
        """Estimated bytes (weights + KV cache) of a model's default quant; None: not estimated."""
        reg = self.reg()
        m = reg.models[name]
        key = (name, id(m))
        if key not in self._needs:
            self._needs[key] = _estimate(reg, name)
        return self._needs[key]

    def _memory(self, running: list[str]) -> od.Memory | None:
        """Free memory now, per GPU (NVML, one read) and RAM, and what each running model's
        server holds on each GPU (NVML's per-process figures over its process tree). Blocking:
        run in a worker thread. None when nothing could be read."""
        import psutil

        from tui.core import supervisor
        from tui.core.telemetry import procs

        try:
            src = self.gpu_source or _gpu_source()
            reading = src.read()
            ram = int(psutil.virtual_memory().available)
        except Exception:
            return None
        if not reading.ok:
            return od.Memory(None, ram)
        gpus = {g.index: (g.mem_free if g.mem_free is not None else max(0, g.mem_total - g.mem_used))
                for g in reading.gpus if g.state == "ok" and g.mem_total is not None and g.mem_used is not None}
        if not gpus:
            return od.Memory(None, ram)
        used_by: dict[str, dict[int, int]] = {}
        reg = self.reg()
        try:
            table = procs.ProcessTable(rescan_every=0)
            table.refresh()
            foreign = procs.foreign_gpu_pids(reading, table)
            for n in running:
                pid = supervisor.state_of(reg, n, probe=False).pid
                tree = table.tree(pid) if pid else []
                if tree:
                    _, by_gpu, _ = procs.attribute_vram(tree, reading, foreign)
                    if by_gpu:
                        used_by[n] = dict(by_gpu)
        except Exception:
            pass  # the estimates stand in
        return od.Memory(gpus, ram, used_by)

    def _limit(self) -> int | None:
        lim = self.reg().settings.memory_limit_gib
        return int(lim * od.GIB) if lim is not None else None

    # --- events ------------------------------------------------------------------------------
    def event(self, model: str, action: str, reason: str, memory: dict | None = None) -> None:
        """Record one thing the router did (the run file's ``events``; stderr). ``memory``: the
        figures the decision that led to it read (bytes: free per GPU, RAM, the need, what
        each running model held), for a start and for a model stopped to make room."""
        e = {"at": round(time.time(), 3), "model": model, "action": action, "reason": reason}
        if memory is not None:
            e["memory"] = memory
        self.events.append(e)
        print(f"llmdeck serve: {action} {model}: {reason}", file=sys.stderr, flush=True)
        self._log_line(model, action, reason)
        self.write_run_file()

    def _log_line(self, model: str, action: str, reason: str) -> None:
        """The action as a note line in the model's own log (``----- llmdeck: <time> m: router
        swapped out: …``): what the TUI's log pane, ``llmdeck logs`` and the front page show for
        that model, so the reason stays after the TUI's toast has gone. A start's line follows
        the new run's banner; a stop's ends the run it stopped."""
        from tui.core import logfiles, safefiles

        try:
            log = self.reg().log_file(model)
            if log.parent.is_dir():
                with safefiles.open_append(log) as fh:
                    fh.write(logfiles.note(model, f"router {action}: {reason}").encode())
        except Exception as exc:  # a log that cannot be written never fails the action
            print(f"llmdeck serve: cannot write {model}'s log: {exc}", file=sys.stderr, flush=True)

    # --- requests ------------------------------------------------------------------------------
    def begin(self, name: str) -> od.Usage:
        u = self.usage.setdefault(name, od.Usage())
        u.in_flight += 1
        u.last_request = time.time()
        return u

    def end(self, u: od.Usage) -> None:
        u.in_flight = max(0, u.in_flight - 1)
        u.last_request = time.time()

    async def ready(self, request: web.Request, name: str, stream: bool, state: str,
                    chunk_model: str | None = None) -> web.StreamResponse | None:
        """Make ``name`` ready for a request already counted by :meth:`begin`. Returns None
        (ready, nothing sent), a prepared SSE response (held stream: forward into it), or
        raises :class:`Refusal`."""
        if name in self._stopping:
            await asyncio.shield(self._stopping[name])
            state = (await self._states(fresh=True)).get(name, ("stopped", None))[0]
        if state == "ready" and name not in self._starts:
            return None  # the warm path: nothing more to look at
        pol = self.policies().get(name)
        if pol is None or not pol.on_demand:
            return None  # the ordinary answers (404, 503) apply
        task = self.start_task(name, "request")
        if not stream:
            await asyncio.shield(task)
            return None
        return await self._hold_stream(request, name, task, chunk_model)

    def start_task(self, name: str, why: str) -> asyncio.Task:
        """The one start of ``name`` in progress, or a new one."""
        task = self._starts.get(name)
        if task is None:
            task = self._starts[name] = asyncio.ensure_future(self._start(name, why))
            task.add_done_callback(lambda t, n=name: (self._starts.pop(n, None), t.cancelled() or t.exception()))
        return task

    async def load(self, name: str) -> dict:
        """``POST /api/<model>/load``: start it (same rules as a request) and wait until ready."""
        await asyncio.shield(self.start_task(name, "load by API"))
        return {"model": name, "state": "ready"}

    async def unload(self, name: str) -> dict:
        """``POST /api/<model>/unload``: stop it once no request is in flight."""
        st = (await self._states(fresh=True)).get(name, ("stopped", None))[0]
        if st not in od.RUNNING:
            return {"model": name, "state": st, "stopped": False}
        await self.stop_model(name, "unloaded", "unload by API", wait_idle=True)
        return {"model": name, "state": "stopped", "stopped": True}

    async def _hold_stream(self, request, name, task, chunk_model) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                       "Cache-Control": "no-cache"})
        await resp.prepare(request)
        reasoning = self.reg().settings.loading_in_reasoning
        while True:
            text = progress_text(name, self.progress.get(name))
            if reasoning:
                chunk = {"id": "llmdeck-loading", "object": "chat.completion.chunk", "created": int(time.time()),
                         "model": chunk_model or name,
                         "choices": [{"index": 0, "delta": {"reasoning_content": text + "\n"}, "finish_reason": None}]}
                await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            else:
                await resp.write(f": {text}\n\n".encode())
            done, _ = await asyncio.wait({task}, timeout=PROGRESS_EVERY_S)
            if done:
                break
        exc = task.exception()
        if isinstance(exc, Refusal):
            await resp.write(b"data: " + json.dumps(exc.body()).encode() + b"\n\n")
            await resp.write_eof()
            raise _Answered(resp)
        if exc is not None:
            raise exc
        return resp

    # --- starting ------------------------------------------------------------------------------
    async def _start(self, name: str, why: str, *, preload: bool = False) -> None:
        from tui.core import supervisor

        reg = self.reg()
        st = (await self._states(fresh=True)).get(name, ("stopped", None))[0]
        if st not in od.RUNNING:
            await self._make_room(name, preload=preload)
            self.progress[name] = None
            try:
                self.starts_made += 1
                await asyncio.to_thread(supervisor.start, reg, name)
                self.event(name, "started", why, self.decisions.pop(name, None))
            except supervisor.SupervisorError as exc:
                if "already" not in str(exc):  # started meanwhile by someone else: wait for it
                    raise Refusal(502, f"model '{name}' could not be started: {exc}", "start_failed") from None
            except Exception as exc:  # LaunchError and the like: one line
                raise Refusal(502, f"model '{name}' could not be started: {exc}", "start_failed") from None

        def seen(s) -> None:
            self.progress[name] = s

        s = await asyncio.to_thread(supervisor.wait_ready, reg, name, None, 0.02, seen)
        await self.table.refresh()
        if s.state == "ready":
            return
        if s.state in ("crashed", "stopped"):
            reason = (s.exit or {}).get("reason") or s.last_error or s.state
            tail = "; ".join(ln.strip() for ln in (s.last_log_lines or [])[-5:] if ln.strip())
            self.event(name, "failed", f"{reason}")
            raise Refusal(502, f"model '{name}' failed to load: {reason}" + (f"; last log lines: {tail}" if tail else ""),
                          "load_failed")
        stage = s.stage or s.state
        raise Refusal(504, f"model '{name}' is not ready after its load timeout (stage: {stage}; {s.last_error}); "
                      "it is left loading: see 'llmdeck status'", "load_timeout")

    async def _make_room(self, name: str, *, preload: bool = False) -> None:
        settings = self.reg().settings
        deadline = time.monotonic() + settings.swap_wait_s
        while True:
            pols = self.policies()
            states = await self._states(fresh=True)
            need = {n: self._need(n) for n in pols if n == name or states.get(n, ("", 0))[0] in od.RUNNING}
            running = [n for n in need if n != name]
            mem = await asyncio.to_thread(self._memory, running)
            reg = self.reg()
            places = {n: od.placement(reg.models[n]) for n in need}
            plan = od.plan_start(name, pols, states, self.usage, need, mem, self._limit(), places)
            self.decisions[name] = plan.memory
            if plan.blocked_by:
                held = ", ".join(plan.blocked_by)
                raise Refusal(503, f"model '{name}' cannot start: {held} (keep_loaded) would have to stop "
                              f"({plan.reasons[plan.blocked_by[0]]}); stop it by hand with 'llmdeck stop {held}'"
                              + (f"; {plan.note}" if plan.note else ""), "keep_loaded", od_retry(settings))
            if preload and (plan.stop or plan.wait_for or not plan.fits):
                raise Refusal(503, f"not preloaded: {plan.note or 'it would stop ' + ', '.join(plan.stop + plan.wait_for)}")
            for n in plan.stop:
                await self.stop_model(n, "swapped out", plan.reasons[n], memory=plan.memory)
            if plan.wait_for:
                if time.monotonic() > deadline:
                    busy = ", ".join(f"{n} ({self.usage[n].in_flight} request(s) in flight)" for n in plan.wait_for)
                    raise Refusal(503, f"model '{name}' cannot start yet: {busy} must stop first and is in use "
                                  f"(waited {settings.swap_wait_s:g} s)" + (f"; {plan.note}" if plan.note else ""),
                                  "model_busy", od_retry(settings))
                await asyncio.sleep(0.1)
                continue
            if not plan.fits:
                held = [n for n, (s, _) in states.items() if s in od.RUNNING and n != name]
                raise Refusal(503, f"model '{name}' does not fit: {plan.note}; held by "
                              f"{', '.join(held) or 'other programs'}", "no_memory", od_retry(settings))
            return

    # --- stopping ------------------------------------------------------------------------------
    async def stop_model(self, name: str, action: str, reason: str, *, wait_idle: bool = False,
                         memory: dict | None = None) -> bool:
        """Stop ``name`` unless a request is in flight (with ``wait_idle``: wait until none is).
        Returns whether it was stopped (or was being stopped)."""
        from tui.core import supervisor

        while True:
            task = self._stopping.get(name)
            if task is not None:
                await asyncio.shield(task)
                return True
            u = self.usage.get(name)
            if u is None or not u.in_flight:
                break
            if not wait_idle:
                return False
            await asyncio.sleep(0.05)
        reg = self.reg()
        task = self._stopping[name] = asyncio.ensure_future(asyncio.to_thread(supervisor.stop, reg, name))
        try:
            await asyncio.shield(task)
            self.event(name, action, reason, memory)
        finally:
            self._stopping.pop(name, None)
            await self.table.refresh()
        return True

    # --- the ticker: TTLs, swap groups, the run file ------------------------------------------
    async def tick(self) -> None:
        states = await self._states()
        pols = self.policies()
        now = time.time()
        todo = od.idle_to_stop(pols, states, self.usage, now) + od.group_conflicts(pols, states)
        for name, why in todo:
            if name in self._stopping or name in self._starts:
                continue
            if (u := self.usage.get(name)) is not None and u.in_flight:
                continue
            action = "unloaded" if why.startswith("idle") else "swapped out"
            self._spawn(self.stop_model(name, action, why))
        self.write_run_file(states)

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                print(f"llmdeck serve: on-demand tick failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            await asyncio.sleep(TICK_S)

    def write_run_file(self, states: dict | None = None) -> None:
        try:
            path = self.run_file()
            if states is None:
                states = {b.name: (b.state, b.since) for b in self.table._items}
            now = time.time()
            pols = self.policies()
            models = {}
            for name, pol in pols.items():
                state, since = states.get(name, ("stopped", None))
                u = self.usage.get(name) or od.Usage()
                left = od.unload_in(pol, state, u, since, now)
                models[name] = {**pol.to_json(), "state": state, "last_request": u.last_request,
                                "in_flight": u.in_flight, "unload_in_s": round(left, 1) if left is not None else None,
                                "loading": name in self._starts}
            data = {"pid": os.getpid(), "started_at": self.started_at, "updated_at": now, "address": self.address,
                    "models": models, "events": list(self.events)}
            if path.parent.is_dir():
                runfiles.write_json(path, data)
        except Exception as exc:  # never fail a request over the run file
            print(f"llmdeck serve: cannot write the run file: {exc}", file=sys.stderr, flush=True)

    # --- one router per registry -------------------------------------------------------------
    _lock_fd: int | None = None

    def claim(self) -> None:
        """Hold ``run/router.lock`` (an exclusive ``flock``) for this router's life, or raise
        :class:`RouterBusy` with one line naming the router that holds it (its pid and address):
        two routers over one registry would overwrite each other's ``run/router.json`` and fight
        over starts and stops. The kernel drops the lock when the process ends, ``kill -9``
        included, so a router that died never blocks the next. A run folder that is missing is
        made; one that cannot be trusted (``safefiles.dir_problem``) is left alone."""
        import fcntl

        from tui.core import safefiles

        run_dir = self.reg().run_dir
        if safefiles.dir_problem(run_dir):
            return
        try:
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = safefiles.open_fd(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return  # no lock where none can be made (a read-only folder): the router still serves
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                held = os.read(fd, 64).decode(errors="replace").strip()
            finally:
                os.close(fd)
            other = od.read_router(run_dir) or {}
            pid = other.get("pid") or (int(held) if held.isdigit() else None)
            where = other.get("address") or "its address not written yet"
            reg_path = getattr(self.provider, "path", run_dir)
            raise RouterBusy(f"another 'llmdeck serve' already serves {reg_path} (pid {pid or '?'}, {where}): use "
                         f"that one, or stop it first (kill {pid or '<pid>'})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # --- lifecycle -----------------------------------------------------------------------------
    def resume(self) -> None:
        """Last request times from the previous router's run file (TTLs resume where they were)."""
        prev = runfiles.read_json(self.run_file()) or {}
        for name, m in (prev.get("models") or {}).items():
            if isinstance(m, dict) and isinstance(m.get("last_request"), (int, float)):
                self.usage.setdefault(name, od.Usage()).last_request = float(m["last_request"])
        self.events.extend(e for e in (prev.get("events") or [])[-EVENTS_KEPT:] if isinstance(e, dict))

    async def preload(self) -> None:
        for name in self.reg().settings.preload:
            try:
                await self._start(name, "preload", preload=True)
            except Refusal as exc:
                self.event(name, "not preloaded", exc.message)

    async def on_startup(self, app) -> None:
        try:
            self.resume()
        except Exception:
            pass
        self._ticker = asyncio.ensure_future(self._loop())
        self._spawn(self.preload())

    async def on_cleanup(self, app) -> None:
        for t in [self._ticker, *self._bg]:
            if t is not None:
                t.cancel()
        self.write_run_file()
        self.release()


ONDEMAND = web.AppKey("ondemand", OnDemand)


class _Answered(Exception):
    """The held stream already carries the answer (an error event)."""

    def __init__(self, resp: web.StreamResponse):
        self.resp = resp


def od_retry(settings) -> int:
    return max(1, min(60, int(settings.swap_wait_s) or 5))


def _estimate(reg, name: str) -> int | None:
    """weights + KV cache of the model's default quant (memfit), None when not estimated."""
    from tui.core import memfit, supervisor

    m = reg.models[name]
    if m.engine == "external":
        return 0
    try:
        spec = supervisor.launch_spec(reg, name)
        files = [f for f in spec.files if f.is_file()]
    except Exception:
        return None
    if not files:
        return None
    from tui.core.downloads import gguf

    try:
        header = gguf.read_model(files[0])
    except (OSError, gguf.GGUFError):
        return None
    fit = memfit.estimate(sum(f.stat().st_size for f in files), header, m.params, memfit.Machine(None, 0))
    return None if fit.kv is None else fit.weights + fit.kv
