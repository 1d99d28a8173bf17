"""The GPU check: llmdeck's per-model VRAM and GPU gauges against nvidia-smi, on a real GPU.

Run by ``scripts/gpu-check.sh run`` on a machine with an NVIDIA GPU (no internet needed):

1. writes a random-weight llama GGUF with the gguf-py of the carried llama.cpp source
   (tokenizer copied from ``models/ggml-vocab-llama-spm.gguf``; ~1.1 GB of f16 weights);
2. starts it through llmdeck (``llmdeck --registry … start gpu-a --wait``) with
   ``n_gpu_layers`` 99, using the CUDA llama-server built by the shell script;
3. compares ``llmdeck status --json`` (per-model VRAM) with ``nvidia-smi
   --query-compute-apps=pid,used_memory`` for the server's PID (must agree within 1 %), and
   ``llmdeck gpus --json`` with ``nvidia-smi --query-gpu=…`` (name, UUID, memory, power,
   temperature, utilisation, within the tolerances printed);
4. starts a second model, runs the sampler for a few seconds while one model generates
   (live tokens/s, per-model VRAM/RSS, GPU utilisation), times ``llmdeck status``;
5. runs ``benchmarks/bench_sampler.py`` against the two running models, stops both;
6. the on-demand swap scenario (issue 16; ``--swap only`` runs it alone): three ~59 GB llama
   GGUFs of zero weights written as sparse files (the tensor data is a hole: no disk used), all
   ``on_demand``, no memory limit, one GPU; ``llmdeck serve`` gets a request for each in turn; the
   third start must stop the least recently used, and the free VRAM the router decided on
   (``memory`` in its events, ``run/router.json``) must equal nvidia-smi's ``memory.free`` read
   just before each request (±64 MiB: nothing runs or loads in between).

Prints a report and writes it to ``<out>/gpu-check-report.txt``. Exit 0 when every check passed.
``--tiny`` writes a small model instead (a CPU smoke test of the script itself).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT: list[str] = []
FAILED: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    REPORT.append(line)


def check(name: str, ok: bool, detail: str) -> None:
    say(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    if not ok:
        FAILED.append(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llmdeck(reg: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui", "--registry", str(reg), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


# -- 1. the model ---------------------------------------------------------------------------

def llama_writer(gguf, vocab, path: Path, name: str, n_layer: int, n_embd: int, n_ff: int, n_head: int,
                 n_head_kv: int):
    """A GGUFWriter for an f16 llama model of this shape, its metadata and the tokenizer of
    ``vocab`` (llama.cpp's llama-spm vocab GGUF) written in; the caller adds the tensors."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(4096)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for key, field in vocab.fields.items():
        if key.startswith("tokenizer."):
            vtype = field.types[0]
            if vtype == gguf.GGUFValueType.ARRAY:
                w.add_key_value(key, field.contents(), vtype, sub_type=field.types[-1])
            else:
                w.add_key_value(key, field.contents(), vtype)
    return w


def write_model(src: Path, path: Path, tiny: bool) -> dict:
    sys.path.insert(0, str(src / "gguf-py"))
    import numpy as np

    import gguf

    if tiny:
        n_embd, n_layer, n_ff, n_head = 256, 2, 512, 4
    else:  # 2·32000·2048 + 8·(4·2048² + 3·2048·5632) ≈ 542 M parameters ≈ 1.08 GB of f16
        n_embd, n_layer, n_ff, n_head = 2048, 8, 5632, 16
    vocab = gguf.GGUFReader(src / "models" / "ggml-vocab-llama-spm.gguf")
    n_vocab = len(vocab.fields["tokenizer.ggml.tokens"].data)
    w = llama_writer(gguf, vocab, path, "llmdeck-gpu-check-random", n_layer, n_embd, n_ff, n_head, n_head)
    rng = np.random.default_rng(0)

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", rand(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", ones(n_embd))
    w.add_tensor("output.weight", rand(n_vocab, n_embd))
    for i in range(n_layer):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", ones(n_embd))
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(b + t + ".weight", rand(n_embd, n_embd))
        w.add_tensor(b + "ffn_norm.weight", ones(n_embd))
        w.add_tensor(b + "ffn_gate.weight", rand(n_ff, n_embd))
        w.add_tensor(b + "ffn_up.weight", rand(n_ff, n_embd))
        w.add_tensor(b + "ffn_down.weight", rand(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"n_vocab": n_vocab, "n_embd": n_embd, "n_layer": n_layer, "n_ff": n_ff,
            "bytes": path.stat().st_size}


# -- nvidia-smi -----------------------------------------------------------------------------

def smi(*query: str) -> list[list[str]]:
    out = subprocess.run(["nvidia-smi", *query, "--format=csv,noheader,nounits"], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"nvidia-smi {' '.join(query)} failed: {out.stderr.strip() or out.stdout.strip()}")
    return [[c.strip() for c in line.split(",")] for line in out.stdout.strip().splitlines() if line.strip()]


def smi_apps_by_gpu() -> dict[tuple[int, int], int]:
    """(GPU index, pid) -> MiB; a process on several GPUs (a split model) has a row per GPU."""
    index = {uuid: int(i) for i, uuid in smi("--query-gpu=index,uuid")}
    out: dict[tuple[int, int], int] = {}
    for uuid, pid, used in smi("--query-compute-apps=gpu_uuid,pid,used_memory"):
        key = (index[uuid], int(pid))
        out[key] = out.get(key, 0) + int(used)
    return out


def smi_apps() -> dict[int, int]:
    """pid -> MiB summed over every GPU."""
    out: dict[int, int] = {}
    for (_, pid), used in smi_apps_by_gpu().items():
        out[pid] = out.get(pid, 0) + used
    return out


GPU_FIELDS = "index,name,uuid,memory.used,memory.total,utilization.gpu,temperature.gpu,power.draw,power.limit"


def num(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


MiB = 1 << 20
GiB = 1 << 30


def mib(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v / MiB:.{digits}f}"


def compare_gauges(ours: dict, theirs: list[str]) -> None:
    idx, name, uuid, used, total, util, temp, power, limit = theirs
    g = ours
    i = g["index"]
    check(f"gpu{i} name", g["name"] == name, f"llmdeck {g['name']!r} / nvidia-smi {name!r}")
    check(f"gpu{i} uuid", g["uuid"] == uuid, f"llmdeck {g['uuid']} / nvidia-smi {uuid}")
    t = g["memory_total_bytes"] / MiB
    check(f"gpu{i} memory.total", abs(t - float(total)) <= 1, f"llmdeck {t:.1f} MiB / nvidia-smi {total} MiB")
    u = g["memory_used_bytes"] / MiB
    tol = max(8.0, 0.01 * float(used))
    check(f"gpu{i} memory.used", abs(u - float(used)) <= tol,
          f"llmdeck {u:.1f} MiB / nvidia-smi {used} MiB (tolerance {tol:.0f} MiB: read a moment apart)")
    if num(util) is not None and g["utilization_percent"] is not None:
        check(f"gpu{i} utilization", abs(g["utilization_percent"] - float(util)) <= 15,
              f"llmdeck {g['utilization_percent']} % / nvidia-smi {util} % (±15: sampled at different instants)")
    else:
        check(f"gpu{i} utilization", (num(util) is None) == (g["utilization_percent"] is None),
              f"llmdeck {g['utilization_percent']} / nvidia-smi {util} (both n/a)")
    check(f"gpu{i} temperature", abs(g["temperature_c"] - float(temp)) <= 2,
          f"llmdeck {g['temperature_c']} °C / nvidia-smi {temp} °C (±2)")
    p = g["power_w"]
    check(f"gpu{i} power.draw", abs(p - float(power)) <= max(10.0, 0.1 * float(power)),
          f"llmdeck {p:.1f} W / nvidia-smi {power} W (±10 % or 10 W: instantaneous)")
    lim = g["power_limit_w"]
    check(f"gpu{i} power.limit", abs(lim - float(limit)) <= 1, f"llmdeck {lim:.1f} W / nvidia-smi {limit} W")


def chat_load(base: str, stop: threading.Event) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "Count."}], "max_tokens": 256,
                       "ignore_eos": True}).encode()
    while not stop.is_set():
        req = urllib.request.Request(base + "/v1/chat/completions", body, {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=60).read()
        except OSError:
            time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, type=Path, help="the llama.cpp source tree (for gguf-py, vocab)")
    ap.add_argument("--binary", required=True, type=Path, help="the llama-server to run")
    ap.add_argument("--out", required=True, type=Path, help="where the report goes")
    ap.add_argument("--work", type=Path, default=Path("/tmp/llmdeck-gpu-check"))
    ap.add_argument("--tiny", action="store_true", help="a small model (smoke test without a GPU)")
    ap.add_argument("--ngl", type=int, default=99)
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--swap", choices=("yes", "no", "only"), default="yes",
                    help="the on-demand swap scenario (three ~60 GB zero-weight models): after the other "
                         "checks, not at all, or alone")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))

    say("== llmdeck GPU check ==")
    gpu = shutil.which("nvidia-smi") is not None
    n_gpus = 0
    if gpu:
        for line in subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.splitlines():
            say(line)
            n_gpus += line.startswith("GPU ")
    if a.swap == "only":
        try:
            step(swap_checks, a, gpu)
        finally:
            (a.out / "gpu-check-report.txt").write_text("\n".join(REPORT) + "\n")
        say(f"== {'ALL CHECKS PASSED' if not FAILED else 'FAILED: ' + ', '.join(FAILED)} ==")
        (a.out / "gpu-check-report.txt").write_text("\n".join(REPORT) + "\n")
        return 0 if not FAILED else 1
    t = time.monotonic()
    gguf_path = a.work / ("random-llama-tiny.gguf" if a.tiny else "random-llama-1b.gguf")
    info = write_model(a.src, gguf_path, a.tiny)
    say(f"model: {gguf_path.name}, {info['bytes'] / MiB:.0f} MiB, n_vocab {info['n_vocab']}, n_embd "
        f"{info['n_embd']}, n_layer {info['n_layer']}, n_ff {info['n_ff']} (written in {time.monotonic() - t:.1f} s)")

    reg = a.work / "models.json"
    models = {name: {"model_path": str(gguf_path), "alias": name, "default_port": free_port(),
                     "params": {"n_gpu_layers": a.ngl, "ctx_size": 4096, "parallel": 2, "threads": 4}}
              for name in ("gpu-a", "gpu-b")}
    if n_gpus >= 2:
        # several GPUs: gpu-a is split over all of them (llama-server's default layer split),
        # gpu-b is pinned to the last one, so the per-GPU attribution of both is checked
        models["gpu-b"]["env"] = {"CUDA_VISIBLE_DEVICES": str(n_gpus - 1)}
        say(f"{n_gpus} GPUs: gpu-a split over all of them, gpu-b on GPU {n_gpus - 1} only")
    reg.write_text(json.dumps({"settings": {"llama_server": str(a.binary), "stop_grace_s": 10},
                               "models": models}, indent=2))
    try:
        return run_checks(a, reg, gpu, n_gpus)
    except Exception as exc:  # report what broke, keep the report and logs
        import traceback

        check("the check itself", False, f"{type(exc).__name__}: {exc}")
        for line in traceback.format_exc().splitlines()[-12:]:
            say("  " + line)
        return 1
    finally:
        r = llmdeck(reg, "stop", "--all", timeout=60)
        say(f"stopped all: rc {r.returncode}")
        (a.out / "gpu-check-report.txt").write_text("\n".join(REPORT) + "\n")
        for name in ("gpu-a", "gpu-b"):
            log = a.work / "logs" / f"{name}.log"
            if log.exists():
                shutil.copy(log, a.out / f"{name}.log")


