"""llmdeck bench against the real llama-server and SmolLM2: every workload kind with --parallel 4,
token counts checked against the server's own /metrics, errors, and the parser fed the server's
real bytes cut every way."""

from __future__ import annotations

import json
import random
import re
import socket
import sys
import threading
import urllib.request

import pytest

from conftest import free_port
from tui.core import bench
from tui.core.bench import client as bclient
from tui.core.bench.prompts import Prompt

pytestmark = [pytest.mark.server, pytest.mark.timeout(240)]

# short prompts keep prefill cheap on 2 shared cores
PROMPTS = [Prompt(t, 8, 8) for t in (
    "Name a colour.", "Say a word about the sea.", "What is two plus two?", "Name a fruit.",
    "Give me a city.", "Say hello in French.", "Name an animal.", "Pick a number.")]


def _metric(srv, name: str) -> float:
    text = urllib.request.urlopen(srv.base + "/metrics", timeout=10).read().decode()
    m = re.search(rf"^llamacpp:{name} ([0-9.e+]+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def _max_overlap(recs) -> int:
    edges = sorted([(r.start, 1) for r in recs] + [(r.end, -1) for r in recs], key=lambda e: (e[0], e[1]))
    cur = peak = 0
    for _, d in edges:
        cur += d
        peak = max(peak, cur)
    return peak


def _check_common(res: bench.WorkloadResult, n: int, max_tokens: int) -> None:
    assert res.errors == 0, res.error_kinds
    assert res.completed == n == len(res.records)
    for r in res.records:
        assert r.ok and r.error is None
        assert 1 <= r.output_tokens <= max_tokens
        assert r.prompt_tokens and r.prompt_tokens > 5  # the chat template wraps the prompt
        assert r.start < r.first <= r.end
        assert 1 <= r.counted_tokens <= r.output_tokens + 1
        # the client's TTFT includes the server's own prefill time (timings.prompt_ms)
        assert r.server_prompt_ms is not None and r.ttft * 1000 >= r.server_prompt_ms - 1.0
        assert r.response_id and r.response_id.startswith("chatcmpl-")
    assert res.output_tokens == sum(r.output_tokens for r in res.records)
    assert res.output_tok_s == pytest.approx(res.output_tokens / res.duration_s)
    assert res.req_s == pytest.approx(n / res.duration_s)
    assert res.ttft_ms.count == n and res.ttft_ms.p50 <= res.ttft_ms.p90 <= res.ttft_ms.p99 <= res.ttft_ms.max
    assert res.e2e_ms.p50 >= res.ttft_ms.p50
    assert sum(res.e2e_hist.counts) == n and sum(res.ttft_hist.counts) == n
    assert res.client.cpu_s > 0 and res.client.loop_lag_ms["p50"] is not None


async def test_every_workload_kind_against_llama_server_parallel_4(llama_server):
    srv = llama_server(parallel=4)
    target = bench.Target(srv.base_url, "smollm2")
    interval = sys.getswitchinterval()
    nb, n, mt = 5, 4, 6  # five for the burst: one more than the slots
    opts = bench.BenchOptions(requests=n, max_tokens=mt, seed=3, progress_interval_s=0.05)
    before = _metric(srv, "tokens_predicted_total")
    seen: list[bench.Progress] = []

    burst = await bench.run_workload(target, bench.Workload.parse("burst"), PROMPTS,
                                     bench.BenchOptions(requests=nb, max_tokens=mt, progress_interval_s=0.05),
                                     seen.append)
    conc = await bench.run_workload(target, bench.Workload.parse("concurrency=2"), PROMPTS, opts)
    rate_w = bench.Workload.parse("rate=8")
    rate = await bench.run_workload(target, rate_w, PROMPTS, opts)

    _check_common(burst, nb, mt)
    for res in (conc, rate):
        _check_common(res, n, mt)
    # every token the client reports, the server generated
    after = _metric(srv, "tokens_predicted_total")
    assert burst.output_tokens + conc.output_tokens + rate.output_tokens == after - before

    # burst: all five sent at once; 4 slots, so one waited for a slot to free up
    assert burst.client.peak_in_flight == nb and _max_overlap(burst.records) == nb
    assert burst.client.send_lag_ms.count == nb and burst.client.send_lag_ms.max < 500
    last_first = max(r.ttft for r in burst.records)
    first_done = min(r.latency for r in burst.records)
    assert last_first >= first_done * 0.9, (last_first, first_done)
    # progress: plain snapshots ending with a finished one
    assert seen and seen[-1].finished and seen[-1].done == nb and seen[-1].total == nb
    assert all(p.workload == "burst" and 0 <= p.done <= nb for p in seen)
    assert any(p.in_flight > 0 for p in seen[:-1])

    # concurrency=2: never more than two in flight (llama-server closes the connection after a
    # stream, so each request opens its own)
    assert conc.client.peak_in_flight == 2 and _max_overlap(conc.records) == 2
    assert n <= conc.client.connections <= 2 * n
    assert conc.client.send_lag_ms.count == 0

    # rate=8: Poisson arrivals on the seeded schedule, sent on time
    t0 = rate.records[0].scheduled
    offsets = [r.scheduled - t0 for r in sorted(rate.records, key=lambda r: r.index)]
    assert offsets == pytest.approx(rate_w.arrivals(n, seed=3), abs=1e-6)
    assert rate.client.send_lag_ms.max < 200

    # the first-token watcher thread is gone and the interpreter's switch interval restored
    assert not [t for t in threading.enumerate() if t.name == "llmdeck-bench-ttft"]
    assert sys.getswitchinterval() == interval


async def test_failures_are_counted_with_the_servers_reason(llama_server):
    srv = llama_server(parallel=2, ctx=1024)  # 512 tokens per slot
    target = bench.Target(srv.base_url, "smollm2")
    prompts = [Prompt("Say hi.", 3, 4), Prompt("word " * 1200, 1200, 4)]  # the second cannot fit a slot
    res = await bench.run_workload(target, bench.Workload("burst"), prompts, bench.BenchOptions(requests=4))
    assert res.completed == 2 and res.errors == 2
    (msg, count), = res.error_kinds.items()
    assert count == 2 and msg.startswith("HTTP 400: ") and "context" in msg
    assert all(r.ok == (r.index % 2 == 0) for r in res.records)

    # nothing listening: connection errors, not exceptions
    dead = bench.Target(f"http://127.0.0.1:{free_port()}/v1", "x")
    res = await bench.run_workload(dead, bench.Workload.parse("concurrency=2"), prompts, bench.BenchOptions(requests=3))
    assert res.errors == 3 and res.completed == 0 and res.output_tok_s == 0
    assert list(res.error_kinds) == [f"cannot connect to 127.0.0.1:{dead.base_url.split(':')[2].split('/')[0]}: "
                                     "Connection refused"]


async def test_a_server_killed_mid_stream_fails_the_open_requests_promptly(llama_server):
    srv = llama_server(parallel=2)
    target = bench.Target(srv.base_url, "smollm2")
    killed = []

    def on_progress(p: bench.Progress) -> None:
        if p.output_tokens >= 2 and not killed:
            killed.append(p)
            srv.stop()

    res = await bench.run_workload(
        target, bench.Workload("burst"), PROMPTS[:2],
        bench.BenchOptions(requests=2, max_tokens=2000, ignore_eos=True, progress_interval_s=0.05), on_progress)
    assert killed and res.errors == 2 and res.completed == 0
    assert all(k.startswith("connection closed before the response finished") for k in res.error_kinds)
    assert res.duration_s < 60
    assert any(r.first is not None for r in res.records)  # killed while streaming


def _raw_exchange(port: int, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


async def test_the_real_servers_bytes_parse_the_same_under_every_cut(llama_server):
    from chunking import cuts, random_pieces
    from test_bench_units import _feed

    srv = llama_server()
    wire = _raw_exchange(srv.port, {"model": "smollm2", "max_tokens": 12, "stream": True,
                                    "stream_options": {"include_usage": True},
                                    "messages": [{"role": "user", "content": "Tell me about rivers."}]})
    head, _, _ = wire.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    # what the stream says, read independently of the parser
    events = [json.loads(m) for m in re.findall(rb"data: (\{.*?\})\n\n", wire)]
    usage = next(e["usage"] for e in events if e.get("usage"))
    rid = events[0]["id"]

    rng = random.Random(11)
    cut_sets = [[], list(range(1, len(wire)))] + [cuts(random_pieces(wire, rng, k)) for k in (3, 17, 100, 700)]
    for at in cut_sets:
        rec, fut, conn, _ = _feed(wire, at)
        conn.connection_lost(None)  # Connection: close
        assert fut.done() and rec.ok, rec.error
        assert rec.output_tokens == usage["completion_tokens"] and rec.prompt_tokens == usage["prompt_tokens"]
        assert rec.response_id == rid and rec.first is not None and rec.server_prompt_ms is not None
        assert 1 <= rec.counted_tokens <= usage["completion_tokens"]
    assert isinstance(bclient.RequestRecord(0).ttft, type(None))


def test_a_session_runs_in_a_worker_thread_reports_each_workload_and_cancels(llama_server, tmp_path):
    from tui.core import registry

    srv = llama_server(parallel=2)
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": {"smol": {"engine": "external", "base_url": srv.base_url,
                                                     "alias": "smollm2"}}}))
    reg = registry.load(path)
    interval = sys.getswitchinterval()

    # the way the TUI uses it: checks up front, run() in a thread, results as they come
    session = bench.BenchSession(reg, "smol", workloads=bench.parse_many(["concurrency=2", "rate=20"]),
                                 options=bench.BenchOptions(requests=2, max_tokens=3))
    results: list = []
    worker = threading.Thread(target=session.run, args=(None, results.append))
    worker.start()
    worker.join(120)
    assert not worker.is_alive()
    assert [r.workload for r in results] == ["concurrency=2", "rate=20"] and session.report.runs == results
    assert session.report.server["total_slots"] == 2
    saved = session.save()
    assert saved.parent == tmp_path / "logs" / "bench" and bench.list_reports(reg.logs_dir, "smol")[0].runs

    # cancel() from another thread stops the workload in flight and skips the rest
    session = bench.BenchSession(reg, "smol", workloads=bench.parse_many(["burst", "burst"]),
                                 options=bench.BenchOptions(requests=2, max_tokens=3000, ignore_eos=True,
                                                            progress_interval_s=0.05))
    seen: list[bench.Progress] = []

    def on_progress(p: bench.Progress) -> None:
        seen.append(p)
        if p.output_tokens >= 2:
            threading.Thread(target=session.cancel).start()

    worker = threading.Thread(target=session.run, args=(on_progress,))
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and session.cancelled
    assert session.report.runs == [] and seen and seen[-1].output_tokens >= 2
    assert not [t for t in threading.enumerate() if t.name == "llmdeck-bench-ttft"]
    assert sys.getswitchinterval() == interval
