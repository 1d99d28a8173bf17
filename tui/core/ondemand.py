"""Models on demand: the router's decisions, as pure functions (issue 16).

The router (:mod:`tui.router.ondemand`) carries these out; here nothing is read or signalled.
Inputs are the models' policies (:func:`policy`), their states (``ModelState.state`` strings),
what the router saw of their requests (:class:`Usage`) and memory figures in bytes.

Decisions where the issue is silent:

* **Idle since** is the later of the last request the router forwarded and the time the
  current run started (``ModelState.since``): a model started by hand and never asked counts
  its ``ttl_s`` from its start, and a router that has just started does not stop at once what
  it never saw used (:func:`idle_to_stop`).
* **Memory** is counted per GPU (NVML), not as one pool: a model spread over several GPUs
  (llama.cpp's default layer split) needs at most the sum of its GPUs' free memory, one with
  fixed shares (``tensor_split``; one GPU by ``split_mode: none`` / ``CUDA_VISIBLE_DEVICES``)
  its share on each (:func:`placement`, :func:`plan_start`). Stopping a model gives back what
  NVML says its server holds on each GPU (its estimate when NVML does not say). A model on the
  CPU (``n_gpu_layers`` 0), or any model on a machine without GPUs, is judged against the
  available RAM. With ``memory_limit_gib`` the sum of the running models' estimates plus the
  new one must also stay under it. A model whose need is not known (memfit reports its KV
  cache as not estimated) is taken to need all the free memory of its GPUs: every model there
  that may be stopped is. A llama-server model that keeps parts on the CPU (``n_cpu_moe``,
  ``cpu_moe``, an ``override_tensor`` to CPU: the usual way to run a 240 GB MoE on a box with
  less VRAM) is judged against its GPUs' free memory **plus** the available RAM, as memfit's
  "fits in VRAM + RAM" verdict: how much of it lands on the GPUs is llama.cpp's choice per
  tensor, which llmdeck does not predict, so it neither refuses such a model for VRAM alone
  nor claims more than that it fits VRAM + RAM together (a GPU part that still does not fit
  ends in the server's own out-of-memory exit, answered 502 with its log lines).
* **Least recently used** orders by the same "idle since" time.
* ``swap_group`` applies whoever starts: the router stops the others of the group before a
  start it makes; ``llmdeck start`` and the TUI do the same (:func:`stop_group_for`), refusing
  when one of them is ``keep_loaded`` or has requests in flight through the router; a start
  that bypasses both (``supervisor.start`` from a script) is caught by the router on its next
  tick, which stops the older run (:func:`group_conflicts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tui.core.states import RUNNING_STATES

#: states in which a model holds (or is taking) memory (states.RUNNING_STATES)
RUNNING = RUNNING_STATES
GIB = 1 << 30


@dataclass(frozen=True)
class Policy:
    on_demand: bool = False
    ttl_s: float | None = None
    swap_group: str | None = None
    keep_loaded: bool = False

    @property
    def evictable(self) -> bool:
        """May the router stop it to make room (issue: idle models that are on demand or have a ttl)."""
        return not self.keep_loaded and (self.on_demand or self.ttl_s is not None)

    def to_json(self) -> dict:
        return {"on_demand": self.on_demand, "ttl_s": self.ttl_s, "swap_group": self.swap_group,
                "keep_loaded": self.keep_loaded}


def policy(model, settings) -> Policy:
    """A registry model's policy, with the settings' defaults filled in."""
    od = model.on_demand if model.on_demand is not None else bool(getattr(settings, "on_demand", False))
    return Policy(on_demand=od, ttl_s=model.ttl_s, swap_group=model.swap_group, keep_loaded=model.keep_loaded)


@dataclass
class Usage:
    """What the router saw of one model's requests."""

    last_request: float | None = None  # epoch s when the last request began or ended
    in_flight: int = 0


@dataclass
class Plan:
    """What must happen before ``target`` may start."""

    target: str
    stop: list[str] = field(default_factory=list)  # idle models to stop first (in order)
    wait_for: list[str] = field(default_factory=list)  # models with requests in flight that must go
    blocked_by: list[str] = field(default_factory=list)  # keep_loaded models that would have to go
    fits: bool = True  # after stop (+ wait_for), is there room?
    reasons: dict[str, str] = field(default_factory=dict)  # model -> why it stops
    note: str = ""  # the memory figures, for messages
    memory: dict | None = None  # the figures the decision used (bytes), for the router's events

    @property
    def ok_now(self) -> bool:
        return self.fits and not self.wait_for and not self.blocked_by


