"""HTTP and connection failures → one-line :class:`~tui.core.chat.events.Error` events.

Each message says what happened, where, and what to do. The server's own numbers are kept:
llama.cpp's context overflow reports ``n_prompt_tokens`` and ``n_ctx`` (per slot); vLLM's
says "This model's maximum context length is X tokens. However, you requested Y tokens".
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

from tui.core.chat.events import Error

_VLLM_CTX = re.compile(r"maximum context length is (\d+) tokens.*?(?:requested|contains) (\d+) tokens", re.S)


def one_line(s: object) -> str:
    """``s`` as text on one line (runs of whitespace, newlines included, become one space)."""
    return " ".join(str(s).split())


def is_error_payload(obj: object) -> bool:
    """A stream payload that reports an error instead of a chunk: ``{"error": …}`` (llama.cpp,
    vLLM ≥ 0.10.1), flat ``{"object": "error", "message": …}`` (older vLLM/SGLang) or a bare
    ``{"message": …}`` without ``choices`` (very old LightLLM)."""
    return isinstance(obj, dict) and (obj.get("error") is not None or obj.get("object") == "error"
                                      or ("message" in obj and "choices" not in obj))


def _error_of(obj: object) -> object:
    err = obj.get("error") if isinstance(obj, dict) else None
    return obj if err is None else err


def error_message(obj: object) -> str:
    """What a server's error payload says, on one line: the one parser of error payloads, for an
    event inside a stream and for the JSON body of an HTTP error alike (chat and load generator).

    The error is ``obj["error"]`` when present, else ``obj`` itself (the flat forms); from an
    object its ``message``, else ``detail`` (FastAPI), else ``type``, else the object as JSON;
    anything else (a string) as it is."""
    err = _error_of(obj)
    if isinstance(err, dict):
        err = err.get("message") or err.get("detail") or err.get("type") or json.dumps(err)
    return one_line(err)


def error_code(obj: object) -> int | None:
    """The HTTP status an error payload names (``error.code`` as a number), or None."""
    err = _error_of(obj)
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def llmdeck_command(registry_path: str | os.PathLike | None) -> str:
    """How to call llmdeck on this registry in a hint: ``llmdeck``, or ``llmdeck --registry PATH``
    when the registry is not the one llmdeck finds by itself ($LLMDECK_REGISTRY, else
    ./models.json)."""
    if registry_path is None:
        return "llmdeck"
    found = Path(os.environ.get("LLMDECK_REGISTRY") or "models.json")
    try:
        if Path(registry_path).resolve() == found.resolve():
            return "llmdeck"
    except OSError:
        pass
    return f"llmdeck --registry {shlex.quote(str(registry_path))}"


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)


def looks_like_html(body: bytes, content_type: str = "") -> bool:
    head = body.lstrip()[:64].lower()
    return "html" in content_type.lower() or head.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def html_page(body: bytes) -> str:
    """An HTML answer in a few words: never the page itself."""
    m = _TITLE.search(body[:64 << 10])
    title = one_line(m.group(1).decode("utf-8", "replace"))[:60] if m else ""
    return f"an HTML page{f' titled {title!r}' if title else ''}, not JSON: another program may be listening there"


def not_openai(url: str, body: bytes, content_type: str = "") -> Error:
    """A 200 answer that is neither an event stream nor JSON (a web page on the model's port)."""
    what = html_page(body) if looks_like_html(body, content_type) else (
        f"'{content_type or 'no content type'}', not an OpenAI event stream or JSON")
    return Error(f"{url} answered with {what}; check the model's port or base_url", None, "protocol")


def _server_message(body: bytes) -> tuple[str, dict]:
    text = body.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        if looks_like_html(body):
            return html_page(body), {}
        return one_line(text)[:300], {}
    err = obj.get("error", obj) if isinstance(obj, dict) else obj
    return error_message(obj)[:300], err if isinstance(err, dict) else {}


def http_error(status: int, body: bytes, url: str, *, sent_key: bool = False,
               key_env: str | None = None, model: str | None = None, cli: str = "llmdeck") -> Error:
    """``cli``: how hints call llmdeck (:func:`llmdeck_command`)."""
    msg, err = _server_message(body)
    etype = err.get("type") if isinstance(err, dict) else None
    where = f"HTTP {status} from {url}"
    if status == 400 and (etype == "exceed_context_size_error" or "context" in msg.lower()):
        n_prompt, n_ctx = err.get("n_prompt_tokens"), err.get("n_ctx")
        m = _VLLM_CTX.search(msg)
        if n_prompt is None and m:
            n_ctx, n_prompt = int(m.group(1)), int(m.group(2))
        if n_prompt is not None and n_ctx is not None:
            head = (f"prompt too long: {n_prompt} tokens, but the context holds {n_ctx} tokens"
                    + (" per slot" if etype == "exceed_context_size_error" else ""))
        else:
            head = f"prompt too long: {msg}"
        return Error(f"{head} ({where}); start a new chat (ctrl+n in the TUI, /reset in '{cli} chat'), "
                     "or start the server with a larger ctx_size", status, "context_overflow")
    if status in (401, 403):
        if sent_key:
            why = "the API key was rejected"
        else:
            why = "the server wants an API key and none was sent"
        fix = (f"set ${key_env} to the server's key" if key_env
               else "give the model an api_key_env in models.json and set that variable")
        return Error(f"authentication failed: {why} ({where}: {msg}); {fix}", status, "auth")
    if status == 503:
        hint = f"'{cli} health {model}' says when" if model else f"'{cli} health' says when"
        return Error(f"the model is still loading ({where}: {msg}); wait until it is ready ({hint})",
                     status, "loading")
    if status == 404:
        return Error(f"not found ({where}: {msg}); check the base URL (it should end in /v1)", status, "http")
    return Error(f"{where}: {msg or 'no message'}", status, "http")


def _causes(exc: BaseException | None):
    seen = 0
    while exc is not None and seen < 10:
        yield exc
        exc = exc.__cause__ or exc.__context__
        seen += 1


def connect_error(exc: BaseException, url: str, model: str | None = None, cli: str = "llmdeck") -> Error:
    reason = one_line(exc) or type(exc).__name__
    chain = list(_causes(exc))
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in reason.lower():
        reason = "connection refused"
    elif any(isinstance(e, TimeoutError) for e in chain) or "timed out" in reason.lower():
        reason = "connect timed out"
    hint = (f"is it running? ('{cli} status', '{cli} start {model}')" if model
            else "is the server running and the URL right?")
    return Error(f"cannot connect to {url}: {reason}; {hint}", None, "connect")


def timeout_error(exc: BaseException, url: str, read_timeout: float | None) -> Error:
    what = f"no data for {read_timeout:g} s" if read_timeout else "timed out"
    return Error(f"{url}: {what} ({type(exc).__name__}); the server may be stuck or the prompt very long",
                 None, "timeout")
