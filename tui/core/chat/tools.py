"""Tool definitions from a JSON file of OpenAI tool definitions.

Accepted shapes: a list of tools, ``{"tools": [...]}``, or one tool object. A tool is
``{"type": "function", "function": {"name", "description"?, "parameters"?}}``; a bare
``{"name", "parameters"}`` is wrapped. Problems raise :class:`ToolsError` with one line naming
the file and the entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ToolsError(ValueError):
    """The tools file is unreadable or not OpenAI tool definitions (one-line message)."""


def parse_tools(obj: Any, where: str = "tools") -> list[dict]:
    if isinstance(obj, dict) and "tools" in obj:
        obj = obj["tools"]
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list) or not obj:
        raise ToolsError(f"{where}: expected a non-empty list of OpenAI tool definitions "
                         '([{"type": "function", "function": {"name": …, "parameters": {…}}}])')
    out: list[dict] = []
    for i, t in enumerate(obj):
        if not isinstance(t, dict):
            raise ToolsError(f"{where}: tool #{i + 1} must be an object, not {json.dumps(t)[:40]}")
        if "function" not in t and "name" in t:
            t = {"type": "function", "function": t}
        fn = t.get("function")
        if t.get("type", "function") != "function" or not isinstance(fn, dict):
            raise ToolsError(f'{where}: tool #{i + 1} must be {{"type": "function", "function": {{…}}}}')
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ToolsError(f"{where}: tool #{i + 1} has no function.name")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise ToolsError(f"{where}: tool '{name}': function.parameters must be a JSON schema object")
        out.append({"type": "function", "function": fn})
    return out


def load_tools(path: str | Path) -> list[dict]:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToolsError(f"{p}: tools file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolsError(f"{p}: cannot read the tools file: {exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolsError(f"{p}: line {exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    return parse_tools(obj, str(p))
