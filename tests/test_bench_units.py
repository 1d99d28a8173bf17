"""llmdeck bench without a server: workloads, prompts, statistics, saved reports, the stream parser.

The parser tests feed byte streams into the client's connection object with every kind of cut
(reads split inside chunk-size lines, CRLFs, events and headers); the same parser runs against
the real llama-server in tests/test_bench_server.py.
"""

from __future__ import annotations

import json
import random
import statistics

import pytest
from chunking import cuts, random_pieces

from tui.core import bench
from tui.core.bench import client as bclient
from tui.core.bench import firsttoken as bfirst
from tui.core.bench import sse as bsse
from tui.core.bench.prompts import iter_json_values
from tui.core.bench.stats import Histogram, LagHistogram, Summary, percentile

pytestmark = pytest.mark.timeout(60)


# --- workloads -----------------------------------------------------------------------------

def test_workload_parse_labels_and_titles():
    assert bench.Workload.parse("burst") == bench.Workload("burst")
    w = bench.Workload.parse(" Concurrency=512 ")
    assert (w.kind, w.value, w.label, w.title) == ("concurrency", 512, "concurrency=512", "concurrency (512)")
    r = bench.Workload.parse("rate=2.5")
    assert (r.label, r.title) == ("rate=2.5", "rate (2.5 req/s)")
    assert bench.Workload.parse("rate=10").title == "rate (10 req/s)"


@pytest.mark.parametrize("bad, words", [
    ("bursty", "unknown workload 'bursty'"), ("concurrency=0", "1 or more"), ("concurrency=2.5", "whole"),
    ("rate=-1", "positive"), ("rate=abc", "not a number"), ("rate=inf", "positive"), ("qps=3", "unknown"),
])
def test_workload_parse_errors_say_what_is_accepted(bad, words):
    with pytest.raises(bench.WorkloadError) as ei:
        bench.Workload.parse(bad)
    assert words in str(ei.value)
    assert "\n" not in str(ei.value)


def test_seed_suite_is_the_seed_tables_four_rows():
    ws = bench.parse_many(["seed"])
    assert [w.title for w in ws] == ["burst", "concurrency (512)", "rate (10 req/s)", "rate (5 req/s)"]
    assert [w.label for w in bench.parse_many(None)] == ["burst"]
    assert [w.label for w in bench.parse_many(["rate=3", "burst"])] == ["rate=3", "burst"]


def test_rate_arrivals_are_poisson_seeded_and_reproducible():
    w = bench.Workload.parse("rate=10")
    a = w.arrivals(4000, seed=1)
    assert a == w.arrivals(4000, seed=1) and a != w.arrivals(4000, seed=2)
    assert a[0] == 0 and all(x < y for x, y in zip(a, a[1:]))
    gaps = [y - x for x, y in zip(a, a[1:])]
    assert statistics.mean(gaps) == pytest.approx(0.1, rel=0.08)
    # exponential gaps: the standard deviation equals the mean
    assert statistics.pstdev(gaps) == pytest.approx(0.1, rel=0.12)
    assert bench.Workload("burst").arrivals(3) == [0.0, 0.0, 0.0]
    assert bench.Workload("concurrency", 4).arrivals(3) == []


# --- prompts -------------------------------------------------------------------------------

def test_synthetic_prompts_are_reproducible_distinct_and_sharegpt_like():
    a = bench.synthetic(2000, seed=7)
    assert a == bench.synthetic(2000, seed=7)
    assert a != bench.synthetic(2000, seed=8)
    assert len({p.text.split()[0] for p in a}) == 2000  # every prompt starts differently (no cache reuse)
    ins = [p.input_tokens for p in a]
    outs = [p.output_tokens for p in a]
    assert 95 <= statistics.median(ins) <= 150 and 170 <= statistics.mean(ins) <= 260
    assert 115 <= statistics.median(outs) <= 165 and 170 <= statistics.mean(outs) <= 240
    assert min(outs) >= 8 and max(outs) <= 1024 and max(ins) <= 1100


