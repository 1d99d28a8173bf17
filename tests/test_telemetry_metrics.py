"""/metrics and /slots: parsing, and scraping real llama-servers (with and without the endpoints)."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from conftest import free_port
from tui.core.health import Probe
from tui.core.telemetry.metrics import ServerScraper, origin_of, parse_prometheus, parse_slots

VLLM_TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="glm-5"} 3.0
vllm:num_requests_waiting{engine="0",model_name="glm-5"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="glm-5"} 0.25
vllm:generation_tokens_total{engine="0",model_name="glm-5"} 1000.0
vllm:prompt_tokens_total{engine="0",model_name="glm-5"} 5000.0
vllm:generation_tokens_created{engine="0",model_name="glm-5"} 1.7e9
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="glm-5"} 0.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="glm-5"} 12.5
vllm:weird_label{path="a}b"} 4
broken line without value
vllm:nan_gauge NaN
"""


def test_parse_prometheus_labels_buckets_and_junk():
    m = parse_prometheus(VLLM_TEXT)
    assert m["vllm:num_requests_running"] == 3.0 and m["vllm:kv_cache_usage_perc"] == 0.25
    assert m["vllm:generation_tokens_total"] == 1000.0
    assert "vllm:time_to_first_token_seconds_bucket" not in m and "vllm:generation_tokens_created" not in m
    assert m["vllm:time_to_first_token_seconds_sum"] == 12.5
    assert m["vllm:weird_label"] == 4.0
    assert m["vllm:nan_gauge"] != m["vllm:nan_gauge"]  # NaN kept, ignored when read
    assert "broken" not in " ".join(m)
    # two label sets of one name are summed
    assert parse_prometheus('a{x="1"} 1\na{x="2"} 2.5\n') == {"a": 3.5}


def test_parse_slots_new_and_old_shapes():
    new = [{"id": 0, "is_processing": True, "id_task": 7, "n_ctx": 1024,
            "next_token": [{"has_next_token": True, "n_decoded": 12}]},
           {"id": 1, "is_processing": False, "n_ctx": 1024}]
    old = [{"id": 0, "state": 1, "id_task": 3, "next_token": {"n_decoded": 5}}, {"id": 1, "state": 0}]
    s = parse_slots(new)
    assert [(x.id, x.processing, x.id_task, x.n_decoded) for x in s] == [(0, True, 7, 12), (1, False, None, 0)]
    s = parse_slots(old)
    assert [(x.processing, x.n_decoded) for x in s] == [(True, 5), (False, 0)]
    with pytest.raises(ValueError):
        parse_slots({"error": "nope"})


def test_origin_of():
    assert origin_of("http://127.0.0.1:8001/v1") == "http://127.0.0.1:8001"
    assert origin_of("https://box:443/v1/") == "https://box:443"


class FakeGet:
    """Stands in for health.get: answers by path, counts calls."""

    def __init__(self, routes):
        self.routes, self.calls = routes, []

    def __call__(self, url, api_key=None, timeout=1.0):
        path = url.split("/", 3)[3]
        self.calls.append(path)
        r = self.routes.get(path)
        return r() if callable(r) else r


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_vllm_like_server_counter_rates_and_no_slots():
    clock = Clock()
    total = {"gen": 1000.0}

    def metrics():
        text = VLLM_TEXT.replace("generation_tokens_total{engine=\"0\",model_name=\"glm-5\"} 1000.0",
                                 f"generation_tokens_total{{engine=\"0\",model_name=\"glm-5\"}} {total['gen']}")
        return Probe(200, None, text.encode())

    get = FakeGet({"metrics": metrics, "slots": Probe(404, None, b"not found")})
    sc = ServerScraper("http://127.0.0.1:8000/v1", get=get, clock=clock, reprobe_s=30)
    s = sc.scrape()
    assert (s.metrics, s.slots) == ("ok", "off") and s.tokens_per_s is None  # first: no rate yet
    assert s.requests_processing == 3 and s.requests_deferred == 2 and s.kv_cache_usage == 0.25
    assert s.busy_slots is None and s.note is None
    clock.t += 2.0
    total["gen"] = 1300.0
    s = sc.scrape()
    assert s.tokens_per_s == pytest.approx(150.0)
    assert get.calls.count("slots") == 1  # "off" is not asked again before reprobe_s
    clock.t += 31
    total["gen"] = 10.0  # the server restarted: counter went down → no rate, no negative
    s = sc.scrape()
    assert s.tokens_per_s is None and get.calls.count("slots") == 2


def test_a_request_ending_between_the_two_reads_is_not_lost_or_counted_twice():
    """/metrics is read before /slots: a request that ends in between is in neither for one sample."""
    clock = Clock()
    steps = [  # (tokens_predicted_total, slot processing, n_decoded)
        (0, True, 10),   # baseline: 10 tokens in flight
        (0, True, 25),   # +15
        (0, False, 0),   # the race: ended after /metrics was read, before /slots → the sum dips
        (40, False, 0),  # the counter has its 40 tokens: +15 more
        (40, True, 5),   # a new request: +5
        (0, True, 2),    # the server restarted (its counter went down): no rate
        (0, True, 9),    # +7
    ]
    state = {}

    def metrics():
        return Probe(200, None, f"llamacpp:tokens_predicted_total {state['c']}\n".encode())

    def slots():
        return Probe(200, None, json.dumps([{"id": 0, "is_processing": state["busy"], "id_task": 1,
                                             "next_token": [{"n_decoded": state["n"]}]}]).encode())

    sc = ServerScraper("http://h:1/v1", get=FakeGet({"metrics": metrics, "slots": slots}), clock=clock)
    rates = []
    for c, busy, n in steps:
        state.update(c=c, busy=busy, n=n)
        rates.append(sc.scrape().tokens_per_s)
        clock.t += 1.0
    assert rates == [None, 15.0, 0.0, 15.0, 5.0, None, 7.0]


