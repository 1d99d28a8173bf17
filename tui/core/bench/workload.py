"""Workloads: how requests are sent over time.

* ``burst`` — every request is sent at once at t=0 (the seed table's "burst" row).
* ``concurrency=N`` — a closed loop: exactly N requests in flight until all are done (the seed's
  "high-conc (512)" row is ``concurrency=512``).
* ``rate=R`` — an open loop: requests arrive as a Poisson process at R requests per second,
  whatever the server's speed (the seed's "10 req/s" and "5 req/s" rows). Gaps are drawn from
  an exponential distribution with a seeded generator, so a run is reproducible; this is also
  what vLLM's ``benchmark_serving --request-rate`` does.
* ``seed`` (CLI shorthand) — the seed table's four rows in order: burst, concurrency=512, rate=10,
  rate=5.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = ("burst", "concurrency", "rate")
SEED_SUITE = ("burst", "concurrency=512", "rate=10", "rate=5")


class WorkloadError(ValueError):
    """A workload spec that cannot be parsed; the message says what is accepted."""


@dataclass(frozen=True)
class Workload:
    kind: str  # one of KINDS
    value: float | None = None  # N for concurrency, R (req/s) for rate

    @classmethod
    def parse(cls, text: str) -> "Workload":
        t = text.strip().lower()
        if t == "burst":
            return cls("burst")
        kind, sep, val = t.partition("=")
        if not sep or kind not in ("concurrency", "rate"):
            raise WorkloadError(f"unknown workload '{text}': use burst, concurrency=N or rate=R "
                                "(requests per second), or seed for the seed table's four")
        try:
            num = float(val)
        except ValueError:
            raise WorkloadError(f"workload '{text}': '{val}' is not a number") from None
        if kind == "concurrency":
            if num != int(num) or num < 1:
                raise WorkloadError(f"workload '{text}': concurrency must be a whole number of 1 or more")
            return cls("concurrency", int(num))
        if not num > 0 or num == float("inf"):
            raise WorkloadError(f"workload '{text}': rate must be a positive number of requests per second")
        return cls("rate", num)

    @property
    def label(self) -> str:
        """The spec as typed: ``burst``, ``concurrency=512``, ``rate=10``."""
        if self.kind == "burst":
            return "burst"
        return f"{self.kind}={_num(self.value)}"

    @property
    def title(self) -> str:
        """The table row name, after the seed: ``burst``, ``concurrency (512)``, ``rate (10 req/s)``."""
        if self.kind == "burst":
            return "burst"
        if self.kind == "concurrency":
            return f"concurrency ({_num(self.value)})"
        return f"rate ({_num(self.value)} req/s)"

    def arrivals(self, n: int, seed: int = 0) -> list[float]:
        """Send offsets in seconds from the start for ``rate``; all zeros for ``burst``.

        ``concurrency`` has no schedule (a request leaves when another finishes): empty list.
        """
        if self.kind == "burst":
            return [0.0] * n
        if self.kind == "concurrency":
            return []
        rng = random.Random(f"rate:{seed}")
        t, out = 0.0, []
        for _ in range(n):
            out.append(t)
            t += rng.expovariate(float(self.value))
        return out


def parse_many(specs: list[str] | None) -> list[Workload]:
    """CLI ``--workload`` values (``seed`` expands to the seed table's four); default burst."""
    out: list[Workload] = []
    for s in specs or ["burst"]:
        if s.strip().lower() == "seed":
            out.extend(Workload.parse(x) for x in SEED_SUITE)
        else:
            out.append(Workload.parse(s))
    return out


def _num(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