def _conv(human: str, gpt: str, **extra) -> dict:
    return {"id": "x", "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}], **extra}


def test_load_sharegpt_filters_like_vllm_and_samples_reproducibly(tmp_path):
    recs = [_conv(f"question number {i} " * 3, "an answer " * 20) for i in range(50)]
    recs += [
        _conv("hi", "a long enough answer"),  # prompt under 4 tokens
        _conv("a long enough question", "ok"),  # reply under 4 tokens
        _conv("x" * 5000, "fine answer here"),  # prompt over 1024 tokens
        {"id": "y", "conversations": [{"from": "gpt", "value": "starts with the model"}]},
        {"id": "z", "conversations": [{"from": "system", "value": "be brief"},
                                      {"from": "human", "value": "a system turn first is fine"},
                                      {"from": "gpt", "value": "indeed it is fine"}]},
        {"id": "m", "messages": [{"role": "user", "content": "OpenAI-style roles work too"},
                                 {"role": "assistant", "content": "they do, as well"}]},
        "not an object", 42,
    ]
    f = tmp_path / "sg.json"
    f.write_text(json.dumps(recs, indent=1))
    every = bench.load_sharegpt(f, 1000)
    texts = {p.text for p in every}
    assert len(every) == 52
    assert "a system turn first is fine" in texts and "OpenAI-style roles work too" in texts
    assert not any(t in texts for t in ("hi", "a long enough question"))
    p = next(p for p in every if p.text == "a system turn first is fine")
    assert p.output_tokens == 5  # 17 bytes / 4, rounded up

    s1 = bench.load_sharegpt(f, 10, seed=3)
    assert s1 == bench.load_sharegpt(f, 10, seed=3) and len(s1) == 10
    assert s1 != bench.load_sharegpt(f, 10, seed=4)

    jl = tmp_path / "sg.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    assert bench.load_sharegpt(jl, 1000) == every


def test_json_values_are_read_incrementally_across_any_chunk_size(tmp_path):
    import io

    values = [{"a": i, "s": "x" * (i * 7 % 50), "nested": [1, {"b": "]"}]} for i in range(40)]
    text = json.dumps(values)
    for chunk in (1, 2, 3, 7, 64, 1 << 20):
        assert list(iter_json_values(io.StringIO(text), chunk)) == values
        jl = "\n".join(json.dumps(v) for v in values)
        assert list(iter_json_values(io.StringIO(jl), chunk)) == values


@pytest.mark.parametrize("content, words", [
    ('[{"conversations": [}]', "invalid JSON at character"),
    ('[{"a": 1} {"b": 2}]', "expected ',' or ']'"),
    ('[{"a": 1},', "unexpected end of file"),
    ('{"settings": {}}', "no usable conversation among 1 record"),
    ("", "no usable conversation among 0 record"),
])
def test_load_sharegpt_bad_files_give_one_line_naming_the_file(tmp_path, content, words):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(bench.PromptsError) as ei:
        bench.load_sharegpt(f, 5)
    msg = str(ei.value)
    assert words in msg and str(f) in msg and "\n" not in msg


def test_load_sharegpt_missing_file(tmp_path):
    with pytest.raises(bench.PromptsError, match="file not found"):
        bench.load_sharegpt(tmp_path / "nope.json", 5)


# --- statistics ----------------------------------------------------------------------------

def test_percentile_matches_linear_interpolation():
    rng = random.Random(0)
    for n in (1, 2, 5, 101, 1000):
        v = sorted(rng.random() * 100 for _ in range(n))
        for q in (0, 50, 90, 99, 100):
            if n > 1:
                want = statistics.quantiles(v, n=100, method="inclusive")[q - 1] if 0 < q < 100 else (
                    v[0] if q == 0 else v[-1])
            else:
                want = v[0]
            assert percentile(v, q) == pytest.approx(want)
    assert percentile([], 50) is None


def test_summary_and_histogram():
    s = Summary.of([4, 1, 3, 2, None, float("nan")])
    assert (s.count, s.mean, s.min, s.p50, s.max) == (4, 2.5, 1, 2.5, 4)
    assert Summary.from_dict(s.to_dict()) == s
    assert Summary.of([]).p50 is None
    h = Histogram.of([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], bins=5)
    assert h.counts == (2, 2, 2, 2, 3) and h.edges[0] == 0 and h.edges[-1] == 10 and len(h.edges) == 6
    assert sum(Histogram.of([5, 5, 5]).counts) == 3
    assert Histogram.of([]).counts == ()


def test_lag_histogram_is_bounded_and_gives_upper_bounds():
    lag = LagHistogram()
    for i in range(1000):
        lag.add(i / 100)  # 0 … 9.99 ms
    lag.add(5000)  # beyond the last bin
    assert len(lag.counts) == LagHistogram.NBINS + 1
    assert 4.9 <= lag.quantile(50) <= 5.1
    assert lag.quantile(100) == 5000 and lag.max_ms == 5000


# --- saved reports -------------------------------------------------------------------------

def _result(label="burst", tok_s=100.0) -> bench.WorkloadResult:
    w = bench.Workload.parse(label)
    return bench.WorkloadResult(
        workload=w.label, title=w.title, requests=10, completed=9, errors=1, error_kinds={"HTTP 400: x": 1},
        duration_s=2.0, output_tokens=200, prompt_tokens=50, output_tok_s=tok_s, req_s=4.5,
        ttft_ms=Summary.of([10, 20, 30]), e2e_ms=Summary.of([100, 200, 300]), tpot_ms=Summary.of([5]),
        server_prompt_ms=Summary.of([]), ttft_hist=Histogram.of([10, 20, 30]),
        e2e_hist=Histogram.of([100, 200, 300]), client=bench.ClientOverhead(cpu_pct=12.0))


def test_report_round_trip_masks_secrets_and_never_overwrites(tmp_path):
    from tui.core.bench.results import masked_entry

    settings = masked_entry({"params": {"parallel": 4}, "env": {"HF_TOKEN": "hf_secret", "CUDA_VISIBLE_DEVICES": "0"}})
    assert settings["env"] == {"HF_TOKEN": "***", "CUDA_VISIBLE_DEVICES": "0"}
    rep = bench.BenchReport(model="m1", base_url="http://127.0.0.1:1/v1", started_at=bench.now_iso(),
                            settings=dict(settings, quant="Q4_1"), server={"total_slots": 4, "n_ctx": 512},
                            prompts={"source": "synthetic"}, options={"requests": 10},
                            runs=[_result("burst", 100.0), _result("rate=5", 50.0)])
    p1 = bench.save(rep, tmp_path / "logs")
    p2 = bench.save(rep, tmp_path / "logs")
    assert p1 != p2 and p1.parent == tmp_path / "logs" / "bench" and p1.name.startswith("m1-")
    assert "hf_secret" not in p1.read_text()
    (tmp_path / "logs" / "bench" / "m1-garbage.json").write_text("{")
    (tmp_path / "logs" / "bench" / "m10-20990101-000000.json").write_text(p1.read_text())  # another model
    got = bench.list_reports(tmp_path / "logs", "m1")
    assert [r.path for r in got] == [p1, p2]
    back = got[0]
    assert back.to_dict() == rep.to_dict()
    assert [r.seed_row() for r in back.runs] == [["burst", "100", "20", "200"], ["rate (5 req/s)", "50.0", "20", "200"]]
    assert back.settings_summary() == "Q4_1 · 4 slots · ctx 512/slot"
    assert bench.list_reports(tmp_path / "logs", "m1", last=1)[0].path == p2
    assert bench.list_reports(tmp_path / "nothing", "m1") == []


# --- the stream parser ---------------------------------------------------------------------

class _Transport:
    def __init__(self):
        self.written = []
        self.aborted = False

    def write(self, b):
        self.written.append(b)

    def abort(self):
        self.aborted = True

    def close(self):
        self.aborted = True

    def get_extra_info(self, name, default=None):
        return default  # no socket: read batching stays off


def _frame(p: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(p), p)


def _ev(obj) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _feed(wire: bytes, cuts: list[int], client=None):
    """Run one exchange on a connection object, delivering ``wire`` cut at ``cuts`` (needs a loop)."""
    client = client or bclient.StreamClient("http://127.0.0.1:9/v1")
    conn = bsse.Connection(client)
    conn.connection_made(_Transport())
    rec = bclient.RequestRecord(0)
    rec.start = 0.0
    fut = conn.begin(rec, b"", 30)
    pos = 0
    for c in cuts + [len(wire)]:
        if c > pos:
            conn.data_received(wire[pos:c])
            pos = c
    return rec, fut, conn, client


def _stream(n_tokens=12, reasoning=2, crlf=False) -> bytes:
    evs = [_ev({"id": "chatcmpl-1", "choices": [{"delta": {"role": "assistant", "content": None}, "index": 0}]})]
    for i in range(reasoning):
        evs.append(_ev({"id": "chatcmpl-1", "choices": [{"delta": {"reasoning_content": f"think{i}"}}]}))
    for i in range(n_tokens - reasoning):
        evs.append(_ev({"id": "chatcmpl-1", "choices": [{"delta": {"content": f"tok \"{i}\"\n"}}]}))
    evs.append(_ev({"id": "chatcmpl-1", "choices": [{"delta": {}, "finish_reason": "length", "index": 0}]}))
    evs.append(_ev({"id": "chatcmpl-1", "choices": [], "usage": {"completion_tokens": n_tokens, "prompt_tokens": 7},
                    "timings": {"prompt_ms": 12.5}}))
    evs.append(b"data: [DONE]\n\n")
    body = b"".join(evs)
    if crlf:
        body = body.replace(b"\n", b"\r\n")
    return body


@pytest.mark.parametrize("lazy", [True, False])
async def test_parser_survives_every_cut_and_reuses_the_connection(lazy, monkeypatch):
    monkeypatch.setattr(bsse, "LAZY", lazy)
    body = _stream(n_tokens=40)
    rng = random.Random(5)
    for trial in range(200):
        parts = random_pieces(body, rng, 60)
        wire = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(_frame(x) for x in parts) + b"0\r\n\r\n")
        rec, fut, conn, client = _feed(wire, cuts(random_pieces(wire, rng, 30)))
        assert fut.done() and fut.result() == "done"
        assert rec.ok, rec.error
        assert rec.output_tokens == 40 and rec.counted_tokens == 40 and rec.prompt_tokens == 7
        assert rec.server_prompt_ms == 12.5 and rec.response_id == "chatcmpl-1"
        assert client._idle == [conn] and client.tokens_seen == 40 and not client._streaming


