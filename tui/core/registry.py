"""The model registry: ``models.json``.

Shape::

    {"settings": {...}, "models": {"<name>": {...}, ...}}

A model name matches ``[a-z0-9][a-z0-9._-]*`` because it names files in ``run/`` and
``logs/``. ``run/`` and ``logs/`` live beside models.json.

Loading validates the whole file and collects *every* problem as a one-line message
(``RegistryError.problems``): JSON syntax with line:column, unknown keys with a did-you-mean,
wrong types, unknown quants, two models on one port. Writes go through :func:`edit`, which
takes an exclusive lock on ``models.json.lock``, re-reads the file, applies the change to the
raw JSON (so key order and unknown-to-us formatting choices survive), validates, and replaces
the file atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.errors import UsageError
from tui.core.safefiles import file_lock  # noqa: F401  (importable from here as before)
from tui.core.text import did_you_mean  # noqa: F401  (importable from here as before)

#: matched whole (``NAME_RE.fullmatch``): with ``$`` and ``match`` a trailing newline passed
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
DEFAULT_REGISTRY = "models.json"

# --- the schema -------------------------------------------------------------------------

#: settings key -> (type(s), default, description)
SETTINGS_SCHEMA: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "models_dir": ((str,), "models", "where downloaded models live (relative to models.json)"),
    "llama_server": ((str, type(None)), None, "path of the llama-server binary"),
    "cpp_dir": ((str, type(None)), None, "a llama.cpp checkout/build; bin/llama-server is looked for in it"),
    "stop_grace_s": ((int, float), 30, "seconds between SIGTERM and SIGKILL on stop"),
    "log_runs_kept": ((int,), 5, "how many older runs' logs to keep (<model>.log.1 …)"),
    "health_poll_s": ((int, float), 0.05, "how often start --wait polls /health"),
    "start_timeout_s": ((int, float), 1800, "how long start --wait waits for ready"),
    "keymap": ((dict,), None, "TUI key overrides, action id -> keys (checked by tui.ui.keys)"),
    "on_demand": ((bool,), False, "default of each model's on_demand (the router starts it on a request)"),
    "ttl_s": ((int, float, type(None)), None, "default of each model's ttl_s (null: never unloaded when idle)"),
    "preload": ((list,), [], "models the router starts when it starts, in order, as far as memory allows"),
    "memory_limit_gib": ((int, float, type(None)), None, "the most llmdeck's running models may take together"),
    "swap_wait_s": ((int, float), 60, "how long a start waits for requests in flight on a model it must stop"),
    "loading_in_reasoning": ((bool,), False, "load progress of a held stream as reasoning_content, not comments"),
}

#: model key -> (type(s), description). Engine-specific keys are checked by the engine.
MODEL_SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "description": ((str,), "free text"),
    "engine": ((str,), "llama-server (default), vllm, sglang, lightllm or external"),
    "repo_id": ((str,), "Hugging Face repo id, e.g. unsloth/GLM-5-GGUF"),
    "quants": ((dict,), "quant name -> {pattern, size_gb}"),
    "default_quant": ((str,), "the quant used when none is given"),
    "alias": ((str,), "the name the server reports (llama-server --alias)"),
    "default_port": ((int,), "the port the server listens on"),
    "host": ((str,), "address to bind (default 127.0.0.1)"),
    "params": ((dict,), "engine parameters (see the engine's table)"),
    "model_path": ((str,), "a local model file or folder, used instead of a download"),
    "base_url": ((str,), "engine external: the server's OpenAI base URL"),
    "api_key_env": ((str,), "name of the environment variable holding the API key"),
    "env": ((dict,), "extra environment for the server, e.g. CUDA_VISIBLE_DEVICES"),
    "extra_args": ((list,), "extra arguments appended to the server's argv"),
    "restart": ((str,), "'no' (default) or 'on-failure'"),
    "reasoning_parser": ((str,), "raw reasoning format: glm45, qwen3, deepseek_r1"),
    "tool_call_parser": ((str,), "raw tool-call format: glm45, glm47, hermes, qwen3_coder"),
    "chat_template_file": ((str,), "a Jinja chat template file (relative to models.json)"),
    "load_timeout_s": ((int, float), "how long a load may take before start --wait gives up"),
    "on_demand": ((bool,), "the router starts this model on a request for it (default settings.on_demand)"),
    "ttl_s": ((int, float, type(None)), "idle seconds before the router stops it (null: never)"),
    "swap_group": ((str,), "models in one swap_group never run at the same time"),
    "keep_loaded": ((bool,), "the router never stops it (to make room or by TTL); only a person does"),
}

QUANT_SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "pattern": ((str,), "glob of the quant's files in the repo, e.g. UD-IQ2_XXS/*.gguf"),
    "size_gb": ((int, float, type(None)), "download size in GB (null when unknown)"),
    "files": ((list,), "explicit file list (instead of pattern)"),
}

RESTART_POLICIES = ("no", "on-failure")
REASONING_PARSERS = ("glm45", "qwen3", "deepseek_r1")
TOOL_CALL_PARSERS = ("glm45", "glm47", "hermes", "qwen3_coder")


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object",
             list: "a list", bool: "true/false", type(None): "null"}
    parts = [names.get(t, t.__name__) for t in types if not (t is int and float in types)]
    return " or ".join(dict.fromkeys(parts))


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def is_loopback(host: str) -> bool:
    """Whether an address to bind is reachable from this machine only (127.x, ::1, localhost)."""
    host = host.strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def bad_name(name: Any) -> str:
    """The one-line problem of an invalid model name (shown JSON-escaped: a name ending in a
    newline must not break the line)."""
    shown = json.dumps(name, ensure_ascii=False)
    return (f"models.{shown}: invalid model name {shown}: use lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit")


# --- errors ------------------------------------------------------------------------------

class RegistryError(UsageError):
    """models.json is unreadable or invalid. ``problems`` holds one line per problem (exit 2)."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