def step(fn, *args) -> None:
    """Run one group of checks; an exception is a FAIL with its last lines, and the rest still runs."""
    try:
        fn(*args)
    except Exception as exc:
        import traceback

        check(fn.__name__, False, f"{type(exc).__name__}: {exc}")
        for line in traceback.format_exc().splitlines()[-8:]:
            say("  " + line)


def run_checks(a, reg: Path, gpu: bool, n_gpus: int = 0) -> int:
    t = time.monotonic()
    r = llmdeck(reg, "start", "gpu-a", "--wait", "--timeout", "180")
    say(f"llmdeck start gpu-a --wait: rc {r.returncode} in {time.monotonic() - t:.1f} s; "
        f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
    if r.returncode != 0:
        check("start", False, r.stderr.strip()[-800:])
        return 1
    time.sleep(1.0)  # let allocations settle

    r = llmdeck(reg, "status", "--json")
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    a_row = rows["gpu-a"]
    pid, vram, rss = a_row["pid"], a_row.get("vram_bytes"), a_row.get("rss_bytes")
    say(f"llmdeck status: gpu-a {a_row['state']}, pid {pid}, VRAM {mib(vram)} MiB, "
        f"RSS {mib(rss)} MiB")
    if gpu:
        step(gpu_checks, reg, pid, vram)
    else:
        check("per-model VRAM without a GPU is n/a", vram is None, f"vram_bytes {vram}")
    walls = []
    for _ in range(5):
        t0 = time.perf_counter()
        llmdeck(reg, "status")
        walls.append(time.perf_counter() - t0)
    say(f"llmdeck status (1 running model, VRAM+RSS, interpreter start included): "
        f"min {1e3 * min(walls):.0f} ms, median {1e3 * sorted(walls)[2]:.0f} ms")
    step(sampler_checks, a, reg, gpu)
    if n_gpus >= 2:
        step(multi_gpu_checks, reg, n_gpus)
    if not a.no_bench:
        say("")
        say(f"== benchmarks/bench_sampler.py (2 running models{' on the GPU' if gpu else ''}) ==")
        r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_sampler.py"), "--registry", str(reg)],
                           capture_output=True, text=True, timeout=180, cwd=ROOT)
        for line in (r.stdout + r.stderr).strip().splitlines():
            say(line)
        check("bench_sampler target", r.returncode == 0, f"rc {r.returncode}")
    if a.swap == "yes":
        llmdeck(reg, "stop", "--all", timeout=60)  # the swap scenario wants the GPU to itself
        step(swap_checks, a, gpu)
    say("")
    say(f"== {'ALL CHECKS PASSED' if not FAILED else 'FAILED: ' + ', '.join(FAILED)} ==")
    return 0 if not FAILED else 1


