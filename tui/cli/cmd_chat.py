"""``llmdeck chat MODEL ["PROMPT"]``: stream a reply, thinking and tool calls kept apart.

With a prompt (``-`` reads it from stdin) one reply is printed; without, a line REPL runs
(``/reset`` clears the history, ``/exit`` or Ctrl-D leaves). Ctrl-C during a reply cancels it
(the connection is closed, then ``/slots`` is checked and a still-busy server is reported).
When a reply ends with tool calls, the REPL asks for each call's result (an empty line skips)
and sends them back so the conversation continues.

Output: plain text shows the thinking between ``[thinking]`` and ``[/thinking]`` (dim on a
terminal), the answer as it streams, and each complete tool call as ``[tool call] NAME (id)``
plus its arguments pretty-printed; a stats line goes to stderr. ``--json`` prints one JSON
object per line: ``reasoning``, ``content``, ``tool_call`` (once complete; ``arguments`` is the
parsed JSON, or the raw text when it did not parse), ``done`` and ``error``.

Exit status: 0 the reply finished (any finish reason), 1 it failed, 2 usage/registry/tools-file
error, 130 cancelled (one-shot mode).
"""

from __future__ import annotations

import argparse
import os
import sys

from tui.cli.output import EXIT_FAIL, EXIT_OK, EXIT_USAGE, error, info, warn
from tui.core.chat.events import EventHandler, stats_line


def _positive(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{v}' is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "chat", help="chat with a model: streaming, thinking and tool calls shown apart",
        description="Stream a chat reply from MODEL (a models.json entry, started by llmdeck or "
                    "engine 'external'). Without PROMPT, a line REPL.")
    p.add_argument("model", metavar="MODEL", help="model name in models.json")
    p.add_argument("prompt", nargs="?", metavar="PROMPT", help="the message; '-' reads stdin; omit for a REPL")
    p.add_argument("--no-think", action="store_true",
                   help="turn thinking off (chat_template_kwargs.enable_thinking = false)")
    p.add_argument("--tools", metavar="FILE", help="JSON file of OpenAI tool definitions")
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    p.add_argument("--max-tokens", type=_positive, metavar="N", help="cap the reply at N tokens")
    p.add_argument("--json", action="store_true", help="one JSON object per line (reasoning, content, "
                                                      "tool_call, done, error)")
    p.set_defaults(func=run)


# --- rendering ------------------------------------------------------------------------------

class JsonRenderer:
    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout

    def event(self, ev) -> None:
        import json

        from tui.core.chat.events import to_json

        obj = to_json(ev)
        if obj is not None:
            self.out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self.out.flush()

    def note(self, msg: str) -> None:
        info(msg)


class PlainRenderer(EventHandler):
    DIM, BOLD, RESET = "\x1b[2;3m", "\x1b[1;36m", "\x1b[0m"

    def __init__(self, out=None, color: bool = False) -> None:
        self.out = out or sys.stdout
        self.color = color
        self.mode: str | None = None   # "reasoning", "content" or None
        self.at_line_start = True

    def _w(self, s: str, style: str = "") -> None:
        if not s:
            return
        self.out.write(f"{style}{s}{self.RESET}" if style and self.color else s)
        self.out.flush()
        self.at_line_start = s.endswith("\n")

    def _newline(self) -> None:
        if not self.at_line_start:
            self._w("\n")

    def _close(self) -> None:
        if self.mode == "reasoning":
            self._newline()
            self._w("[/thinking]\n", self.DIM)
            self._w("\n")
        self.mode = None

    def event(self, ev) -> None:
        self.handle(ev)

    def on_reasoning(self, ev) -> None:
        if self.mode != "reasoning":
            self._close()
            self._newline()
            self._w("[thinking]\n", self.DIM)
            self.mode = "reasoning"
        self._w(ev.text, self.DIM)

    def on_content(self, ev) -> None:
        if self.mode != "content":
            self._close()
            self.mode = "content"
        self._w(ev.text)

    def on_tool_call(self, ev) -> None:
        import json

        self._close()
        self._newline()
        self._w(f"[tool call] {ev.name} ({ev.id})\n", self.BOLD)
        if ev.ok:
            self._w(json.dumps(ev.arguments, indent=2, ensure_ascii=False) + "\n")
        else:
            self._w(ev.raw + "\n")
            self._w("(incomplete: the arguments are not valid JSON)\n", self.DIM)

    def on_done(self, ev) -> None:
        self._close()
        self._newline()
        info(stats_line(ev.stats, ev.finish_reason))
        if ev.stats.reasoning_unterminated and ev.finish_reason == "stop":
            warn("the reply never closed its thinking (no </think>): all of it is shown as thinking")

    def on_error(self, ev) -> None:
        self._close()
        self._newline()
        error(ev.message)

    def note(self, msg: str) -> None:
        info(msg)


