"""The incremental raw-tag parser: every format, every chunking gives the same events.

The invariant (llama-server-protocol.md section 17): feeding the same text whole, one
character at a time, split at every position into two pieces, or in seeded random pieces
gives the same events once adjacent deltas are merged. Held-back text is only ever a possible
tag start, so nothing is emitted and then taken back.
"""

from __future__ import annotations

import json
import random

import pytest
from chunking import random_pieces

from tui.core.chat.events import Content, Reasoning, ToolCall, ToolCallArgs, ToolCallStarted, coalesce
from tui.core.chat.rawtags import RawTagParser, convert_value, schema_kind

pytestmark = pytest.mark.timeout(60)

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}, "opts": {"type": "object"},
    "unit": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}}}]


def parse(pieces, **kw) -> list:
    p = RawTagParser(id_factory=lambda i: f"call_{i}", **kw)
    out: list = []
    for piece in pieces:
        p.feed(piece, out)
    p.flush(out)
    return out


def chunkings(text: str, n_random: int = 40):
    yield [text]
    yield list(text)
    for i in range(len(text) + 1):
        yield [text[:i], text[i:]]
    for seed in range(n_random):
        yield random_pieces(text, seed, 12)


def check_all_chunkings(text: str, expected: list, **kw) -> None:
    for pieces in chunkings(text):
        got = coalesce(parse(pieces, **kw))
        assert got == expected, (pieces, got)


def args_join(events, index=0) -> str:
    return "".join(e.text for e in events if isinstance(e, ToolCallArgs) and e.index == index)


# --- thinking ---------------------------------------------------------------------------------

def test_think_block_at_start_then_answer():
    text = "\n<think>\nThe user 问候.\n\n</think>\n\nHello 世界!"
    check_all_chunkings(text, [Reasoning("The user 问候."), Content("Hello 世界!")])


def test_forced_open_thinking_only_close_tag_appears():
    # GLM-4.7 / GLM-5 / Qwen3.5: the prompt opened <think>; the output has only </think>
    text = "I should greet them.</think>Hello there!"
    check_all_chunkings(text, [Reasoning("I should greet them."), Content("Hello there!")], starts_in_reasoning=True)


def test_forced_mode_swallows_an_explicit_think_at_start():
    # GLM-4.5 (same glm45 parser) writes "\n<think>…</think>"
    check_all_chunkings("\n<think>r</think>\nans", [Reasoning("r"), Content("ans")], starts_in_reasoning=True)


def test_without_forced_mode_close_tag_in_content_stays_text():
    check_all_chunkings("a </think> b <think> c", [Content("a </think> b <think> c")])


def test_think_honoured_only_at_start():
    check_all_chunkings("Hi <think>x</think>", [Content("Hi <think>x</think>")])


def test_whitespace_only_reasoning_yields_nothing():
    check_all_chunkings("<think>\n \n</think>Answer", [Content("Answer")])


def test_reasoning_inner_whitespace_kept_trailing_dropped():
    check_all_chunkings("<think>a\n\nb  \n</think>c", [Reasoning("a\n\nb"), Content("c")])


def test_content_is_never_trimmed_inside():
    check_all_chunkings("x  \n  y  ", [Content("x  \n  y  ")])


def test_unterminated_reasoning_stays_reasoning_and_is_flagged():
    p = RawTagParser(starts_in_reasoning=True)
    out: list = []
    for c in ["Still thinking ", "about it  ", "</thi"]:
        p.feed(c, out)
    p.flush(out)
    assert coalesce(out) == [Reasoning("Still thinking about it  </thi")]
    assert p.reasoning_unterminated


def test_structured_reasoning_switches_forced_mode_off():
    p = RawTagParser(starts_in_reasoning=True)
    p.structured_reasoning_seen()
    out: list = []
    p.feed("The answer.", out)
    p.flush(out)
    assert out == [Content("The answer.")]