def idle_since(usage: Usage | None, since: float | None) -> float:
    return max((usage.last_request if usage and usage.last_request else 0.0), since or 0.0)


def unload_in(pol: Policy, state: str, usage: Usage | None, since: float | None, now: float) -> float | None:
    """Seconds until the ttl stops this model (0 = due), or None (no ttl, kept, busy, not running)."""
    if pol.ttl_s is None or pol.keep_loaded or state not in ("ready", "unhealthy"):
        return None
    if usage is not None and usage.in_flight:
        return None
    return max(0.0, pol.ttl_s - (now - idle_since(usage, since)))


def idle_to_stop(policies: dict[str, Policy], states: dict[str, tuple[str, float | None]],
                 usage: dict[str, Usage], now: float) -> list[tuple[str, str]]:
    """[(model, reason)] of running models idle past their ``ttl_s``. ``states``: model ->
    (state, since)."""
    out = []
    for name, (state, since) in states.items():
        pol = policies.get(name)
        if pol is None:
            continue
        left = unload_in(pol, state, usage.get(name), since, now)
        if left is not None and left <= 0:
            idle = now - idle_since(usage.get(name), since)
            out.append((name, f"idle for {idle:.0f} s (ttl_s {pol.ttl_s:g})"))
    return out


def group_conflicts(policies: dict[str, Policy], states: dict[str, tuple[str, float | None]]) -> list[tuple[str, str]]:
    """[(model, reason)]: where two models of one swap_group run (one started by hand), the
    older runs stop; the newest (latest ``since``) stays. keep_loaded ones are never listed."""
    out = []
    groups: dict[str, list[tuple[float, str]]] = {}
    for name, (state, since) in states.items():
        pol = policies.get(name)
        if pol and pol.swap_group and state in RUNNING and state != "stopping":
            groups.setdefault(pol.swap_group, []).append((since or 0.0, name))
    for group, members in groups.items():
        if len(members) < 2:
            continue
        members.sort()
        newest = members[-1][1]
        out += [(n, f"swap_group {group}: {newest} was started") for _, n in members[:-1]
                if not policies[n].keep_loaded]
    return out


def gib(n: float | None) -> str:
    return "unknown" if n is None else f"{n / GIB:.1f} GiB"


@dataclass(frozen=True)
class Memory:
    """Free memory as one decision reads it: per GPU (NVML index → bytes a new allocation can
    have; None: no GPU reading), available RAM, and what each running model holds on each GPU
    now (NVML's per-process figures for its server's process tree; a model missing here is
    taken to give back its estimate, spread as it would be placed)."""

    gpu_free: dict[int, int] | None
    ram_available: int | None = None
    used_by: dict[str, dict[int, int]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"gpu_free_bytes": ({str(g): b for g, b in sorted(self.gpu_free.items())}
                                   if self.gpu_free is not None else None),
                "ram_available_bytes": self.ram_available,
                "used_by_bytes": {n: {str(g): b for g, b in sorted(d.items())}
                                  for n, d in sorted(self.used_by.items())}}


@dataclass(frozen=True)
class Placement:
    """Where a model's server puts its memory, from its registry entry (:func:`placement`).

    ``visible``: the NVML indexes of the GPUs it may use (``CUDA_VISIBLE_DEVICES``; None: all);
    ``split``: fixed fractions over the visible GPUs (``tensor_split``, or ``split_mode: none``
    = all on ``main_gpu``); None: llama.cpp spreads layers over every visible GPU, so the sum
    of their free memory counts; ``ram``: it runs on the CPU (``n_gpu_layers`` 0, no visible
    GPU) and is judged against available RAM; ``offload``: parts stay on the CPU (``n_cpu_moe``,
    ``cpu_moe``, ``override_tensor`` to CPU): its GPUs' free memory and the RAM count together."""

    visible: tuple[int, ...] | None = None
    split: tuple[float, ...] | None = None
    ram: bool = False
    offload: bool = False

    def resolve(self, gpus: list[int]) -> tuple[list[int], dict[int, float] | None]:
        """(the GPUs it uses, fixed share per GPU or None for the sum rule), given the GPUs
        NVML reads. Visible indexes NVML does not have are dropped (all, if none is left)."""
        vis = [g for g in (self.visible if self.visible is not None else gpus) if g in gpus] or list(gpus)
        if self.split is None:
            return vis, None
        shares = {vis[i]: f for i, f in enumerate(self.split) if i < len(vis) and f > 0}
        total = sum(shares.values())
        if not shares or total <= 0:
            return vis, None
        return sorted(shares), {g: f / total for g, f in shares.items()}


