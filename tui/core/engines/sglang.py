"""SGLang (``python3 -m sglang.launch_server --model-path MODEL …``): argv from a registry entry.

Parameter table — each ``params`` key and the flag it becomes, in the order emitted (the order
of seed 003's GLM-5-FP8 command and seed 002's GLM-4.5 commands; model-level keys in brackets):

=============================  ===================================  ============================
params key                     flag                                 value
=============================  ===================================  ============================
tp_size                        ``--tp-size``                        int (tensor parallel GPUs)
dp_size                        ``--dp-size``                        int
ep_size                        ``--ep-size``                        int
nnodes                         ``--nnodes``                         int (multi-node)
node_rank                      ``--node-rank``                      int
dist_init_addr                 ``--dist-init-addr``                 "host:port" of node 0
[tool_call_parser]             ``--tool-call-parser``               glm45, glm47, …
[reasoning_parser]             ``--reasoning-parser``               glm45, qwen3, deepseek_r1
speculative_algorithm          ``--speculative-algorithm``          EAGLE, EAGLE3, NEXTN, …
speculative_num_steps          ``--speculative-num-steps``          int
speculative_eagle_topk         ``--speculative-eagle-topk``         int
speculative_num_draft_tokens   ``--speculative-num-draft-tokens``   int
speculative_draft_model_path   ``--speculative-draft-model-path``   path
mem_fraction_static            ``--mem-fraction-static``            float 0–1
context_length                 ``--context-length``                 int
chunked_prefill_size           ``--chunked-prefill-size``           int
max_running_requests           ``--max-running-requests``           int
kv_cache_dtype                 ``--kv-cache-dtype``                 auto, fp8_e5m2, …
attention_backend              ``--attention-backend``              str
quantization                   ``--quantization``                   str
cuda_graph_max_bs              ``--cuda-graph-max-bs``              int
enable_torch_compile           ``--enable-torch-compile``           true → flag
enable_metrics                 ``--enable-metrics``                 true → flag (/metrics)
trust_remote_code              ``--trust-remote-code``              true → flag
[alias or name]                ``--served-model-name``              always passed
[chat_template_file]           ``--chat-template``                  path
[default_port, host]           ``--port``, ``--host``               only when set (default
                                                                    127.0.0.1:30000)
=============================  ===================================  ============================

Then ``extra_args``. Readiness: ``GET /health``. Install: ``pip install sglang``.
"""

from __future__ import annotations

from tui.core.engines.base import Param
from tui.core.engines.served import (CHAT_TEMPLATE, HOST_PORT, REASONING_PARSER, SERVED_NAME,
                                     TOOL_CALL_PARSER, ServedEngine)


class SGLang(ServedEngine):
    name = "sglang"
    default_executable = "python3"
    module = "sglang.launch_server"
    model_flag = "--model-path"
    served_name_flag = "--served-model-name"
    chat_template_flag = "--chat-template"
    host_before_port = False  # seed 002 writes --port 8000 --host 0.0.0.0
    engine_host = "127.0.0.1"
    engine_port = 30000
    install_hint = "install it (pip install sglang)"
    PARAMS = (
        Param("tp_size", "--tp-size", "int"),
        Param("dp_size", "--dp-size", "int"),
        Param("ep_size", "--ep-size", "int"),
        Param("nnodes", "--nnodes", "int"),
        Param("node_rank", "--node-rank", "int"),
        Param("dist_init_addr", "--dist-init-addr", "str"),
        Param("speculative_algorithm", "--speculative-algorithm", "str"),
        Param("speculative_num_steps", "--speculative-num-steps", "int"),
        Param("speculative_eagle_topk", "--speculative-eagle-topk", "int"),
        Param("speculative_num_draft_tokens", "--speculative-num-draft-tokens", "int"),
        Param("speculative_draft_model_path", "--speculative-draft-model-path", "path"),
        Param("mem_fraction_static", "--mem-fraction-static", "float"),
        Param("context_length", "--context-length", "int"),
        Param("chunked_prefill_size", "--chunked-prefill-size", "int"),
        Param("max_running_requests", "--max-running-requests", "int"),
        Param("kv_cache_dtype", "--kv-cache-dtype", "str"),
        Param("attention_backend", "--attention-backend", "str"),
        Param("quantization", "--quantization", "str"),
        Param("cuda_graph_max_bs", "--cuda-graph-max-bs", "int"),
        Param("enable_torch_compile", "--enable-torch-compile", "flag"),
        Param("enable_metrics", "--enable-metrics", "flag"),
        Param("trust_remote_code", "--trust-remote-code", "flag"),
    )
    ORDER = ("tp_size", "dp_size", "ep_size", "nnodes", "node_rank", "dist_init_addr",
             TOOL_CALL_PARSER, REASONING_PARSER, "speculative_algorithm", "speculative_num_steps",
             "speculative_eagle_topk", "speculative_num_draft_tokens", "speculative_draft_model_path",
             "mem_fraction_static", "context_length", "chunked_prefill_size", "max_running_requests",
             "kv_cache_dtype", "attention_backend", "quantization", "cuda_graph_max_bs", "enable_torch_compile",
             "enable_metrics", "trust_remote_code", SERVED_NAME, CHAT_TEMPLATE, HOST_PORT)

    def has_metrics(self, model) -> bool:
        return bool(model.params.get("enable_metrics"))

