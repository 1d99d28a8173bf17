"""Chat streams of servers that cannot run here, built from their documented shapes
(llama-server-protocol.md sections 7-11), each with the events it must give.

Envelopes per server (keys and order as the cited code paths write them):

* vLLM: compact JSON ``{"id":"chatcmpl-…","object":…,"created":…,"model":…,"choices":[{"index":0,
  "delta":{…},"logprobs":null,"finish_reason":null}]}``; first delta ``{"role":"assistant",
  "content":""}``; usage in a final ``choices: []`` chunk; reasoning in ``reasoning`` (newer) or
  ``reasoning_content`` (older); tool ids ``chatcmpl-tool-<hex>``; errors nested then ``[DONE]``.
* SGLang: every delta field present, null when unused; ``matched_stop``; ``usage: null`` on
  chunks; ``reasoning_content``; ids ``call_<hex>``; glm47 streams argument JSON character by
  character after a name-only delta; older builds send flat ``{"object":"error",…}``.
* LightLLM: SGLang-like; ``call_<24 hex>``; old builds finish with ``function_call``.
* llama.cpp, older builds: usage and timings on the finish chunk, no ``choices: []`` chunk.

``STREAMS`` maps a name to ``(body bytes, client options, expected coalesced events)``.
"""

from __future__ import annotations

import json

from tui.core.chat.events import Content, Done, Error, Reasoning, ToolCall, ToolCallArgs, ToolCallStarted


def sse(*payloads, done: bool = True, sep: str = "\n") -> bytes:
    out = []
    for p in payloads:
        if isinstance(p, bytes):
            out.append(p.decode())
        else:
            out.append("data: " + (p if isinstance(p, str) else json.dumps(p, separators=(",", ":"),
                                                                             ensure_ascii=False)) + sep + sep)
    if done:
        out.append("data: [DONE]" + sep + sep)
    return "".join(out).encode()


# --- envelopes ---------------------------------------------------------------------------------

def vllm(delta=None, finish=None, usage=None, choices=True, model="zai-org/GLM-5-FP8"):
    c = {"id": "chatcmpl-9f1c2b7a4e6d4c0f8a1b2c3d4e5f6a7b", "object": "chat.completion.chunk",
         "created": 1767000000, "model": model}
    c["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}] if choices else []
    if usage:
        c["usage"] = usage
    return c


def sglang(delta=None, finish=None, usage=None, choices=True):
    d = {"role": None, "content": None, "reasoning_content": None, "tool_calls": None}
    d.update(delta or {})
    c = {"id": "6f1d0c8e9b2a4f7e8d3c2b1a0f9e8d7c", "object": "chat.completion.chunk", "created": 1767000000,
         "model": "glm-4.7"}
    c["choices"] = ([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish,
                      "matched_stop": 151336 if finish else None}] if choices else [])
    c["usage"] = usage
    return c


def lightllm(delta=None, finish=None, usage=None):
    return {"id": "cmpl-3b8f", "object": "chat.completion.chunk", "created": 1767000000, "model": "GLM-4.7-Flash",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **({"usage": usage} if usage else {})}


def llamacpp_old(delta=None, finish=None, usage=None, timings=None):
    c = {"choices": [{"delta": delta or {}, "finish_reason": finish, "index": 0}], "created": 1750000000,
         "id": "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012345", "model": "glm-4.5", "object": "chat.completion.chunk",
         "system_fingerprint": "b6153-1fe00296"}
    if usage:
        c["usage"] = usage
    if timings:
        c["timings"] = timings
    return c


USAGE = {"prompt_tokens": 12, "total_tokens": 40, "completion_tokens": 28}
TIMINGS = {"cache_n": 0, "prompt_n": 12, "prompt_ms": 30.1, "prompt_per_token_ms": 2.5, "prompt_per_second": 398.7,
           "predicted_n": 28, "predicted_ms": 350.0, "predicted_per_token_ms": 12.5, "predicted_per_second": 80.0}
WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]


def chars(s: str) -> list[str]:
    return list(s)


def _stream_vllm_new_reasoning_field():
    return sse(vllm({"role": "assistant", "content": ""}),
               vllm({"reasoning": "The user"}), vllm({"reasoning": " wants weather."}),
               vllm({"content": "Sunny"}), vllm({"content": " in Tokyo."}),
               vllm(finish="stop"), vllm(choices=False, usage=USAGE))