class UnknownModel(UsageError, KeyError):
    """No model of that name; the message suggests the nearest and lists the registered (exit 2)."""

    def __init__(self, registry: "Registry", name: str):
        self.name = name
        hint = did_you_mean(name, registry.models)
        known = ", ".join(registry.models) or "none"
        super().__init__(f"no model '{name}' in {registry.path}{hint}; registered: {known}")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


# --- data --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Quant:
    """One quant of a model: its file pattern in the Hub repo and its size, when known."""

    name: str
    pattern: str | None = None
    size_gb: float | None = None
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """models.json's ``settings``: defaults for every model and for llmdeck itself."""

    models_dir: str = "models"
    llama_server: str | None = None
    cpp_dir: str | None = None
    stop_grace_s: float = 30
    log_runs_kept: int = 5
    health_poll_s: float = 0.05
    start_timeout_s: float = 1800
    keymap: dict = field(default_factory=dict, hash=False)
    on_demand: bool = False
    ttl_s: float | None = None
    preload: list = field(default_factory=list, hash=False)
    memory_limit_gib: float | None = None
    swap_wait_s: float = 60
    loading_in_reasoning: bool = False


@dataclass(frozen=True)
class Model:
    """One registry entry, validated. ``raw`` keeps the entry exactly as written."""

    name: str
    engine: str = "llama-server"
    description: str = ""
    repo_id: str | None = None
    quants: dict[str, Quant] = field(default_factory=dict)
    default_quant: str | None = None
    alias: str | None = None
    default_port: int | None = None
    host: str = "127.0.0.1"
    params: dict[str, Any] = field(default_factory=dict)
    model_path: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    restart: str = "no"
    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    chat_template_file: str | None = None
    load_timeout_s: float | None = None
    on_demand: bool | None = None  # None: settings.on_demand (see tui.core.ondemand.policy)
    ttl_s: float | None = None  # None: settings.ttl_s
    swap_group: str | None = None
    keep_loaded: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def served_name(self) -> str:
        """The name the server answers to (``model`` in requests)."""
        return self.alias or self.name

    def api_key(self, environ: dict[str, str] | None = None) -> str | None:
        if not self.api_key_env:
            return None
        return (environ if environ is not None else os.environ).get(self.api_key_env) or None

    def exposure(self) -> str | None:
        """One line when this server would listen beyond this machine with no API key (``start``,
        ``check`` and the TUI show it; it does not stop the start: a trusted LAN is a choice)."""
        if self.engine == "external" or self.api_key_env or is_loopback(self.host):
            return None
        if any(a.startswith("--api-key") for a in self.extra_args) or self.params.get("api_key"):
            return None
        port = self.default_port or "PORT"
        tunnel = f"tunnel (ssh -L {port}:127.0.0.1:{port} <this machine>)"
        fix = (f"keep host 127.0.0.1 and either serve it through 'llmdeck serve --api-key-env NAME' or {tunnel}"
               if self.engine != "llama-server" else f"set api_key_env, or keep host 127.0.0.1 and {tunnel}")
        return (f"model '{self.name}' listens on {self.host}:{port} with no API key: anyone who can reach "
                f"this machine can use it; {fix}")

    def quant(self, name: str | None = None) -> Quant | None:
        q = name or self.default_quant
        if q is None:
            return None
        return self.quants.get(q)


