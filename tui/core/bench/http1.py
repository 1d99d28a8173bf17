"""The HTTP/1.1 response side of the load generator's connections: status line and headers,
then the body by ``Content-Length``, chunked transfer coding or the close.

The chunked framing is undone with a find/slice loop, one pass per HTTP chunk (and, for reads
larger than :data:`BULK_MIN_BYTES`, whole runs of chunks in a few C calls: :func:`bulk_chunks`).
Memory is bounded: an unfinished size line of 4 KiB, headers and trailer of 64 KiB, and the
first :data:`MAX_ERROR_BODY` bytes of an error body.

:class:`Http1Response` is a mixin of :class:`~tui.core.bench.sse.Connection`; it hands the body
of a 200 answer to ``_on_payload`` and knows nothing of SSE or of the request's record.
"""

from __future__ import annotations

from itertools import repeat

MAX_ERROR_BODY = 8 << 10
BULK_MIN_BYTES = 2048  # reads larger than this undo their chunk framing in bulk


class Malformed(Exception):
    """The response breaks HTTP/1.1 framing (the request fails with "malformed response: …")."""


def bulk_chunks(data: bytes, pos: int, out: list) -> int:
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


class Http1Response:
    """One response at a time on a keep-alive connection.

    The class using it provides ``rec`` (None once the exchange has ended: parsing stops),
    ``_on_payload(payload, now)`` for the body of a 200 answer, ``_complete(now, reusable)``
    when the body is over and ``_fail(message)``.
    """

    def _reset_http(self) -> None:
        """Before a request is written: no head, no body yet."""
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
        self.errbody = bytearray()

    def _on_read(self, data: bytes, now: float) -> None:
        """One socket read of the response (head and/or body), read at ``now``."""
        try:
            if not self.head_done:
                self.head += data
                i = self.head.find(b"\r\n\r\n")
                if i < 0:
                    if len(self.head) > 65536:
                        raise Malformed("response headers larger than 64 KiB")
                    return
                head, data = bytes(self.head[:i]), bytes(self.head[i + 4:])
                self.head = bytearray()
                self._parse_head(head)
                if not self.head_done:  # 1xx interim response: read the next head
                    if data:
                        self._on_read(data, now)
                    return
                if self.remaining == 0:
                    self.body_done = True
                if not data and not self.body_done:
                    return
            self._on_body(data, now)
        except Malformed as exc:
            self._fail(f"malformed response: {exc}")

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise Malformed(f"bad status line {lines[0][:80]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise Malformed(f"bad status line {lines[0][:80]!r}") from None
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
                    raise Malformed("bad Content-Length") from None
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
                self._on_payload(payload, now)
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
                        raise Malformed("no CRLF after a chunk")
                    crlf -= n - pos
                    break
                if data[pos:pos + crlf] != b"\r\n"[2 - crlf:]:
                    raise Malformed("no CRLF after a chunk")
                pos += crlf
                crlf = 0
                if pos >= n:
                    break
            if bulk:  # at a chunk boundary with much data: whole chunks in a few C calls
                bulk = False
                pos = bulk_chunks(data, pos, out)
                if pos >= n:
                    break
            i = find(b"\r\n", pos)
            if i < 0:
                self.c_line = data[pos:]
                if len(self.c_line) > 4096:
                    raise Malformed("chunk size line longer than 4 KiB")
                break
            try:
                size = int(data[pos:i], 16)
            except ValueError:
                try:  # chunk extensions: "1a;name=value"
                    size = int(data[pos:i].split(b";", 1)[0], 16)
                except ValueError:
                    raise Malformed(f"bad chunk size {data[pos:i][:40]!r}") from None
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
                    raise Malformed("trailer larger than 64 KiB")
                return
            end += 4
        self.body_done = True
        self.leftover = len(t) - end
        self.c_line = b""
