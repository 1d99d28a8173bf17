"""The chat pane: one conversation per model for the session, over the core chat client.

A turn is a ``UserTurn`` and an ``AssistantTurn``; the assistant turn holds a thinking block
(streams live, capped in height, collapses when the answer starts; ``ctrl+y`` toggles it;
the ``hide thoughts`` setting hides every one), one block per tool call (name and
pretty-printed arguments), the answer as Markdown, and a stats line (time to first token,
tok/s, tokens).

Streaming: the events are consumed by an async worker that only appends to buffers; a
50 ms timer flushes the buffers into the blocks (never a re-render per token). The turns
live in one :class:`~tui.ui.widgets.transcript.Transcript` (see it for why not a widget
per block): a flush re-renders only the streaming block's Markdown tail.
``esc`` uses the core's cancel: the HTTP stream is closed (the server-side cancel), the
reply ends "cancelled" keeping what arrived, and ``/slots`` says whether the server stopped.

After a reply that ends in tool calls, the prompt asks for each call's result in turn;
``enter`` sends it and, once every call has one, the conversation continues. ``esc`` there
skips the tool results. ``up``/``down`` recall this session's earlier prompts.

The transcript follows the reply while the view is at its end (see ``Transcript``): scrolling
up pauses it and a badge on the head's line counts the lines that arrived below
(``↓ N new lines · PageDown to the end follows``; on the head's line so that pausing does not
change the transcript's height). ``PageUp``/``PageDown`` scroll the transcript from anywhere in
the pane, the prompt included (the prompt keeps ``Home``/``End`` for its cursor); reaching the
end resumes following. Sending a message and cancelling with ``esc`` both return to the end,
so the stats line of the reply is in view. The scroll keys are priority bindings, as ``esc`` is,
so they run in the order pressed: a ``PgUp`` read in one burst with a later ``esc`` no longer
lands after the cancel and pauses the chat again.
"""

from __future__ import annotations

import re
import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import ContentSwitcher, Input, Static

from tui.core.chat.events import Content, Done, Error, EventHandler, Reasoning, Stats, ToolCall, coalesce, stats_line
from tui.ui import keys
from tui.ui.widgets.transcript import (AnswerBlock, TextBlock, ThinkingBlock, ToolCallBlock, Transcript,
                                       UserBlock)

FLUSH_S = 0.05  # 20 Hz: a flush re-renders the streaming block's tail only


def pane_id(model: str) -> str:
    return "chat-" + re.sub(r"[^A-Za-z0-9_-]", "_", model)


class PromptInput(Input):
    """The prompt line; ``up``/``down`` walk this session's earlier prompts."""

    BINDINGS = [Binding("up", "history(-1)", "previous prompt", show=False),
                Binding("down", "history(1)", "next prompt", show=False)]

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.history: list[str] = []
        self._pos = 0

    def remember(self, text: str) -> None:
        if text and (not self.history or self.history[-1] != text):
            self.history.append(text)
        self._pos = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._pos = max(0, min(len(self.history), self._pos + step))
        self.value = self.history[self._pos] if self._pos < len(self.history) else ""
        self.cursor_position = len(self.value)


