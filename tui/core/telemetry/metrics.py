"""A server's own figures: Prometheus ``/metrics`` and llama-server's ``/slots``.

**Only the sampler should scrape.** llama-server's ``/metrics`` gauges average the window
between two scrapes and every scrape resets them (protocol note, section 5), so a second
scraper would halve the window of the first. Everything else (TUI, CLI) reads the sampler's
snapshots.

Both endpoints are optional: an endpoint that is switched off (501, or 404 on engines that
do not have it) is the state ``off`` and is probed again only every ``reprobe_s``; a
refused API key is ``auth``; 503 is ``loading``; no answer is ``unreachable``. Figures not
available are None and shown as n/a.

Names are read for llama.cpp (``llamacpp:``), vLLM (``vllm:``) and SGLang (``sglang:``), the
first present wins; every metric is optional.

Generation throughput (``tokens_per_s``): llama-server adds a request's generated tokens to
``llamacpp:tokens_predicted_total`` only when the request ends, so that counter alone jumps
at the end of each request. ``/slots`` shows the tokens decoded so far by each busy slot
(``next_token[0].n_decoded``), and the server moves them into the counter in the same step
that frees the slot. So "counter + tokens in flight" grows smoothly, and its rate between two
samples is the live throughput of all requests together. With ``/slots`` alone, per-slot
deltas are used (the tail of a request that ends between two samples is lost); with
``/metrics`` alone, the counter's rate (vLLM and SGLang counters are live).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

GEN_COUNTERS = ("llamacpp:tokens_predicted_total", "vllm:generation_tokens_total",
                "sglang:generation_tokens_total")
PROMPT_COUNTERS = ("llamacpp:prompt_tokens_total", "vllm:prompt_tokens_total", "sglang:prompt_tokens_total")
RUNNING = ("llamacpp:requests_processing", "vllm:num_requests_running", "sglang:num_running_reqs")
WAITING = ("llamacpp:requests_deferred", "vllm:num_requests_waiting", "sglang:num_queue_reqs")
#: KV-cache use as a 0–1 fraction; llama.cpp dropped kv_cache_usage_ratio in 2025 builds
KV_USAGE = ("llamacpp:kv_cache_usage_ratio", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
            "sglang:token_usage")


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text format → {metric name: value}; label sets of one name are summed.

    Histogram buckets and ``_created`` series are skipped; unparsable lines are ignored.
    """
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace >= 0:
            name = line[:brace]
            close = line.rfind("}")
            if close < brace:
                continue
            rest = line[close + 1:]
        else:
            name, _, rest = line.partition(" ")
        parts = rest.split()
        if not parts or name.endswith(("_bucket", "_created")):
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        out[name] = out.get(name, 0.0) + value
    return out


def _first(m: Mapping[str, float], names: tuple[str, ...]) -> float | None:
    for n in names:
        v = m.get(n)
        if v is not None and v == v:  # not NaN
            return v
    return None


@dataclass(frozen=True)
class SlotInfo:
    id: int
    processing: bool
    id_task: int | None
    n_decoded: int  # tokens generated so far by the current (or last) task
    n_ctx: int | None


def parse_slots(data) -> list[SlotInfo]:
    """``/slots`` JSON → slots. ``next_token`` is an array in new builds, an object in old."""
    if not isinstance(data, list):
        raise ValueError("/slots did not answer a JSON list")
    out = []
    for s in data:
        if not isinstance(s, dict):
            continue
        nt = s.get("next_token")
        if isinstance(nt, list):
            nt = nt[0] if nt else {}
        n_dec = nt.get("n_decoded", 0) if isinstance(nt, dict) else 0
        proc = s.get("is_processing")
        if proc is None:  # very old builds: state 0 idle, 1 processing
            proc = s.get("state", 0) != 0
        out.append(SlotInfo(int(s.get("id", len(out))), bool(proc), s.get("id_task"),
                            int(n_dec or 0), s.get("n_ctx")))
    return out


@dataclass(frozen=True)
class ServerStats:
    """One scrape of one server. Endpoint states: ok, off, auth, loading, unreachable, error."""

    metrics: str = "skipped"
    slots: str = "skipped"
    tokens_per_s: float | None = None  # generated tokens/s, all requests together
    prompt_tokens_per_s: float | None = None  # prompt tokens processed/s (excluding cache)
    requests_processing: int | None = None
    requests_deferred: int | None = None
    kv_cache_usage: float | None = None  # 0–1
    busy_slots: int | None = None
    total_slots: int | None = None
    note: str | None = None  # one line on what is n/a and why
    raw: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


def origin_of(url: str) -> str:
    """``http://h:p/v1`` → ``http://h:p`` (where llama-server's /metrics and /slots live)."""
    u = urlsplit(url)
    return f"{u.scheme or 'http'}://{u.netloc}" if u.netloc else url.rstrip("/")


_OFF_HINT = {
    "metrics": "metrics off (start llama-server with --metrics)",
    "slots": "slots off",
}


def _state_of(probe) -> tuple[str, str | None]:
    if probe.status is None:
        return "unreachable", probe.error
    if probe.status == 200:
        return "ok", None
    if probe.status in (404, 501):
        return "off", None
    if probe.status in (401, 403):
        return "auth", "API key refused"
    if probe.status == 503:
        return "loading", None
    return "error", f"HTTP {probe.status}"


