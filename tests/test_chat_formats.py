"""Every server's stream gives the same events, however the bytes are cut.

Two kinds of streams: ``llamacpp_*.sse`` recorded from the real llama-server by
``scripts/record_chat_streams.py``, and the vLLM / SGLang / LightLLM / older llama.cpp streams
of ``chatstreams.py``, built from the documented shapes. Each is fed

* in-process through :class:`TurnDecoder` (SSE + JSON + assembly + raw tags), whole, byte by
  byte, split at many positions and in seeded random pieces (UTF-8 characters get cut);
* over HTTP from a local server on 127.0.0.1 through the real :class:`ChatClient`, sent whole,
  in 7-byte HTTP chunks and in random HTTP chunks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatstreams import STREAMS, comparable
from chunking import random_pieces
from streamserver import Reply, StreamServer, split_every
from tui.core.chat.client import ChatClient
from tui.core.chat.deltas import DeltaAssembler
from tui.core.chat.events import Content, Done, Error, Reasoning, ToolCall, ToolCallArgs, ToolCallStarted
from tui.core.chat.rawtags import FORCED_THINKING_PARSERS, RawTagParser, tool_schemas
from tui.core.chat.stream import TurnDecoder

pytestmark = pytest.mark.timeout(120)
FIX = Path(__file__).parent / "fixtures" / "chat"


def ids(i: int) -> str:
    return f"call_{i}"


def decode(chunks: list[bytes], opts: dict) -> list:
    raw = RawTagParser(starts_in_reasoning=opts.get("reasoning_parser") in FORCED_THINKING_PARSERS,
                       schemas=tool_schemas(opts.get("tools")), id_factory=ids)
    dec = TurnDecoder(DeltaAssembler(raw), 0.0)
    out: list = []
    for c in chunks:
        out += dec.feed(c, 1.0)
    out += dec.close(2.0)
    return out


# --- recorded llama-server streams -----------------------------------------------------------------

#: name -> (client options, check(events))
def _recorded_expectations():
    def texts(evs, kind):
        return "".join(e.text for e in evs if isinstance(e, kind))

    def plain(evs):
        assert texts(evs, Content) and not texts(evs, Reasoning)
        assert evs[-1].finish_reason in ("stop", "length")

    def reasoning_then_content(evs):
        c = comparable(evs)
        assert c[:2] == [Reasoning("I should greet them."), Content("Hello there!")] and c[-1] == Done("stop")

    def raw_think(evs):
        c = comparable(evs)
        assert c == [Reasoning("The user greets me."), Content("Hello! How can I help?"), Done("stop")]

    def tool_call(evs):
        c = comparable(evs)
        assert [type(e) for e in c] == [ToolCallStarted, ToolCallArgs, ToolCall, Done]
        call = c[2]
        assert call.name == "get_weather" and call.ok and set(call.arguments) == {"days", "metric"}
        assert c[-1] == Done("tool_calls") and len(call.id) == 32   # llama.cpp ids: 32 alnum, no call_ prefix

    def parallel(evs):
        calls = [e for e in evs if isinstance(e, ToolCall)]
        assert len(calls) >= 2 and [c.index for c in calls] == list(range(len(calls)))
        assert all(c.ok for c in calls[:2]) and len({c.id for c in calls}) == len(calls)
        assert evs[-1].finish_reason == "length"
        if len(calls) > 2:  # the call cut by max_tokens is reported, not dropped
            assert calls[-1].ok is False and calls[-1].arguments is None

    def midstream_error(evs):
        assert isinstance(evs[-1], Error) and evs[-1].kind == "server" and evs[-1].status == 500
        assert "does not match" in evs[-1].message and "\n" not in evs[-1].message

    def raw_call(name, args, reasoning):
        def check(evs):
            c = comparable(evs)
            assert c[0] == Reasoning(reasoning)
            call = [e for e in c if isinstance(e, ToolCall)][0]
            assert (call.name, call.arguments, call.ok) == (name, args, True)
            assert json.loads("".join(e.text for e in c if isinstance(e, ToolCallArgs))) == args
            assert c[-1] == Done("stop")
        return check

    glm = {"reasoning_parser": "glm45", "tools": [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}}}}}]}
    return {
        "plain": ({}, plain),
        "reasoning": ({}, reasoning_then_content),
        "raw_think": ({}, raw_think),
        "tool_call": ({}, tool_call),
        "parallel_tool_calls": ({}, parallel),
        "midstream_error": ({}, midstream_error),
        "raw_glm47_think": ({"reasoning_parser": "glm45"}, reasoning_then_content),
        "raw_glm47_tool": (glm, raw_call("get_weather", {"city": "東京 Tokyo", "days": 3}, "Tokyo, three days.")),
        "raw_glm45_tool": (glm, raw_call("get_weather", {"city": "Tokyo", "days": 2}, "Tokyo.")),
        "raw_qwen35_tool": (dict(glm, reasoning_parser="qwen3"),
                            raw_call("get_weather", {"city": "New York", "days": 2}, "Need the weather.")),
        "raw_hermes_tool": ({"tools": glm["tools"]}, raw_call("get_weather", {"city": "Paris", "days": 1}, "Paris.")),
    }


RECORDED = _recorded_expectations()


def test_every_recorded_stream_has_an_expectation():
    on_disk = {p.name[len("llamacpp_"):-len(".sse")] for p in FIX.glob("llamacpp_*.sse")}
    assert on_disk == set(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_llamacpp_stream_every_chunking(name):
    opts, check = RECORDED[name]
    data = (FIX / f"llamacpp_{name}.sse").read_bytes()
    ref = decode([data], opts)
    check(ref)
    want = comparable(ref)
    assert comparable(decode([bytes([b]) for b in data], opts)) == want
    for i in range(0, len(data), max(1, len(data) // 60)):
        assert comparable(decode([data[:i], data[i:]], opts)) == want, i
    for seed in range(10):
        assert comparable(decode(random_pieces(data, seed), opts)) == want, seed


# --- streams built from the documented shapes ------------------------------------------------------

@pytest.mark.parametrize("name", sorted(STREAMS))
def test_documented_stream_every_chunking(name):
    data, opts, expected = STREAMS[name]
    assert comparable(decode([data], opts)) == expected
    assert comparable(decode([bytes([b]) for b in data], opts)) == expected
    for i in range(0, len(data) + 1, max(1, len(data) // 250)):
        assert comparable(decode([data[:i], data[i:]], opts)) == expected, i
    for seed in range(25):
        assert comparable(decode(random_pieces(data, seed, 17), opts)) == expected, seed


# --- the same through HTTP and the real client ----------------------------------------------------

HTTP_CASES = sorted(STREAMS) + [f"recorded:{n}" for n in ("reasoning", "tool_call", "raw_glm47_tool",
                                                           "raw_qwen35_tool", "midstream_error")]


@pytest.fixture(scope="module")
def server():
    with StreamServer() as s:
        yield s


async def _via_http(server, data: bytes, opts: dict, pieces: list[bytes]) -> list:
    server.queue("/v1/chat/completions", Reply(body=pieces))
    rp = opts.get("reasoning_parser")
    async with ChatClient(server.base_url, model="m", reasoning_parser=rp, id_factory=ids) as client:
        return [ev async for ev in client.stream([{"role": "user", "content": "hi"}], tools=opts.get("tools"))]


@pytest.mark.parametrize("name", HTTP_CASES)
async def test_stream_over_http_in_several_chunkings(server, name):
    if name.startswith("recorded:"):
        n = name.split(":", 1)[1]
        data = (FIX / f"llamacpp_{n}.sse").read_bytes()
        opts, check = RECORDED[n]
        want = comparable(decode([data], opts))
        check(decode([data], opts))
    else:
        data, opts, want = STREAMS[name]
    for pieces in ([data], split_every(data, 7), random_pieces(data, 3, 200)):
        got = await _via_http(server, data, opts, pieces)
        assert comparable(got) == want
        assert isinstance(got[-1], (Done, Error)) and sum(isinstance(e, (Done, Error)) for e in got) == 1


async def test_usage_and_timings_reach_done_and_stats(server):
    data, opts, _ = STREAMS["llamacpp_old_usage_on_finish"]
    got = await _via_http(server, data, opts, [data])
    done = got[-1]
    assert done.usage["completion_tokens"] == 28 and done.timings["predicted_per_second"] == 80.0
    assert done.stats.tokens_per_s == 80.0 and done.stats.tokens_per_s_source == "server"
    assert done.stats.prompt_tokens == 12 and done.stats.ttft_s is not None


async def test_measured_tokens_per_second_without_server_timings(server):
    # vLLM sends no timings: t/s is measured from the arrival of the tokens
    body = _slow_pieces()
    server.queue("/v1/chat/completions", Reply(body=body, delay=0.02))
    async with ChatClient(server.base_url, model="m") as client:
        got = [ev async for ev in client.stream([{"role": "user", "content": "hi"}])]
    st = got[-1].stats
    assert st.tokens_per_s_source == "measured" and st.completion_tokens == 28  # from usage
    assert 10 < st.tokens_per_s < 2000 and st.ttft_s is not None and st.elapsed_s >= st.ttft_s


def _slow_pieces() -> list[bytes]:
    from chatstreams import USAGE, sse, vllm

    words = ["one", " two", " three", " four", " five"]
    return [sse(vllm({"content": w}), done=False) for w in words] + [sse(vllm(finish="stop"),
                                                                          vllm(choices=False, usage=USAGE))]