def gpu_checks(reg: Path, pid: int, vram: int | None) -> None:
    from tui.core.telemetry.nvml import NvmlSource

    apps = smi_apps()
    say(f"nvidia-smi --query-compute-apps=pid,used_memory: {apps}")
    smi_mib = apps.get(pid)
    ok = smi_mib is not None and vram is not None and abs(vram / MiB - smi_mib) <= 0.01 * smi_mib
    check("per-model VRAM = nvidia-smi compute-apps (±1 %)", ok,
          f"llmdeck {mib(vram)} MiB / nvidia-smi {smi_mib} MiB for pid {pid}")

    # GPU gauges, idle (stable), llmdeck gpus --json vs nvidia-smi --query-gpu
    r = llmdeck(reg, "gpus", "--json")
    ours = json.loads(r.stdout)
    theirs = smi(f"--query-gpu={GPU_FIELDS}")
    check("llmdeck gpus state", ours["state"] == "ok" and r.returncode == 0,
          f"state {ours['state']}, driver {ours['driver']}, NVML {ours['nvml_version']}")
    for g, row in zip(ours["gpus"], theirs):
        try:
            compare_gauges(g, row)
        except (TypeError, ValueError, KeyError) as exc:  # a None where nvidia-smi has a number
            check(f"gpu{g.get('index')} gauges", False, f"{type(exc).__name__}: {exc}; llmdeck {g}; nvidia-smi {row}")
    procs = [p for g in ours["gpus"] for p in (g["processes"] or [])]
    mine = [p for p in procs if p["pid"] == pid]
    check("llmdeck gpus attributes the server to its model", bool(mine) and mine[0]["model"] == "gpu-a",
          f"{mine}")

    # free VRAM as memfit (the "will it fit" line) reads it, against nvidia-smi memory.free
    from tui.core import memfit

    mach = memfit.machine()
    smi_free = [float(row[0]) for row in smi("--query-gpu=memory.free")]
    ours_free = [x / MiB for x in (mach.gpu_free or ())]
    check("memfit free VRAM per GPU = nvidia-smi memory.free (±1 %)",
          len(ours_free) == len(smi_free) and all(abs(o - t) <= max(8.0, 0.01 * t) for o, t in zip(ours_free, smi_free)),
          f"llmdeck {[round(x, 1) for x in ours_free]} MiB / nvidia-smi {smi_free} MiB")
    r = llmdeck(reg, "start", "gpu-b", "--dry-run")
    line = next((x for x in r.stderr.splitlines() if "memory: " in x), "")
    check("start --dry-run says whether the model fits", "→ fits in VRAM" in line, line)

    # which NVML memory figure nvidia-smi shows (v1 includes reserved memory, v2 does not)
    import pynvml

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    v1 = pynvml.nvmlDeviceGetMemoryInfo(h)
    try:
        v2 = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
        say(f"NVML memory v1 used {v1.used / MiB:.1f} MiB; v2 used {v2.used / MiB:.1f} MiB, reserved "
            f"{v2.reserved / MiB:.1f} MiB; nvidia-smi memory.used {smi('--query-gpu=memory.used')[0][0]} MiB")
    except pynvml.NVMLError as exc:
        say(f"NVML memory v2 not available: {exc}")
    pynvml.nvmlShutdown()

    # costs: nvmlInit, one read, one nvidia-smi call, llmdeck status wall time
    src = NvmlSource()
    t0 = time.perf_counter()
    src.read()
    t1 = time.perf_counter()
    for _ in range(20):
        src.read()
    t2 = time.perf_counter()
    src.close()
    t3 = time.perf_counter()
    smi(f"--query-gpu={GPU_FIELDS}")
    t4 = time.perf_counter()
    say(f"NVML: init + first read {1e3 * (t1 - t0):.1f} ms, later read {1e3 * (t2 - t1) / 20:.2f} ms; "
        f"one nvidia-smi --query-gpu call {1e3 * (t4 - t3):.1f} ms")