async def test_parser_one_byte_reads_crlf_events_and_content_length_body():
    body = _stream(crlf=True)
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    rec, fut, conn, client = _feed(wire, list(range(1, len(wire))))
    assert rec.ok and rec.output_tokens == 12 and rec.counted_tokens == 12
    assert client._idle == [conn]


async def test_parser_without_usage_counts_text_events():
    body = b"".join(_ev({"choices": [{"delta": {"content": c}}]}) for c in ["a", "b", "c"])
    body += _ev({"choices": [{"delta": {"content": ""}, "finish_reason": "stop"}]})  # vLLM's last chunk
    body += b"data: [DONE]\n\n"
    wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body
    rec, fut, conn, _ = _feed(wire, [])
    assert not fut.done()  # a close-delimited body ends with the connection
    conn.connection_lost(None)
    assert fut.done() and rec.ok and rec.output_tokens == 3


async def test_parser_spaced_json_servers_are_counted():
    body = b"".join(b'data: {"choices": [{"delta": {"content": "%s"}}]}\n\n' % c for c in (b"a", b"b", b"c"))
    body += b'data: {"choices": [], "usage": null}\n\ndata: [DONE]\n\n'
    rec, fut, _, _ = _feed(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, [60])
    assert rec.ok and rec.counted_tokens == 3 and rec.output_tokens == 3


