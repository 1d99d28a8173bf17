"""The client's requests, errors, cancel and conversation history, against a local server.

The HTTP error bodies are the ones llama-server really sends (``llamacpp_overflow.json`` and
``llamacpp_unauthorized.json`` were recorded; the 503 body is the loading middleware's,
server-http.cpp:307-326 — the demo model loads too fast to catch it live).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from chatstreams import USAGE, WEATHER, sse, vllm
from conftest import free_port
from streamserver import Reply, StreamServer, json_reply
from tui.core import registry as reg_mod
from tui.core.chat.client import ChatClient, ChatTarget
from tui.core.chat.conversation import Conversation
from tui.core.chat.events import Content, Done, Error, Reasoning, ToolCall
from tui.core.chat.tools import ToolsError, load_tools

pytestmark = pytest.mark.timeout(60)
FIX = Path(__file__).parent / "fixtures" / "chat"
HI = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


@pytest.fixture
def server():
    with StreamServer() as s:
        yield s


async def run(client: ChatClient, messages=HI, **kw) -> list:
    return [ev async for ev in client.stream(messages, **kw)]


def recorded_error(name: str) -> Reply:
    rec = json.loads((FIX / f"llamacpp_{name}.json").read_text())
    return Reply(status=rec["status"], body=rec["body"].encode(), content_type=rec["content_type"], chunked=False)


def answer(text="ok") -> Reply:
    return Reply(body=sse(vllm({"content": text}), vllm(finish="stop"), vllm(choices=False, usage=USAGE)))


# --- HTTP errors: one line each -------------------------------------------------------------

async def test_context_overflow_names_prompt_tokens_and_context(server):
    server.queue(CHAT, recorded_error("overflow"))
    async with ChatClient(server.base_url, model="m") as c:
        evs = await run(c)
    assert len(evs) == 1 and isinstance(evs[0], Error)
    e = evs[0]
    assert (e.kind, e.status) == ("context_overflow", 400)
    assert "396 tokens" in e.message and "256 tokens" in e.message and "ctx_size" in e.message
    assert "\n" not in e.message


async def test_vllm_context_overflow_wording(server):
    body = {"object": "error", "message": "This model's maximum context length is 8192 tokens. However, you "
            "requested 9000 tokens (8000 in the messages, 1000 in the completion).", "type": "BadRequestError",
            "param": None, "code": 400}
    server.queue(CHAT, json_reply(body, 400))
    async with ChatClient(server.base_url, model="m") as c:
        e = (await run(c))[0]
    assert e.kind == "context_overflow" and "9000 tokens" in e.message and "8192 tokens" in e.message


async def test_401_without_and_with_a_key(server):
    server.queue(CHAT, recorded_error("unauthorized"), recorded_error("unauthorized"))
    async with ChatClient(server.base_url, model="m", api_key_env="GLM_KEY") as c:
        e = (await run(c))[0]
    assert (e.kind, e.status) == ("auth", 401)
    assert "none was sent" in e.message and "$GLM_KEY" in e.message and "Invalid API Key" in e.message
    async with ChatClient(server.base_url, model="m", api_key="wrong") as c:
        e = (await run(c))[0]
    assert "rejected" in e.message
    assert server.chat_requests()[-1]["headers"]["authorization"] == "Bearer wrong"


async def test_503_while_loading(server):
    server.queue(CHAT, json_reply({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}, 503))
    async with ChatClient(server.base_url, model="m", name="glm-5") as c:
        e = (await run(c))[0]
    assert (e.kind, e.status) == ("loading", 503)
    assert "still loading" in e.message and "Loading model" in e.message and "'llmdeck health glm-5'" in e.message


async def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/v1"
    async with ChatClient(url, model="m", name="qwen") as c:
        evs = await run(c)
    assert len(evs) == 1 and evs[0].kind == "connect"
    assert "connection refused" in evs[0].message and url in evs[0].message and "llmdeck start qwen" in evs[0].message


async def test_other_http_errors_and_not_found(server):
    server.queue(CHAT, json_reply({"error": {"code": 500, "message": "boom", "type": "server_error"}}, 500))
    async with ChatClient(server.base_url, model="m") as c:
        e = (await run(c))[0]
    assert (e.kind, e.status) == ("http", 500) and "boom" in e.message
    async with ChatClient(server.base + "/wrong", model="m") as c:
        e = (await run(c))[0]
    assert e.status == 404 and "end in /v1" in e.message


async def test_abrupt_close_mid_stream_is_interrupted_and_keeps_partial_text(server):
    server.queue(CHAT, Reply(body=[sse(vllm({"reasoning": "Let me"}), vllm({"content": "The ans"}), done=False)],
                             abort=True))
    async with ChatClient(server.base_url, model="m") as c:
        evs = await run(c)
    assert evs[0] == Reasoning("Let me") and evs[1] == Content("The ans")
    assert isinstance(evs[-1], Error) and evs[-1].kind == "interrupted" and "kept" in evs[-1].message


async def test_read_timeout(server):
    server.queue(CHAT, Reply(body=[sse(vllm({"content": "a"}), done=False), sse(vllm(finish="stop"))], delay=2))
    async with ChatClient(server.base_url, model="m", read_timeout=0.3) as c:
        evs = await run(c)
    assert evs[0] == Content("a") and evs[-1].kind == "timeout"


async def test_server_that_ignores_stream_true(server):
    body = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "", "reasoning_content": "Think.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}}],
        "usage": USAGE}
    server.queue(CHAT, json_reply(body))
    async with ChatClient(server.base_url, model="m") as c:
        evs = await run(c)
    assert evs[0] == Reasoning("Think.")
    call = [e for e in evs if isinstance(e, ToolCall)][0]
    assert (call.name, call.arguments) == ("f", {"a": 1})
    assert evs[-1].finish_reason == "tool_calls" and evs[-1].usage == USAGE


# --- requests ------------------------------------------------------------------------------------

async def test_request_body(server):
    server.queue(CHAT, answer())
    async with ChatClient(server.base_url, model="glm", defaults={"temperature": 0.6, "top_p": 0.95}) as c:
        await run(c, tools=WEATHER, tool_choice="required", max_tokens=64, thinking=False,
                  params={"top_p": 0.9}, extra={"logit_bias": {"1": 2}})
    body = server.chat_requests()[-1]["json"]
    assert body["model"] == "glm" and body["messages"] == HI
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.6 and body["top_p"] == 0.9 and body["max_tokens"] == 64
    assert body["chat_template_kwargs"] == {"enable_thinking": False}   # a JSON boolean, not "false"
    assert body["tools"] == WEATHER and body["tool_choice"] == "required" and body["logit_bias"] == {"1": 2}


async def test_thinking_left_to_the_server_by_default_and_model_probed(server):
    server.default("/v1/models", json_reply({"object": "list", "data": [{"id": "zai-org/GLM-5-FP8"}]}))
    server.queue(CHAT, answer(), answer())
    async with ChatClient(server.base_url) as c:
        await run(c)
        await run(c)
    chats = server.chat_requests()
    assert all(r["json"]["model"] == "zai-org/GLM-5-FP8" for r in chats)
    assert "chat_template_kwargs" not in chats[0]["json"]
    assert sum(r["path"] == "/v1/models" for r in server.requests) == 1


def write_registry(tmp_path: Path, models: dict) -> reg_mod.Registry:
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"models": models}))
    return reg_mod.load(p)


def test_target_from_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("GLM_KEY", "s3cret")
    reg = write_registry(tmp_path, {
        "glm-5": {"engine": "llama-server", "default_port": 8001, "alias": "GLM-5", "model_path": "x.gguf",
                  "api_key_env": "GLM_KEY", "reasoning_parser": "glm45", "tool_call_parser": "glm47",
                  "params": {"temp": 1.0, "top_p": 0.95, "ctx_size": 4096, "reasoning_format": "none"}},
        "remote": {"engine": "external", "base_url": "http://10.0.0.5:8000/v1/", "reasoning_parser": "qwen3"},
    })
    t = ChatTarget.from_registry(reg, "glm-5")
    assert t.base_url == "http://127.0.0.1:8001/v1" and t.model == "GLM-5" and t.api_key == "s3cret"
    assert t.defaults == {"temperature": 1.0, "top_p": 0.95}          # ctx_size is not a request field
    assert (t.reasoning_parser, t.tool_call_parser, t.server_parses_reasoning) == ("glm45", "glm47", False)
    assert ChatClient(t).raw_parser(thinking=None)._state == 1          # forced-open: starts in reasoning
    assert ChatClient(t).raw_parser(thinking=False)._state == 0         # thinking off: starts in content
    r = ChatTarget.from_registry(reg, "remote")
    assert r.base_url == "http://10.0.0.5:8000/v1" and r.origin == "http://10.0.0.5:8000"
    assert r.server_parses_reasoning is None and r.model == "remote"


def test_target_uses_the_supervisors_url_when_the_server_runs_elsewhere(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tui.core import supervisor

    reg = write_registry(tmp_path, {"g": {"default_port": 8001, "model_path": "x.gguf"}})
    seen = {}

    def fake_state_of(registry, name, probe=True):
        seen["probe"] = probe
        return SimpleNamespace(state="ready", url="http://127.0.0.1:9123/v1")

    monkeypatch.setattr(supervisor, "state_of", fake_state_of)
    assert ChatTarget.from_registry(reg, "g").base_url == "http://127.0.0.1:9123/v1"
    assert seen["probe"] is False   # no network probe just to find the URL
    monkeypatch.setattr(supervisor, "state_of", lambda *a, **k: SimpleNamespace(state="stopped", url=None))
    assert ChatTarget.from_registry(reg, "g").base_url == "http://127.0.0.1:8001/v1"


def test_llama_server_that_parses_reasoning_does_not_start_in_reasoning(tmp_path):
    reg = write_registry(tmp_path, {"g": {"default_port": 8001, "model_path": "x.gguf", "reasoning_parser": "glm45"}})
    t = ChatTarget.from_registry(reg, "g")
    assert t.server_parses_reasoning is True
    assert ChatClient(t).raw_parser()._state == 0


def test_tools_file(tmp_path):
    good = tmp_path / "tools.json"
    good.write_text(json.dumps({"tools": WEATHER}))
    assert load_tools(good) == WEATHER
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([{"name": "f", "parameters": {"type": "object"}}]))
    assert load_tools(bare)[0]["function"]["name"] == "f"
    for text, needle in [("[1,", "line 1:"), ("[]", "non-empty list"), ('[{"type": "function"}]', "tool #1"),
                         ('[{"function": {"name": "f", "parameters": 3}}]', "parameters")]:
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ToolsError, match=needle) as exc:
            load_tools(bad)
        assert str(bad) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ToolsError, match="not found"):
        load_tools(tmp_path / "missing.json")


# --- cancel ----------------------------------------------------------------------------------------

def slow_stream(n=200) -> Reply:
    return Reply(body=[sse(vllm({"content": f" w{i}"}), done=False) for i in range(n)] + [sse(vllm(finish="stop"))],
                 delay=0.02)


async def test_cancel_closes_the_stream_and_reports_a_free_slot(server):
    server.queue(CHAT, slow_stream())
    server.default("/slots", json_reply([{"id": 0, "is_processing": False}]))
    async with ChatClient(server.base_url, model="m") as c:
        seen: list = []
        report = None
        async for ev in c.stream(HI):
            seen.append(ev)
            if len(seen) == 3:
                report = await c.cancel()
        assert not c.streaming
    assert isinstance(seen[-1], Done) and seen[-1].finish_reason == "cancelled"
    assert [e.text for e in seen[:-1]] == ["w0", " w1", " w2"]  # leading space of the answer dropped
    assert report.busy is False and "stopped" in report.message
    await asyncio.sleep(0.3)
    assert CHAT in server.disconnects  # the server saw the connection go


async def test_cancel_reports_a_server_still_busy(server):
    server.queue(CHAT, slow_stream())
    server.default("/slots", json_reply([{"id": 0, "is_processing": True}, {"id": 1, "is_processing": False}]))
    async with ChatClient(server.base_url, model="m") as c:
        async for ev in c.stream(HI):
            report = await c.cancel(wait=0.3)
            break
    assert report.busy is True and report.processing == 1 and "still busy: 1 of 2" in report.message


async def test_cancel_when_slots_is_unavailable(server):
    server.queue(CHAT, slow_stream())
    server.default("/slots", json_reply({"error": {"code": 501, "message": "This server does not support slots",
                                                   "type": "not_supported_error"}}, 501))
    async with ChatClient(server.base_url, model="m") as c:
        async for ev in c.stream(HI):
            report = await c.cancel()
            break
    assert report.busy is None and "501" in report.message


async def test_cancel_from_another_task_during_a_silent_prefill(server):
    # no byte arrives for a while (a long prefill): cancel must not wait for one
    server.queue(CHAT, Reply(body=[b": ping\n\n", sse(vllm({"content": "late"}))], delay=5))
    server.default("/slots", json_reply([]))
    async with ChatClient(server.base_url, model="m") as c:
        async def consume():
            return [ev async for ev in c.stream(HI)]
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        t0 = asyncio.get_running_loop().time()
        await c.cancel()
        evs = await task
        assert asyncio.get_running_loop().time() - t0 < 2
    assert evs == [Done("cancelled", None, None, evs[-1].stats)]


# --- conversation ------------------------------------------------------------------------------

async def test_conversation_history_tool_results_and_reasoning(server):
    call = {"id": "call_7", "type": "function", "index": 0,
            "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}}
    server.queue(CHAT,
                 Reply(body=sse(vllm({"reasoning": "Need data."}), vllm({"tool_calls": [call]}),
                                vllm(finish="tool_calls"))),
                 Reply(body=sse(vllm({"reasoning": "Got it."}), vllm({"content": "Sunny."}), vllm(finish="stop"))),
                 Reply(body=sse(vllm({"content": "Bye."}), vllm(finish="stop"))))
    async with ChatClient(server.base_url, model="m") as c:
        conv = Conversation(c, system="Be brief.", tools=WEATHER, thinking=False, max_tokens=50)
        [e async for e in conv.send("Weather in Tokyo?")]
        assert [x.id for x in conv.unanswered_tool_calls()] == ["call_7"]
        conv.add_tool_result("call_7", {"sky": "clear"})
        assert conv.unanswered_tool_calls() == []
        [e async for e in conv.send()]
        assert conv.last.content == "Sunny." and conv.last.reasoning == "Got it." and conv.last.stats is not None
        [e async for e in conv.send("Thanks")]
    reqs = [r["json"] for r in server.chat_requests()]
    assert reqs[0]["messages"] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Weather in Tokyo?"}]
    assert reqs[0]["chat_template_kwargs"] == {"enable_thinking": False} and reqs[0]["max_tokens"] == 50
    second = reqs[1]["messages"]
    assert second[2] == {"role": "assistant", "content": "", "reasoning_content": "Need data.",
                         "tool_calls": [{"id": "call_7", "type": "function",
                                         "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}}]}
    assert second[3] == {"role": "tool", "tool_call_id": "call_7", "content": '{"sky": "clear"}'}
    third = reqs[2]["messages"]
    # after a new user message, older reasoning is not sent back
    assert all("reasoning_content" not in m for m in third)
    assert third[-2] == {"role": "assistant", "content": "Sunny."} and third[-1]["content"] == "Thanks"


async def test_failed_turn_leaves_history_unchanged(server):
    server.queue(CHAT, recorded_error("overflow"))
    async with ChatClient(server.base_url, model="m") as c:
        conv = Conversation(c)
        evs = [e async for e in conv.send("too long")]
    assert evs[-1].kind == "context_overflow"
    assert conv.messages == [] and conv.last.prompt == "too long" and conv.last.error is evs[-1]


async def test_interrupted_turn_keeps_its_partial_text(server):
    server.queue(CHAT, Reply(body=[sse(vllm({"content": "Half"}), done=False)], abort=True))
    async with ChatClient(server.base_url, model="m") as c:
        conv = Conversation(c)
        [e async for e in conv.send("go")]
    assert conv.messages[-1] == {"role": "assistant", "content": "Half"}
    assert conv.last.error.kind == "interrupted"


async def test_a_payload_the_client_cannot_read_ends_the_turn_with_one_error(server):
    # content that is not text: the turn still ends (no hang), with one line
    server.queue(CHAT, Reply(body=sse(vllm({"content": "ok "}), vllm({"content": {"weird": 1}}),
                                      vllm(finish="stop"))))
    async with ChatClient(server.base_url, model="m") as c:
        evs = await asyncio.wait_for(run(c), 10)
    assert evs[0] == Content("ok ") and evs[-1].kind == "protocol" and "\n" not in evs[-1].message
    assert sum(isinstance(e, (Done, Error)) for e in evs) == 1


async def test_content_parts_are_read_as_text(server):
    server.queue(CHAT, Reply(body=sse(vllm({"content": [{"type": "text", "text": "Hel"}, "lo"]}), vllm(finish="stop"))))
    async with ChatClient(server.base_url, model="m") as c:
        evs = await run(c)
    assert evs[0] == Content("Hello") and evs[-1].finish_reason == "stop"


async def test_regenerate_forgets_the_last_exchange_with_its_tool_calls(server):
    call = {"id": "call_1", "type": "function", "index": 0,
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    server.queue(CHAT,
                 Reply(body=sse(vllm({"content": "Hello."}), vllm(finish="stop"))),
                 Reply(body=sse(vllm({"tool_calls": [call]}), vllm(finish="tool_calls"))),
                 Reply(body=sse(vllm({"content": "Rainy."}), vllm(finish="stop"))),
                 Reply(body=sse(vllm({"content": "Snowy."}), vllm(finish="stop"))))
    async with ChatClient(server.base_url, model="m") as c:
        conv = Conversation(c, tools=WEATHER)
        assert conv.drop_last_exchange() is None  # nothing asked yet
        [e async for e in conv.send("Hi")]
        [e async for e in conv.send("Weather in Oslo?")]
        conv.add_tool_result("call_1", "rain")
        [e async for e in conv.send()]
        assert len(conv.messages) == 6 and len(conv.turns) == 3
        text = conv.drop_last_exchange()
        assert text == "Weather in Oslo?" and len(conv.turns) == 1
        assert conv.messages == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
        [e async for e in conv.send(text)]
    last = server.chat_requests()[-1]["json"]["messages"]
    assert last == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": "Weather in Oslo?"}]  # the old reply and tool result gone
    assert conv.last.content == "Snowy."