def test_partial_tag_prefix_that_is_not_a_tag_is_released():
    check_all_chunkings("a <tool x> b <thinker", [Content("a <tool x> b <thinker")])


# --- GLM key/value tool calls -------------------------------------------------------------------

GLM47 = ("Check Tokyo.</think><tool_call>get_weather<arg_key>city</arg_key><arg_value>東京 \"Tokyo\"</arg_value>"
         "<arg_key>days</arg_key><arg_value>3</arg_value><arg_key>opts</arg_key><arg_value>{\"a\": [1, true]}"
         "</arg_value></tool_call>")
GLM47_ARGS = {"city": "東京 \"Tokyo\"", "days": 3, "opts": {"a": [1, True]}}


def test_glm47_compact_call_typed_by_schema():
    expected = [Reasoning("Check Tokyo."), ToolCallStarted(0, "call_0", "get_weather"),
                ToolCallArgs(0, json.dumps(GLM47_ARGS, ensure_ascii=False)),
                ToolCall(0, "call_0", "get_weather", GLM47_ARGS, GLM47[GLM47.index("<tool_call>"):], True)]
    check_all_chunkings(GLM47, expected, starts_in_reasoning=True, tools=TOOLS)


def test_glm45_call_with_newlines_and_zero_arg_call():
    text = ("\n<think>r</think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Oslo</arg_value>\n"
            "<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>\n<tool_call>get_time</tool_call>")
    got = coalesce(parse([text], starts_in_reasoning=True, tools=TOOLS))
    assert [type(e) for e in got] == [Reasoning, ToolCallStarted, ToolCallArgs, ToolCall,
                                      ToolCallStarted, ToolCallArgs, ToolCall]
    assert got[3].arguments == {"city": "Oslo", "days": 2} and got[3].ok
    assert (got[4].name, got[5].text, got[6].arguments, got[6].index) == ("get_time", "{}", {}, 1)
    check_all_chunkings(text, got, starts_in_reasoning=True, tools=TOOLS)


def test_string_parameters_stream_before_the_value_closes():
    p = RawTagParser(tools=TOOLS, id_factory=lambda i: "c")
    out: list = []
    p.feed("<tool_call>get_weather<arg_key>city</arg_key><arg_value>San Fra", out)
    assert args_join(out) == '{"city": "San Fra'
    p.feed("ncisco</arg_value></tool_call>", out)
    assert args_join(out) == '{"city": "San Francisco"}'


def test_without_schema_json_values_are_json_else_strings():
    text = ("<tool_call>f<arg_key>n</arg_key><arg_value>12</arg_value><arg_key>s</arg_key>"
            "<arg_value>hello</arg_value><arg_key>b</arg_key><arg_value>true</arg_value></tool_call>")
    call = [e for e in parse([text]) if isinstance(e, ToolCall)][0]
    assert call.arguments == {"n": 12, "s": "hello", "b": True}
    assert json.loads(args_join(parse([text]))) == call.arguments


