"""The chat pane over scripted core events: streaming Markdown, thinking block (live, then
collapsed; toggle; hide setting), tool-call blocks and tool results, stats line, esc cancel,
new chat, thinking on/off, OSC 52 copy, prompt history, one conversation per model.

The events are the core's own types (``tui.core.chat.events``); the real client against a
real llama-server is driven in test_ui_server.py.
"""

from __future__ import annotations

import pytest
import ui_fakes as F
from ui_helpers import make_app, wait_until

from tui.core.chat import events as ev
from tui.ui.widgets.chat_pane import ChatPane, PromptInput
from tui.ui.widgets.transcript import UserBlock

pytestmark = pytest.mark.timeout(60)


async def open_chat(pilot, app, name="glm-5") -> ChatPane:
    await wait_until(pilot, lambda: app.states.get(name) is not None)
    app.table.select(name)
    await pilot.press("c")
    await wait_until(pilot, lambda: isinstance(app.focused, PromptInput), what="prompt focused")
    pane = app.chat_deck.panes[name]
    await wait_until(pilot, lambda: pane.ready, what="pane knows the model is ready")
    return pane


async def send(pilot, text):
    await pilot.press(*text)
    await pilot.press("enter")


def chat_app(tmp_path, monkeypatch, scripts, **kw):
    session = F.FakeChatSession(scripts)
    app, be = make_app(tmp_path, monkeypatch, states=F.demo_states(), chat={"glm-5": session}, **kw)
    return app, be, session


async def test_send_streams_markdown_answer_and_stats(tmp_path, monkeypatch):
    answer = "Paris is the **capital** of France.\n\n```python\nprint('hi')\n```\n"
    script = [ev.Content(answer[i:i + 3]) for i in range(0, len(answer), 3)]
    script.append(ev.Done("stop", stats=ev.Stats(ttft_s=0.12, elapsed_s=1.5, prompt_tokens=20,
                                                 completion_tokens=42, tokens_per_s=35.2)))
    app, be, session = chat_app(tmp_path, monkeypatch, [script])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await send(pilot, "capital of France?")
        await wait_until(pilot, lambda: pane.turn is not None and not pane.generating, what="turn done")
        assert session.sent == ["capital of France?"]
        assert pane.turn.content == answer and pane.turn.answer.source == answer
        assert pane.events_seen == len(script)
        stats = pane.turn.stats.plain()
        assert "first token 0.12 s" in stats and "35.2 tok/s" in stats and "42 tokens" in stats
        assert pane.prompt.value == ""


async def test_thinking_streams_live_then_collapses_toggle_and_hide(tmp_path, monkeypatch):
    script = [ev.Reasoning("Let me think "), ev.Reasoning("about France."), "wait",
              ev.Content("It is "), ev.Content("Paris."), ev.Done("stop")]
    app, be, session = chat_app(tmp_path, monkeypatch, [script])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await send(pilot, "think")
        await wait_until(pilot, lambda: session.gate is not None and pane.turn.thinking is not None
                         and pane.turn.reasoning == "Let me think about France.", what="thinking streamed")
        block = pane.turn.thinking
        await wait_until(pilot, lambda: "about France" in pane.turns.text(), what="thoughts on screen")
        assert not block.collapsed and "thinking…" in pane.turns.text()
        assert pane.turn.answer is None
        session.gate.set()
        await wait_until(pilot, lambda: not pane.generating)
        assert block.collapsed  # the answer started: thoughts fold away
        assert "▸ thoughts (5 words)" in pane.turns.text() and "about France" not in pane.turns.text()
        assert pane.turn.content == "It is Paris."
        await pilot.press("ctrl+y")
        assert not block.collapsed and "about France" in pane.turns.text()
        await pilot.press("ctrl+y")
        assert block.collapsed
        # the hide-thoughts setting
        await pilot.press("ctrl+g")
        assert app._main.has_class("-hide-thoughts") and block.hidden and "thoughts" not in pane.turns.text()
        await pilot.press("ctrl+g")
        assert not block.hidden and "▸ thoughts" in pane.turns.text()


async def test_hide_thoughts_setting_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMDECK_HIDE_THOUGHTS", "1")
    app, be, session = chat_app(tmp_path, monkeypatch, [F.reply("hmm yes", "Yes.")])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await send(pilot, "q")
        await wait_until(pilot, lambda: pane.turn is not None and not pane.generating)
        assert pane.turn.reasoning and pane.turn.thinking.hidden and "thoughts" not in pane.turns.text()


