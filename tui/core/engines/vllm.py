"""vLLM (``vllm serve MODEL …``): argv from a registry entry.

Parameter table — each ``params`` key and the flag it becomes, in the order emitted (the order
of seed 003's GLM-5-FP8 command; model-level keys in brackets):

=============================  ===================================  ============================
params key                     flag                                 value
=============================  ===================================  ============================
tensor_parallel_size           ``--tensor-parallel-size``           int (GPUs per replica)
pipeline_parallel_size         ``--pipeline-parallel-size``         int
data_parallel_size             ``--data-parallel-size``             int
enable_expert_parallel         ``--enable-expert-parallel``         true → flag
speculative_config             ``--speculative-config.<key> <v>``   object, e.g. {"method": "mtp",
                                                                    "num_speculative_tokens": 1}
[tool_call_parser]             ``--tool-call-parser``               glm45, glm47, hermes, …
[reasoning_parser]             ``--reasoning-parser``               glm45, qwen3, deepseek_r1
enable_auto_tool_choice        ``--enable-auto-tool-choice``        true → flag (needs a tool parser)
[alias or name]                ``--served-model-name``              always passed
gpu_memory_utilization         ``--gpu-memory-utilization``         float 0–1
max_model_len                  ``--max-model-len``                  int
max_num_seqs                   ``--max-num-seqs``                   int
max_num_batched_tokens         ``--max-num-batched-tokens``         int
enable_chunked_prefill         ``--[no-]enable-chunked-prefill``    true/false
enable_prefix_caching          ``--[no-]enable-prefix-caching``     true/false
kv_cache_dtype                 ``--kv-cache-dtype``                 auto, fp8, …
dtype                          ``--dtype``                          auto, bfloat16, …
quantization                   ``--quantization``                   str
enforce_eager                  ``--enforce-eager``                  true → flag
trust_remote_code              ``--trust-remote-code``              true → flag
[chat_template_file]           ``--chat-template``                  path
download_dir                   ``--download-dir``                   path
revision                       ``--revision``                       str
[host, default_port]           ``--host``, ``--port``               only when set (default: all
                                                                    interfaces, 8000)
=============================  ===================================  ============================

Then ``extra_args``. Readiness: ``GET /health`` (vLLM binds only after loading). Metrics:
``/metrics``. Install: ``pip install vllm``.
"""

from __future__ import annotations

from typing import Any

from tui.core.engines.base import Param
from tui.core.engines.served import (CHAT_TEMPLATE, HOST_PORT, REASONING_PARSER, SERVED_NAME,
                                     TOOL_CALL_PARSER, DottedParam, ServedEngine)


class OnOffFlag(Param):
    """true → ``--flag``, false → ``--no-flag`` (vLLM's boolean options). Param's fields and
    frozen dataclass methods are inherited as they are (it adds no field)."""

    def to_argv(self, value: Any, resolve=None) -> list[str]:
        return [self.flag] if value else ["--no-" + self.flag[2:]]


class VLLM(ServedEngine):
    name = "vllm"
    default_executable = "vllm"
    subcommand = ("serve",)
    served_name_flag = "--served-model-name"
    chat_template_flag = "--chat-template"
    engine_host = "0.0.0.0"  # vLLM binds every interface when --host is not given
    engine_port = 8000
    install_hint = "install it (pip install vllm)"
    PARAMS = (
        Param("tensor_parallel_size", "--tensor-parallel-size", "int"),
        Param("pipeline_parallel_size", "--pipeline-parallel-size", "int"),
        Param("data_parallel_size", "--data-parallel-size", "int"),
        Param("enable_expert_parallel", "--enable-expert-parallel", "flag"),
        DottedParam("speculative_config", "--speculative-config", "object"),
        Param("enable_auto_tool_choice", "--enable-auto-tool-choice", "flag"),
        Param("gpu_memory_utilization", "--gpu-memory-utilization", "float"),
        Param("max_model_len", "--max-model-len", "int"),
        Param("max_num_seqs", "--max-num-seqs", "int"),
        Param("max_num_batched_tokens", "--max-num-batched-tokens", "int"),
        OnOffFlag("enable_chunked_prefill", "--enable-chunked-prefill", "bool"),
        OnOffFlag("enable_prefix_caching", "--enable-prefix-caching", "bool"),
        Param("kv_cache_dtype", "--kv-cache-dtype", "str"),
        Param("dtype", "--dtype", "str"),
        Param("quantization", "--quantization", "str"),
        Param("enforce_eager", "--enforce-eager", "flag"),
        Param("trust_remote_code", "--trust-remote-code", "flag"),
        Param("download_dir", "--download-dir", "path"),
        Param("revision", "--revision", "str"),
    )
    ORDER = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "enable_expert_parallel",
             "speculative_config", TOOL_CALL_PARSER, REASONING_PARSER, "enable_auto_tool_choice", SERVED_NAME,
             "gpu_memory_utilization", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
             "enable_chunked_prefill", "enable_prefix_caching", "kv_cache_dtype", "dtype", "quantization",
             "enforce_eager", "trust_remote_code", CHAT_TEMPLATE, "download_dir", "revision", HOST_PORT)
    REQUIRES = (("enable_auto_tool_choice", "tool_call_parser",
                 "vLLM needs a tool parser with it; set tool_call_parser (e.g. \"glm47\")"),)

