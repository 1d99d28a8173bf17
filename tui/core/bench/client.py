"""The load generator's HTTP client: streamed OpenAI chat completions over raw asyncio.

Why not httpx: httpx (h11) handles every SSE line in several Python calls, which caps one core
at a few thousand events per second, and the load generator must not be the bottleneck. Here a
connection is an :class:`asyncio.Protocol`, in layers, one job per module:

* :mod:`.http1`: the HTTP/1.1 response (status, headers, ``Content-Length`` or chunked body);
* :mod:`.sse`: the SSE events of one streamed completion → a :class:`RequestRecord`, with lazy
  mid-stream parsing (TTFT must not grow with the client's own load);
* :mod:`.firsttoken`: a thread that stamps when each stream's first token arrived;
* this module: the record, and :class:`StreamClient`, the keep-alive pool that sends requests.

Memory is bounded: nothing of a response is kept beyond the unfinished SSE event (at most
8 MiB), 64 KiB of unparsed stream per connection and the first 8 KiB of an HTTP error body.

Decisions:

* **TTFT** runs from the moment the request is written to the connection (after connecting,
  which a request that must open one spends first; a send that fails to connect is timed from
  before the connect) to the read that carries the first non-empty ``content``,
  ``reasoning_content``, ``reasoning`` or ``tool_calls`` delta. The role-only first chunk does
  not count. Time spent connecting shows in the runner's send lag instead.
* **End-to-end latency** ends at ``data: [DONE]`` (or the end of the body if a server sends no
  ``[DONE]``).
* **Output tokens** are ``usage.completion_tokens`` (asked for with
  ``stream_options.include_usage``); a server that sends no usage is counted one token per text
  event, the text fields being those the stream's first token used (``content`` and
  ``reasoning_content``; vLLM's ``reasoning`` or tool-call ``arguments`` when it starts with
  them). ``timings.prompt_ms`` (llama.cpp) is kept as the server-side prefill time.
* **Usage, timings, errors and [DONE]** are looked for after the stream's last text event (where
  every server puts them, and where an error ends a stream), so a long block of tokens costs one
  C scan per text field and no per-event work.
* **Errors**: an HTTP status other than 200 (with the server's message), an ``error`` event in
  the stream, a connection refused or closed before the response finished, or the per-request
  timeout. A pooled keep-alive connection that the server closed while idle is retried once on a
  new connection, and only when no byte of the response had arrived. The server's error payload
  is read by :func:`tui.core.chat.errors.error_message`, the parser the chat uses too.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from urllib.parse import urlsplit

from tui.core.bench.firsttoken import FirstTokenWatcher
from tui.core.bench.sse import Connection, monotonic

WATCH_FIRST_TOKEN = True  # stamp first tokens from a watcher thread (see FirstTokenWatcher)


class RequestRecord:
    """One request's outcome. Times are ``time.monotonic()`` seconds (system-wide on Linux)."""

    __slots__ = ("index", "scheduled", "start", "first", "end", "output_tokens", "counted_tokens",
                 "prompt_tokens", "server_prompt_ms", "error", "response_id")

    def __init__(self, index: int, scheduled: float | None = None):
        self.index = index
        self.scheduled = scheduled  # planned send time (rate/burst), None for concurrency
        self.start: float | None = None
        self.first: float | None = None
        self.end: float | None = None
        self.output_tokens = 0
        self.counted_tokens = 0
        self.prompt_tokens: int | None = None
        self.server_prompt_ms: float | None = None
        self.error: str | None = None
        self.response_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.end is not None

    @property
    def ttft(self) -> float | None:
        return None if self.first is None or self.start is None else self.first - self.start

    @property
    def latency(self) -> float | None:
        return None if self.end is None or self.start is None else self.end - self.start

    def __repr__(self) -> str:
        return (f"RequestRecord(#{self.index}, ok={self.ok}, ttft={self.ttft}, latency={self.latency}, "
                f"tokens={self.output_tokens}, error={self.error!r})")