def sampler_checks(a, reg: Path, gpu: bool) -> None:
    """A second model, then the sampler at 2 Hz while gpu-a generates."""
    from tui.core import registry as registry_mod
    from tui.core.telemetry.sampler import Sampler, supervisor_servers

    r = llmdeck(reg, "start", "gpu-b", "--wait", "--timeout", "180")
    check("second model starts", r.returncode == 0, (r.stderr.strip().splitlines() or [""])[-1])
    regobj = registry_mod.load(reg)
    base_a = f"http://127.0.0.1:{regobj.models['gpu-a'].default_port}"
    stop = threading.Event()
    load = threading.Thread(target=chat_load, args=(base_a, stop), daemon=True)
    load.start()
    sampler = Sampler(supervisor_servers(regobj), interval=0.5)
    snaps = []
    sampler.subscribe(snaps.append)
    sampler.start()
    time.sleep(5.0)
    sampler.stop()
    stop.set()
    s = snaps[-1]
    say(f"sampler: {len(snaps)} snapshots in 5 s at 2 Hz; last one:")
    for g in s.gpu.gpus:
        say(f"  GPU{g.index} {g.name}: {mib(g.mem_used, 0)}/{mib(g.mem_total, 0)} MiB, util {g.util_percent} %, "
            f"{g.temp_c} °C, {g.power_w}/{g.power_limit_w} W, processes (pid, MiB) "
            f"{[(p.pid, mib(p.used_bytes, 0)) for p in g.processes or ()]}")
    for m in s.models:
        u, st = m.usage, m.server
        say(f"  {m.name}: pid {m.pid}, VRAM {mib(u.vram_bytes, 0)} MiB, RSS "
            f"{mib(u.rss_bytes, 0)} MiB, CPU {u.cpu_percent} %, tokens/s "
            f"{st.tokens_per_s and round(st.tokens_per_s, 1)}, busy slots {st.busy_slots}/{st.total_slots}, "
            f"metrics {st.metrics}, slots {st.slots}")
    say("  sample cost (CPU ms): " + ", ".join(f"{k} {1e3 * v:.2f}" for k, v in s.cost))
    tps = [x.model("gpu-a").server.tokens_per_s for x in snaps[2:] if x.model("gpu-a")]
    check("live tokens/s while generating", any(v and v > 0 for v in tps), f"{[round(v or 0) for v in tps]}")
    rss = [x.model("gpu-b").usage.rss_bytes for x in snaps if x.model("gpu-b")]
    check("second model's RSS read", bool(rss) and all(v and v > 0 for v in rss[-3:]),
          f"gpu-b RSS {mib(rss[-1], 0) if rss else 'n/a'} MiB")
    if not gpu:
        return
    vr = [x.model("gpu-b").usage.vram_bytes for x in snaps if x.model("gpu-b")]
    check("second model's VRAM attributed", bool(vr) and all(v and v > 0 for v in vr[-3:]),
          f"gpu-b VRAM {mib(vr[-1], 0) if vr else 'n/a'} MiB")
    apps = smi_apps()
    for m in s.models:
        if m.pid in apps and m.usage.vram_bytes:
            d = abs(m.usage.vram_bytes / MiB - apps[m.pid])
            check(f"sampler VRAM of {m.name} = nvidia-smi (±1 %)", d <= 0.01 * apps[m.pid],
                  f"{m.usage.vram_bytes / MiB:.1f} / {apps[m.pid]} MiB")


