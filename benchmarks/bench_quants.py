"""Listing a Hub repo's quants: concurrent header reads vs one after another, same run.

    .venv/bin/python benchmarks/bench_quants.py [--quants 30] [--delay-ms 50] [--rounds 5]

A local Hub server (tests/hubsearch.py, in its own process) holds a repo with ``--quants``
folder quants of 2 shards each and adds ``--delay-ms`` to every request, like a distant Hub.
``llmdeck quants`` needs 2 requests to pin the commit and list the repo, then per quant a
HEAD on ``/resolve`` and a ``Range`` GET of shard 1's header. Timed: ``quants.quant_table``
with no header cache (a cold listing), with the default worker count (the baseline, in the
same run, is the same call with one worker: the serial time). Medians over the rounds.
Target: 30 quants at 50 ms per request in ≤ 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hubsearch import populate_many  # noqa: E402

SERVER = ("import sys; sys.path.insert(0, {tests!r}); from pathlib import Path; "
          "from hubsearch import SearchHubServer; s = SearchHubServer(Path({root!r})).start(); "
          "s.delay = {delay}; print(s.port, flush=True); sys.stdin.read()")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quants", type=int, default=30)
    ap.add_argument("--delay-ms", type=float, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target", type=float, default=1.0, help="seconds (default 1.0)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hub"
        repo = populate_many(root, args.quants)
        srv = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=str(ROOT / "tests"), root=str(root),
                                                                    delay=args.delay_ms / 1000)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            port = int(srv.stdout.readline())
            os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
            os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
            from tui.core import memfit
            from tui.core.downloads import quants

            mach = memfit.machine()
            quants.quant_table(repo, token="", cache=False, machine=mach, headers=False)  # imports, connections

            def once(workers: int) -> float:
                t0 = time.perf_counter()
                t = quants.quant_table(repo, token="", cache=False, machine=mach, workers=workers)
                dt = time.perf_counter() - t0
                assert len(t.quants) == args.quants and all(r.header is not None for r in t.quants), \
                    [r.header_error for r in t.quants if r.header is None][:3]
                return dt

            conc, serial = [], []
            for i in range(args.rounds):
                order = [(conc, quants.HEADER_WORKERS), (serial, 1)]
                for bucket, w in (order if i % 2 == 0 else order[::-1]):
                    bucket.append(once(w))
            with tempfile.TemporaryDirectory() as cdir:
                quants.quant_table(repo, token="", cache=Path(cdir), machine=mach)
                t0 = time.perf_counter()
                quants.quant_table(repo, token="", cache=Path(cdir), machine=mach)
                cached = time.perf_counter() - t0
        finally:
            srv.stdin.close()
            srv.wait(timeout=10)
    c, s = statistics.median(conc), statistics.median(serial)
    req = args.delay_ms / 1000
    print(f"repo with {args.quants} quants, {args.delay_ms:.0f} ms added per request, {args.rounds} rounds (median)")
    print(f"  concurrent ({quants.HEADER_WORKERS} workers): {c:.3f} s   (min {min(conc):.3f}, max {max(conc):.3f})")
    print(f"  serial (1 worker, baseline): {s:.3f} s   (min {min(serial):.3f}, max {max(serial):.3f})")
    print(f"  speed-up {s / c:.1f}x; cached headers (second listing of the same commit): {cached:.3f} s")
    print(f"  floor: 4 requests in a row = {4 * req:.3f} s")
    ok = c <= args.target
    print(f"target ≤ {args.target:.1f} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