def _stream_vllm_old_reasoning_content_whole_call():
    call = {"id": "chatcmpl-tool-4b1e9c2d7a8f4e6b9c0d1e2f3a4b5c6d", "type": "function", "index": 0,
            "function": {"name": "get_weather", "arguments": '{"city": "Tokyo", "days": 3}'}}
    return sse(vllm({"role": "assistant", "content": ""}),
               vllm({"reasoning_content": "Need the forecast."}),
               vllm({"tool_calls": [call]}), vllm(finish="tool_calls"), vllm(choices=False, usage=USAGE))


def _stream_vllm_transition_both_names():
    # vLLM between PR #27752 and #33402 may fill both names with the same text: count once
    return sse(vllm({"role": "assistant", "content": ""}),
               vllm({"reasoning": "Hmm", "reasoning_content": "Hmm"}),
               vllm({"reasoning": ", ok.", "reasoning_content": ", ok."}),
               vllm({"content": "Yes."}), vllm(finish="stop"))


def _stream_vllm_incremental_args():
    # PR #39253: name with empty arguments, then JSON fragments (strings partial), then "}"
    tid = "chatcmpl-tool-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    frags = ['{"city": "Tok', 'yo", "da', 'ys": 3', '}']
    return sse(vllm({"role": "assistant", "content": ""}),
               vllm({"reasoning": "Weather."}),
               vllm({"tool_calls": [{"index": 0, "id": tid, "type": "function",
                                     "function": {"name": "get_weather", "arguments": ""}}]}),
               *[vllm({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in frags],
               vllm(finish="tool_calls"), vllm(choices=False, usage=USAGE))


def _stream_vllm_parallel():
    ids = ["chatcmpl-tool-aaaa0000aaaa0000aaaa0000aaaa0000", "chatcmpl-tool-bbbb1111bbbb1111bbbb1111bbbb1111"]
    return sse(vllm({"role": "assistant", "content": ""}),
               vllm({"tool_calls": [{"id": ids[0], "type": "function", "index": 0,
                                     "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}}]}),
               vllm({"tool_calls": [{"id": ids[1], "type": "function", "index": 1,
                                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}),
               vllm(finish="tool_calls"))


def _stream_vllm_error_then_done():
    return sse(vllm({"role": "assistant", "content": ""}), vllm({"content": "Partial"}),
               {"error": {"message": "The engine died unexpectedly.", "type": "InternalServerError",
                          "param": None, "code": 500}})


def _stream_vllm_raw_glm47():
    # vLLM started without parsers (skip_special_tokens false): GLM-4.7's raw output in content
    text = ["Check", " weather", ".</", "think", ">", "<tool", "_call>", "get_weather", "<arg_", "key>city",
            "</arg_key>", "<arg_value>", "Tok", "yo</arg_value>", "<arg_key>days</arg_key><arg_value>2",
            "</arg_value></tool_call>"]
    return sse(vllm({"role": "assistant", "content": ""}), *[vllm({"content": t}) for t in text],
               vllm(finish="stop"))


def _stream_sglang_glm47_charwise():
    cid = "call_5f0e1d2c3b4a59687f6e5d4c"
    frags = ["{", '"city": ', '"'] + chars("Tokyo") + ['"', ", ", '"days": ', "3", "}"]
    return sse(sglang({"role": "assistant", "content": ""}),
               sglang({"reasoning_content": "Forecast"}), sglang({"reasoning_content": " needed."}),
               sglang({"tool_calls": [{"id": cid, "index": 0, "type": "function",
                                       "function": {"name": "get_weather", "arguments": ""}}]}),
               *[sglang({"tool_calls": [{"index": 0, "function": {"name": None, "arguments": f}}]}) for f in frags],
               sglang(finish="tool_calls"), sglang(choices=False, usage=USAGE))


def _stream_sglang_glm45_whole():
    cid = "call_0c9d8e7f6a5b4c3d2e1f0a9b"
    return sse(sglang({"role": "assistant", "content": ""}), sglang({"reasoning_content": "Look it up."}),
               sglang({"tool_calls": [{"id": cid, "index": 0, "type": "function",
                                       "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}),
               sglang(finish="tool_calls"))


def _stream_sglang_flat_error():
    return sse(sglang({"role": "assistant", "content": ""}),
               {"object": "error", "message": "Requested token count exceeds the model's maximum context length.",
                "type": "BadRequestError", "param": None, "code": 400}, done=False)


def _stream_lightllm_function_call():
    cid = "call_1a2b3c4d5e6f7a8b9c0d1e2f"
    return sse(lightllm({"role": "assistant", "content": ""}), lightllm({"reasoning_content": "Use the tool."}),
               lightllm({"tool_calls": [{"id": cid, "index": 0, "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]}),
               lightllm({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Rome"}'}}]}),
               lightllm(finish="function_call"))


def _stream_lightllm_reasoning_new():
    return sse(lightllm({"role": "assistant", "content": ""}), lightllm({"reasoning": "Short."}),
               lightllm({"content": "Done."}), lightllm(finish="stop", usage=USAGE))


def _stream_llamacpp_old_usage_on_finish():
    return sse(llamacpp_old({"role": "assistant", "content": None}), llamacpp_old({"reasoning_content": "Hi?"}),
               llamacpp_old({"content": "Hello"}), llamacpp_old({"content": "!"}),
               llamacpp_old({}, finish="stop", usage=USAGE, timings=TIMINGS))


def _stream_llamacpp_name_growth():
    tid = "Xq3f0AbCdEfGhIjKlMnOpQrStUvWxYz1"
    return sse(llamacpp_old({"role": "assistant", "content": None}),
               llamacpp_old({"tool_calls": [{"index": 0, "id": tid, "type": "function",
                                             "function": {"name": "get_", "arguments": ""}}]}),
               llamacpp_old({"tool_calls": [{"index": 0, "function": {"name": "get_weather",
                                                                      "arguments": '{"city":"'}}]}),
               *[llamacpp_old({"tool_calls": [{"index": 0, "function": {"arguments": c}}]}) for c in "Lima"],
               llamacpp_old({"tool_calls": [{"index": 0, "function": {"arguments": '"}'}}]}),
               llamacpp_old({}, finish="tool_calls"))


def _stream_pings_crlf():
    # ":" pings during a long prefill, CRLF line ends, several data lines in one event
    body = (b": ping\r\n\r\n:\r\n\r\n"
            + sse(vllm({"role": "assistant", "content": ""}), vllm({"content": "A"}), sep="\r\n", done=False)
            + b"data: {\"choices\":[{\"index\":0,\"delta\":\r\ndata: {\"content\":\"B\"}}]}\r\n\r\n"
            + b":\r\n\r\n" + sse(vllm(finish="stop"), sep="\r\n"))
    return body


def _stream_interrupted():
    return sse(vllm({"role": "assistant", "content": ""}), vllm({"reasoning": "Thinking"}),
               vllm({"content": "Half an ans"}), done=False)


def _stream_finish_without_done():
    return sse(lightllm({"content": "Fine."}), lightllm(finish="stop"), done=False)


def _tc(i, cid, name, args, raw):
    return [ToolCall(i, cid, name, args, raw, True)]


FORCED = {"reasoning_parser": "glm45"}

STREAMS: dict[str, tuple[bytes, dict, list]] = {
    "vllm_reasoning_field": (_stream_vllm_new_reasoning_field(), {}, [
        Reasoning("The user wants weather."), Content("Sunny in Tokyo."), Done("stop")]),
    "vllm_old_whole_call": (_stream_vllm_old_reasoning_content_whole_call(), {}, [
        Reasoning("Need the forecast."),
        ToolCallStarted(0, "chatcmpl-tool-4b1e9c2d7a8f4e6b9c0d1e2f3a4b5c6d", "get_weather"),
        ToolCallArgs(0, '{"city": "Tokyo", "days": 3}'),
        ToolCall(0, "chatcmpl-tool-4b1e9c2d7a8f4e6b9c0d1e2f3a4b5c6d", "get_weather", {"city": "Tokyo", "days": 3},
                 '{"city": "Tokyo", "days": 3}', True), Done("tool_calls")]),
    "vllm_both_reasoning_names": (_stream_vllm_transition_both_names(), {}, [
        Reasoning("Hmm, ok."), Content("Yes."), Done("stop")]),
    "vllm_incremental_args": (_stream_vllm_incremental_args(), {}, [
        Reasoning("Weather."),
        ToolCallStarted(0, "chatcmpl-tool-0a1b2c3d4e5f60718293a4b5c6d7e8f9", "get_weather"),
        ToolCallArgs(0, '{"city": "Tokyo", "days": 3}'),
        ToolCall(0, "chatcmpl-tool-0a1b2c3d4e5f60718293a4b5c6d7e8f9", "get_weather", {"city": "Tokyo", "days": 3},
                 '{"city": "Tokyo", "days": 3}', True), Done("tool_calls")]),
    "vllm_parallel": (_stream_vllm_parallel(), {}, [
        ToolCallStarted(0, "chatcmpl-tool-aaaa0000aaaa0000aaaa0000aaaa0000", "get_weather"),
        ToolCallArgs(0, '{"city": "Tokyo"}'),
        ToolCallStarted(1, "chatcmpl-tool-bbbb1111bbbb1111bbbb1111bbbb1111", "get_weather"),
        ToolCallArgs(1, '{"city": "Paris"}'),
        ToolCall(0, "chatcmpl-tool-aaaa0000aaaa0000aaaa0000aaaa0000", "get_weather", {"city": "Tokyo"},
                 '{"city": "Tokyo"}', True),
        ToolCall(1, "chatcmpl-tool-bbbb1111bbbb1111bbbb1111bbbb1111", "get_weather", {"city": "Paris"},
                 '{"city": "Paris"}', True), Done("tool_calls")]),
    "vllm_error_then_done": (_stream_vllm_error_then_done(), {}, [
        Content("Partial"), Error("server error during generation: The engine died unexpectedly.", 500, "server")]),
    "vllm_raw_glm47": (_stream_vllm_raw_glm47(), dict(FORCED, tools=WEATHER), [
        Reasoning("Check weather."), ToolCallStarted(0, "call_0", "get_weather"),
        ToolCallArgs(0, '{"city": "Tokyo", "days": 2}'),
        ToolCall(0, "call_0", "get_weather", {"city": "Tokyo", "days": 2},
                 "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Tokyo</arg_value><arg_key>days</arg_key>"
                 "<arg_value>2</arg_value></tool_call>", True), Done("stop")]),
    "sglang_glm47_charwise": (_stream_sglang_glm47_charwise(), {}, [
        Reasoning("Forecast needed."), ToolCallStarted(0, "call_5f0e1d2c3b4a59687f6e5d4c", "get_weather"),
        ToolCallArgs(0, '{"city": "Tokyo", "days": 3}'),
        ToolCall(0, "call_5f0e1d2c3b4a59687f6e5d4c", "get_weather", {"city": "Tokyo", "days": 3},
                 '{"city": "Tokyo", "days": 3}', True), Done("tool_calls")]),
    "sglang_glm45_whole": (_stream_sglang_glm45_whole(), {}, [
        Reasoning("Look it up."), ToolCallStarted(0, "call_0c9d8e7f6a5b4c3d2e1f0a9b", "get_weather"),
        ToolCallArgs(0, '{"city": "Oslo"}'),
        ToolCall(0, "call_0c9d8e7f6a5b4c3d2e1f0a9b", "get_weather", {"city": "Oslo"}, '{"city": "Oslo"}', True),
        Done("tool_calls")]),
    "sglang_flat_error": (_stream_sglang_flat_error(), {}, [
        Error("server error during generation: Requested token count exceeds the model's maximum context length.",
              400, "server")]),
    "lightllm_function_call": (_stream_lightllm_function_call(), {}, [
        Reasoning("Use the tool."), ToolCallStarted(0, "call_1a2b3c4d5e6f7a8b9c0d1e2f", "get_weather"),
        ToolCallArgs(0, '{"city": "Rome"}'),
        ToolCall(0, "call_1a2b3c4d5e6f7a8b9c0d1e2f", "get_weather", {"city": "Rome"}, '{"city": "Rome"}', True),
        Done("function_call")]),
    "lightllm_reasoning_new": (_stream_lightllm_reasoning_new(), {}, [
        Reasoning("Short."), Content("Done."), Done("stop")]),
    "llamacpp_old_usage_on_finish": (_stream_llamacpp_old_usage_on_finish(), {}, [
        Reasoning("Hi?"), Content("Hello!"), Done("stop")]),
    "llamacpp_name_growth": (_stream_llamacpp_name_growth(), {}, [
        ToolCallStarted(0, "Xq3f0AbCdEfGhIjKlMnOpQrStUvWxYz1", "get_weather"), ToolCallArgs(0, '{"city":"Lima"}'),
        ToolCall(0, "Xq3f0AbCdEfGhIjKlMnOpQrStUvWxYz1", "get_weather", {"city": "Lima"}, '{"city":"Lima"}', True),
        Done("tool_calls")]),
    "pings_crlf": (_stream_pings_crlf(), {}, [Content("AB"), Done("stop")]),
    "interrupted": (_stream_interrupted(), {}, [
        Reasoning("Thinking"), Content("Half an ans"),
        Error("the stream closed before the model finished (no finish_reason): the reply is incomplete; "
              "the text received so far is kept", None, "interrupted")]),
    "finish_without_done": (_stream_finish_without_done(), {}, [Content("Fine."), Done("stop")]),
}


def comparable(events: list) -> list:
    """Coalesced events without usage, with Done reduced to its finish reason."""
    from tui.core.chat.events import Usage, coalesce

    out = []
    for ev in coalesce([e for e in events if not isinstance(e, Usage)]):
        out.append(Done(ev.finish_reason) if isinstance(ev, Done) else ev)
    return out
