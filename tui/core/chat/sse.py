"""Server-sent events: bytes in, ``data`` payloads out.

By the spec (WHATWG "server-sent events", section 7 of llama-server-protocol.md): an event
is the lines up to an empty line; ``data:`` takes one optional space; several ``data:``
lines join with ``\\n``; lines starting with ``:`` are comments (llama.cpp's pings);
``event:``, ``id:`` and ``retry:`` are read and ignored (chat completions do not use them);
lines end with LF, CRLF or a lone CR.

Bytes are split into lines before any decoding and no line ends inside a UTF-8 character,
so a character split across reads is whole by the time its payload is decoded. A CR at the
very end of a read ends the line at once; an LF at the start of the next read is then
skipped, so a CRLF split across reads counts as one line end.
"""

from __future__ import annotations


class SSEDecoder:
    """Incremental decoder: ``feed(bytes) -> [payload bytes]``; ``close()`` at end of body."""

    __slots__ = ("_buf", "_data", "_skip_lf", "comments")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._skip_lf = False
        #: comment lines seen (llama.cpp sends ``:`` pings during long prefills)
        self.comments = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if self._skip_lf:  # the last read ended in CR: an LF now is the same line end
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            self._skip_lf = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data = []
                continue
            if line.startswith(b"data:"):
                v = line[5:]
                data.append(v[1:] if v[:1] == b" " else v)
            elif line[0] == 58:  # ':' comment / ping
                self.comments += 1
            elif line == b"data":  # a field name alone means an empty value
                data.append(b"")
            # event:, id:, retry: and unknown fields are ignored
        self._data = data
        return out

    def close(self) -> list[bytes]:
        """End of body: a pending line ends; an event without its blank line is dispatched
        (servers that close right after the last ``data:`` line lose nothing)."""
        rest = self._buf
        self._buf = b""
        return self._lines(([rest] if rest else []) + [b""])