class ServerScraper:
    """Scrapes one server each call of :meth:`scrape`, keeping what rates need between calls."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 0.5,
                 reprobe_s: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 get: Callable | None = None) -> None:
        self.origin = origin_of(base_url)
        self.api_key = api_key
        self.timeout = timeout
        self.reprobe_s = reprobe_s
        self.clock = clock
        if get is None:
            from tui.core import health

            get = health.get
        self._get = get
        self._off_until = {"metrics": -1.0, "slots": -1.0}
        self._last_state = {"metrics": "skipped", "slots": "skipped"}
        self._prev: dict[str, tuple[float, float, float | None]] = {}  # series → (time, value, counter)
        self._prev_slots: dict[int, tuple[int | None, int]] = {}  # slot → (id_task, n_decoded)
        self._prev_slot_t: float | None = None
        self._used: set[str] = set()

    def _fetch(self, what: str):
        now = self.clock()
        if self._last_state[what] == "off" and now < self._off_until[what]:
            return "off", None, None
        probe = self._get(f"{self.origin}/{what}", api_key=self.api_key, timeout=self.timeout)
        state, why = _state_of(probe)
        self._last_state[what] = state
        if state == "off":
            self._off_until[what] = now + self.reprobe_s
        return state, why, probe.body if state == "ok" else None

    def _rate(self, key: str, now: float, value: float | None, counter: float | None = None) -> float | None:
        """Per-second rate of a cumulative value since the last call; None on the first or a reset.

        ``counter`` is the server's own counter inside ``value`` ("counter + tokens in flight"):
        only its going down means a restart. The sum itself can dip for one sample when a
        request ends between the /metrics and the /slots read (its tokens are in neither),
        so the baseline is a high-water mark: the dip gives 0, the next sample catches up,
        and the rates still add up to the tokens generated.
        """
        if value is None:
            self._prev.pop(key, None)
            return None
        self._used.add(key)
        prev = self._prev.get(key)
        restarted = prev is not None and (counter < prev[2] if counter is not None else value < prev[1])
        if prev is None or restarted:
            self._prev[key] = (now, value, counter)
            return None
        if now <= prev[0]:
            return None
        high = max(prev[1], value)
        self._prev[key] = (now, high, counter)
        return (high - prev[1]) / (now - prev[0])

    def scrape(self) -> ServerStats:
        notes: list[str] = []
        m_state, m_why, body = self._fetch("metrics")
        m: dict[str, float] = {}
        if body is not None:
            try:
                m = parse_prometheus(body.decode("utf-8", "replace"))
            except Exception as exc:  # noqa: BLE001 — a broken exposition is an n/a, not a crash
                m_state, m_why = "error", f"unreadable /metrics ({type(exc).__name__})"
        # a scrape of a server that is down would only time out twice: skip /slots then
        if m_state == "unreachable":
            s_state, s_why, sbody = "skipped", None, None
        else:
            s_state, s_why, sbody = self._fetch("slots")
        slots: list[SlotInfo] | None = None
        if sbody is not None:
            try:
                slots = parse_slots(json.loads(sbody))
            except (ValueError, TypeError, AttributeError) as exc:
                s_state, s_why = "error", f"unreadable /slots ({type(exc).__name__})"
        now = self.clock()

        if m_state == "off":
            notes.append(_OFF_HINT["metrics"])
        elif m_state != "ok":
            notes.append(f"/metrics {m_state}" + (f": {m_why}" if m_why else ""))
        if s_state not in ("ok", "off", "skipped"):
            notes.append(f"/slots {s_state}" + (f": {s_why}" if s_why else ""))

        counter = _first(m, GEN_COUNTERS) if m_state == "ok" else None
        in_flight = sum(s.n_decoded for s in slots if s.processing) if slots is not None else None
        if counter is not None and in_flight is not None and m.get("llamacpp:tokens_predicted_total") is not None:
            tps = self._rate("gen+slots", now, counter + in_flight, counter)
        elif counter is not None:
            tps = self._rate("gen", now, counter)
        elif slots is not None:
            tps = self._slot_rate(slots, now)
        else:
            tps = None
        if slots is not None:
            self._prev_slots = {s.id: (s.id_task, s.n_decoded) for s in slots}
            self._prev_slot_t = now
        else:
            self._prev_slot_t = None
        pps = self._rate("prompt", now, _first(m, PROMPT_COUNTERS) if m_state == "ok" else None)
        for key in self._prev.keys() - self._used:  # a series not read this time starts afresh
            del self._prev[key]
        self._used.clear()

        running = _first(m, RUNNING)
        waiting = _first(m, WAITING)
        busy = sum(1 for s in slots if s.processing) if slots is not None else None
        if running is None and busy is not None:
            running = busy
        return ServerStats(
            metrics=m_state, slots=s_state,
            tokens_per_s=tps, prompt_tokens_per_s=pps,
            requests_processing=int(running) if running is not None else None,
            requests_deferred=int(waiting) if waiting is not None else None,
            kv_cache_usage=_first(m, KV_USAGE),
            busy_slots=busy, total_slots=len(slots) if slots is not None else None,
            note="; ".join(notes) or None, raw=MappingProxyType(m),
        )

    def _slot_rate(self, slots: list[SlotInfo], now: float) -> float | None:
        prev_t = self._prev_slot_t
        if prev_t is None or now <= prev_t:
            return None
        total = 0
        for s in slots:
            task, n = self._prev_slots.get(s.id, (None, 0))
            if s.id_task is not None and s.id_task == task:
                total += max(0, s.n_decoded - n)
            elif s.processing:  # a task that began since the last sample
                total += s.n_decoded
        return total / (now - prev_t)