@dataclass
class Registry:
    """A loaded models.json: where it is, its settings and its models by name."""

    path: Path
    settings: Settings
    models: dict[str, Model]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def models_dir(self) -> Path:
        p = Path(self.settings.models_dir).expanduser()
        return p if p.is_absolute() else self.root / p

    def resolve(self, p: str) -> Path:
        """A path from models.json: absolute, or relative to models.json's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else self.root / q

    def get(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModel(self, name) from None

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"


# --- validation ----------------------------------------------------------------------------

def _json_error(path: Path, exc: json.JSONDecodeError) -> str:
    return f"line {exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"


def _check_keys(where: str, obj: dict, schema: dict, problems: list[str]) -> None:
    for key, value in obj.items():
        if key not in schema:
            problems.append(f"{where}: unknown key '{key}'{did_you_mean(key, schema)}")
            continue
        types = schema[key][0]
        if not _is_type(value, types):
            problems.append(f"{where}.{key}: must be {_type_name(types)}, not {json.dumps(value)}")


def validate(raw: Any, path: Path) -> tuple[Settings, dict[str, Model], list[str]]:
    """Validate parsed JSON. Returns settings, models and the list of problems (maybe empty)."""
    from tui.core import engines  # engines import registry types; import late

    problems: list[str] = []
    if not isinstance(raw, dict):
        return Settings(), {}, ["the top level must be an object with 'settings' and 'models'"]
    for key in raw:
        if key not in ("settings", "models", "$schema", "_comment"):
            problems.append(f"unknown top-level key '{key}'{did_you_mean(key, ['settings', 'models'])}")

    s_raw = raw.get("settings", {})
    settings = Settings()
    if not isinstance(s_raw, dict):
        problems.append("settings: must be an object")
    else:
        for key, value in s_raw.items():
            if key.startswith("_"):
                continue
            if key not in SETTINGS_SCHEMA:
                problems.append(f"settings: unknown key '{key}'{did_you_mean(key, SETTINGS_SCHEMA)}")
            elif not _is_type(value, SETTINGS_SCHEMA[key][0]):
                problems.append(f"settings.{key}: must be {_type_name(SETTINGS_SCHEMA[key][0])}, "
                                f"not {json.dumps(value)}")
        good = {k: v for k, v in s_raw.items()
                if k in SETTINGS_SCHEMA and _is_type(v, SETTINGS_SCHEMA[k][0])}
        settings = Settings(**good)
        if settings.stop_grace_s < 0:
            problems.append("settings.stop_grace_s: must be 0 or more")
        if settings.log_runs_kept < 0:
            problems.append("settings.log_runs_kept: must be 0 or more")
        for k in ("ttl_s", "memory_limit_gib", "swap_wait_s"):
            if (getattr(settings, k) or 0) < 0:
                problems.append(f"settings.{k}: must be 0 or more")

    m_raw = raw.get("models", {})
    models: dict[str, Model] = {}
    if not isinstance(m_raw, dict):
        problems.append("models: must be an object mapping model names to entries")
        return settings, models, problems

    ports: dict[tuple[str, int], str] = {}
    for name, entry in m_raw.items():
        where = f"models.{name}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.append(bad_name(name))
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be an object")
            continue
        n_before = len(problems)
        entry_clean = {k: v for k, v in entry.items() if not k.startswith("_")}
        engine_name = entry_clean.get("engine", "llama-server")
        engine = engines.get_engine(engine_name) if isinstance(engine_name, str) else None
        schema = dict(MODEL_SCHEMA)
        if engine is not None:
            schema.update(engine.extra_keys())
        else:
            problems.append(f"{where}.engine: unknown engine '{engine_name}'"
                            f"{did_you_mean(str(engine_name), engines.ENGINE_NAMES)}; "
                            f"known: {', '.join(engines.ENGINE_NAMES)}")
        _check_keys(where, entry_clean, schema, problems)

        quants: dict[str, Quant] = {}
        q_raw = entry_clean.get("quants", {})
        if isinstance(q_raw, dict):
            for qname, q in q_raw.items():
                if not isinstance(q, dict):
                    problems.append(f"{where}.quants.{qname}: must be an object with 'pattern' and 'size_gb'")
                    continue
                _check_keys(f"{where}.quants.{qname}", q, QUANT_SCHEMA, problems)
                files = q.get("files", [])
                if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                    files = []
                size = q.get("size_gb")
                quants[qname] = Quant(
                    name=qname,
                    pattern=q.get("pattern") if isinstance(q.get("pattern"), str) else None,
                    size_gb=float(size) if _is_type(size, (int, float)) else None,
                    files=tuple(files),
                )
        dq = entry_clean.get("default_quant")
        if isinstance(dq, str) and dq not in quants:
            problems.append(f"{where}.default_quant: unknown quant '{dq}'{did_you_mean(dq, quants)}; "
                            f"known: {', '.join(quants) or 'none'}")

        port = entry_clean.get("default_port")
        if _is_type(port, (int,)) and not (1 <= port <= 65535):
            problems.append(f"{where}.default_port: {port} is not a port (1-65535)")
        restart = entry_clean.get("restart", "no")
        if isinstance(restart, str) and restart not in RESTART_POLICIES:
            problems.append(f"{where}.restart: must be one of {', '.join(RESTART_POLICIES)}, not '{restart}'")
        rp = entry_clean.get("reasoning_parser")
        if isinstance(rp, str) and rp not in REASONING_PARSERS:
            problems.append(f"{where}.reasoning_parser: unknown '{rp}'{did_you_mean(rp, REASONING_PARSERS)}; "
                            f"known: {', '.join(REASONING_PARSERS)}")
        tp = entry_clean.get("tool_call_parser")
        if isinstance(tp, str) and tp not in TOOL_CALL_PARSERS:
            problems.append(f"{where}.tool_call_parser: unknown '{tp}'{did_you_mean(tp, TOOL_CALL_PARSERS)}; "
                            f"known: {', '.join(TOOL_CALL_PARSERS)}")
        env = entry_clean.get("env", {})
        if isinstance(env, dict):
            for k, v in env.items():
                if not isinstance(v, str):
                    problems.append(f"{where}.env.{k}: must be a string, not {json.dumps(v)}")
        xa = entry_clean.get("extra_args", [])
        if isinstance(xa, list) and not all(isinstance(a, str) for a in xa):
            problems.append(f"{where}.extra_args: must be a list of strings")

        if _is_type(entry_clean.get("ttl_s"), (int, float)) and entry_clean["ttl_s"] < 0:
            problems.append(f"{where}.ttl_s: must be 0 or more (null: never unloaded)")
        if engine is not None:
            problems.extend(engine.validate(name, entry_clean))

        if len(problems) > n_before:
            continue
        model = Model(
            name=name,
            engine=engine_name,
            description=entry_clean.get("description", ""),
            repo_id=entry_clean.get("repo_id"),
            quants=quants,
            default_quant=dq,
            alias=entry_clean.get("alias"),
            default_port=port,
            host=entry_clean.get("host", "127.0.0.1"),
            params=dict(entry_clean.get("params", {})),
            model_path=entry_clean.get("model_path"),
            base_url=entry_clean.get("base_url"),
            api_key_env=entry_clean.get("api_key_env"),
            env=dict(env) if isinstance(env, dict) else {},
            extra_args=tuple(xa),
            restart=restart,
            reasoning_parser=rp,
            tool_call_parser=tp,
            chat_template_file=entry_clean.get("chat_template_file"),
            load_timeout_s=entry_clean.get("load_timeout_s"),
            on_demand=entry_clean.get("on_demand"),
            ttl_s=entry_clean.get("ttl_s", settings.ttl_s),
            swap_group=entry_clean.get("swap_group"),
            keep_loaded=bool(entry_clean.get("keep_loaded", False)),
            raw=entry,
        )
        if port is not None and engine_name != "external":
            key = (model.host, port)
            if key in ports:
                problems.append(f"{where}.default_port: port {port} is also used by model '{ports[key]}'; "
                                "give each model its own port")
            else:
                ports[key] = name
        models[name] = model
    for i, pre in enumerate(settings.preload if isinstance(settings.preload, list) else []):
        if pre not in models:
            problems.append(f"settings.preload[{i}]: unknown model {json.dumps(pre)}"
                            f"{did_you_mean(str(pre), models)}; known: {', '.join(models) or 'none'}")
    return settings, models, problems


# --- loading and saving ------------------------------------------------------------------

def default_path() -> Path:
    return Path(os.environ.get("LLMDECK_REGISTRY") or DEFAULT_REGISTRY)


def _read_raw(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(path, ["file not found: create it (see README 'models.json reference') "
                                   "or pass --registry PATH"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(path, [f"cannot read: {exc}"]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(path, [_json_error(path, exc)]) from None


def load(path: str | os.PathLike | None = None) -> Registry:
    """Load and validate models.json. Raises :class:`RegistryError` listing every problem."""
    p = Path(path) if path is not None else default_path()
    p = p.expanduser().absolute()
    raw = _read_raw(p)
    settings, models, problems = validate(raw, p)
    if problems:
        raise RegistryError(p, problems)
    return Registry(path=p, settings=settings, models=models, raw=raw)


def check(path: str | os.PathLike | None = None) -> list[str]:
    """Every problem of models.json as one line each (empty when valid)."""
    try:
        load(path)
    except RegistryError as exc:
        return [f"{exc.path}: {p}" for p in exc.problems]
    return []


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    ``mode`` is set on the temp file before a byte is written (secrets: 0o600); without it
    an existing file keeps its mode. A link at ``path`` is replaced, never written through
    (:func:`tui.core.safefiles.atomic_write`)."""
    from tui.core import safefiles

    safefiles.atomic_write(path, text, mode)