async def test_esc_cancels_and_keeps_what_arrived(tmp_path, monkeypatch):
    script = [ev.Content("The beginning of "), ev.Content("an answer"), "wait", ev.Content("never"), ev.Done("stop")]
    app, be, session = chat_app(tmp_path, monkeypatch, [script, F.reply(content="second answer")])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await send(pilot, "long one")
        await wait_until(pilot, lambda: session.gate is not None, what="stream waiting")
        assert app.check_action("back", ()) and pane.check_action("cancel", ()) is True
        await pilot.press("escape")
        await wait_until(pilot, lambda: not pane.generating, what="cancelled")
        assert session.cancelled
        assert pane.turn.content == "The beginning of an answer"
        assert "cancelled" in pane.turn.stats.plain()
        assert isinstance(app.focused, PromptInput)  # esc cancelled; it did not leave the chat
        # the conversation goes on
        await send(pilot, "again")
        await wait_until(pilot, lambda: not pane.generating and "second" in pane.turn.content)


async def test_tool_call_block_and_result_continue_the_conversation(tmp_path, monkeypatch):
    call = ev.ToolCall(0, "call_1", "get_weather", {"city": "Paris", "unit": "C"},
                       '{"city": "Paris", "unit": "C"}', True)
    first = [ev.ToolCallStarted(0, "call_1", "get_weather"), ev.ToolCallArgs(0, '{"city": "Paris", '),
             ev.ToolCallArgs(0, '"unit": "C"}'), call, ev.Done("tool_calls")]
    app, be, session = chat_app(tmp_path, monkeypatch, [first, F.reply(content="It is 18 degrees in Paris.")])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await send(pilot, "weather in Paris?")
        await wait_until(pilot, lambda: not pane.generating and pane.pending_tools, what="tool call")
        block = pane.turn.tools[0]
        assert block.call.name == "get_weather"
        shown = pane.turns.text()
        assert "tool call: get_weather" in shown and '"city": "Paris"' in shown and "call_1" in shown
        assert "get_weather" in pane.prompt.placeholder and "finish: tool_calls" in pane.turn.stats.plain()
        await send(pilot, "18C sunny")
        await wait_until(pilot, lambda: session.tool_results_sent and not pane.generating, what="continued")
        assert session.tool_results_sent == [{"call_1": "18C sunny"}]
        assert block.result == "18C sunny"
        assert pane.turn.content.startswith("It is 18 degrees")
        assert "message" in pane.prompt.placeholder


async def test_esc_skips_pending_tool_results(tmp_path, monkeypatch):
    call = ev.ToolCall(0, "c9", "lookup", {}, "{}", True)
    app, be, session = chat_app(tmp_path, monkeypatch, [[call, ev.Done("tool_calls")]])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await send(pilot, "x")
        await wait_until(pilot, lambda: not pane.generating and pane.pending_tools)
        await pilot.press("escape")
        assert pane.pending_tools == [] and "message" in pane.prompt.placeholder


async def test_new_chat_thinking_toggle_copy_and_history(tmp_path, monkeypatch):
    app, be, session = chat_app(tmp_path, monkeypatch, [F.reply(content="First answer."),
                                                        F.reply(content="Second answer.")])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await pilot.press("ctrl+o")  # nothing to copy yet
        assert app._clipboard == ""
        await send(pilot, "one")
        await wait_until(pilot, lambda: not pane.generating and pane.last_answer)
        await send(pilot, "two")
        await wait_until(pilot, lambda: not pane.generating and "Second" in pane.last_answer)
        await pilot.press("ctrl+o")
        assert app._clipboard == "Second answer. "
        # prompt history
        await pilot.press("up")
        assert pane.prompt.value == "two"
        await pilot.press("up")
        assert pane.prompt.value == "one"
        await pilot.press("down")
        assert pane.prompt.value == "two"
        await pilot.press("down")
        assert pane.prompt.value == ""
        # thinking on/off is a request option of the session
        assert session.thinking is None
        await pilot.press("ctrl+t")
        assert session.thinking is False and "thinking off" in str(pane.query_one(".chat-head").render())
        await pilot.press("ctrl+t")
        assert session.thinking is True
        # new chat
        assert sum(isinstance(b, UserBlock) for b in pane.turns.blocks) == 2
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: len(pane.turns.blocks) == 0)
        assert session.resets == 1 and pane.last_answer == ""


