"""The chat client against the real llama-server and the real SmolLM2 model.

One server per class (at most one runs at a time), ``-np 1 --threads 2``. The tiny model is
steered where a behaviour needs a particular output: a per-request GBNF ``grammar`` for the
thinking cases, and for real ``tool_calls`` deltas llama.cpp's ``GLM-4.7-Flash.jinja`` with
``enable_thinking: false``, ``tool_choice: "required"`` and a ``logit_bias`` favouring the
tokens of ``<tool_call>`` (``tool_choice`` alone does not make it call: the tool grammar is
lazy, triggered by that text).
"""

from __future__ import annotations

import asyncio

import pytest

from tui.core.chat.client import ChatClient
from tui.core.chat.conversation import Conversation
from tui.core.chat.events import Content, Done, Error, Reasoning, ToolCall, ToolCallStarted, coalesce

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]
HI = [{"role": "user", "content": "Hi"}]
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast for the next days",
    "parameters": {"type": "object", "properties": {"days": {"type": "integer"}, "metric": {"type": "boolean"}},
                   "required": ["days", "metric"]}}}]


def gbnf(text: str) -> str:
    return 'root ::= "' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


async def collect(client, messages=HI, **kw) -> list:
    return [ev async for ev in client.stream(messages, **kw)]


@pytest.fixture(scope="class")
def own(module_llama_server):
    srv = module_llama_server(ctx=1024, parallel=1)
    yield srv
    srv.stop()


@pytest.fixture(scope="class")
def glm(module_llama_server):
    srv = module_llama_server(ctx=1024, parallel=1, template="GLM-4.7-Flash.jinja")
    yield srv
    srv.stop()


@pytest.fixture(scope="class")
def guarded(module_llama_server):
    srv = module_llama_server("--api-key", "live-secret", ctx=256, parallel=1)
    yield srv
    srv.stop()


class TestOwnTemplate:
    async def test_plain_answer_with_usage_and_stats(self, own):
        async with ChatClient(own.base_url) as c:
            evs = await collect(c, [{"role": "user", "content": "Say hello."}], max_tokens=8,
                                params={"temperature": 0})
        c_evs = coalesce(evs)
        assert isinstance(c_evs[0], Content) and c_evs[0].text.strip()
        assert not any(isinstance(e, (Reasoning, Error)) for e in evs)
        done = evs[-1]
        assert isinstance(done, Done) and done.finish_reason in ("stop", "length")
        assert 1 <= done.usage["completion_tokens"] <= 8 and done.usage["prompt_tokens"] > 0
        st = done.stats
        assert st.tokens_per_s_source == "server" and st.tokens_per_s > 0
        assert 0 < st.ttft_s <= st.elapsed_s and st.completion_tokens == done.usage["completion_tokens"]

    async def test_raw_think_tags_in_content_are_split(self, own):
        # the model's own template knows no thinking: llama-server leaves <think> in content
        async with ChatClient(own.base_url) as c:
            evs = await collect(c, max_tokens=40, extra={"grammar": gbnf("<think>\nHmm, a greeting.\n</think>\n\nHi!")})
        assert [e for e in coalesce(evs) if not e.type == "usage"][:2] == [Reasoning("Hmm, a greeting."), Content("Hi!")]
        assert evs[-1].finish_reason == "stop"

    async def test_cancel_mid_stream_frees_the_slot(self, own):
        async with ChatClient(own.base_url) as c:
            seen = []
            report = None
            async for ev in c.stream([{"role": "user", "content": "Tell me a long story."}], max_tokens=4000,
                                     extra={"ignore_eos": True}):
                seen.append(ev)
                if sum(isinstance(e, Content) for e in seen) == 3 and report is None:
                    report = await c.cancel(wait=15)
        assert seen[-1].type == "done" and seen[-1].finish_reason == "cancelled"
        assert report.busy is False, report.message
        await asyncio.sleep(0.2)
        assert "cancel task" in own.log.read_text()


class TestGlmTemplate:
    async def test_reasoning_content_then_content(self, glm):
        # GLM-4.7-Flash's prompt ends with <think>; the server parses the reply into fields
        async with ChatClient(glm.base_url) as c:
            evs = await collect(c, max_tokens=40, extra={"grammar": gbnf("I should greet them.</think>Hello there!")})
        got = [e for e in coalesce(evs) if e.type != "usage"]
        assert got[:2] == [Reasoning("I should greet them."), Content("Hello there!")]
        assert got[-1].finish_reason == "stop"

    async def test_real_tool_call_and_tool_result_round_trip(self, glm):
        async with ChatClient(glm.base_url) as c:
            conv = Conversation(c, tools=WEATHER, tool_choice="required", thinking=False, max_tokens=200,
                                params={"temperature": 0, "seed": 42, "parallel_tool_calls": False},
                                extra={"logit_bias": {"<tool_call>": 5}})
            evs = [e async for e in conv.send("What is the weather in Tokyo?")]
            started = [e for e in evs if isinstance(e, ToolCallStarted)]
            calls = [e for e in evs if isinstance(e, ToolCall)]
            assert len(started) == 1 and started[0].name == "get_weather"
            assert len(calls) == 1 and calls[0].ok and calls[0].id == started[0].id
            assert isinstance(calls[0].arguments["days"], int) and isinstance(calls[0].arguments["metric"], bool)
            assert evs[-1].finish_reason == "tool_calls"
            # send the result back: the server accepts the history and answers
            conv.add_tool_result(calls[0].id, {"forecast": "sunny"})
            conv.tool_choice, conv.extra, conv.max_tokens = None, {}, 6
            evs2 = [e async for e in conv.send()]
        assert isinstance(evs2[-1], Done), evs2[-1]
        assert conv.messages[1]["tool_calls"][0]["id"] == calls[0].id
        assert conv.messages[2] == {"role": "tool", "tool_call_id": calls[0].id, "content": '{"forecast": "sunny"}'}


class TestGuarded:
    async def test_context_overflow_line(self, guarded):
        long = "Please summarise this. " + "The quick brown fox jumps over the lazy dog. " * 40
        async with ChatClient(guarded.base_url, api_key="live-secret") as c:
            evs = await collect(c, [{"role": "user", "content": long}], max_tokens=8)
        assert len(evs) == 1 and evs[0].kind == "context_overflow" and evs[0].status == 400
        assert "256 tokens" in evs[0].message and "prompt too long" in evs[0].message

    async def test_missing_and_right_api_key(self, guarded):
        async with ChatClient(guarded.base_url, api_key_env="SMOL_KEY") as c:
            evs = await collect(c, max_tokens=4)
        assert evs[0].kind == "auth" and evs[0].status == 401 and "$SMOL_KEY" in evs[0].message
        async with ChatClient(guarded.base_url, api_key="live-secret") as c:
            evs = await collect(c, max_tokens=4)
            report = await c.check_slots(wait=0)   # /slots needs the key too
        assert isinstance(evs[-1], Done) and report.busy is False
