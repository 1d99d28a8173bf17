"""The streaming chat client: POST ``/chat/completions`` with ``stream: true`` → events.

Usable with or without a registry::

    client = ChatClient("http://127.0.0.1:8080/v1")                   # bare URL
    client = ChatClient.for_model(registry, "glm-5")                   # a models.json entry
    async for ev in client.stream([{"role": "user", "content": "hi"}]):
        ...
    report = await client.cancel()   # from another task: closes the stream, checks /slots

A registry entry gives the URL (the running server's, from the supervisor when it has one,
else ``engines.spec_for``), the API key (``api_key_env``), the request ``model``
(``alias`` or name), per-request sampling defaults from ``params`` (the keys in
``llama_server.SAMPLING_KEYS``; ``temp`` → ``temperature``; ``repeat_penalty`` →
``repetition_penalty`` for vLLM/SGLang/LightLLM) and the raw formats (``reasoning_parser``,
``tool_call_parser``). Without a ``model`` the client asks ``/models`` once for the id (vLLM
and SGLang want it; llama-server ignores it).

Decisions:

* The body is read in a task of the client's own that feeds a queue; :meth:`stream` yields
  from the queue. :meth:`cancel` cancels that task, which closes the connection (that is how
  llama-server, vLLM and SGLang learn to stop), queues ``Done(finish_reason="cancelled")`` and
  then polls ``/slots`` for up to ``wait`` seconds (llama-server notices a closed connection
  within about 1 s). With several slots the report counts every busy slot, other clients'
  included.
* Output starts inside the reasoning (see :mod:`~tui.core.chat.rawtags`) when the model's
  ``reasoning_parser`` names a family whose template opens thinking, thinking is not turned off
  for the request, and the server is not known to parse reasoning itself. llama-server parses
  unless ``reasoning_format`` is ``none`` or ``--skip-chat-parsing`` is given; vLLM, SGLang and
  LightLLM parse when llmdeck passes them a ``reasoning_parser``; an external server is not
  known to parse (its structured ``reasoning_content`` switches the raw parser off anyway).
* Timeouts: connect 10 s, read 900 s (older servers send nothing during a long prefill).
* httpx is imported inside the methods: ``import httpx`` loads rich (for httpx's own CLI),
  and the core must not import UI libraries when it is imported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tui.core.chat import errors
from tui.core.chat.deltas import DeltaAssembler
from tui.core.chat.events import TERMINAL, Error
from tui.core.chat.rawtags import FORCED_THINKING_PARSERS, RawTagParser, tool_schemas
from tui.core.chat.stream import INTERRUPTED, TurnDecoder

if TYPE_CHECKING:
    from tui.core.registry import Model, Registry

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 900.0
RUNNING_STATES = ("starting", "loading", "ready", "unhealthy", "external")
#: engines that take a reasoning parser from llmdeck and so parse reasoning themselves
PARSER_ENGINES = ("vllm", "sglang", "lightllm")


@dataclass
class ChatTarget:
    """Where and how to chat: everything the client needs, registry or not."""

    base_url: str                       # OpenAI base URL, ends in /v1
    api_key: str | None = None
    model: str | None = None            # the request's "model" (served name)
    name: str | None = None             # the registry name, for messages
    engine: str | None = None
    api_key_env: str | None = None      # for messages
    defaults: dict[str, Any] = field(default_factory=dict)  # per-request sampling defaults
    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    #: True: the server splits reasoning out itself; False: it leaves raw tags; None: unknown
    server_parses_reasoning: bool | None = None
    cli: str = "llmdeck"                # how error hints call llmdeck (``--registry PATH`` when needed)

    @classmethod
    def from_registry(cls, registry: "Registry", model: "Model | str", url: str | None = None) -> "ChatTarget":
        from tui.core.engines.llama_server import SAMPLING_KEYS

        if isinstance(model, str):
            model = registry.get(model)
        base = url or endpoints_url(registry, model)
        defaults: dict[str, Any] = {}
        for k in SAMPLING_KEYS:
            if k in model.params and model.params[k] is not None:
                key = "temperature" if k == "temp" else k
                if k == "repeat_penalty" and model.engine in PARSER_ENGINES:
                    key = "repetition_penalty"
                defaults[key] = model.params[k]
        return cls(base_url=base.rstrip("/"), api_key=model.api_key(), model=model.served_name,
                   name=model.name, engine=model.engine, api_key_env=model.api_key_env,
                   defaults=defaults, reasoning_parser=model.reasoning_parser,
                   tool_call_parser=model.tool_call_parser,
                   server_parses_reasoning=server_parses_reasoning(model),
                   cli=errors.llmdeck_command(getattr(registry, "path", None)))

    @property
    def origin(self) -> str:
        b = self.base_url.rstrip("/")
        return b[:-3] if b.endswith("/v1") else b


def server_parses_reasoning(model: "Model") -> bool | None:
    if model.engine == "llama-server":
        args = list(model.extra_args)
        if model.params.get("reasoning_format") == "none" or "--skip-chat-parsing" in args:
            return False
        for flag in ("--reasoning-format", "-rf"):
            if flag in args and args.index(flag) + 1 < len(args) and args[args.index(flag) + 1] == "none":
                return False
        return True
    if model.engine in PARSER_ENGINES:
        return bool(model.reasoning_parser)
    return None


def endpoints_url(registry: "Registry", model: "Model") -> str:
    """The OpenAI base URL of ``model``'s server: the one the supervisor recorded while it runs
    (it may use another port than ``default_port``), else the registry's."""
    from tui.core import supervisor

    return supervisor.endpoints(registry, model.name).base_url.rstrip("/")