# --- running turns ----------------------------------------------------------------------------

def _exit_code(turn) -> int:
    if turn is None or turn.error is not None:
        return EXIT_FAIL
    if turn.cancelled:
        return 130
    return EXIT_OK


async def _turn(conv, text, renderer) -> int:
    """One reply; Ctrl-C cancels it. Closes the HTTP client (each asyncio.run has its loop)."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    cancelling: list = []

    def on_sigint() -> None:
        if not cancelling:
            cancelling.append(asyncio.ensure_future(conv.cancel()))

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / not Unix
        installed = False
    try:
        async for ev in conv.send(text):
            renderer.event(ev)
        if cancelling:
            report = await cancelling[0]
            if report is not None:
                renderer.note(report.message)
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
        await conv.client.aclose()
    return _exit_code(conv.last)


def _read(prompt: str, interactive: bool) -> str:
    if interactive:
        return input(prompt)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def _ask(prompt: str, interactive: bool, json_mode: bool) -> str:
    if interactive and json_mode:  # keep stdout JSON-only
        sys.stderr.write(prompt)
        sys.stderr.flush()
        return _read("", False)
    return _read(prompt, interactive)


def _repl(conv, renderer, json_mode: bool) -> int:
    import asyncio

    interactive = sys.stdin.isatty()
    code = EXIT_OK
    if interactive:
        info(f"chatting with {conv.client.target.name or conv.client.target.base_url}: "
             "/reset clears the history, /exit or Ctrl-D leaves, Ctrl-C stops a reply")
    while True:
        try:
            line = _ask("> " if interactive else "", interactive, json_mode).strip()
        except EOFError:
            if interactive:
                print(file=sys.stderr)
            return code
        except KeyboardInterrupt:
            print(file=sys.stderr)
            info("use /exit or Ctrl-D to leave")
            continue
        if not line:
            continue
        if line in ("/exit", "/quit", "/bye"):
            return code
        if line == "/reset":
            conv.reset()
            renderer.note("history cleared")
            continue
        if line.startswith("/"):
            renderer.note("commands: /reset (clear the history), /exit")
            continue
        code = asyncio.run(_turn(conv, line, renderer))
        while code == EXIT_OK and conv.unanswered_tool_calls():
            answered = 0
            for call in conv.unanswered_tool_calls():
                try:
                    result = _ask(f"result of {call.name} ({call.id}), empty to skip> ", interactive, json_mode)
                except (EOFError, KeyboardInterrupt):
                    return code
                if not result.strip():
                    break
                conv.add_tool_result(call.id, result)
                answered += 1
            if not answered or conv.unanswered_tool_calls():
                break
            code = asyncio.run(_turn(conv, None, renderer))


def _not_running(reg, model) -> str | None:
    """One line when llmdeck knows the model's server is not running (its pid files; no network),
    else None. The request is then never sent: whatever answers on that port is not the model."""
    from tui.core import supervisor
    from tui.core.chat.errors import llmdeck_command

    st = supervisor.state_of(reg, model, probe=False)
    if st.running:
        return None
    cli = llmdeck_command(reg.path)
    if st.state == "crashed":
        reason = (st.exit or {}).get("reason") or "exited"
        return (f"{model.name} crashed ({reason}): '{cli} logs {model.name}' shows why, "
                f"'{cli} start {model.name} --wait' starts it again")
    return f"{model.name} is stopped: '{cli} start {model.name} --wait' starts it, then chat again"


def run(args: argparse.Namespace) -> int:
    from tui.cli.common import load_model

    reg, model = load_model(args)
    if model.engine != "external":  # a stopped model's port may belong to another program now
        refusal = _not_running(reg, model)
        if refusal:
            error(refusal)
            return EXIT_FAIL
    tools = None
    if args.tools:
        from tui.core.chat.tools import ToolsError, load_tools

        try:
            tools = load_tools(args.tools)
        except ToolsError as exc:
            error(str(exc))
            return EXIT_USAGE
    from tui.core.chat.client import ChatClient, ChatTarget
    from tui.core.chat.conversation import Conversation

    target = ChatTarget.from_registry(reg, model)
    if model.api_key_env and not target.api_key:
        warn(f"${model.api_key_env} (api_key_env of '{model.name}') is not set: sending no API key")
    conv = Conversation(ChatClient(target), system=args.system, tools=tools,
                        max_tokens=args.max_tokens, thinking=False if args.no_think else None)
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    renderer = JsonRenderer() if args.json else PlainRenderer(color=color)

    prompt = args.prompt
    if prompt == "-":
        prompt = sys.stdin.read()
    if prompt is not None:
        if not prompt.strip():
            error("the prompt is empty")
            return EXIT_USAGE
        import asyncio

        return asyncio.run(_turn(conv, prompt, renderer))
    return _repl(conv, renderer, args.json)
