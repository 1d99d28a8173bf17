"""One streamed chat completion on a keep-alive connection: the SSE events of a response → a
:class:`~tui.core.bench.client.RequestRecord` (TTFT, end, tokens, usage, errors).

Each socket read is handled in one callback: :class:`~tui.core.bench.http1.Http1Response` undoes
the HTTP framing; complete SSE events (up to the last blank line) are taken as one block; until
the first token, each event is parsed with :mod:`json` (TTFT needs the exact event); after it,
the block is handled in bulk: text events are counted with ``bytes.count`` and only events
holding ``"usage"``, ``"timings"`` or ``"error"`` are parsed.

**Lazy mid-stream parsing** (:data:`LAZY`). With hundreds of streams the event loop wakes once
per socket per token, and a first token that arrives meanwhile waits for the whole pass: TTFT
would grow with the client's own load. So once a response has its first token, a read only
appends the bytes to a list and checks them for the end of the stream (``[DONE]`` or the last
chunk, also across two reads); they are parsed together when the end shows, when 64 KiB are
held, when the connection closes, or when live progress asks
(:meth:`~tui.core.bench.client.StreamClient.flush`). The end is parsed with the time of the read
that brought it, so end-to-end latency is exact; only the live token count lags by up to one
progress interval.

The decisions on what counts (TTFT, tokens, errors) are in :mod:`tui.core.bench.client`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from typing import TYPE_CHECKING

from tui.core.bench.http1 import Http1Response, Malformed
from tui.core.chat.errors import error_message, is_error_payload

if TYPE_CHECKING:
    from tui.core.bench.client import RequestRecord, StreamClient

monotonic = time.monotonic

MAX_EVENT_BYTES = 8 << 20
LAZY = True  # lazy mid-stream parsing (tests turn it off to compare)
LAZY_MAX_BYTES = 64 << 10


def text_keys(data: bytes, delta: dict) -> tuple[bytes, ...]:
    """What marks a text event in this stream, from its first one: ``content":"`` (which also
    ends ``reasoning_content":"``), plus ``"reasoning":"`` and ``"arguments":"`` when the stream
    starts with them; with a space after the colon for servers that write JSON that way."""
    sep = b'": "' if b'": ' in data else b'":"'
    keys = [b'content' + sep]
    if delta.get("reasoning"):
        keys.append(b'"reasoning' + sep)
    if delta.get("tool_calls"):
        keys.append(b'"arguments' + sep)
    return tuple(keys)


def events_with(block: bytes, marker: bytes):
    """(offset, event) for each event of ``block`` holding ``marker`` (found with bytes.find, so
    a block of thousands of events costs a few C scans when the marker is rare)."""
    i = block.find(marker)
    while i >= 0:
        start = block.rfind(b"\n\n", 0, i)
        start = 0 if start < 0 else start + 2
        end = block.find(b"\n\n", i)
        end = len(block) if end < 0 else end
        yield start, block[start:end]
        i = block.find(marker, end)


def event_data(ev: bytes) -> bytes | None:
    parts = []
    for line in ev.split(b"\n"):
        if line.startswith(b"data:"):
            parts.append(line[6:] if line.startswith(b"data: ") else line[5:])
    return b"\n".join(parts) if parts else None


def has_text(delta: dict) -> bool:
    return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
                or delta.get("tool_calls"))


class Connection(Http1Response, asyncio.Protocol):
    """One keep-alive connection of a :class:`~tui.core.bench.client.StreamClient`; runs one
    request at a time."""

    def __init__(self, client: "StreamClient"):
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.uses = 0
        self.rec: RequestRecord | None = None
        self.fut: asyncio.Future | None = None
        self.timer: asyncio.TimerHandle | None = None

    # --- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.lazy = False
        self.seen_at: float | None = None
        self.peek = None  # a dup of the socket for the first-token watcher
        self.peek_fd: int | None = None
        self.client._conns.add(self)
        watcher = self.client._watcher
        if watcher is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    self.peek = socket.socket(fileno=os.dup(sock.fileno()))
                except OSError:
                    self.peek = None

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.client._conns.discard(self)
        if self.lazy:
            self._drain(monotonic())
        self._close_peek()
        if self.rec is None:
            return
        if not self.got_bytes and self.reused:
            self._finish("retry", reusable=False)
        elif self.head_done and not self.chunked and self.remaining is None:
            self._complete(monotonic(), reusable=False)  # body delimited by the close
        else:
            why = f": {exc}" if exc else ""
            self._fail(self.stream_error or f"connection closed before the response finished{why}")

    def data_received(self, data: bytes) -> None:
        now = monotonic()
        if self.lazy:  # mid-stream: keep the bytes, parse them when the end shows or every 64 KiB
            self.pend.append(data)
            self.pend_n += len(data)
            edge = self.tail + data[:8]
            if (self.pend_n < LAZY_MAX_BYTES and b"[DONE]" not in data and b"\r\n0\r\n" not in data
                    and b"[DONE]" not in edge and b"\r\n0\r\n" not in edge
                    and (self.remaining is None or self.pend_n < self.remaining)):
                self.tail = data[-8:]
                return
            self._drain(now)
            return
        if self.rec is None:  # bytes while idle: the connection is no longer in a known state
            self.transport.close()
            return
        self.got_bytes = True
        self._on_read(data, now)

    def _unwatch(self) -> None:
        w = self.client._watcher
        if w is not None and self.peek is not None:
            w.remove(self)

    def _close_peek(self) -> None:
        if self.peek is not None:
            self._unwatch()
            self.peek.close()
            self.peek = None

    # --- one exchange --------------------------------------------------------------------

    def begin(self, rec: RequestRecord, request: bytes, timeout: float) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        self.reused = self.uses > 0
        self.uses += 1
        self.rec = rec
        self.got_bytes = False
        self._reset_http()
        self.sse = b""
        self.stream_error: str | None = None
        self.text_keys: tuple[bytes, ...] = ()
        self.lazy = False
        self.pend: list[bytes] = []
        self.pend_n = 0
        self.tail = b""
        self.usage_tokens: int | None = None
        self.done_at: float | None = None
        self.fut = loop.create_future()
        self.timer = loop.call_later(timeout, self._timeout, timeout)
        self.seen_at = None
        if self.peek is not None:
            self.client._watcher.add(self)
        rec.start = monotonic()
        self.transport.write(request)
        return self.fut

    def _drain(self, now: float) -> None:
        """Parse the bytes kept in lazy mode, as one read arriving ``now``."""
        data = self.pend[0] if len(self.pend) == 1 else b"".join(self.pend)
        self.pend, self.pend_n, self.tail = [], 0, b""
        if self.done_at is not None or self.c_trailer:
            self.lazy = False  # the end has begun: parse the rest as it comes
        try:
            self._on_body(data, now)
        except Malformed as exc:
            self._fail(f"malformed response: {exc}")
        if self.rec is not None and (self.done_at is not None or self.c_trailer):
            self.lazy = False

    # --- SSE -----------------------------------------------------------------------------

    def _on_payload(self, payload: bytes, now: float) -> None:
        """Take the complete events (up to the last blank line); keep the unfinished tail."""
        data = self.sse + payload if self.sse else payload
        if b"\r" in data:  # CRLF line ends; a lone trailing CR meets its LF in the next read
            data = data.replace(b"\r\n", b"\n")
        k = data.rfind(b"\n\n")
        if k < 0:
            if len(data) > MAX_EVENT_BYTES:
                self._fail("an SSE event larger than 8 MiB")
                return
            self.sse = data
            return
        k += 2
        if k == len(data):
            self.sse = b""
            self._on_block(data, now)
        else:
            self.sse = data[k:]
            self._on_block(data[:k], now)

    def _on_block(self, block: bytes, now: float) -> None:
        rec = self.rec
        if rec.first is None:
            block = self._slow(block, now)
            if rec.first is not None:
                self.lazy = LAZY
                self.client._streaming.add(self)
            if not block:
                return
        # one C scan per text key over the block; the events that matter besides text (usage,
        # timings, an error, [DONE]) come after the last text event, so only that tail is searched
        keys = self.text_keys
        n = 0
        last = -1
        for k in keys:
            n += block.count(k)
            last = max(last, block.rfind(k))
        tail = block[block.rfind(b"\n\n", 0, last) + 2:] if last >= 0 else block
        for k in keys:  # finish chunks with an empty text field
            n -= tail.count(k + b'"')
        rec.counted_tokens += n
        self.client.tokens_seen += n
        seen: set[int] = set()
        for marker in (b'"usage"', b'"timings"', b'"error"', b"[DONE]"):
            for start, ev in events_with(tail, marker):
                if start not in seen:
                    seen.add(start)
                    self._inspect_event(ev, now, after_first=True)

    def _slow(self, block: bytes, now: float) -> bytes:
        """Parse events one by one until the first token; return the rest of the block."""
        start, n = 0, len(block)
        while start < n:
            end = block.find(b"\n\n", start)
            if end < 0:
                end = n
            ev = block[start:end]
            start = end + 2
            if self._inspect_event(ev, now, after_first=False):
                return block[start:]
        return b""

    def _inspect_event(self, ev: bytes, now: float, after_first: bool) -> bool:
        """Apply one event; True when it carries the first token."""
        data = event_data(ev)
        if data is None:
            return False
        if data == b"[DONE]":
            if self.done_at is None:
                self.done_at = now
            return False
        try:
            obj = json.loads(data)
        except ValueError:
            self.stream_error = self.stream_error or f"invalid JSON in the stream: {data[:80]!r}"
            return False
        if not isinstance(obj, dict):
            return False
        if is_error_payload(obj):
            self.stream_error = self.stream_error or f"stream error: {error_message(obj)}"[:300]
            return False
        usage = obj.get("usage")
        if isinstance(usage, dict):
            ct, pt = usage.get("completion_tokens"), usage.get("prompt_tokens")
            if isinstance(ct, int):
                self.usage_tokens = ct
            if isinstance(pt, int):
                self.rec.prompt_tokens = pt
        timings = obj.get("timings")
        if isinstance(timings, dict) and isinstance(timings.get("prompt_ms"), (int, float)):
            self.rec.server_prompt_ms = float(timings["prompt_ms"])
        if after_first:
            return False
        choices = obj.get("choices")
        if choices and isinstance(choices, list) and isinstance(choices[0], dict):
            delta = choices[0].get("delta")
            if isinstance(delta, dict) and has_text(delta):
                rec = self.rec
                seen = self.seen_at
                # the watcher thread saw it arrive while the loop was busy elsewhere
                rec.first = seen if seen is not None and rec.start <= seen < now else now
                self._unwatch()
                rec.response_id = obj.get("id")
                self.text_keys = text_keys(data, delta)
                rec.counted_tokens += 1
                self.client.tokens_seen += 1
                return True
        return False

    # --- endings -------------------------------------------------------------------------

    def _complete(self, now: float, reusable: bool) -> None:
        rec = self.rec
        if rec is None:
            return
        if self.status == 200 and self.sse.strip():  # a last event without the blank line
            self.sse += b"\n\n"
            self._on_payload(b"", now)
            if self.rec is None:
                return
        if rec.end is None:
            rec.end = self.done_at or now
        if self.status != 200:
            msg = ""
            try:
                msg = error_message(json.loads(bytes(self.errbody)))
            except ValueError:
                msg = bytes(self.errbody).decode("utf-8", "replace").strip()
            rec.error = f"HTTP {self.status}: {msg}"[:300] if msg else f"HTTP {self.status}"
        elif self.stream_error:
            rec.error = self.stream_error
        rec.output_tokens = self.usage_tokens if self.usage_tokens is not None else rec.counted_tokens
        self._finish("done", reusable=reusable)

    def _fail(self, msg: str) -> None:
        if self.lazy:
            self.lazy = False  # count what arrived, but the request fails with msg
            self._drain(monotonic())
        rec = self.rec
        if rec is None:
            return
        rec.error = msg[:300]
        if rec.end is None:
            rec.end = monotonic()
        rec.output_tokens = self.usage_tokens if self.usage_tokens is not None else rec.counted_tokens
        self._finish("done", reusable=False)

    def _timeout(self, timeout: float) -> None:
        self.timer = None
        self._fail(f"timed out after {timeout:g}s")

    def _finish(self, outcome: str, reusable: bool) -> None:
        self.lazy = False
        self.client._streaming.discard(self)
        self._unwatch()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.rec = None
        fut, self.fut = self.fut, None
        if reusable and not self.closed:
            self.client._idle.append(self)
        elif not self.closed:
            self.closed = True
            self.transport.abort()
        if fut is not None and not fut.done():
            fut.set_result(outcome)