async def test_parser_http_error_and_stream_error():
    err = json.dumps({"error": {"code": 400, "message": "the request exceeds the available context size",
                                "type": "invalid_request_error"}}).encode()
    rec, fut, conn, client = _feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(err) + err, [20])
    assert fut.done() and rec.error == "HTTP 400: the request exceeds the available context size"
    assert client._idle == [conn]  # the body was read whole: the connection is still good

    body = _ev({"choices": [{"delta": {"content": "a"}}]}) + _ev({"error": {"message": "boom", "code": 500}})
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _frame(body)
    rec, fut, conn, _ = _feed(wire, [])
    conn.connection_lost(None)  # llama.cpp closes without [DONE] after an error event
    assert fut.done() and rec.error == "stream error: boom"


async def test_parser_malformed_and_truncated_responses():
    rec, fut, _, _ = _feed(b"SMTP ready\r\n\r\n", [])
    assert fut.done() and rec.error.startswith("malformed response: bad status line")
    rec, fut, _, _ = _feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", [])
    assert fut.done() and "bad chunk size" in rec.error
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _frame(_ev({"choices": [{"delta": {"content": "a"}}]}))
    rec, fut, conn, _ = _feed(wire, [])
    conn.connection_lost(ConnectionResetError("reset by peer"))
    assert fut.done() and rec.error.startswith("connection closed before the response finished")
    assert rec.counted_tokens == 1 and rec.first is not None


async def test_a_pooled_connection_closed_while_idle_is_retried_not_failed():
    rec, fut, conn, client = _feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [])
    assert fut.done() and rec.ok and client._idle == [conn]
    client._idle.clear()
    rec2 = bclient.RequestRecord(1)
    fut2 = conn.begin(rec2, b"", 30)
    conn.connection_lost(None)
    assert fut2.result() == "retry" and rec2.error is None


# --- first-token stamping, bulk de-chunking --------------------------------------------------

