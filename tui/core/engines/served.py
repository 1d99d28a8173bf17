"""What vLLM, SGLang and LightLLM have in common: GPU servers of a Hugging Face checkpoint.

Decisions the issue left open, taken here once for the three engines:

* **Argument order.** Each engine emits its flags in one fixed order (its ``ORDER`` list), not
  in the order the entry happens to list ``params``. The order is the one the seeds write
  (seed 002 and 003 for vLLM/SGLang, 004 for LightLLM), so ``llmdeck start MODEL --dry-run``
  prints the seeds' commands exactly. Model-level keys take their place in that order:
  ``tool_call_parser`` and ``reasoning_parser`` (the same keys the chat client reads; for these
  engines they are also the server's parsers), ``alias`` (the served model name) and
  ``chat_template_file``.
* **Host and port.** ``--host``/``--port`` are passed only when the entry sets ``host`` /
  ``default_port`` (or a port is given to ``start``); otherwise the engine's own default
  applies — vLLM: all interfaces, port 8000; SGLang: 127.0.0.1, port 30000; LightLLM:
  127.0.0.1, port 8000 — and llmdeck reaches the server there. That is what the seed commands
  do (003 passes neither; 004 passes both).
* **The program.** ``executable`` (a model key) is the program llmdeck runs: the ``vllm`` CLI
  for vLLM, the Python interpreter that has ``sglang`` / ``lightllm`` installed for the other
  two (default ``vllm`` / ``python3``). Whether it exists — and, for Python engines, whether
  the module imports — is checked by :meth:`ServedEngine.preflight` just before a real start,
  never by ``--dry-run`` (the seeds' GPU commands must print on a laptop).
* **The model.** ``model_path`` (a local folder, printed as written: a trailing ``/`` stays)
  or else ``repo_id`` (the engine downloads it). These engines serve the whole checkpoint:
  ``quants`` do not apply.
* **API keys.** All three take a key only on their command line (vLLM also from
  ``$VLLM_API_KEY``), where ``ps`` shows it to every user of the box; llmdeck refuses
  ``api_key_env`` for them and points at the router's key (``llmdeck serve --api-key-env``)
  with the engine bound to 127.0.0.1.
* **Readiness** is the engine's own ``GET /health`` (vLLM and SGLang answer 200 once the model
  is loaded; LightLLM likewise). Metrics: vLLM ``/metrics`` always, SGLang only with
  ``enable_metrics``, LightLLM none on the API port (it pushes to a gateway).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core.engines.base import Engine, LaunchError, LaunchSpec, Param

if TYPE_CHECKING:
    from tui.core.registry import Model, Registry

#: placeholders in an engine's ORDER for model-level keys
TOOL_CALL_PARSER = "@tool_call_parser"
REASONING_PARSER = "@reasoning_parser"
SERVED_NAME = "@served_name"
CHAT_TEMPLATE = "@chat_template_file"
HOST_PORT = "@host_port"


class DottedParam(Param):
    """An object param written as ``--flag.key value`` pairs (vLLM's ``--speculative-config.method mtp``).
    Param's fields and frozen dataclass methods are inherited as they are (no decorator: it adds
    no field, and decorating again costs ~1.4 ms at import, before the TUI's first frame)."""

    def check(self, value: Any) -> str | None:
        if not isinstance(value, dict) or not value:
            return 'must be an object, e.g. {"method": "mtp", "num_speculative_tokens": 1}'
        for k in value:
            if not isinstance(k, str) or not k or " " in k:
                return f"has a bad key {k!r}"
        return None

    def to_argv(self, value: Any, resolve=None) -> list[str]:
        import json

        out: list[str] = []
        for k, v in value.items():
            if isinstance(v, bool):
                s = "true" if v else "false"
            elif isinstance(v, (dict, list)):
                s = json.dumps(v, separators=(",", ":"))
            else:
                s = str(v)
            out += [f"{self.flag}.{k}", s]
        return out


def keep_path(registry: "Registry", p: str) -> str:
    """A path from models.json as the engine gets it: ``~`` expanded, relative paths joined to
    models.json's folder, and otherwise exactly as written (a trailing ``/`` is kept)."""
    p = os.path.expanduser(p)
    return p if os.path.isabs(p) else os.path.join(str(registry.root), p)


class ServedEngine(Engine):
    """Base of vLLM, SGLang and LightLLM. Subclasses set the class attributes below."""

    #: the argv before the model: e.g. ["serve"] after the executable, or ["-m", "sglang.launch_server"]
    default_executable: str = "python3"
    module: str | None = None  # the Python module run with -m (None: executable is the engine's CLI)
    subcommand: tuple[str, ...] = ()
    model_flag: str | None = None  # None: the model is a positional argument
    host_flag: str = "--host"
    port_flag: str = "--port"
    served_name_flag: str | None = None
    always_served_name: bool = True  # False: pass the served name only when alias is set
    tool_call_parser_flag: str = "--tool-call-parser"
    reasoning_parser_flag: str = "--reasoning-parser"
    chat_template_flag: str | None = None
    host_before_port: bool = True
    engine_host: str = "127.0.0.1"  # where the engine binds when --host is not given
    engine_port: int = 8000
    metrics_path: str | None = "/metrics"
    needs_local_model: bool = False  # True: only model_path (a local folder) will do
    install_hint: str = ""
    #: the emitted order: param keys and the @ placeholders above
    ORDER: tuple[str, ...] = ()
    #: (param, what it needs, why): a param set true needs another key set too: a model key
    #: (``tool_call_parser``) or another param (``params.mtp_draft_model_dir``)
    REQUIRES: tuple[tuple[str, str, str], ...] = ()
    #: the engine's parameters, in the table's order (``params`` is made from it)
    PARAMS: tuple[Param, ...] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "PARAMS" in cls.__dict__:
            cls.params = {p.key: p for p in cls.PARAMS}

    keys = {
        "executable": ((str,), "the program llmdeck runs: the engine's CLI (vllm) or the Python that has it"),
    }

    # --- validation --------------------------------------------------------------------

    def validate(self, name: str, entry: dict[str, Any]) -> list[str]:
        problems = super().validate(name, entry)
        where = f"models.{name}"
        if self.needs_local_model:
            if not isinstance(entry.get("model_path"), str):
                problems.append(f"{where}: engine '{self.name}' needs model_path, the local folder of the "
                                "checkpoint (e.g. \"/data/GLM-4.7-Flash/\")")
        elif not isinstance(entry.get("model_path"), str) and not isinstance(entry.get("repo_id"), str):
            problems.append(f"{where}: engine '{self.name}' needs repo_id (e.g. \"zai-org/GLM-5-FP8\") "
                            "or model_path (a local checkpoint folder)")
        for k in ("quants", "default_quant"):
            if k in entry:
                problems.append(f"{where}.{k}: not used by engine '{self.name}' (it serves the whole "
                                "checkpoint named by repo_id or model_path); remove it")
        if "api_key_env" in entry:
            problems.append(f"{where}.api_key_env: engine '{self.name}' takes its API key only on the "
                            "command line, where ps shows it; remove api_key_env, bind the engine to "
                            "127.0.0.1 and protect the router instead (llmdeck serve --api-key-env NAME)")
        if "chat_template_file" in entry and not self.chat_template_flag:
            problems.append(f"{where}.chat_template_file: not supported by engine '{self.name}'; remove it")
        params = entry.get("params")
        for key, needed, why in self.REQUIRES if isinstance(params, dict) else ():
            scope, _, k = needed.rpartition(".")
            if params.get(key) and not (params if scope == "params" else entry).get(k):
                problems.append(f"{where}.params.{key}: {why}")
        return problems

    # --- the command -------------------------------------------------------------------

    def executable(self, model: "Model") -> str:
        exe = model.raw.get("executable")
        return exe if isinstance(exe, str) and exe else self.default_executable

    def model_source(self, registry: "Registry", model: "Model") -> str:
        if model.model_path:
            return keep_path(registry, model.model_path)
        if self.needs_local_model or not model.repo_id:
            raise LaunchError(f"model '{model.name}': engine '{self.name}' needs "
                              + ("model_path" if self.needs_local_model else "repo_id or model_path")
                              + f" in {registry.path}")
        return model.repo_id

    def served_name(self, model: "Model") -> str | None:
        """The name passed to the engine (None: none passed, the engine picks its own)."""
        if model.alias:
            return model.alias
        return model.name if self.always_served_name else None

    def endpoint(self, model: "Model", port: int | None = None) -> tuple[str, int, bool, bool]:
        """(bind host, port, pass --host?, pass --port?) for a model."""
        host_set = "host" in model.raw
        port = port or model.default_port
        port_set = port is not None
        return (model.host if host_set else self.engine_host, port if port_set else self.engine_port,
                host_set, port_set)

    def launch(self, registry: "Registry", model: "Model", *, quant: str | None = None,
               port: int | None = None, binary: str | None = None,
               cpp_dir: str | None = None, dry_run: bool = False) -> LaunchSpec:
        """Build the launch. A real launch runs :meth:`preflight` (engine installed, model folder
        present); with ``dry_run`` its complaint becomes a warning in ``LaunchSpec.warnings``."""
        spec = self._build(registry, model, quant=quant, port=port, binary=binary)
        try:
            self.preflight(spec)
        except LaunchError as exc:
            if not dry_run:
                raise
            spec.warnings.append(str(exc))
        return spec

    def _build(self, registry: "Registry", model: "Model", *, quant: str | None, port: int | None,
               binary: str | None) -> LaunchSpec:
        if quant is not None:
            raise LaunchError(f"model '{model.name}': engine '{self.name}' has no quants "
                              f"(it serves {model.model_path or model.repo_id}); leave --quant out")
        exe = binary or self.executable(model)
        argv = [exe]
        if self.module:
            argv += ["-m", self.module]
        argv += list(self.subcommand)
        src = self.model_source(registry, model)
        argv += [self.model_flag, src] if self.model_flag else [src]

        host, port_, host_set, port_set = self.endpoint(model, port)

        def resolve(p: str) -> str:
            return keep_path(registry, p)

        for key in self.ORDER:
            if key == TOOL_CALL_PARSER:
                if model.tool_call_parser:
                    argv += [self.tool_call_parser_flag, model.tool_call_parser]
            elif key == REASONING_PARSER:
                if model.reasoning_parser:
                    argv += [self.reasoning_parser_flag, model.reasoning_parser]
            elif key == SERVED_NAME:
                sn = self.served_name(model)
                if sn and self.served_name_flag:
                    argv += [self.served_name_flag, sn]
            elif key == CHAT_TEMPLATE:
                if model.chat_template_file and self.chat_template_flag:
                    argv += [self.chat_template_flag, resolve(model.chat_template_file)]
            elif key == HOST_PORT:
                h = [self.host_flag, host] if host_set else []
                p = [self.port_flag, str(port_)] if port_set else []
                argv += h + p if self.host_before_port else p + h
            else:
                value = model.params.get(key)
                if value is not None:
                    argv += self.params[key].to_argv(value, resolve)
        argv += list(model.extra_args)

        chost = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        base = f"http://{chost}:{port_}"
        metrics = base + self.metrics_path if self.metrics_path and self.has_metrics(model) else None
        files = [Path(src)] if model.model_path else []
        return LaunchSpec(model=model.name, engine=self.name, argv=argv, env=dict(model.env),
                          host=host, port=port_, base_url=base + "/v1", health_url=base + "/health",
                          metrics_url=metrics, files=files)

    def has_metrics(self, model: "Model") -> bool:
        return True

    # --- just before a real start ------------------------------------------------------

    def preflight(self, spec: LaunchSpec) -> None:
        """Raise :class:`LaunchError` (one line) when the engine cannot start here: its program
        is missing, its Python module does not import, or a local model folder is absent."""
        exe = spec.argv[0]
        env = dict(os.environ)
        env.update(spec.env)
        found = shutil.which(exe, path=env.get("PATH"))
        if found is None:
            what = f"'{exe}' not found" + ("" if os.sep in exe else " on PATH")
            raise LaunchError(f"engine {self.name} is not installed: {what} (model '{spec.model}'); "
                              f"{self.install_hint}, or set the model's \"executable\" to its path")
        if self.module:
            top = self.module.split(".")[0]
            code = (f"import importlib.util,sys; sys.exit(0 if importlib.util.find_spec({top!r}) else 3)")
            try:
                r = subprocess.run([found, "-c", code], env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
                rc = r.returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise LaunchError(f"engine {self.name}: cannot run {found}: {exc}") from None
            if rc != 0:
                raise LaunchError(f"engine {self.name} is not installed for {found}: no module '{top}' "
                                  f"(model '{spec.model}'); {self.install_hint} into that Python, or set the "
                                  "model's \"executable\" to the Python that has it")
        for f in spec.files:  # a local checkpoint (model_path); a repo_id is the engine's to fetch
            if not f.exists():
                raise LaunchError(f"model '{spec.model}': model_path {f} does not exist; "
                                  "fix model_path or download the checkpoint there")