def placement(model) -> Placement:
    """A registry model's :class:`Placement` (llama-server's flags; other engines: every GPU,
    sum rule). ``CUDA_VISIBLE_DEVICES`` is read as NVML indexes (true when CUDA orders devices
    by PCI bus, as ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` does and as a box of one GPU model always
    does); UUIDs or other forms count as every GPU."""
    params = getattr(model, "params", None) or {}
    env = getattr(model, "env", None) or {}
    visible: tuple[int, ...] | None = None
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if isinstance(cvd, str):
        items = [x.strip() for x in cvd.split(",") if x.strip()]
        if not items or items[0] == "-1":
            return Placement(ram=True)
        if all(x.isdigit() for x in items):
            visible = tuple(int(x) for x in items)
    if getattr(model, "engine", "llama-server") != "llama-server":
        return Placement(visible)
    if params.get("n_gpu_layers") == 0 or str(params.get("device", "")).strip().lower() == "none":
        return Placement(ram=True)
    ot = params.get("override_tensor")
    offload = ((isinstance(params.get("n_cpu_moe"), int) and params["n_cpu_moe"] > 0) or params.get("cpu_moe") is True
               or (isinstance(ot, str) and "=cpu" in ot.replace(" ", "").lower()))
    if offload:
        return Placement(visible, offload=True)
    if str(params.get("split_mode", "")).lower() == "none":
        main = params.get("main_gpu") if isinstance(params.get("main_gpu"), int) else 0
        return Placement(visible, tuple(1.0 if i == main else 0.0 for i in range(main + 1)))
    ts = params.get("tensor_split")
    if ts is not None:
        try:
            split = tuple(float(x) for x in (ts.replace("/", ",").split(",") if isinstance(ts, str) else ts))
        except (TypeError, ValueError):
            split = None
        if split and any(f > 0 for f in split):
            return Placement(visible, split)
    return Placement(visible)


