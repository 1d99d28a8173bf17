"""Reading a request body within a limit, and finding (and rewriting) its ``model``.

* :func:`read` stops at ``limit`` bytes: a ``Content-Length`` over it is refused before a byte
  is read, a chunked body as soon as it passes it (:class:`TooLarge` → 413). aiohttp's own
  ``request.read()`` would first raise its buffer to the whole limit.
* :func:`inspect` finds ``model``. A body up to :data:`INLINE_MAX` is parsed with ``json.loads``
  on the event loop (at most a few ms). A larger one is never fully parsed: :func:`scan` finds
  where the top-level ``model`` value lies (the last one, as ``json.loads`` keeps) with C-speed
  passes over :data:`PIECE` bytes at a time, on the event loop, which serves other requests
  between two pieces. ``json.loads`` in a thread would not help: it holds the GIL for the whole
  parse (about 1 s for 28 MB of numbers, during which the loop, and ``/health``, stand still),
  and on a busy machine even short C passes in a thread stall the loop whenever that thread is
  preempted while it holds the GIL (measured: 0.3-1.4 s at load 7 on 2 cores). A large body
  that is not valid JSON is then the server's to judge (it answers 400 itself); a ``model`` key
  written with escapes (``"\\u006dodel"``) is not found there (400: no ``model``).
* :func:`retarget` sets ``model`` to the name the server answers to: a small body is re-encoded,
  a large one gets the new value spliced in, every other byte untouched.

Nesting deeper than :data:`MAX_DEPTH` (or than ``json.loads`` manages) is a 400, never a
RecursionError.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BODY = 32 << 20
INLINE_MAX = 256 << 10
MAX_DEPTH = 512
PIECE = 256 << 10
MODEL_MAX = 4096  # a longer "model" value is no model name

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_STRINGS = re.compile(rb'"[^"]*"')
_RUNS = re.compile(rb"[\[{]+|[\]}]+")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')
_COLON = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*")
_WS = re.compile(rb"[ \t\r\n]*")


class TooLarge(Exception):
    pass


class BadBody(Exception):
    """The body cannot be used: the message says why (a 400)."""


class TooDeep(BadBody):
    """Nested deeper than the router follows (a 400 on every route)."""


@dataclass
class Parsed:
    model: Any = None  # the top-level "model" value (None: absent, or not an object)
    obj: dict | None = None  # the parsed body (small bodies)
    span: tuple[int, int] | None = None  # where the "model" value lies (large bodies)


def mb(n: int) -> str:
    return f"{n / (1 << 20):g} MB"


async def read(request, limit: int) -> bytes | bytearray:
    """The whole body, at most ``limit`` bytes (else :class:`TooLarge`). With a
    ``Content-Length`` it is read into a buffer of that size (no regrowing, no copy at the end);
    a chunked body is kept as its pieces and joined once."""
    n = request.content_length
    if n is not None and n > limit:
        raise TooLarge
    if not request.body_exists:
        return b""
    content = request.content
    if n is not None:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while chunk := await content.readany():
            end = got + len(chunk)
            if end > n:  # more than announced: the parser would not let it happen
                raise TooLarge
            view[got:end] = chunk
            got = end
        view.release()
        return buf if got == n else buf[:got]
    pieces, size = [], 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        pieces.append(chunk)
    return b"".join(pieces)


def _loads(raw: bytes) -> Parsed:
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise TooDeep("the request body nests too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadBody(f"the request body is not JSON ({exc})") from None
    if isinstance(obj, dict):
        return Parsed(model=obj.get("model"), obj=obj)
    return Parsed()


def _skeleton(seg: bytes, in_str: bool, esc: bool) -> tuple[bytes, bool, bool]:
    """The brackets of ``seg`` outside strings, whether it ends inside a string, and whether its
    last character is a backslash that escapes the next one. C-speed passes only: drop escaped
    backslashes and quotes, keep ``"[]{}``, drop adjacent quote pairs (an empty string, or the
    end of one and the start of the next: which brackets lie inside a string is unchanged),
    then the strings that are left (those holding brackets: rare)."""
    if esc and seg:
        seg, esc = seg[1:], False
    if b"\\" in seg:
        if (len(seg) - len(seg.rstrip(b"\\"))) % 2:
            seg, esc = seg[:-1], True
        seg = seg.replace(b"\\\\", b"").replace(b'\\"', b"")
    s = seg.translate(None, _NOT_STRUCTURE)
    if in_str:
        s = b'"' + s
    while b'""' in s:
        s = s.replace(b'""', b"")
    if b'"' in s:
        s = _STRINGS.sub(b"", s)
    i = s.find(b'"')  # one quote left: a string still open at the end
    return (s, False, esc) if i < 0 else (s[:i], True, esc)


def _deepest(s: bytes, depth: int) -> int:
    """The greatest depth reached in a bracket skeleton entered at ``depth``."""
    if depth + s.count(b"[") + s.count(b"{") <= MAX_DEPTH:
        return depth  # cannot get past the limit: skip the walk
    top = depth
    for m in _RUNS.finditer(s):
        n = m.end() - m.start()
        depth += n if s[m.start()] in b"[{" else -n
        top = max(top, depth)
    return top


def _consume(seg: bytes, depth: int, in_str: bool, esc: bool) -> tuple[int, bool, bool]:
    skel, in_str, esc = _skeleton(seg, in_str, esc)
    if _deepest(skel, depth) > MAX_DEPTH:
        raise TooDeep(f"the request body nests deeper than {MAX_DEPTH} levels")
    return depth + skel.count(b"[") + skel.count(b"{") - skel.count(b"]") - skel.count(b"}"), in_str, esc


def _scan(raw: bytes) -> Generator[None, None, Parsed]:
    """:func:`scan` in steps of at most :data:`PIECE` bytes, a ``yield`` between two."""
    n = len(raw)
    start = _WS.match(raw).end()
    if raw[start:start + 1] != b"{":
        return Parsed()
    found = Parsed()
    depth, in_str, esc, cursor, search, seen = 0, False, False, start, start, 0
    while cursor < n:
        limit = min(n, cursor + PIECE)
        p = raw.find(b'"model"', search, limit + 6) if search < limit else -1
        if p >= 0:  # a candidate that starts in this piece
            search, seen = p + 1, seen + 1
            if seen % 256 == 0:
                yield
            seg = raw[cursor:p]
            run = len(seg) - len(seg.rstrip(b"\\"))
            if (run + (esc and run == len(seg))) % 2:
                continue  # an escaped quote: inside a string
            depth, in_str, esc = _consume(seg, depth, in_str, esc)
            cursor = p
            if in_str or depth != 1:
                continue
            colon = _COLON.match(raw, p + 7)
            if colon is None:  # a value that happens to read "model"
                continue
            vm = _STRING.match(raw, colon.end(), colon.end() + MODEL_MAX)
            found = Parsed()
            if vm is not None:
                try:
                    found = Parsed(model=json.loads(vm.group()), span=vm.span())
                except ValueError:
                    pass
            continue
        depth, in_str, esc = _consume(raw[cursor:limit], depth, in_str, esc)
        cursor = search = limit
        yield
    return found


def scan(raw: bytes) -> Parsed:
    """The top-level ``model`` of a JSON object without parsing the rest, and where its value
    lies. Each ``"model"`` in the bytes (``bytes.find``) is a candidate; the bytes before it are
    reduced to their brackets outside strings, which tells whether it is a key of the top-level
    object. Every pass is C code over at most :data:`PIECE` bytes."""
    steps = _scan(raw)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def inspect(raw: bytes) -> Parsed:
    if len(raw) <= INLINE_MAX:
        return _loads(raw)
    steps = _scan(raw)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        await asyncio.sleep(0)  # every other request gets the loop between two pieces


def retarget(parsed: Parsed, raw: bytes, served: str | None) -> bytes:
    """``raw`` with ``model`` set to ``served`` (unchanged when it already is, or ``served`` is None)."""
    if not served or parsed.model == served:
        return raw
    if parsed.obj is not None:
        parsed.obj["model"] = served
        try:
            return json.dumps(parsed.obj, ensure_ascii=False, separators=(",", ":")).encode()
        except RecursionError:
            raise TooDeep("the request body nests too deeply") from None
    if parsed.span is not None:
        a, b = parsed.span
        return b"".join((raw[:a], json.dumps(served, ensure_ascii=False).encode(), raw[b:]))
    return raw