def multi_gpu_checks(reg: Path, n_gpus: int) -> None:
    """With both models running: per-GPU VRAM of each (status --json vram_by_gpu, llmdeck gpus)
    against nvidia-smi's per-GPU compute apps; the GPU column of the status table."""
    r = llmdeck(reg, "status", "--json")
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    per_gpu = smi_apps_by_gpu()
    say(f"nvidia-smi compute apps per (GPU, pid): {per_gpu}")
    for name in ("gpu-a", "gpu-b"):
        row = rows[name]
        ours = {int(k): v for k, v in (row.get("vram_by_gpu") or {}).items()}
        theirs = {g: used for (g, pid), used in per_gpu.items() if pid == row["pid"]}
        ok = bool(ours) and set(ours) == set(theirs) and all(
            abs(ours[g] / MiB - theirs[g]) <= max(2.0, 0.01 * theirs[g]) for g in theirs)
        check(f"{name} VRAM per GPU = nvidia-smi per GPU (±1 %)", ok,
              f"llmdeck {({g: mib(v) for g, v in sorted(ours.items())})} MiB / nvidia-smi {theirs} MiB")
    a_gpus = {int(k) for k in rows["gpu-a"].get("vram_by_gpu") or {}}
    check(f"gpu-a split over all {n_gpus} GPUs", a_gpus == set(range(n_gpus)), f"on GPUs {sorted(a_gpus)}")
    b_gpus = {int(k) for k in rows["gpu-b"].get("vram_by_gpu") or {}}
    check(f"gpu-b only on GPU {n_gpus - 1} (CUDA_VISIBLE_DEVICES={n_gpus - 1})", b_gpus == {n_gpus - 1},
          f"on GPUs {sorted(b_gpus)}")
    r = llmdeck(reg, "gpus", "--json")
    owners = {(g["index"], p["pid"]): p["model"] for g in json.loads(r.stdout)["gpus"] for p in g["processes"] or []}
    want = {k: name for name in ("gpu-a", "gpu-b") for k in per_gpu if k[1] == rows[name]["pid"]}
    check("llmdeck gpus names the model on every GPU it uses", all(owners.get(k) == v for k, v in want.items()),
          f"llmdeck {owners} / expected {want}")
    r = llmdeck(reg, "status")
    lines = r.stdout.splitlines()
    head = lines[0].split() if lines else []
    a_line = next((ln for ln in lines if ln.startswith("gpu-a")), "")
    want_gpus = ",".join(str(g) for g in range(n_gpus))
    check("status table has a GPU column", "GPU" in head and want_gpus in a_line.split(),
          f"{lines[0] if lines else ''!r} / {a_line!r}")
    for ln in lines:
        say("  " + ln)


