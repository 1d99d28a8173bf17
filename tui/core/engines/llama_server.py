"""llama-server (llama.cpp): argv from a registry entry.

Parameter table — each ``params`` key and the llama-server flag it becomes:

=================  ==========================  =====================================
params key         flag                        value
=================  ==========================  =====================================
ctx_size           ``--ctx-size``              int (0 = from the model)
n_gpu_layers       ``--n-gpu-layers``          int, or "auto" / "all"
threads            ``--threads``               int
threads_batch      ``--threads-batch``         int
batch_size         ``--batch-size``            int
ubatch_size        ``--ubatch-size``           int
parallel           ``--parallel``              int (slots)
flash_attn         ``--flash-attn``            true/false or "on"/"off"/"auto"
cache_type_k       ``--cache-type-k``          f16, q8_0, q4_0, …
cache_type_v       ``--cache-type-v``          f16, q8_0, q4_0, …
n_cpu_moe          ``--n-cpu-moe``             int (MoE experts of the first N layers on CPU)
cpu_moe            ``--cpu-moe``               true → all MoE experts on CPU
override_tensor    ``--override-tensor``       e.g. "\\.ffn_.*_exps\\.=CPU"
split_mode         ``--split-mode``            none, layer, row
tensor_split       ``--tensor-split``          e.g. "3,1"
main_gpu           ``--main-gpu``              int
temp               ``--temp``                  float
top_p              ``--top-p``                 float
top_k              ``--top-k``                 int
min_p              ``--min-p``                 float
repeat_penalty     ``--repeat-penalty``        float
presence_penalty   ``--presence-penalty``      float
seed               ``--seed``                  int
n_predict          ``--n-predict``             int
mlock              ``--mlock``                 true → flag
no_mmap            ``--no-mmap``               true → flag
jinja              ``--jinja``                 true → flag
reasoning_format   ``--reasoning-format``      none, auto, deepseek, deepseek-legacy
reasoning_budget   ``--reasoning-budget``      int
chat_template      ``--chat-template``         a built-in template name
chat_template_kwargs ``--chat-template-kwargs``  object (JSON)
timeout            ``--timeout``               int seconds
sse_ping_interval  ``--sse-ping-interval``     int seconds
cont_batching      ``--cont-batching``         true → flag
no_warmup          ``--no-warmup``             true → flag
slot_save_path     ``--slot-save-path``        path
=================  ==========================  =====================================

Always added: ``--model <shard 1>``, ``--alias``, ``--host``, ``--port``, ``--metrics``;
``--chat-template-file`` from the entry's ``chat_template_file``; the API key through
``--api-key-file run/<model>.key`` (mode 0600) — never on argv, where ``ps`` shows it;
then ``extra_args``.

The binary is looked for, in order: ``--llama-server`` / ``--cpp-dir`` given to the command,
``settings.llama_server``, ``$LLAMA_SERVER``, ``settings.cpp_dir``, ``PATH``, then the
llmdeck build cache (``llmdeck setup``). A miss names every place looked.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.engines.base import Engine, LaunchError, LaunchSpec, Param

if TYPE_CHECKING:
    from tui.core.registry import Model, Registry

_P = [
    Param("ctx_size", "--ctx-size", "int"),
    Param("n_gpu_layers", "--n-gpu-layers", "intstr", choices=("auto", "all")),
    Param("threads", "--threads", "int"),
    Param("threads_batch", "--threads-batch", "int"),
    Param("batch_size", "--batch-size", "int"),
    Param("ubatch_size", "--ubatch-size", "int"),
    Param("parallel", "--parallel", "int"),
    Param("flash_attn", "--flash-attn", "onoff"),
    Param("cache_type_k", "--cache-type-k", "str"),
    Param("cache_type_v", "--cache-type-v", "str"),
    Param("n_cpu_moe", "--n-cpu-moe", "int"),
    Param("cpu_moe", "--cpu-moe", "flag"),
    Param("override_tensor", "--override-tensor", "str"),
    Param("split_mode", "--split-mode", "str", choices=("none", "layer", "row")),
    Param("tensor_split", "--tensor-split", "str"),
    Param("main_gpu", "--main-gpu", "int"),
    Param("temp", "--temp", "float"),
    Param("top_p", "--top-p", "float"),
    Param("top_k", "--top-k", "int"),
    Param("min_p", "--min-p", "float"),
    Param("repeat_penalty", "--repeat-penalty", "float"),
    Param("presence_penalty", "--presence-penalty", "float"),
    Param("seed", "--seed", "int"),
    Param("n_predict", "--n-predict", "int"),
    Param("mlock", "--mlock", "flag"),
    Param("no_mmap", "--no-mmap", "flag"),
    Param("jinja", "--jinja", "flag"),
    Param("reasoning_format", "--reasoning-format", "str",
          choices=("none", "auto", "deepseek", "deepseek-legacy")),
    Param("reasoning_budget", "--reasoning-budget", "int"),
    Param("chat_template", "--chat-template", "str"),
    Param("chat_template_kwargs", "--chat-template-kwargs", "json"),
    Param("timeout", "--timeout", "int"),
    Param("sse_ping_interval", "--sse-ping-interval", "int"),
    Param("cont_batching", "--cont-batching", "flag"),
    Param("no_warmup", "--no-warmup", "flag"),
    Param("slot_save_path", "--slot-save-path", "path"),
]

#: sampling parameters that are also the chat client's per-request defaults
SAMPLING_KEYS = ("temp", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty", "seed")


def find_binary(registry: "Registry", binary: str | None = None, cpp_dir: str | None = None) -> Path:
    """Locate llama-server; raise LaunchError naming every place looked."""
    looked: list[str] = []

    def ok(p: Path) -> bool:
        return p.is_file() and os.access(p, os.X_OK)

    def in_dir(d: Path) -> Path | None:
        for c in (d / "build" / "bin" / "llama-server", d / "bin" / "llama-server", d / "llama-server"):
            looked.append(str(c))
            if ok(c):
                return c
        return None

    if binary:
        p = registry.resolve(binary)
        looked.append(f"--llama-server {p}")
        if ok(p):
            return p
    if cpp_dir:
        hit = in_dir(registry.resolve(cpp_dir))
        if hit:
            return hit
    s = registry.settings
    if s.llama_server:
        p = registry.resolve(s.llama_server)
        looked.append(f"settings.llama_server {p}")
        if ok(p):
            return p
    env = os.environ.get("LLAMA_SERVER")
    if env:
        p = Path(env).expanduser()
        looked.append(f"$LLAMA_SERVER {p}")
        if ok(p):
            return p
    else:
        looked.append("$LLAMA_SERVER (unset)")
    if s.cpp_dir:
        hit = in_dir(registry.resolve(s.cpp_dir))
        if hit:
            return hit
    w = shutil.which("llama-server")
    looked.append("PATH")
    if w:
        return Path(w)
    from tui.core import provision  # stdlib-only module

    c = provision.cached_llama_server()
    looked.append(f"llmdeck cache {c}")
    if ok(c):
        return c
    raise LaunchError("llama-server not found; looked in: " + "; ".join(looked)
                      + ". Set settings.llama_server, $LLAMA_SERVER or --cpp-dir, or run 'llmdeck setup'")


class LlamaServer(Engine):
    name = "llama-server"
    params = {p.key: p for p in _P}

    def launch(self, registry: "Registry", model: "Model", *, quant: str | None = None,
               port: int | None = None, binary: str | None = None,
               cpp_dir: str | None = None, dry_run: bool = False) -> LaunchSpec:
        """Build the launch. Each problem that would stop a start (files, binary, template,
        API key) raises :class:`LaunchError`; with ``dry_run`` it becomes a line in
        ``LaunchSpec.warnings`` instead and the command shows where the thing is expected."""
        from tui.core.modelfiles import local_files, quant_dir

        if quant is not None and quant not in model.quants and not model.model_path:
            from tui.core.text import did_you_mean

            raise LaunchError(f"model '{model.name}' has no quant '{quant}'{did_you_mean(quant, model.quants)}; "
                              f"known: {', '.join(model.quants) or 'none'}")
        port = port or model.default_port
        if port is None:
            raise LaunchError(f"model '{model.name}' has no default_port in {registry.path}: add one or pass --port")
        warnings: list[str] = []

        def problem(msg: str) -> None:
            if not dry_run:
                raise LaunchError(msg)
            warnings.append(msg)

        lf = local_files(registry, model, quant)
        qname = quant or model.default_quant
        first = lf.first
        if lf.missing and lf.status == "missing" and model.model_path:
            problem(f"model '{model.name}': model_path {lf.where} does not exist")
        elif lf.missing:
            problem(f"model '{model.name}' ({qname or model.model_path}): missing shard(s) "
                    f"{', '.join(lf.missing)} in {lf.where}; run 'llmdeck download {model.name}'")
        elif first is None and lf.status == "partial":
            problem(f"model '{model.name}' quant {qname}: download incomplete in {lf.where}; "
                    f"run 'llmdeck download {model.name}' to resume")
        elif first is None:
            problem(f"model '{model.name}' quant {qname}: no model files in {lf.where}; "
                    f"run 'llmdeck download {model.name}' or set model_path")
        if first is None:  # dry run: where the files are expected
            q = model.quant(qname)
            if model.model_path:
                first = registry.resolve(model.model_path)
            elif qname:
                first = quant_dir(registry, model, qname) / ((q.pattern or "*.gguf").rsplit("/", 1)[-1]
                                                             if q else "*.gguf")
        try:
            exe = find_binary(registry, binary, cpp_dir)
        except LaunchError as exc:
            problem(str(exc))
            exe = Path("llama-server")
        host = model.host
        argv = [str(exe), "--model", str(first), "--alias", model.served_name,
                "--host", host, "--port", str(port), "--metrics"]
        if model.chat_template_file:
            t = registry.resolve(model.chat_template_file)
            if not t.is_file():
                problem(f"model '{model.name}': chat_template_file {t} does not exist")
            argv += ["--chat-template-file", str(t)]
        argv += self.params_argv(model, registry)
        secrets: dict[Path, str] = {}
        if model.api_key_env:
            key = model.api_key()
            if not key:
                problem(f"model '{model.name}': api_key_env names ${model.api_key_env}, which is not set")
                key = "<from $" + model.api_key_env + ">"
            kf = registry.run_dir / f"{model.name}.key"
            secrets[kf] = key + "\n"
            argv += ["--api-key-file", str(kf)]
        argv += list(model.extra_args)
        chost = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        base = f"http://{chost}:{port}"
        return LaunchSpec(model=model.name, engine=self.name, argv=argv, env=dict(model.env),
                          host=host, port=port, base_url=base + "/v1", health_url=base + "/health",
                          metrics_url=base + "/metrics", files=lf.files, secret_files=secrets,
                          warnings=warnings)

