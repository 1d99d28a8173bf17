"""The engine interface and the launch description every engine produces."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core.errors import Failed

if TYPE_CHECKING:
    from tui.core.registry import Model, Registry


#: ``env`` names whose values are secrets: masked in the logged command line and in
#: ``run/<model>.launch.json`` once the watcher has read it
SECRET_NAME_RE = re.compile(r"TOKEN|KEY|SECRET|PASS", re.I)
MASK = "****"


def mask_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the values of secret-looking names (``*TOKEN*``, ``*KEY*``, ``*SECRET*``,
    ``*PASS*``, any case) replaced by ``****``."""
    return {k: (MASK if SECRET_NAME_RE.search(k) and v else v) for k, v in env.items()}


class LaunchError(Failed):
    """A model cannot be launched; the message is one line naming what and what to do (exit 1)."""


@dataclass
class LaunchSpec:
    """Everything needed to start (or reach) one server."""

    model: str
    engine: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment
    host: str = "127.0.0.1"
    port: int | None = None
    base_url: str = ""  # OpenAI base URL, ends in /v1
    health_url: str = ""
    metrics_url: str | None = None
    files: list[Path] = field(default_factory=list)  # model files the server reads
    secret_files: dict[Path, str] = field(default_factory=dict)  # written 0600 before start
    started_by_llmdeck: bool = True
    warnings: list[str] = field(default_factory=list)  # dry-run: what would stop a real start

    def shell_line(self, *, masked: bool = False) -> str:
        """The command as one copy-pasteable line (env first), for --dry-run (which shows the
        real values: it is asked for, to be pasted). ``masked``: secret-looking env values
        replaced (:func:`mask_env`), for the server log."""
        import shlex

        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in (mask_env(self.env) if masked else self.env).items())
        cmd = shlex.join(self.argv)
        return f"{env} {cmd}" if env else cmd


@dataclass(frozen=True)
class Param:
    """One engine parameter: its flag and how a JSON value becomes argv."""

    key: str
    flag: str
    kind: str  # int, float, str, bool, flag (bool → bare flag), onoff, path, json, intstr
    help: str = ""
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> str | None:
        k = self.kind
        if k == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            return "must be an integer"
        if k == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return "must be a number"
        if k in ("str", "path") and not isinstance(value, str):
            return "must be a string"
        if k in ("flag", "bool") and not isinstance(value, bool):
            return "must be true or false"
        if k == "onoff" and not (isinstance(value, bool) or value in ("on", "off", "auto")):
            return "must be true, false, 'on', 'off' or 'auto'"
        if k == "intstr" and not ((isinstance(value, int) and not isinstance(value, bool))
                                  or (isinstance(value, str) and (not self.choices or value in self.choices))):
            opts = "' or '".join(self.choices)
            return "must be an integer" + (f" or '{opts}'" if opts else " or a string")
        if k == "str" and self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        return None

    def to_argv(self, value: Any, resolve=None) -> list[str]:
        k = self.kind
        if k == "flag":
            return [self.flag] if value else []
        if k == "bool":
            return [self.flag, "true" if value else "false"]
        if k == "onoff":
            v = {True: "on", False: "off"}.get(value, value)
            return [self.flag, str(v)]
        if k == "path":
            return [self.flag, str(resolve(value) if resolve else value)]
        if k == "json":
            return [self.flag, value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))]
        if k == "float":
            return [self.flag, repr(float(value)) if not isinstance(value, int) else str(value)]
        return [self.flag, str(value)]


class Engine:
    """Base class; subclasses set ``name``, ``params`` and implement :meth:`launch`."""

    name: str = ""
    params: dict[str, Param] = {}
    #: extra model keys beyond registry.MODEL_SCHEMA: key -> (types, description)
    keys: dict[str, tuple[tuple[type, ...], str]] = {}
    needs_port: bool = True

    def extra_keys(self) -> dict[str, tuple[tuple[type, ...], str]]:
        return dict(self.keys)

    def validate(self, name: str, entry: dict[str, Any]) -> list[str]:
        from tui.core.text import did_you_mean

        problems: list[str] = []
        params = entry.get("params", {})
        if isinstance(params, dict):
            for k, v in params.items():
                p = self.params.get(k)
                if p is None:
                    problems.append(f"models.{name}.params: unknown {self.name} parameter '{k}'"
                                    f"{did_you_mean(k, self.params)}")
                    continue
                err = p.check(v)
                if err:
                    problems.append(f"models.{name}.params.{k}: {err}, not {json.dumps(v)}")
        return problems

    def params_argv(self, model: "Model", registry: "Registry") -> list[str]:
        out: list[str] = []
        for k, v in model.params.items():
            p = self.params.get(k)
            if p is not None and v is not None:
                out += p.to_argv(v, registry.resolve)
        return out

    def endpoint(self, model: "Model", port: int | None = None) -> tuple[str, int | None, bool, bool]:
        """(bind host, port, pass a host flag?, pass a port flag?): the entry's ``host`` and
        ``port`` or ``default_port`` (engines with defaults of their own override this)."""
        port = port or model.default_port
        return model.host, port, True, port is not None

    def launch(self, registry: "Registry", model: "Model", *, quant: str | None = None,
               port: int | None = None, binary: str | None = None,
               cpp_dir: str | None = None, dry_run: bool = False) -> LaunchSpec:
        """The launch of ``model``: every engine takes these same arguments (one it has no use
        for is ignored). ``dry_run``: a problem that would stop a real start (a file, the
        binary, the engine not installed) goes into ``LaunchSpec.warnings`` instead of raising
        :class:`LaunchError`, so that ``start --dry-run`` still prints the command."""
        raise NotImplementedError