# -- the on-demand swap scenario (issue 16) ----------------------------------------------------

_VOCAB: dict = {}


def write_sparse_model(src: Path, path: Path, n_layer: int, n_embd: int, n_ff: int, n_head: int,
                       n_head_kv: int) -> dict:
    """A llama GGUF whose tensor data is a hole: gguf-py writes the header, the metadata and the
    tensor infos, and the file is then extended to its full size with ``truncate`` (zero weights,
    no disk blocks). llama-server reads it like any other file (the holes read as zeros)."""
    sys.path.insert(0, str(src / "gguf-py"))
    import numpy as np

    import gguf

    if _VOCAB.get("src") != src:
        _VOCAB.update(src=src, reader=gguf.GGUFReader(src / "models" / "ggml-vocab-llama-spm.gguf"))
    vocab = _VOCAB["reader"]
    n_vocab = len(vocab.fields["tokenizer.ggml.tokens"].data)
    w = llama_writer(gguf, vocab, path, "llmdeck-gpu-check-zero", n_layer, n_embd, n_ff, n_head, n_head_kv)
    kv = n_embd // n_head * n_head_kv
    shapes = {"token_embd.weight": ((n_vocab, n_embd), np.float16), "output_norm.weight": ((n_embd,), np.float32),
              "output.weight": ((n_vocab, n_embd), np.float16)}
    for i in range(n_layer):
        b = f"blk.{i}."
        shapes |= {b + "attn_norm.weight": ((n_embd,), np.float32), b + "attn_q.weight": ((n_embd, n_embd), np.float16),
                   b + "attn_k.weight": ((kv, n_embd), np.float16), b + "attn_v.weight": ((kv, n_embd), np.float16),
                   b + "attn_output.weight": ((n_embd, n_embd), np.float16),
                   b + "ffn_norm.weight": ((n_embd,), np.float32), b + "ffn_gate.weight": ((n_ff, n_embd), np.float16),
                   b + "ffn_up.weight": ((n_ff, n_embd), np.float16),
                   b + "ffn_down.weight": ((n_embd, n_ff), np.float16)}
    data = 0
    for name, (shape, dt) in shapes.items():
        nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
        w.add_tensor_info(name, shape, np.dtype(dt), nbytes)
        data += w.ggml_pad(nbytes, w.data_alignment)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    f = w.fout[0]
    w.write_padding(f, f.tell())
    start = f.tell()
    f.truncate(start + data)  # the tensor data: a hole
    w.close()
    st = path.stat()
    return {"n_vocab": n_vocab, "bytes": st.st_size, "allocated": st.st_blocks * 512, "params": data // 2}


def router_events(reg: Path) -> list[dict]:
    p = reg.parent / "run" / "router.json"
    try:
        return json.loads(p.read_text()).get("events") or []
    except (OSError, ValueError):
        return []


def swap_checks(a, gpu: bool) -> int:
    """Three ~60 GB zero-weight models, all on demand, no memory limit, one GPU: request 1, 2,
    3 through ``llmdeck serve``; the third start stops the least recently used (1); the free
    VRAM the router decided on (its event's ``memory``) against nvidia-smi ``memory.free`` read
    just before each request (nothing runs or loads in between). ``--tiny``: small models on
    the CPU with a ``memory_limit_gib`` that holds two (a smoke test of the script)."""
    say("")
    say("== on-demand swap: 3 models, one GPU, no memory limit ==" if not a.tiny else
        "== on-demand swap (--tiny: CPU, memory_limit_gib holds two) ==")
    work = a.work / "swap"
    work.mkdir(parents=True, exist_ok=True)
    if a.tiny:
        dims = dict(n_layer=2, n_embd=256, n_ff=512, n_head=4, n_head_kv=4)
    else:  # 34 × (2·8192² + 2·1024·8192 + 3·8192·28672) + 2·32000·8192 ≈ 29.6 G f16 params ≈ 59.2 GB
        dims = dict(n_layer=34, n_embd=8192, n_ff=28672, n_head=64, n_head_kv=8)
    names = ["swap-1", "swap-2", "swap-3"]
    models = {}
    for n in names:
        path = work / f"{n}.gguf"
        t = time.monotonic()
        info = write_sparse_model(a.src, path, **dims)
        say(f"{n}: {path}, {info['bytes'] / 1e9:.1f} GB ({info['bytes'] / GiB:.1f} GiB) on disk as "
            f"{info['allocated'] / MiB:.1f} MiB (sparse), {info['params'] / 1e9:.1f} G params, zero weights "
            f"(written in {time.monotonic() - t:.2f} s)")
        models[n] = {"model_path": str(path), "alias": n, "default_port": free_port(), "on_demand": True,
                     "load_timeout_s": 600, "extra_args": ["--fit", "off"],
                     "params": {"n_gpu_layers": 0 if a.tiny else a.ngl, "ctx_size": 4096, "parallel": 1,
                                "threads": 4}}
    settings = {"llama_server": str(a.binary), "stop_grace_s": 20, "start_timeout_s": 600}
    if a.tiny:
        size = (work / "swap-1.gguf").stat().st_size
        settings["memory_limit_gib"] = round(2.5 * size / GiB, 4)
    reg = work / "models.json"
    reg.write_text(json.dumps({"settings": settings, "models": models}, indent=2))
    port = free_port()
    log = open(a.out / "router-swap.log", "w")
    router = subprocess.Popen([sys.executable, "-m", "tui", "--registry", str(reg), "serve", "--port", str(port)],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or router.poll() is not None:
                    check("llmdeck serve starts", False, (a.out / "router-swap.log").read_text()[-800:])
                    return 1
                time.sleep(0.2)
        smi_before: dict[str, list[float]] = {}
        for n in names:
            if gpu:
                smi_before[n] = [float(r[0]) for r in smi("--query-gpu=memory.free")]
            body = json.dumps({"model": n, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).encode()
            t = time.monotonic()
            try:
                with urllib.request.urlopen(urllib.request.Request(base + "/v1/chat/completions", body,
                                                                   {"Content-Type": "application/json"}),
                                            timeout=900) as r:
                    code, text = r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                code, text = exc.code, exc.read().decode()
            check(f"request for {n} answered", code == 200,
                  f"HTTP {code} in {time.monotonic() - t:.1f} s" + ("" if code == 200 else f": {text[:300]}"))
            if gpu:
                apps = smi_apps()
                say(f"  nvidia-smi after {n}: memory.free {smi('--query-gpu=memory.free')[0][0]} MiB; "
                    f"compute apps (pid: MiB) {apps}")
        r = llmdeck(reg, "status", "--json")
        rows = {row["name"]: row for row in json.loads(r.stdout)}
        states = {n: rows[n]["state"] for n in names}
        check("the third start stopped the least recently used (swap-1)",
              states == {"swap-1": "stopped", "swap-2": "ready", "swap-3": "ready"}, f"states {states}")
        events = router_events(reg)
        for e in events:
            mem = e.get("memory") or {}
            free = {g: f"{b / MiB:.1f} MiB" for g, b in (mem.get("gpu_free_bytes") or {}).items()}
            say(f"  router event: {e['action']} {e['model']}: {e['reason']}"
                + (f" [need {mem['need_bytes'] / MiB:.1f} MiB, free {free}]" if mem.get("need_bytes") else ""))
        out = [e for e in events if e["action"] == "swapped out"]
        check("one model swapped out, for swap-3", [e["model"] for e in out] == ["swap-1"]
              and "swap-3 needs" in out[0]["reason"], f"{[(e['model'], e['reason']) for e in out]}")
        if not gpu:
            return 0
        started = {e["model"]: e for e in events if e["action"] == "started"}
        for n in names:
            mem = (started.get(n) or {}).get("memory") or {}
            ours = [b / MiB for _, b in sorted((mem.get("gpu_free_bytes") or {}).items(), key=lambda x: int(x[0]))]
            theirs = smi_before[n]
            tol = 64.0
            ok = len(ours) == len(theirs) and all(abs(o - t) <= tol for o, t in zip(ours, theirs))
            check(f"free VRAM the router decided {n}'s start on = nvidia-smi memory.free (±{tol:.0f} MiB)", ok,
                  f"llmdeck {[round(x, 1) for x in ours]} MiB / nvidia-smi {theirs} MiB, read just before the "
                  f"request; need {mem.get('need_bytes', 0) / MiB:.1f} MiB")
        if out:
            used = out[0]["memory"].get("used_by_bytes") or {}
            say(f"  what the router counted each running model as holding (NVML per process): "
                f"{ {m: {g: round(b / MiB, 1) for g, b in d.items()} for m, d in used.items()} } MiB")
            check("the decision counted what swap-1 and swap-2 held on the GPU (NVML per process)",
                  set(used) == {"swap-1", "swap-2"}, f"{sorted(used)}")
        return 0
    finally:
        router.terminate()
        try:
            router.wait(15)
        except subprocess.TimeoutExpired:
            router.kill()
        log.close()
        r = llmdeck(reg, "stop", "--all", timeout=120)
        say(f"swap scenario: router stopped, models stopped (rc {r.returncode})")
        for n in names:
            p = reg.parent / "logs" / f"{n}.log"
            if p.exists():
                shutil.copy(p, a.out / f"{n}.log")


if __name__ == "__main__":
    sys.exit(main())