def dumps(raw: Any) -> str:
    return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"


def edit(path: str | os.PathLike, change: Callable[[dict], None]) -> Registry:
    """Apply ``change`` to the raw JSON under the file lock; validate; write atomically.

    The file is left untouched if ``change`` raises or the result does not validate. A
    models.json that is a symbolic link (to a dotfiles repo, say) stays one: the lock and the
    new file are beside the file it points at, which is the one that changes.
    """
    from tui.core import safefiles

    p = Path(path).expanduser().absolute()
    real = safefiles.real_path(p)
    try:
        with file_lock(real):
            raw = _read_raw(p) if p.exists() else {"settings": {}, "models": {}}
            new = copy.deepcopy(raw)
            change(new)
            settings, models, problems = validate(new, p)
            if problems:
                raise RegistryError(p, problems)
            atomic_write_text(real, dumps(new))
    except safefiles.UnsafeFile as exc:
        raise RegistryError(p, [str(exc)]) from None
    return Registry(path=p, settings=settings, models=models, raw=new)


def add_model(path: str | os.PathLike, name: str, entry: dict[str, Any], *, replace: bool = False) -> Registry:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise RegistryError(Path(path), [bad_name(name)])

    def change(raw: dict) -> None:
        models = raw.setdefault("models", {})
        if name in models and not replace:
            raise RegistryError(Path(path), [f"model '{name}' already exists (use edit, or remove it first)"])
        models[name] = entry

    return edit(path, change)


def update_model(path: str | os.PathLike, name: str, updates: dict[str, Any]) -> Registry:
    """Set keys of an existing entry (a value of ``None`` removes the key); order is kept."""

    def change(raw: dict) -> None:
        models = raw.get("models", {})
        if name not in models:
            raise RegistryError(Path(path), [f"no model '{name}'{did_you_mean(name, models)}"])
        for k, v in updates.items():
            if v is None:
                models[name].pop(k, None)
            else:
                models[name][k] = v

    return edit(path, change)


def remove_model(path: str | os.PathLike, name: str) -> Registry:
    def change(raw: dict) -> None:
        models = raw.get("models", {})
        if name not in models:
            raise RegistryError(Path(path), [f"no model '{name}'{did_you_mean(name, models)}"])
        del models[name]

    return edit(path, change)