def plan_start(target: str, policies: dict[str, Policy], states: dict[str, tuple[str, float | None]],
               usage: dict[str, Usage], need: dict[str, int | None], free: int | Memory | None,
               limit: int | None = None, placements: dict[str, Placement] | None = None) -> Plan:
    """What must stop before ``target`` starts: the others of its swap group, then idle
    evictable models, least recently used first, until its ``need`` fits and stays under
    ``limit`` (bytes, the sum of running models' needs, None: none). ``need``: model →
    estimated bytes (None: not estimated).

    ``free``: a :class:`Memory` (per GPU), a plain number of bytes (one pool: RAM on a machine
    without GPUs), or None (memory not checked). Per GPU, with ``placements`` (model →
    :class:`Placement`, default: every GPU, sum rule):

    * a model spread over several GPUs (the default layer split) fits when its need is at most
      the sum of its GPUs' free memory; one with fixed shares (``tensor_split``, one GPU by
      ``split_mode: none`` or ``CUDA_VISIBLE_DEVICES``) when each GPU holds its share — so a
      single-GPU model must fit on that one GPU, never on free memory spread over others;
    * stopping a model gives back what NVML says it holds on each GPU (``Memory.used_by``), or
      else its estimate placed the same way;
    * a candidate is stopped only if that lowers the shortfall on the target's GPUs: a model
      on another GPU is left running.
    """
    plan = Plan(target)
    pol = policies.get(target, Policy())
    running = {n: st for n, st in states.items() if n != target and st[0] in RUNNING}
    places = placements or {}

    def take(name: str, why: str) -> None:
        if name in plan.stop or name in plan.wait_for or name in plan.blocked_by:
            return
        if policies.get(name, Policy()).keep_loaded:
            plan.blocked_by.append(name)
        elif usage.get(name) and usage[name].in_flight:
            plan.wait_for.append(name)
        else:
            plan.stop.append(name)
        plan.reasons[name] = why

    if pol.swap_group:
        for name in running:
            if policies.get(name, Policy()).swap_group == pol.swap_group:
                take(name, f"swap_group {pol.swap_group}: {target} starts")

    want = need.get(target)
    if free is None and limit is None:
        return plan
    gone = set(plan.stop) | set(plan.wait_for)
    lru = sorted((n for n in running if n not in gone and policies.get(n, Policy()).evictable),
                 key=lambda n: (bool(usage.get(n) and usage[n].in_flight), idle_since(usage.get(n), running[n][1])))
    # idle ones first (least recently used first); one in use only when they are not enough

    mem = free if isinstance(free, Memory) else None
    pool = None if isinstance(free, Memory) else free
    all_gpus = sorted(mem.gpu_free) if mem is not None and mem.gpu_free else []
    place = places.get(target, Placement())
    on_gpu = bool(all_gpus) and not place.ram
    gpus, shares = place.resolve(all_gpus) if on_gpu else ([], None)
    if mem is not None and not on_gpu:
        pool = mem.ram_available  # on the CPU, or no GPU reading: available RAM

    def gives_back(n: str) -> dict[int, float]:
        """GPU → bytes stopping ``n`` frees (key -1: RAM)."""
        pn = places.get(n, Placement())
        est = need.get(n) or 0
        if mem is not None and n in mem.used_by:
            back = dict(mem.used_by[n])
            if pn.offload:  # the rest of its estimate is in RAM
                back[-1] = back.get(-1, 0) + max(0, est - sum(back.values()))
            return back
        if not all_gpus or pn.ram or pn.offload:  # offloaded, NVML silent: counted as RAM only
            return {-1: est}
        g_n, sh_n = pn.resolve(all_gpus)
        return {g: est * (sh_n[g] if sh_n else 1 / len(g_n)) for g in (sh_n or g_n)}

    def deficit(chosen: list[str]) -> float | None:
        """Bytes still missing over every constraint (0: fits); None: need not known."""
        if want is None:
            return None
        back: dict[int, float] = {}
        for n in chosen:
            for g, b in gives_back(n).items():
                back[g] = back.get(g, 0) + b
        miss = 0.0
        if on_gpu and mem is not None and place.offload:  # VRAM and RAM together (module doc)
            ram = (mem.ram_available or 0) + back.get(-1, 0)
            miss += max(0.0, want - sum(mem.gpu_free[g] + back.get(g, 0) for g in gpus) - ram)
        elif on_gpu and mem is not None:
            if shares is None:
                miss += max(0.0, want - sum(mem.gpu_free[g] + back.get(g, 0) for g in gpus))
            else:
                miss += sum(max(0.0, want * f - (mem.gpu_free[g] + back.get(g, 0))) for g, f in shares.items())
        elif pool is not None:
            freed = back.get(-1, 0) if mem is not None else sum(back.values())
            miss += max(0.0, want - (pool + freed))
        if limit is not None:
            used = sum(need.get(n) or 0 for n in running) - sum(need.get(n) or 0 for n in chosen)
            miss += max(0.0, used + want - limit)
        return miss

    where = ""
    have = pool
    if on_gpu and mem is not None:
        have = sum(mem.gpu_free[g] for g in gpus)
        rule = "each GPU its share" if shares is not None else ("its GPUs together" if len(gpus) > 1 else "")
        where = (f" on GPU {gpus[0]}" if len(gpus) == 1 else
                 f" on GPUs {','.join(map(str, gpus))} ({' + '.join(gib(mem.gpu_free[g]) for g in gpus)}"
                 + (f", {rule}" if rule else "") + ")")
        if place.offload:
            have += mem.ram_available or 0
            where += f" + {gib(mem.ram_available or 0)} RAM (parts on the CPU)"
    elif mem is not None:
        where = " in RAM" if all_gpus else " in RAM (no GPU reading)"
    plan.memory = {"need_bytes": want, "gpus": gpus, "rule": ("ram" if not on_gpu else "vram+ram" if place.offload
                                                               else "shares" if shares is not None else "sum"),
                   "shares": {str(g): round(f, 4) for g, f in (shares or {}).items()} or None,
                   "limit_bytes": limit, **(mem.to_json() if mem is not None else {"pool_bytes": pool})}

    if want is None:  # not estimated: all the free memory of its GPUs; every model there that may go, goes
        for n in lru:
            if not gpus or any(g in gpus for g in gives_back(n)) or -1 in gives_back(n):
                take(n, f"{target}'s memory need is not estimated: it is given all the free memory{where}")
        plan.note = f"{target}'s memory need is not estimated (memfit), so it takes all the free memory{where}"
        return plan
    why = (f"{target} needs {gib(want)}, {gib(have)} free{where}" if have is not None else f"{target} needs {gib(want)}"
           ) + (f" under memory_limit_gib {gib(limit)}" if limit is not None else "")
    for n in lru:
        now_miss = deficit(plan.stop + plan.wait_for)
        if now_miss is None or now_miss <= 0:
            break
        if deficit(plan.stop + plan.wait_for + [n]) < now_miss:  # stopping it helps
            take(n, why)
    m = deficit(plan.stop + plan.wait_for)
    plan.fits = m is None or m <= 0
    plan.note = (f"{target} needs {gib(want)}; free {gib(have)}{where}"
                 + (f", memory_limit_gib {gib(limit)} with {gib(sum(need.get(n) or 0 for n in running))} in use"
                    if limit is not None else ""))
    return plan


