"""The load generator's HTTP client: streamed OpenAI chat completions over raw asyncio.

Why not httpx: httpx (h11) handles every SSE line in several Python calls, which caps one core
at a few thousand events per second, and the load generator must not be the bottleneck. Here a
connection is an :class:`asyncio.Protocol`; each socket read is handled in one callback:

1. the chunked transfer framing is undone with a find/slice loop (one pass per HTTP chunk);
2. complete SSE events (up to the last blank line) are taken as one block;
3. until the first token, each event is parsed with :mod:`json` (TTFT needs the exact event);
   after it, the block is handled in bulk: text events are counted with ``bytes.count`` and
   only events holding ``"usage"``, ``"timings"`` or ``"error"`` are parsed.

**Lazy mid-stream parsing.** With hundreds of streams the event loop wakes once per socket per
token, and a first token that arrives meanwhile waits for the whole pass: TTFT would grow with
the client's own load. So once a response has its first token, a read only appends the bytes
to a list and checks them for the end of the stream (``[DONE]`` or the last chunk, also across
two reads); they are parsed together when the end shows, when 64 KiB are held, when the
connection closes, or when live progress asks (:meth:`StreamClient.flush`). The end is
parsed with the time of the read that brought it, so end-to-end latency is exact; only the
live token count lags by up to one progress interval.

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
  new connection, and only when no byte of the response had arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import socket
import struct
import sys
import time
from itertools import repeat
from urllib.parse import urlsplit

monotonic = time.monotonic

MAX_EVENT_BYTES = 8 << 20
MAX_ERROR_BODY = 8 << 10
LAZY = True  # lazy mid-stream parsing (tests turn it off to compare)
WATCH_FIRST_TOKEN = True  # stamp first tokens from a watcher thread (see _FirstTokenWatcher)
LAZY_MAX_BYTES = 64 << 10
BULK_MIN_BYTES = 2048  # reads larger than this undo their chunk framing in bulk


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


class _Malformed(Exception):
    pass


def _text_keys(data: bytes, delta: dict) -> tuple[bytes, ...]:
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


def _bulk_chunks(data: bytes, pos: int, out: list) -> int:
    """Take the whole chunks of ``data`` from ``pos`` (a chunk boundary) without a Python loop
    per chunk; returns where the exact per-chunk loop must go on (a cut chunk, the last chunk).

    Split on CRLF, a run of chunks is ``[size, payload, size, payload, …]``; it is accepted up to
    the first pair whose payload length differs from its size and before the zero chunk. A
    payload holding CRLF shifts the pairs, and then a "size" is an SSE line such as ``data: …``,
    which is not hex: nothing is taken and the exact loop reads the whole run.
    """
    parts = data[pos:].split(b"\r\n")
    m = (len(parts) - 1) // 2  # pairs followed by more bytes are complete
    if m < 1:
        return pos
    sizes, payloads = parts[0:2 * m:2], parts[1:2 * m:2]
    try:
        szs = list(map(int, sizes, repeat(16)))
    except ValueError:
        return pos  # chunk extensions or a CRLF inside a payload: the exact loop decides
    lens = list(map(len, payloads))
    good = szs.index(0) if 0 in szs else m
    if szs[:good] != lens[:good]:
        good = next(i for i, (a, b) in enumerate(zip(szs, lens)) if a != b)
    if not good:
        return pos
    out.extend(payloads[:good])
    return pos + sum(map(len, sizes[:good])) + sum(lens[:good]) + 4 * good


def _events_with(block: bytes, marker: bytes):
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


def _event_data(ev: bytes) -> bytes | None:
    parts = []
    for line in ev.split(b"\n"):
        if line.startswith(b"data:"):
            parts.append(line[6:] if line.startswith(b"data: ") else line[5:])
    return b"\n".join(parts) if parts else None


def _error_message(obj) -> str:
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)
    if isinstance(err, str):
        return err
    if isinstance(obj, dict):
        for k in ("message", "detail"):
            if obj.get(k):
                return str(obj[k])
    return str(obj)


def _has_text(delta: dict) -> bool:
    return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
                or delta.get("tool_calls"))


# the first text delta of a stream, as it appears in the raw bytes (JSON with or without spaces)
_FIRST_TEXT = re.compile(rb'"delta":\s*\{[^{}]*"(?:content|reasoning_content|reasoning)":\s*"[^"]'
                         rb'|"delta":\s*\{[^{}]*"tool_calls":\s*\[')


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS has the same value
_TIMESPEC = struct.Struct("qq")


def _request_short_slice(slice_ns: int = 100_000) -> bool:
    """Ask the Linux scheduler (EEVDF, 6.6+) for a 0.1 ms slice for the calling thread, so that
    on wake-up it preempts busy threads at once instead of waiting for their slice to end (a
    normal-priority request, no privilege needed). Best effort: False where unsupported."""
    import ctypes
    import platform
    import struct

    nr = {"x86_64": 314, "aarch64": 274}.get(platform.machine())
    if nr is None or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # struct sched_attr (VER1, 56 bytes): SCHED_OTHER with sched_runtime = the slice
        attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQII", 56, 0, 0, 0, 0, slice_ns, 0, 0, 0, 0))
        return libc.syscall(nr, 0, attr, 0) == 0
    except (OSError, AttributeError):
        return False


class _FirstTokenWatcher:
    """A thread that sleeps in ``epoll`` on the sockets still waiting for their first token and
    notes when one arrives (``_Conn.seen_at``).

    With hundreds of streams, the event loop may be partway through a long pass over busy
    sockets when a first token lands; stamping it here keeps the client's own load out of TTFT.
    The thread only peeks (``MSG_PEEK``) at a dup of the socket and never consumes data; the event
    loop still parses every byte and decides what the first token is — the stamp is used only
    when it lies between the send and the loop's own read. The stamp is the kernel's receive
    time of the data (``SO_TIMESTAMPNS``, read with the peek), so neither the GIL nor a busy CPU
    delays it: on 2 saturated cores this thread can wake 10 ms after the bytes landed. Where the
    kernel gives no timestamp, the time of the wake-up is used; to keep that close, the
    interpreter's thread switch interval is lowered to 0.5 ms while the watcher runs and the
    thread asks the scheduler for a short slice. Linux only (edge-triggered epoll); elsewhere the
    loop's read time is used.
    """

    SWITCH_INTERVAL_S = 0.0005

    def __init__(self) -> None:
        import threading

        self.ep = select.epoll()
        self.watch: dict[int, _Conn] = {}
        self.running = True
        self.saved_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self.saved_interval, self.SWITCH_INTERVAL_S))
        self.thread = threading.Thread(target=self._run, name="llmdeck-bench-ttft", daemon=True)
        self.thread.start()

    @classmethod
    def start(cls) -> "_FirstTokenWatcher | None":
        if not hasattr(select, "epoll"):
            return None
        return cls()

    def add(self, conn: "_Conn") -> None:
        peek = conn.peek
        if peek is None:
            return
        fd = peek.fileno()
        if self.watch.get(fd) is conn:
            return
        # the fd is remembered: the event loop may close conn.peek while this thread reads it
        conn.peek_fd = fd
        try:  # the kernel stamps each packet it receives; recvmsg below reads the stamp
            peek.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
        self.watch[fd] = conn
        try:
            self.ep.register(fd, select.EPOLLIN | select.EPOLLET | select.EPOLLRDHUP)
        except OSError:
            self.watch.pop(fd, None)

    def remove(self, conn: "_Conn") -> None:
        fd = getattr(conn, "peek_fd", None)
        if fd is None:
            return
        if self.watch.get(fd) is conn and self.watch.pop(fd, None) is conn:
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def _run(self) -> None:
        _request_short_slice()
        flags = socket.MSG_PEEK | socket.MSG_DONTWAIT
        anc_size = socket.CMSG_SPACE(16)
        while self.running:
            try:
                events = self.ep.poll(0.05)
            except (OSError, ValueError):
                return
            if not events:
                continue
            now = monotonic()
            offset = time.time() - now  # kernel stamps are wall-clock: this maps them to monotonic
            for fd, _ in events:
                conn = self.watch.get(fd)
                peek = conn.peek if conn is not None else None
                if peek is None:
                    continue
                try:
                    data, anc, _, _ = peek.recvmsg(65536, anc_size, flags)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    self.remove(conn)
                    continue
                if not data:
                    self.remove(conn)
                elif _FIRST_TEXT.search(data):
                    # the stamp of the newest packet peeked: the one that brought the first token
                    # unless more arrived since (then later, never earlier, than the truth)
                    stamp = now
                    for level, kind, raw in anc:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                            sec, ns = _TIMESPEC.unpack_from(raw)
                            stamp = min(now, sec + ns / 1e9 - offset)
                    conn.seen_at = stamp
                    self.remove(conn)

    def stop(self) -> None:
        self.running = False
        self.thread.join(1.0)
        self.ep.close()
        sys.setswitchinterval(self.saved_interval)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; runs one request at a time."""

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
        try:
            if not self.head_done:
                self.head += data
                i = self.head.find(b"\r\n\r\n")
                if i < 0:
                    if len(self.head) > 65536:
                        raise _Malformed("response headers larger than 64 KiB")
                    return
                head, data = bytes(self.head[:i]), bytes(self.head[i + 4:])
                self.head = bytearray()
                self._parse_head(head)
                if not self.head_done:  # 1xx interim response: read the next head
                    if data:
                        self.data_received(data)
                    return
                if self.remaining == 0:
                    self.body_done = True
                if not data and not self.body_done:
                    return
            self._on_body(data, now)
        except _Malformed as exc:
            self._fail(f"malformed response: {exc}")

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
        self.head = bytearray()
        self.head_done = False
        self.status = 0
        self.chunked = False
        self.remaining: int | None = None
        self.keep_alive = True
        self.body_done = False
        self.c_left = 0
        self.c_line = b""
        self.c_crlf = 0
        self.c_trailer = False
        self.leftover = 0
        self.sse = b""
        self.errbody = bytearray()
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
        except _Malformed as exc:
            self._fail(f"malformed response: {exc}")
        if self.rec is not None and (self.done_at is not None or self.c_trailer):
            self.lazy = False

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise _Malformed(f"bad status line {lines[0][:80]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise _Malformed(f"bad status line {lines[0][:80]!r}") from None
        if 100 <= status < 200:
            return
        self.status = status
        self.head_done = True
        if parts[0] == b"HTTP/1.0":
            self.keep_alive = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value:
                self.chunked = True
            elif name == b"content-length":
                try:
                    self.remaining = int(value)
                except ValueError:
                    raise _Malformed("bad Content-Length") from None
            elif name == b"connection":
                if b"close" in value:
                    self.keep_alive = False
                elif b"keep-alive" in value:
                    self.keep_alive = True
        if self.chunked:
            self.remaining = None

    def _on_body(self, data: bytes, now: float) -> None:
        if self.chunked:
            payload = self._dechunk(data)
        elif self.remaining is not None:
            payload = data[: self.remaining]
            self.remaining -= len(payload)
            self.leftover = len(data) - len(payload)
            if self.remaining <= 0:
                self.body_done = True
        else:
            payload = data
        if payload:
            if self.status == 200:
                self._on_sse(payload, now)
                if self.rec is None:
                    return
            elif len(self.errbody) < MAX_ERROR_BODY:
                self.errbody += payload[: MAX_ERROR_BODY - len(self.errbody)]
        if self.body_done:
            self._complete(now, reusable=self.keep_alive and not self.leftover)

    def _dechunk(self, data: bytes) -> bytes:
        """Undo the chunked framing of one read; returns the payload bytes in it.

        State kept between reads: ``c_left`` payload bytes still to come, ``c_crlf`` bytes of
        the CRLF after a payload still to skip, ``c_line`` a size line cut by the read, and
        ``c_trailer`` once the last (zero) chunk was seen. One loop pass per HTTP chunk.
        """
        if self.c_trailer:
            self._trailer(data)
            return b""
        if self.c_line:
            data, self.c_line = self.c_line + data, b""
        pos, n = 0, len(data)
        left, crlf = self.c_left, self.c_crlf
        if not left and not crlf:  # the common read: exactly one whole chunk
            i = data.find(b"\r\n")
            if 0 < i < 9 and data.endswith(b"\r\n"):
                try:
                    size = int(data[:i], 16)
                except ValueError:
                    size = -1
                if size > 0 and i + 4 + size == n:
                    return data[i + 2:n - 2]
        out = []
        find = data.find
        bulk = n > BULK_MIN_BYTES
        while pos < n:
            if left:
                end = pos + left
                if end >= n:
                    out.append(data[pos:] if pos else data)
                    left = end - n
                    if not left:
                        crlf = 2
                    break
                out.append(data[pos:end])
                pos, left, crlf = end, 0, 2
            if crlf:
                if pos + crlf > n:
                    if data[pos:] != b"\r\n"[2 - crlf:2 - crlf + n - pos]:
                        raise _Malformed("no CRLF after a chunk")
                    crlf -= n - pos
                    break
                if data[pos:pos + crlf] != b"\r\n"[2 - crlf:]:
                    raise _Malformed("no CRLF after a chunk")
                pos += crlf
                crlf = 0
                if pos >= n:
                    break
            if bulk:  # at a chunk boundary with much data: whole chunks in a few C calls
                bulk = False
                pos = _bulk_chunks(data, pos, out)
                if pos >= n:
                    break
            i = find(b"\r\n", pos)
            if i < 0:
                self.c_line = data[pos:]
                if len(self.c_line) > 4096:
                    raise _Malformed("chunk size line longer than 4 KiB")
                break
            try:
                size = int(data[pos:i], 16)
            except ValueError:
                try:  # chunk extensions: "1a;name=value"
                    size = int(data[pos:i].split(b";", 1)[0], 16)
                except ValueError:
                    raise _Malformed(f"bad chunk size {data[pos:i][:40]!r}") from None
            pos = i + 2
            if size == 0:
                self.c_trailer = True
                self._trailer(data[pos:])
                break
            left = size
        self.c_left, self.c_crlf = left, crlf
        return out[0] if len(out) == 1 else b"".join(out)

    def _trailer(self, data: bytes) -> None:
        """After the zero chunk: optional trailer lines, then an empty line ends the body."""
        self.c_line += data
        t = self.c_line
        if t.startswith(b"\r\n"):
            end = 2
        else:
            end = t.find(b"\r\n\r\n")
            if end < 0:
                if len(t) > 65536:
                    raise _Malformed("trailer larger than 64 KiB")
                return
            end += 4
        self.body_done = True
        self.leftover = len(t) - end
        self.c_line = b""

    # --- SSE -----------------------------------------------------------------------------

    def _on_sse(self, payload: bytes, now: float) -> None:
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
            for start, ev in _events_with(tail, marker):
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
        data = _event_data(ev)
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
        if "error" in obj or obj.get("object") == "error":
            self.stream_error = self.stream_error or f"stream error: {_error_message(obj)}"[:300]
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
            if isinstance(delta, dict) and _has_text(delta):
                rec = self.rec
                seen = self.seen_at
                # the watcher thread saw it arrive while the loop was busy elsewhere
                rec.first = seen if seen is not None and rec.start <= seen < now else now
                self._unwatch()
                rec.response_id = obj.get("id")
                self.text_keys = _text_keys(data, delta)
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
            self._on_sse(b"", now)
            if self.rec is None:
                return
        if rec.end is None:
            rec.end = self.done_at or now
        if self.status != 200:
            msg = ""
            try:
                msg = _error_message(json.loads(bytes(self.errbody)))
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
        self._idle: list[_Conn] = []
        self._streaming: set[_Conn] = set()  # connections in lazy mode
        self._watcher: _FirstTokenWatcher | None = None  # started with the first connection
        self._conns: set[_Conn] = set()  # open connections
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

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        if self._watcher is None and WATCH_FIRST_TOKEN:
            self._watcher = _FirstTokenWatcher.start()
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
                    loop.create_connection(lambda: _Conn(self), addr[0], addr[1], family=fam,
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