class StreamClient:
    """Sends streamed chat completions to one OpenAI-compatible server, with a keep-alive pool.

    ``tokens_seen`` counts text events as they arrive over all requests (for live tok/s);
    ``connections_opened`` counts TCP connections (a pool reused well opens one per concurrent
    request).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 600.0,
                 connect_timeout_s: float = 10.0, path: str = "/chat/completions"):
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"'{base_url}' is not an http(s) URL")
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.tls = u.scheme == "https"
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.tokens_seen = 0
        self.connections_opened = 0
        self._idle: list[Connection] = []
        self._streaming: set[Connection] = set()  # connections in lazy mode
        self._watcher: FirstTokenWatcher | None = None  # started with the first connection
        self._conns: set[Connection] = set()  # open connections
        self._addrs: list[tuple] | None = None
        self._ssl = None
        hostport = u.netloc.rpartition("@")[2]
        target = (u.path.rstrip("/") + path) or "/"
        auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self._head = (f"POST {target} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: llmdeck-bench\r\n"
                      f"Accept: text/event-stream\r\nContent-Type: application/json\r\n{auth}"
                      "Content-Length: ").encode()

    def encode(self, body: dict) -> bytes:
        """The full HTTP request for a JSON body."""
        b = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        return self._head + str(len(b)).encode() + b"\r\n\r\n" + b

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        if self._watcher is None and WATCH_FIRST_TOKEN:
            self._watcher = FirstTokenWatcher.start()
        if self._addrs is None:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self._addrs = [(fam, addr) for fam, _, _, _, addr in infos]
            if self.tls:
                import ssl

                self._ssl = ssl.create_default_context()
        last: Exception | None = None
        for fam, addr in list(self._addrs):
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: Connection(self), addr[0], addr[1], family=fam,
                                           ssl=self._ssl, server_hostname=self.host if self._ssl else None),
                    self.connect_timeout_s)
                if len(self._addrs) > 1:
                    self._addrs = [(fam, addr)]  # remember the address that answers
                self.connections_opened += 1
                return conn
            except (OSError, asyncio.TimeoutError) as exc:
                last = exc
        raise last if last else OSError("no address")

    async def send(self, rec: RequestRecord, request: bytes) -> RequestRecord:
        """Send one encoded request and fill ``rec``; never raises for server or network faults."""
        rec.start = monotonic()  # until the request is written (then again, after connecting)
        for attempt in (0, 1):
            conn = None
            while self._idle and not attempt:  # a retry always opens a new connection
                c = self._idle.pop()
                if not c.closed:
                    conn = c
                    break
            if conn is None:
                try:
                    conn = await self._connect()
                except asyncio.TimeoutError:
                    rec.error, rec.end = f"connect to {self.host}:{self.port} timed out", monotonic()
                    return rec
                except OSError as exc:
                    why = os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)
                    rec.error, rec.end = f"cannot connect to {self.host}:{self.port}: {why}", monotonic()
                    return rec
            outcome = await conn.begin(rec, request, self.timeout_s)
            if outcome != "retry" or attempt:
                break
            rec.error = rec.end = None
        if rec.end is None:  # a retry that failed again before any byte
            rec.error = rec.error or "connection closed before the response started"
            rec.end = monotonic()
        return rec

    def flush(self) -> None:
        """Parse what lazy connections hold (before reading ``tokens_seen`` for live progress)."""
        now = monotonic()
        for c in list(self._streaming):
            if c.pend:
                c._drain(now)

    async def aclose(self) -> None:
        """Close every connection and stop the watcher thread."""
        self._idle.clear()
        for c in list(self._conns):
            c.closed = True
            c.transport.abort()
        await asyncio.sleep(0)  # let connection_lost run
        for c in list(self._conns):
            c._close_peek()
        self._conns.clear()
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