def test_first_text_pattern_and_text_keys():
    from tui.core.bench.firsttoken import FIRST_TEXT
    from tui.core.bench.sse import text_keys

    role = b'data: {"choices":[{"delta":{"role":"assistant","content":null},"index":0}]}\n\n'
    empty = b'data: {"choices":[{"delta":{"content":""},"index":0}]}\n\n'
    assert not FIRST_TEXT.search(role + empty)
    assert FIRST_TEXT.search(role + b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n')
    assert FIRST_TEXT.search(b'data: {"choices": [{"delta": {"reasoning_content": "hm"}}]}\n\n')
    assert FIRST_TEXT.search(b'data: {"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}\n\n')
    # a delta that closes before a later object's text does not match across it
    assert not FIRST_TEXT.search(b'{"delta":{},"x":{"content":"a"}}')
    assert text_keys(b'{"content":"a"}', {"content": "a"}) == (b'content":"',)
    assert text_keys(b'{"reasoning": "a"}', {"reasoning": "a"}) == (b'content": "', b'"reasoning": "')


def test_bulk_chunks_takes_whole_chunks_and_stops_where_it_must():
    from tui.core.bench.http1 import bulk_chunks

    evs = [b"data: {\"n\":%d}\n\n" % i for i in range(50)]
    wire = b"".join(_frame(e) for e in evs)
    out: list = []
    assert bulk_chunks(wire, 0, out) == len(wire) and out == evs
    out = []  # a chunk cut by the end of the read is left to the exact loop
    assert bulk_chunks(wire[:-3], 0, out) == len(wire) - len(_frame(evs[-1])) and out == evs[:-1]
    out = []  # the zero chunk ends the run
    assert bulk_chunks(wire + b"0\r\n\r\n", 0, out) == len(wire) and out == evs
    out = []  # a CRLF inside a payload shifts the pairs: then an SSE line is no hex size
    odd = _frame(b"data: a\r\n\r\n")
    assert bulk_chunks(_frame(evs[0]) + odd + wire, 0, out) == 0 and out == []
    out = []  # sizes that do not match their payloads: taken up to the first mismatch
    assert bulk_chunks(_frame(evs[0]) + b"3\r\nab\r\n" + wire, 0, out) == len(_frame(evs[0])) and out == evs[:1]
    assert bulk_chunks(b"zz\r\nxx\r\n", 0, []) == 0


async def _answer_slowly(watch: bool, monkeypatch):
    """A request to a raw socket peer; the first token arrives while the event loop is blocked."""
    import asyncio
    import socket
    import time

    monkeypatch.setattr(bclient, "WATCH_FIRST_TOKEN", watch)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    client = bclient.StreamClient(f"http://127.0.0.1:{lsock.getsockname()[1]}/v1")
    rec = bclient.RequestRecord(0)
    task = asyncio.ensure_future(client.send(rec, client.encode({"model": "m", "stream": True})))
    await asyncio.sleep(0.05)
    peer, _ = lsock.accept()
    try:
        assert peer.recv(65536).startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        first = _ev({"id": "r1", "choices": [{"delta": {"content": "Hi"}}]})
        rest = _ev({"id": "r1", "choices": [], "usage": {"completion_tokens": 1, "prompt_tokens": 2}})
        rest += b"data: [DONE]\n\n"
        peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(first) + len(rest)) + first)
        sent = time.monotonic()
        time.sleep(0.3)  # the loop is busy: only the watcher thread can see the token arrive
        peer.sendall(rest)
        await task
    finally:
        peer.close()
        lsock.close()
        await client.aclose()
    assert rec.ok and rec.output_tokens == 1 and rec.response_id == "r1"
    return rec.first - sent


async def test_the_watcher_stamps_a_first_token_that_arrives_while_the_loop_is_busy(monkeypatch):
    import sys

    interval = sys.getswitchinterval()
    assert await _answer_slowly(True, monkeypatch) < 0.1
    assert sys.getswitchinterval() == interval  # restored when the client closes
    assert await _answer_slowly(False, monkeypatch) >= 0.3  # without it: when the loop got to it


async def test_the_watcher_stamps_the_kernels_receive_time_not_its_own_wake_up(monkeypatch):
    """On saturated cores the watcher thread can run well after the bytes landed: the stamp is
    the kernel's receive time (SO_TIMESTAMPNS), so a watcher that is 150 ms late changes nothing."""
    import select as select_mod
    import time

    real_epoll = select_mod.epoll

    class LateEpoll:
        def __init__(self):
            self.ep = real_epoll()

        def __getattr__(self, name):
            return getattr(self.ep, name)

        def poll(self, timeout=-1, maxevents=-1):
            events = self.ep.poll(timeout, maxevents)
            if events:
                time.sleep(0.15)  # woken, but scheduled late
            return events

    monkeypatch.setattr(bfirst.select, "epoll", LateEpoll)
    assert await _answer_slowly(True, monkeypatch) < 0.02