def test_error_states_from_http_codes():
    for status, state in ((401, "auth"), (503, "loading"), (500, "error")):
        get = FakeGet({"metrics": Probe(status, None, b""), "slots": Probe(status, None, b"")})
        s = ServerScraper("http://h:1/v1", get=get).scrape()
        assert s.metrics == state and s.slots == state and s.tokens_per_s is None
        assert f"/metrics {state}" in s.note
    get = FakeGet({"metrics": Probe(200, None, b"\xff\xfe garbage"), "slots": Probe(200, None, b"{not json")})
    s = ServerScraper("http://h:1/v1", get=get).scrape()
    assert s.metrics == "ok" and s.raw == {} and s.slots == "error" and "unreadable /slots" in s.note


def test_unreachable_server_is_a_state_and_skips_slots():
    port = free_port()
    s = ServerScraper(f"http://127.0.0.1:{port}/v1", timeout=0.3).scrape()
    assert s.metrics == "unreachable" and s.slots == "skipped"
    assert "/metrics unreachable: refused" == s.note


def chat(base: str, max_tokens: int, key: str | None = None) -> dict:
    body = json.dumps({"messages": [{"role": "user", "content": "Tell a long story about a lighthouse."}],
                       "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(base + "/v1/chat/completions", body, headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


@pytest.mark.server
@pytest.mark.timeout(120)
def test_real_llama_server_live_throughput_adds_up(llama_server):
    srv = llama_server(parallel=2, threads=1)  # 1 thread: the 2 cores are shared
    clock = Clock()  # one "second" per scrape: each rate is then exactly the tokens of that step
    sc = ServerScraper(srv.base_url, clock=clock)
    s = sc.scrape()
    assert (s.metrics, s.slots) == ("ok", "ok")
    assert s.total_slots == 2 and s.busy_slots == 0 and s.requests_processing == 0 and s.requests_deferred == 0
    assert s.kv_cache_usage is None  # this llama.cpp has no KV metric: n/a, not an error
    assert s.raw["llamacpp:tokens_predicted_total"] == 0

    result = {}
    t = threading.Thread(target=lambda: result.update(chat(srv.base, 64)))
    t.start()
    rates, busy = [], []
    while t.is_alive():
        t.join(0.1)
        clock.t += 1.0
        s = sc.scrape()
        rates.append(s.tokens_per_s)
        busy.append(s.busy_slots)
    clock.t += 1.0
    s = sc.scrape()
    rates.append(s.tokens_per_s)
    n = result["usage"]["completion_tokens"]
    assert n == 64
    # live: some samples during generation already saw tokens (not only a jump at the end)
    assert 1 in busy and sum(1 for r in rates[:-1] if r) >= 2
    # counter + tokens in flight: the per-step figures add up to the request's tokens exactly
    assert sum(r for r in rates if r) == pytest.approx(n)
    assert s.raw["llamacpp:tokens_predicted_total"] == n and s.busy_slots == 0


@pytest.mark.server
@pytest.mark.timeout(120)
def test_real_llama_server_without_metrics_or_slots_and_with_a_key(llama_server):
    base = llama_server("--no-slots", "--api-key", "s3cret", ctx=1024, threads=1, metrics=False).base
    s = ServerScraper(base + "/v1").scrape()
    assert s.metrics == "auth" and s.slots == "auth" and "API key refused" in s.note
    sc = ServerScraper(base + "/v1", api_key="s3cret")
    s = sc.scrape()
    assert (s.metrics, s.slots) == ("off", "off")
    assert s.note == "metrics off (start llama-server with --metrics)"
    assert s.tokens_per_s is None and s.busy_slots is None and s.requests_processing is None
    chat(base, 8, key="s3cret")  # the server itself works; only the figures are n/a


@pytest.mark.server
@pytest.mark.timeout(120)
def test_real_llama_server_slots_alone_give_throughput(llama_server):
    base = llama_server(ctx=1024, threads=1, metrics=False).base
    clock = Clock()
    sc = ServerScraper(base + "/v1", clock=clock)
    assert sc.scrape().metrics == "off"
    t = threading.Thread(target=chat, args=(base, 48))
    t.start()
    rates = []
    while t.is_alive():
        t.join(0.1)
        clock.t += 1.0
        s = sc.scrape()
        assert s.slots == "ok" and s.metrics == "off"
        rates.append(s.tokens_per_s or 0)
    # per-slot deltas: live, never more than was generated (a finished request's tail may be lost)
    assert sum(1 for r in rates if r > 0) >= 2 and 0 < sum(rates) <= 48
