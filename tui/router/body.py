"""Reading a request body within a limit, and finding (and rewriting) its ``model``.

* :func:`read` stops at ``limit`` bytes: a ``Content-Length`` over it is refused before a byte
  is read, a chunked body as soon as it passes it (:class:`TooLarge` → 413). aiohttp's own
  ``request.read()`` would first raise its buffer to the whole limit.
* :func:`inspect` finds ``model``. A body up to :data:`INLINE_MAX` is parsed with ``json.loads``
  on the event loop (at most a few ms). A larger one is never fully parsed: a scan in a worker
  thread walks the top-level object, skipping strings and nested values, and notes where the
  top-level ``model`` value lies (the last one, as ``json.loads`` keeps). Moving ``json.loads``
  to a thread would not help: it holds the GIL for the whole parse (about 1 s for 28 MB of
  numbers, during which the loop, and ``/health``, stand still); the scan is Python code that
  gives the GIL up every few ms, and it allocates nothing per value. A large body that is not
  valid JSON is then the server's to judge (it answers 400 itself).
* :func:`retarget` sets ``model`` to the name the server answers to: a small body is re-encoded,
  a large one gets the new value spliced in, every other byte untouched.

Nesting deeper than :data:`MAX_DEPTH` (or than ``json.loads`` manages) is a 400, never a
RecursionError.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BODY = 32 << 20
INLINE_MAX = 256 << 10
MAX_DEPTH = 512

_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_COLON = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*")
_WS = re.compile(rb"[ \t\r\n]*")
_pool: ThreadPoolExecutor | None = None  # two workers: big bodies never take the default executor


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
    """The whole body, at most ``limit`` bytes (else :class:`TooLarge`); a bytearray (not copied
    once more into bytes: ``json``, ``re`` and the aiohttp client all take it)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    if not request.body_exists:
        return b""
    buf = bytearray()
    content = request.content
    while chunk := await content.readany():
        buf += chunk
        if len(buf) > limit:
            raise TooLarge
    return buf


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


def scan(raw: bytes) -> Parsed:
    """The top-level ``model`` of a JSON object without parsing the rest (see the module doc)."""
    start = _WS.match(raw).end()
    if raw[start:start + 1] != b"{":
        return Parsed()
    found = Parsed()
    depth = 0
    for m in _TOKEN.finditer(raw, start):
        c = raw[m.start()]
        if c == 0x22:  # a string: at depth 1 and followed by ':' it is a key
            if depth != 1:
                continue
            colon = _COLON.match(raw, m.end())
            if colon is None:
                continue
            key = m.group()
            if key != b'"model"' and not (b"\\" in key and len(key) < 64 and _is_model_key(key)):
                continue
            v0 = colon.end()
            vm = _TOKEN.match(raw, v0) if raw[v0:v0 + 1] == b'"' else None
            found = Parsed()
            if vm is not None:
                try:
                    found = Parsed(model=json.loads(vm.group()), span=(v0, vm.end()))
                except ValueError:
                    pass
        elif c == 0x7B or c == 0x5B:  # { [
            depth += 1
            if depth > MAX_DEPTH:
                raise TooDeep(f"the request body nests deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1
            if depth <= 0:
                break
    return found


def _is_model_key(token: bytes) -> bool:
    try:
        return json.loads(token) == "model"
    except ValueError:
        return False


async def inspect(raw: bytes) -> Parsed:
    if len(raw) <= INLINE_MAX:
        return _loads(raw)
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llmdeck-body")
    return await asyncio.get_running_loop().run_in_executor(_pool, scan, raw)


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