async def test_one_conversation_per_model_kept_for_the_session(tmp_path, monkeypatch):
    app, be, session = chat_app(tmp_path, monkeypatch, [F.reply(content="hello from glm")])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await send(pilot, "hi")
        await wait_until(pilot, lambda: not pane.generating and pane.last_answer)
        # esc to the list, j to the next model (qwen3.5, loading), c: each key once the one before
        # has landed (a key pressed while focus is still moving goes to the old widget)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.focused is app.table, what="back to the list")
        await pilot.press("j")
        await wait_until(pilot, lambda: app.table.selected == "qwen3.5", what="qwen3.5 selected")
        await pilot.press("c")
        other = app.chat_deck.panes["qwen3.5"]
        await wait_until(pilot, lambda: app.chat_deck.current == other.id)
        await send(pilot, "anyone?")  # not ready: nothing is sent
        assert be.chat["qwen3.5"].sent == [] and len(other.turns.blocks) == 0
        assert any("qwen3.5 is not ready" in n.message for n in app._notifications)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.focused is app.table, what="back to the list")
        await pilot.press("k")
        await wait_until(pilot, lambda: app.table.selected == "glm-5", what="glm-5 selected")
        await pilot.press("c")
        await wait_until(pilot, lambda: app.chat_deck.current == pane.id)
        assert pane.last_answer == "hello from glm " and "hello from glm" in pane.turns.text()


def test_segments_cut_only_at_blank_lines_outside_code_fences():
    from tui.ui.widgets.transcript import safe_cuts, segment_ends

    text = "para one\n\n```python\nx = 1\n\ny = 2\n```\n\npara two\n\n    indented\n"
    cuts = safe_cuts(text)
    # after "para one", after the fence; never inside it, never before an indented line
    assert [text[:c][-5:] for c in cuts] == ["one\n\n", "```\n\n"]
    assert safe_cuts("```\na\n\nb\n") == []  # an open fence is never cut
    assert segment_ends("aaaa\n\nbb\n\ncccc\n\ndd\n\ne", 5) == [6, 16]


async def test_a_long_reply_is_frozen_in_segments_and_kept_whole(tmp_path, monkeypatch):
    from tui.ui.widgets.transcript import SEGMENT

    paragraphs = [f"Paragraph {i}: " + "word " * 60 + "\n\n" for i in range(40)]
    paragraphs.insert(10, "```python\n" + "print('in a fence')\n\n" * 30 + "```\n\n")
    text = "".join(paragraphs)
    script = [ev.Content(text[i:i + 50]) for i in range(0, len(text), 50)] + [ev.Done("stop")]
    app, be, session = chat_app(tmp_path, monkeypatch, [script])
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await open_chat(pilot, app)
        await send(pilot, "long")
        await wait_until(pilot, lambda: pane.turn is not None and not pane.generating, timeout=30)
        md = pane.turn.answer.body
        assert md.source == text
        assert md.segments >= len(text) // (2 * SEGMENT)  # a bounded tail, the rest frozen
        assert len(md.tail) <= SEGMENT
        frozen = "".join(md.frozen)
        assert frozen + md.tail == text  # no character lost or doubled
        assert frozen.count("```") % 2 == 0  # every fence closed inside its segment


async def test_ctrl_r_regenerates_the_last_answer(tmp_path, monkeypatch):
    app, be, session = chat_app(tmp_path, monkeypatch, [F.reply(content="First try."),
                                                        F.reply(content="Second try.")])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot, app)
        await pilot.press("ctrl+r")  # nothing asked yet
        assert any("nothing to regenerate" in n.message for n in app._notifications)
        await send(pilot, "a haiku")
        await wait_until(pilot, lambda: not pane.generating and "First" in pane.last_answer)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not pane.generating and "Second" in pane.last_answer, what="regenerated")
        assert session.regenerated == 1 and session.sent == ["a haiku"]  # asked again, not re-typed
        users = [b.text for b in pane.turns.blocks if isinstance(b, UserBlock)]
        assert users == ["a haiku", "a haiku  ↻ again (the answer above is forgotten)"]