def test_value_typing_rules():
    assert convert_value("007", "string") == "007"
    assert convert_value(" 3 ", "other") == 3
    assert convert_value("{'a': 1}", "other") == {"a": 1}   # Python literal, typed non-string
    assert convert_value("{'a': 1}", None) == "{'a': 1}"    # no schema: not JSON → string
    assert convert_value("01234", None) == "01234"
    assert schema_kind({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "string"
    assert schema_kind({"type": ["integer", "null"]}) == "other"
    assert schema_kind({"enum": ["a", "b"]}) == "string"
    assert schema_kind({}) is None


def test_tool_call_inside_reasoning_ends_the_reasoning():
    text = "I will look it up <tool_call>get_weather<arg_key>city</arg_key><arg_value>Rome</arg_value></tool_call>"
    got = coalesce(parse([text], starts_in_reasoning=True, tools=TOOLS))
    assert got[0] == Reasoning("I will look it up")
    assert got[-1].arguments == {"city": "Rome"}
    kept = coalesce(parse([text], starts_in_reasoning=True, tool_call_ends_reasoning=False))
    assert kept == [Reasoning(text)]


def test_unterminated_call_reported_incomplete_with_raw_text():
    text = "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Par"
    got = coalesce(parse([text], tools=TOOLS))
    assert got[-1] == ToolCall(0, "call_0", "get_weather", None, text, False)


def test_text_around_calls():
    text = "Let me check.\n<tool_call>get_weather</tool_call>\n\nDone checking."
    got = coalesce(parse([text]))
    assert got[0] == Content("Let me check.\n")
    assert got[-1] == Content("Done checking.")
    check_all_chunkings(text, got)


# --- Qwen formats ----------------------------------------------------------------------------------

QWEN35 = ("Need the weather.\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nNew\nYork\n"
          "</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>")


def test_qwen35_xml_values_lose_one_newline_each_side():
    got = coalesce(parse([QWEN35], starts_in_reasoning=True, tools=TOOLS))
    assert got[0] == Reasoning("Need the weather.")
    assert got[-1].arguments == {"city": "New\nYork", "days": 2}
    assert json.loads(args_join(got)) == got[-1].arguments
    check_all_chunkings(QWEN35, got, starts_in_reasoning=True, tools=TOOLS)


def test_qwen35_call_complete_after_function_close_even_without_tool_call_close():
    text = "<tool_call>\n<function=get_time>\n</function>\n"
    got = coalesce(parse([text]))
    assert got[-1].ok and got[-1].arguments == {} and got[-1].name == "get_time"


HERMES = '<think>\nParis.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_hermes_json_call():
    got = coalesce(parse([HERMES]))
    assert got == [Reasoning("Paris."), ToolCallStarted(0, "call_0", "get_weather"),
                   ToolCallArgs(0, '{"city": "Paris"}'),
                   ToolCall(0, "call_0", "get_weather", {"city": "Paris"}, HERMES[HERMES.index("<tool_call>"):], True)]
    check_all_chunkings(HERMES, got)


def test_hermes_name_announced_before_the_block_closes():
    p = RawTagParser()
    out: list = []
    p.feed('<tool_call>\n{"name": "get_weather", "argu', out)
    assert [e for e in out if isinstance(e, ToolCallStarted)][0].name == "get_weather"


def test_hermes_parameters_key_and_string_encoded_arguments():
    text = '<tool_call>{"name": "f", "parameters": "{\\"x\\": 1}"}</tool_call>'
    assert coalesce(parse([text]))[-1].arguments == {"x": 1}


def test_hermes_bad_json_is_reported_not_ok():
    text = '<tool_call>{"name": "f", "arguments": {"x": </tool_call>after'
    got = coalesce(parse([text]))
    assert got[1].ok is False and got[1].name == "f" and got[-1] == Content("after")


# --- the property over many generated texts ------------------------------------------------------

PIECES = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>",
          "</arg_value>", "<function=f>", "<parameter=k>", "</parameter>", "</function>", "\n", " ", "<", "</",
          "text", "東京", '{"name": "g", "arguments": {}}', "7", ">", "get_weather", "city", "ü"]


@pytest.mark.parametrize("forced", [False, True])
def test_property_random_texts_every_chunking_same_events(forced):
    rng = random.Random(1234 + forced)
    for _ in range(150):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 25)))
        ref = coalesce(parse([text], starts_in_reasoning=forced, tools=TOOLS))
        for pieces in [list(text)] + [[text[:i], text[i:]] for i in range(0, len(text) + 1, 3)]:
            assert coalesce(parse(pieces, starts_in_reasoning=forced, tools=TOOLS)) == ref, (text, pieces)
        for seed in range(6):
            pieces = random_pieces(text, seed, 6)
            assert coalesce(parse(pieces, starts_in_reasoning=forced, tools=TOOLS)) == ref, (text, pieces)