class AssistantTurn(EventHandler):
    """The blocks of one reply in the transcript: thoughts, tool calls, answer, stats line;
    :meth:`handle` draws an event into them."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.thinking: ThinkingBlock | None = None
        self.answer: AnswerBlock | None = None
        self.tools: list[ToolCallBlock] = []
        self.stats = transcript.add(TextBlock(Text("…", style="dim")))

    @property
    def reasoning(self) -> str:
        return self.thinking.reasoning if self.thinking else ""

    @property
    def content(self) -> str:
        return self.answer.source if self.answer else ""

    def on_reasoning(self, ev: Reasoning) -> None:
        if self.thinking is None:
            self.thinking = self.transcript.add(ThinkingBlock(), before=self.stats)
        self.thinking.append(ev.text)

    def on_content(self, ev: Content) -> None:
        if self.answer is None:
            if self.thinking is not None and not self.thinking.collapsed:
                self.thinking.collapse()  # the answer starts: thoughts fold away
            self.answer = self.transcript.add(AnswerBlock(), before=self.stats)
        self.answer.append(ev.text)

    def on_tool_call(self, call: ToolCall) -> None:
        self.tools.append(self.transcript.add(ToolCallBlock(call), before=self.stats))

    def finish(self) -> None:
        if self.thinking is not None and not self.thinking.collapsed:
            self.thinking.collapse()


class _Reply(EventHandler):
    """How the worker takes one reply's events: text waits in the pane's buffer for the next
    flush (never a re-render per token), a complete tool call gets its block at once (after the
    text before it), and the end is noted for the stats line."""

    def __init__(self, pane: ChatPane, turn: AssistantTurn) -> None:
        self.pane = pane
        self.turn = turn
        self.finish: str | None = None
        self.stats: Stats | None = None
        self.error: str | None = None

    def on_reasoning(self, ev: Reasoning | Content) -> None:
        self.pane._buf.append(ev)

    on_content = on_reasoning

    def on_tool_call(self, ev: ToolCall) -> None:
        self.pane._flush()
        self.turn.handle(ev)
        self.pane.pending_tools.append(ev)

    def on_done(self, ev: Done) -> None:
        self.finish, self.stats = ev.finish_reason, ev.stats

    def on_error(self, ev: Error) -> None:
        self.error = ev.message


class ChatPane(Vertical):
    """The conversation with one model."""

    BINDINGS = keys.bindings("chat")

    # the prompt's border and focus are set here in full: these are default rules, and
    # Textual's own Input rules are defaults too
    DEFAULT_CSS = """
    ChatPane { height: 1fr; }
    ChatPane > .chat-top { height: 1; }
    ChatPane .chat-head { width: 1fr; height: 1; padding: 0 1; }
    ChatPane > .turns { height: 1fr; scrollbar-size-vertical: 1; }
    ChatPane > .prompt { height: 1; border: none; padding: 0 1; background: $boost; }
    ChatPane > .prompt:focus { border: none; background: $primary 25%; }
    ChatPane .chat-badge { width: auto; height: 1; display: none; background: $warning 30%; color: $text; }
    ChatPane .chat-badge.-shown { display: block; }
    """

    def __init__(self, model: str, session: Any, **kw) -> None:
        super().__init__(id=pane_id(model), **kw)
        self.model = model
        self.session = session
        self.generating = False
        self.ready = False
        self.turn: AssistantTurn | None = None
        self.last_answer = ""
        self.pending_tools: list[Any] = []
        self.tool_results: dict[str, str] = {}
        self._buf: list[Reasoning | Content] = []  # text deltas waiting for the next flush
        self._flush_timer = None
        self.events_seen = 0
        self.last_flush_at = 0.0

    def compose(self) -> ComposeResult:
        with Horizontal(classes="chat-top"):
            yield Static("", classes="chat-head")
            yield Static("", classes="chat-badge")
        yield Transcript(classes="turns")
        yield PromptInput(placeholder="message… (enter sends)", classes="prompt")

    def on_mount(self) -> None:
        self.turns.set_hide_thoughts(self.screen.has_class("-hide-thoughts"))
        self._head()

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def turns(self) -> Transcript:
        return self.query_one(Transcript)

    def set_ready(self, ready: bool, state: str, url: str | None = None) -> None:
        changed = (ready, state) != (self.ready, getattr(self, "state", None))
        self.ready = ready
        self.state = state
        if url and hasattr(self.session, "url"):
            self.session.url = url
        if changed:
            self._head()

    def _head(self) -> None:
        thinking = getattr(self.session, "thinking", None)
        think = "thinking auto" if thinking is None else ("thinking on" if thinking else "thinking off")
        state = getattr(self, "state", "…")
        heads = self.query(".chat-head")
        if not heads:  # a state poll can reach a pane that is still being mounted: on_mount draws it
            return
        heads.first(Static).update(Text.assemble((self.model, "bold"), f" · {state} · {think}"))

    # -- sending -------------------------------------------------------------------------

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if self.generating:
            self.app.bell()
            return
        if self.pending_tools:
            await self._tool_result(text)
            return
        if not text:
            return
        if not self.ready:
            self.notify(f"{self.model} is not ready: press s to start it (m then s from the chat)",
                        severity="warning")
            return
        self.prompt.remember(text)
        self.prompt.value = ""
        self.turns.add(UserBlock(text))
        await self._run(lambda: self.session.stream(text))

    async def _tool_result(self, text: str) -> None:
        call = self.pending_tools.pop(0)
        self.tool_results[call.id] = text
        for block in self.turn.tools if self.turn else []:  # noqa: SIM110
            if block.call.id == call.id:
                block.set_result(text)
        self.prompt.value = ""
        if self.pending_tools:
            self._ask_tool()
            return
        results, self.tool_results = self.tool_results, {}
        self.prompt.placeholder = "message… (enter sends)"
        await self._run(lambda: self.session.tool_results(results))

    def _ask_tool(self) -> None:
        c = self.pending_tools[0]
        self.prompt.placeholder = f"result of {c.name} ({c.id})… enter sends it, esc skips the tools"

    async def _run(self, make_stream) -> None:
        self.generating = True
        self.turn = AssistantTurn(self.turns)
        self.turns.follow()  # a new turn: back to the end, following it
        self._buf = []
        self._flush_timer = self.set_interval(FLUSH_S, self._flush)
        self.refresh_bindings()
        self._consume(make_stream)

    @work(exclusive=True, group="chat", exit_on_error=False)
    async def _consume(self, make_stream) -> None:
        reply = _Reply(self, self.turn)
        try:
            async for e in make_stream():
                self.events_seen += 1
                reply.handle(e)
        except Exception as exc:  # noqa: BLE001 — shown in the turn, the app goes on
            reply.error = f"{type(exc).__name__}: {exc}"
        finally:
            # runs on cancel too (esc): keep what arrived, mark the turn
            cancelled = reply.finish is None and reply.error is None
            await self._end_turn(reply.turn, reply.finish or ("cancelled" if cancelled else None), reply.stats,
                                 reply.error)

    def _flush(self) -> None:
        if not self._buf or self.turn is None:
            return
        buf, self._buf = self._buf, []
        for ev in coalesce(buf):  # adjacent deltas of one kind merged: one stream write per block per flush
            self.turn.handle(ev)
        self.last_flush_at = time.perf_counter()

    async def _end_turn(self, turn: AssistantTurn, finish: str | None, stats: Stats | None,
                        error: str | None) -> None:
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        self._flush()
        turn.finish()
        if error:
            turn.stats.update(Text(f"error: {error}", style="bold red"))
        else:
            turn.stats.update(Text(stats_line(stats, finish), style="dim"))
        if turn.content:
            self.last_answer = turn.content
        self.generating = False
        if finish == "cancelled":
            self.pending_tools.clear()
            self.turns.follow()  # the stats line says "cancelled": show it
        if self.pending_tools:
            self._ask_tool()
        self.refresh_bindings()

    # -- following -----------------------------------------------------------------------

    def on_transcript_follow_changed(self, message: Transcript.FollowChanged) -> None:
        message.stop()
        badge = self.query_one(".chat-badge", Static)
        if message.following:
            badge.remove_class("-shown")
            return
        n = message.new_lines
        badge.update(f" ↓ {n} new line{'s' if n != 1 else ''} · PageDown to the end follows ")
        badge.add_class("-shown")

    def action_page_up(self) -> None:
        self.turns.page_up()

    def action_page_down(self) -> None:
        self.turns.page_down()

    # -- actions -------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel":
            return True if (self.generating or self.pending_tools) else False
        return True

    def action_cancel(self) -> None:
        if self.generating:
            if hasattr(self.session, "cancel"):
                self._cancel()
            else:
                self.workers.cancel_group(self, "chat")
        elif self.pending_tools:
            self.pending_tools.clear()
            self.tool_results.clear()
            self.prompt.placeholder = "message… (enter sends)"
            self.refresh_bindings()

    @work(group="chat-cancel", exclusive=True, exit_on_error=False)
    async def _cancel(self) -> None:
        """The core's cancel: closes the stream (the reply ends with finish "cancelled"), then
        checks ``/slots`` and says if the server is still generating."""
        import asyncio

        task = asyncio.ensure_future(self.session.cancel())
        for _ in range(60):  # the reply should end within a moment; else stop waiting for it
            if not self.generating:
                break
            await asyncio.sleep(0.05)
        if self.generating:
            self.workers.cancel_group(self, "chat")
        try:
            message = await task
        except Exception as exc:  # noqa: BLE001 — the cancel itself happened; report and go on
            message = f"after the cancel: {exc}"
        if message:
            self.notify(message, severity="warning", timeout=8)

    async def action_regenerate(self) -> None:
        """Ask the last prompt again; the old answer stays on screen, marked, but the model's
        history drops it (and any tool calls and results that followed it)."""
        if self.generating:
            self.app.bell()
            return
        if not self.ready:
            self.notify(f"{self.model} is not ready: press s to start it (m then s from the chat)",
                        severity="warning")
            return
        again = self.session.regenerate()
        if again is None:
            self.notify("nothing to regenerate yet", severity="warning")
            return
        text, stream = again
        self.pending_tools.clear()
        self.tool_results.clear()
        self.prompt.placeholder = "message… (enter sends)"
        self.turns.add(UserBlock(f"{text}  ↻ again (the answer above is forgotten)"))
        await self._run(lambda: stream)

    async def action_new_chat(self) -> None:
        if self.generating:
            self.workers.cancel_group(self, "chat")
        self.session.reset()
        self.pending_tools.clear()
        self.tool_results.clear()
        self.last_answer = ""
        self.turn = None
        self.prompt.placeholder = "message… (enter sends)"
        self.turns.clear()
        self.notify(f"new chat with {self.model}")

    def action_toggle_thinking(self) -> None:
        cur = getattr(self.session, "thinking", None)
        self.session.thinking = not (cur if cur is not None else True)
        self._head()
        self.notify(f"thinking {'on' if self.session.thinking else 'off'} from the next message")

    def action_toggle_thoughts(self) -> None:
        blocks = [b for b in self.turns.blocks if isinstance(b, ThinkingBlock)]
        if blocks:
            blocks[-1].toggle()

    def action_copy_answer(self) -> None:
        if not self.last_answer:
            self.notify("no answer to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(self.last_answer)
        self.notify(f"copied the last answer ({len(self.last_answer)} characters; OSC 52)")

    def action_toggle_hide_thoughts(self) -> None:
        self.app.action_toggle_hide_thoughts()


class ChatDeck(ContentSwitcher):
    """One :class:`ChatPane` per model, created when first shown; history lasts the session."""

    DEFAULT_CSS = "ChatDeck { height: 1fr; }"

    def __init__(self, backend, **kw) -> None:
        super().__init__(**kw)
        self.backend = backend
        self.panes: dict[str, ChatPane] = {}

    async def show_model(self, name: str | None) -> ChatPane | None:
        if name is None:
            return None
        pane = self.panes.get(name)
        if pane is None:
            pane = self.panes[name] = ChatPane(name, self.backend.chat_session(name))
            await self.mount(pane)
        self.current = pane.id
        return pane