@dataclass
class SlotsReport:
    """What ``/slots`` said after a cancel. ``busy`` is None when it could not tell."""

    busy: bool | None
    processing: int = 0
    total: int = 0
    message: str = ""


class ChatClient:
    def __init__(self, target: ChatTarget | str, *, read_timeout: float = READ_TIMEOUT_S,
                 connect_timeout: float = CONNECT_TIMEOUT_S, transport: Any = None,
                 id_factory: Any = None, **target_kw: Any) -> None:
        self.target = ChatTarget(base_url=target.rstrip("/"), **target_kw) if isinstance(target, str) else target
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self._transport = transport
        #: ids for calls parsed from raw tags (index -> id); default random ``call_<24 hex>``
        self.id_factory = id_factory
        self._http: Any = None
        self._task: asyncio.Task | None = None
        self._model_probed = False

    @classmethod
    def for_model(cls, registry: "Registry", model: "Model | str", **kw: Any) -> "ChatClient":
        return cls(ChatTarget.from_registry(registry, model), **kw)

    # --- plumbing -----------------------------------------------------------------------

    def _client(self):
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(connect=self.connect_timeout, read=self.read_timeout,
                                      write=30.0, pool=self.connect_timeout),
                transport=self._transport, trust_env=False)
        return self._http

    def headers(self) -> dict[str, str]:
        h = {"Accept": "text/event-stream"}
        if self.target.api_key:
            h["Authorization"] = f"Bearer {self.target.api_key}"
        return h

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> "ChatClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _probe_model(self) -> None:
        """Ask ``/models`` for the id once when no ``model`` was given."""
        self._model_probed = True
        try:
            r = await self._client().get(self.target.base_url + "/models", headers=self.headers(), timeout=5.0)
            data = r.json().get("data") if r.status_code == 200 else None
            if data and isinstance(data[0], dict) and isinstance(data[0].get("id"), str):
                self.target.model = data[0]["id"]
        except Exception:  # the chat request will report what is wrong
            pass

    # --- requests -----------------------------------------------------------------------

    def build_body(self, messages: list[dict], *, tools: list | None = None, tool_choice: Any = None,
                   max_tokens: int | None = None, thinking: bool | None = None,
                   params: dict | None = None, extra: dict | None = None) -> dict:
        """The request body. ``thinking=False`` sends ``chat_template_kwargs.enable_thinking``
        as the JSON boolean false (a string is a 400 on llama-server); None sends nothing."""
        body: dict[str, Any] = {}
        if self.target.model:
            body["model"] = self.target.model
        body["messages"] = messages
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        body.update(self.target.defaults)
        if params:
            body.update(params)
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        if thinking is not None:
            kw = dict(body.get("chat_template_kwargs") or {})
            kw["enable_thinking"] = bool(thinking)
            body["chat_template_kwargs"] = kw
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if extra:
            body.update(extra)
        return body

    def raw_parser(self, *, tools: list | None = None, thinking: bool | None = None) -> RawTagParser:
        t = self.target
        forced = (t.reasoning_parser in FORCED_THINKING_PARSERS and thinking is not False
                  and t.server_parses_reasoning is not True)
        kw = {"id_factory": self.id_factory} if self.id_factory else {}
        return RawTagParser(starts_in_reasoning=forced, schemas=tool_schemas(tools), **kw)

    async def stream(self, messages: list[dict], *, tools: list | None = None, tool_choice: Any = None,
                     max_tokens: int | None = None, thinking: bool | None = None,
                     params: dict | None = None, extra: dict | None = None) -> AsyncIterator[Any]:
        """Yield the turn's events; the last one is ``Done`` or ``Error``."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("a chat stream is already running on this client; cancel it first")
        if not self.target.model and not self._model_probed:
            await self._probe_model()
        body = self.build_body(messages, tools=tools, tool_choice=tool_choice, max_tokens=max_tokens,
                               thinking=thinking, params=params, extra=extra)
        raw = self.raw_parser(tools=tools, thinking=thinking)
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(self._produce(body, raw, queue))
        self._task = task
        ended = False
        try:
            while True:
                batch = await queue.get()
                for ev in batch:
                    yield ev
                if batch and isinstance(batch[-1], TERMINAL):
                    ended = True
                    return
        finally:
            if ended and not task.done():
                # the producer is closing the response: let it (a cancel there left the pooled
                # connection marked active forever, so every turn opened a new one)
                await asyncio.wait({task}, timeout=1.0)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _produce(self, body: dict, raw: RawTagParser, queue: asyncio.Queue) -> None:
        import httpx

        t = self.target
        url = t.base_url + "/chat/completions"
        clock = time.perf_counter
        dec = TurnDecoder(DeltaAssembler(raw), clock())
        put = queue.put_nowait
        try:
            async with self._client().stream("POST", url, json=body, headers=self.headers()) as resp:
                if resp.status_code != 200:
                    data = await resp.aread()
                    dec.done = True
                    put([errors.http_error(resp.status_code, data, url, sent_key=bool(t.api_key),
                                           key_env=t.api_key_env, model=t.name, cli=t.cli)])
                    return
                ctype = resp.headers.get("content-type", "")
                if "event-stream" not in ctype and "json" not in ctype and "html" in ctype:
                    data = await resp.aread()
                    dec.done = True
                    put([errors.not_openai(url, data, ctype)])
                    return
                if "event-stream" not in ctype and "json" in ctype:
                    import json

                    data = await resp.aread()
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        obj = None
                    put(dec.feed_completion(obj, clock()))
                    return
                feed = dec.feed
                async for chunk in resp.aiter_bytes():
                    evs = feed(chunk, clock())
                    if evs:
                        put(evs)
                        if dec.done:
                            return
                put(dec.close(clock()))
        except asyncio.CancelledError:
            put(dec.cancel(clock()))
        except httpx.ConnectError as exc:
            put(dec.fail(errors.connect_error(exc, t.base_url, t.name, t.cli), clock()))
        except httpx.ConnectTimeout as exc:
            put(dec.fail(errors.connect_error(exc, t.base_url, t.name, t.cli), clock()))
        except httpx.TimeoutException as exc:
            put(dec.fail(errors.timeout_error(exc, url, self.read_timeout), clock()))
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # the server dropped the connection: what arrived stands, the turn is interrupted
            if dec.asm.finish_reason is None:
                put(dec.fail(Error(f"{INTERRUPTED} ({type(exc).__name__}: {exc})", None,
                                   "interrupted"), clock()))
            else:
                put(dec.close(clock()))
        except Exception as exc:  # never leave the consumer waiting
            err = Error(f"chat request to {url} failed: {type(exc).__name__}: {exc}", None, "protocol")
            try:
                put(dec.fail(err, clock()))
            except Exception:  # the decoder itself is what failed: end with the error alone
                dec.done = True
                put([err])
        finally:
            if not dec.done:
                dec.done = True
                put([Error("the chat stream ended unexpectedly", None, "protocol")])

    # --- cancel -------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._task is not None and not self._task.done()

    async def cancel(self, wait: float = 3.0) -> SlotsReport | None:
        """Close the running stream, then check ``/slots``. None when nothing was running."""
        task = self._task
        if task is None or task.done():
            return None
        task.cancel()
        await asyncio.wait({task})
        return await self.check_slots(wait)

    async def check_slots(self, wait: float = 3.0) -> SlotsReport:
        """Poll ``/slots`` until no slot is processing or ``wait`` seconds pass."""
        url = self.target.origin + "/slots"
        deadline = time.monotonic() + wait
        while True:
            try:
                r = await self._client().get(url, headers=self.headers(), timeout=3.0)
            except Exception as exc:
                return SlotsReport(None, message=f"cannot tell whether the server stopped generating: "
                                                 f"{url}: {type(exc).__name__}")
            if r.status_code != 200:
                return SlotsReport(None, message=f"cannot tell whether the server stopped generating: "
                                                 f"{url} answered HTTP {r.status_code}")
            try:
                slots = r.json()
            except ValueError:
                slots = None
            if not isinstance(slots, list):
                return SlotsReport(None, message=f"cannot tell whether the server stopped generating: "
                                                 f"{url} did not return a list")
            busy = sum(1 for s in slots if isinstance(s, dict) and s.get("is_processing"))
            if not busy:
                return SlotsReport(False, 0, len(slots), "the server stopped generating (no slot busy)")
            if time.monotonic() >= deadline:
                return SlotsReport(True, busy, len(slots),
                                   f"server still busy: {busy} of {len(slots)} slot(s) still processing "
                                   f"{wait:g} s after the cancel")
            await asyncio.sleep(0.1)
