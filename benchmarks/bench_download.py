"""Download throughput: llmdeck's transfer vs curl, same file, same local Hub server, same run.

    .venv/bin/python benchmarks/bench_download.py [--mib 256] [--rounds 7]

The local Hub server (tests/hubserver.py) runs in its own process, so it shares neither a
GIL nor a CPU account with the client being measured. It answers ``/resolve`` with a 302 to a
second origin and serves the bytes with ``sendfile``, so both clients pay for a redirect and
then read as fast as they can. curl writes the file (``-L -o``). llmdeck does what a user's
download does: HEAD for the location, GET, write, sha256 of every byte, fsync, verify,
rename; so ``curl && sha256sum`` (the same guarantee) is timed as a second baseline.
Planning (the listing calls) is not timed: curl has no equivalent.

Each round runs both back to back, alternating which goes first. The headline compares
medians over the rounds (on a shared machine one disturbed round can halve a figure); the
median of per-round ratios and the CPU seconds each client used (user+sys, which other
load does not inflate much) are printed too. Target: llmdeck ≥ 90% of curl.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hubserver import write_gguf  # noqa: E402

from tui.core import registry  # noqa: E402
from tui.core.downloads import Download, make_plan  # noqa: E402

SERVER = ("import sys, time; sys.path.insert(0, {tests!r}); from pathlib import Path; "
          "from hubserver import HubServer; s = HubServer(Path({root!r})).start(); "
          "print(s.port, flush=True); sys.stdin.read()")


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256, help="file size in MiB (default 256)")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    curl = shutil.which("curl")
    sha256sum = shutil.which("sha256sum")
    if not curl:
        print("curl not found: install it (apt-get install curl) to run this benchmark", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="llmdeck-bench-dl-"))
    server = None
    try:
        size = args.mib << 20
        repo = work / "hub" / "bench" / "Bench-GGUF"
        fpath = "Q4_K_M/Bench-Q4_K_M.gguf"
        write_gguf(repo / fpath, {"general.architecture": "llama"}, [("w", (size // 4,), 0, os.urandom(size))])
        real_size = (repo / fpath).stat().st_size
        reg_path = work / "models.json"
        reg_path.write_text(json.dumps({"settings": {"models_dir": str(work / "models")}, "models": {
            "bench": {"repo_id": "bench/Bench-GGUF", "default_quant": "Q4_K_M", "quants": {"Q4_K_M": {}}}}}))
        server = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=str(ROOT / "tests"),
                                                                       root=str(work / "hub"))],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline())
        endpoint = f"http://127.0.0.1:{port}"
        url = f"{endpoint}/bench/Bench-GGUF/resolve/main/{fpath}"
        reg = registry.load(reg_path)
        model = reg.get("bench")
        version = subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split()[1]
        print(f"file: {real_size / 2**20:.0f} MiB from a local Hub server ({endpoint}, content via "
              f"http://localhost:{port}, own process); {os.cpu_count()} CPUs; curl {version}")
        curl_s, ours_s, curl_sha_s, curl_cpu, ours_cpu = [], [], [], [], []

        def run_curl() -> None:
            out = work / "curl.out"
            c0, t = cpu_children(), time.perf_counter()
            subprocess.run([curl, "-sS", "-f", "-L", "-o", str(out), url], check=True)
            curl_s.append(time.perf_counter() - t)
            curl_cpu.append(cpu_children() - c0)
            assert out.stat().st_size == real_size
            if sha256sum:  # what curl needs to give the same guarantee
                subprocess.run([sha256sum, str(out)], check=True, capture_output=True)
                curl_sha_s.append(time.perf_counter() - t)
            out.unlink()

        def run_ours() -> None:
            shutil.rmtree(work / "models", ignore_errors=True)
            plan = make_plan(reg, model, endpoint=endpoint, token="", read_header=False)
            c0, t = cpu_self(), time.perf_counter()
            res = Download(plan, token="", workers=1).run()
            ours_s.append(time.perf_counter() - t)
            ours_cpu.append(cpu_self() - c0)
            assert res.ok and res.bytes_fetched == real_size, res

        for i in range(1, args.rounds + 1):
            for fn in ((run_curl, run_ours) if i % 2 else (run_ours, run_curl)):
                fn()
            print(f"round {i}: curl {real_size / curl_s[-1] / 1e6:7.1f} MB/s ({curl_cpu[-1]:.2f} CPU-s)   "
                  f"llmdeck {real_size / ours_s[-1] / 1e6:7.1f} MB/s ({ours_cpu[-1]:.2f} CPU-s, verified)   "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)

        def mb(secs: float) -> float:
            return real_size / secs / 1e6

        med_curl, med_ours = mb(statistics.median(curl_s)), mb(statistics.median(ours_s))
        ratio = med_ours / med_curl
        pair = statistics.median(c / o for c, o in zip(curl_s, ours_s))
        print(f"best:   curl {mb(min(curl_s)):7.1f} MB/s   llmdeck {mb(min(ours_s)):7.1f} MB/s   "
              f"({min(curl_s) / min(ours_s):.0%})")
        print(f"median: curl {med_curl:7.1f} MB/s   llmdeck {med_ours:7.1f} MB/s   → {ratio:.0%} of curl "
              f"(target ≥ 90%: {'met' if ratio >= 0.9 else 'NOT met'}); median of per-round ratios {pair:.0%}")
        print(f"CPU per GB: curl {statistics.median(curl_cpu) / real_size * 1e9:.2f} s, "
              f"llmdeck {statistics.median(ours_cpu) / real_size * 1e9:.2f} s (sha256 included)")
        if curl_sha_s:
            med_cs = mb(statistics.median(curl_sha_s))
            print(f"median: curl + sha256sum (the same guarantee) {med_cs:7.1f} MB/s → llmdeck is "
                  f"{med_ours / med_cs:.0%} of it")
        return 0
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