# --- the router's run file, as status and the TUI read it ------------------------------------

#: ``run/router.json``: written by the router (:mod:`tui.router.ondemand`) every half second
ROUTER_FILE = "router.json"
#: a run file not rewritten for this long is a router that is gone (or hung)
ROUTER_STALE_S = 10.0


def read_router(run_dir, now: float | None = None) -> dict | None:
    """The running router's run file, or None when no router runs (no file, its pid gone, or
    not rewritten for :data:`ROUTER_STALE_S`)."""
    import os
    import time
    from pathlib import Path

    from tui.core import runfiles

    data = runfiles.read_json(Path(run_dir) / ROUTER_FILE)
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
        return None
    try:
        os.kill(data["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    now = time.time() if now is None else now
    if not isinstance(data.get("updated_at"), (int, float)) or now - data["updated_at"] > ROUTER_STALE_S:
        return None
    return data


def status_fields(registry, router: dict | None, now: float | None = None) -> dict[str, dict]:
    """Per model, what ``status --json`` adds: ``on_demand``, ``ttl_s``, ``swap_group``,
    ``keep_loaded`` (the registry's), and from the router (None without one) ``last_request``,
    ``in_flight`` and ``unload_in_s`` (counted down from when the router wrote it)."""
    import time

    now = time.time() if now is None else now
    seen = (router or {}).get("models") or {}
    age = max(0.0, now - router["updated_at"]) if router else 0.0
    out = {}
    for name, m in registry.models.items():
        pol = policy(m, registry.settings)
        r = seen.get(name) if isinstance(seen.get(name), dict) else {}
        left = r.get("unload_in_s")
        out[name] = {**pol.to_json(), "last_request": r.get("last_request"), "in_flight": r.get("in_flight"),
                     "unload_in_s": max(0.0, round(left - age, 1)) if isinstance(left, (int, float)) else None}
    return out


def clock(seconds: float) -> str:
    """``4:32`` (``1:02:03`` past an hour)."""
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def note(fields: dict, router_running: bool) -> str:
    """The status/TUI note of one model's on-demand side: ``unloads in 4:32``, ``2 in flight``,
    ``on demand``, ``kept loaded``; "" when none applies."""
    parts = []
    if fields.get("in_flight"):
        parts.append(f"{fields['in_flight']} in flight")
    if fields.get("unload_in_s") is not None:
        parts.append(f"unloads in {clock(fields['unload_in_s'])}")
    elif fields.get("keep_loaded"):
        parts.append("kept loaded")
    if fields.get("on_demand") and not parts:
        parts.append("on demand" + ("" if router_running else " (no router)"))
    return ", ".join(parts)


# --- a start by hand (CLI, TUI) ----------------------------------------------------------------

def stop_group_for(registry, name: str, on_stop=None) -> list[str]:
    """Before a start by hand: stop the others of ``name``'s ``swap_group`` that run, and
    return them. Refused (``SupervisorError``, nothing stopped) when one is ``keep_loaded``
    (only a person stops it, by name) or has requests in flight through a running router (a
    request is never cut). ``on_stop(name)`` is called before each stop."""
    from tui.core import supervisor

    model = registry.models.get(name)
    group = model.swap_group if model is not None else None
    if not group:
        return []
    others = [n for n, m in registry.models.items() if n != name and m.swap_group == group and m.engine != "external"]
    running = [n for n in others if supervisor.state_of(registry, n, probe=False).running]
    seen = (read_router(registry.run_dir) or {}).get("models") or {}
    for n in running:
        if registry.models[n].keep_loaded:
            raise supervisor.SupervisorError(f"model '{name}' shares swap_group {group} with '{n}', which is "
                                             f"keep_loaded and running: stop it first ('llmdeck stop {n}')")
        busy = (seen.get(n) or {}).get("in_flight") if isinstance(seen.get(n), dict) else None
        if busy:
            raise supervisor.SupervisorError(f"model '{name}' shares swap_group {group} with '{n}', which has {busy} "
                                             "request(s) in flight through the router: retry when they have ended")
    for n in running:
        if on_stop is not None:
            on_stop(n)
        supervisor.stop(registry, n)
    return running
