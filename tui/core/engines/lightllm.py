"""LightLLM (``python3 -m lightllm.server.api_server --model_dir DIR …``): argv from a registry entry.

LightLLM takes only underscore flags. Its environment variables (seed 004:
``LIGHTLLM_TRITON_AUTOTUNE_LEVEL=1 LOADWORKER=18``) go in the entry's ``env``, printed first
by ``--dry-run``. Parameter table, in the order emitted (seed 004's order; model-level keys in
brackets):

=============================  ===================================  ============================
params key                     flag                                 value
=============================  ===================================  ============================
tp                             ``--tp``                             int
dp                             ``--dp``                             int
nnodes                         ``--nnodes``                         int
node_rank                      ``--node_rank``                      int
nccl_host                      ``--nccl_host``                      str
nccl_port                      ``--nccl_port``                      int
max_req_total_len              ``--max_req_total_len``              int (prompt + output)
max_total_token_num            ``--max_total_token_num``            int
mem_fraction                   ``--mem_fraction``                   float 0–1
running_max_req_size           ``--running_max_req_size``           int
chunked_prefill_size           ``--chunked_prefill_size``           int
disable_chunked_prefill        ``--disable_chunked_prefill``        true → flag
llm_prefill_att_backend        ``--llm_prefill_att_backend``        fa3, flashinfer, triton, …
llm_decode_att_backend         ``--llm_decode_att_backend``         fa3, flashinfer, triton, …
graph_max_batch_size           ``--graph_max_batch_size``           int
disable_cudagraph              ``--disable_cudagraph``              true → flag
data_type                      ``--data_type``                      bf16, fp16, …
quant_type                     ``--quant_type``                     str
trust_remote_code              ``--trust_remote_code``              true → flag
[tool_call_parser]             ``--tool_call_parser``               glm47, …
[reasoning_parser]             ``--reasoning_parser``               glm45, …
mtp_step                       ``--mtp_step``                       int (tokens per MTP step)
mtp_mode                       ``--mtp_mode``                       vanilla_with_att, eagle_with_att
mtp_draft_model_dir            ``--mtp_draft_model_dir``            path (written as given)
[alias]                        ``--model_name``                     only when alias is set
[host, default_port]           ``--host``, ``--port``               only when set (default
                                                                    127.0.0.1:8000)
=============================  ===================================  ============================

The model is ``model_path`` (a local folder; LightLLM does not download). LightLLM does not
check the request's ``model`` field, so without an alias none is passed (as in seed 004).
Readiness: ``GET /health``. Install: ``pip install lightllm`` (or its Docker image).
"""

from __future__ import annotations

from tui.core.engines.base import Param
from tui.core.engines.served import HOST_PORT, REASONING_PARSER, SERVED_NAME, TOOL_CALL_PARSER, ServedEngine


class LightLLM(ServedEngine):
    name = "lightllm"
    default_executable = "python3"
    module = "lightllm.server.api_server"
    model_flag = "--model_dir"
    served_name_flag = "--model_name"
    always_served_name = False
    tool_call_parser_flag = "--tool_call_parser"
    reasoning_parser_flag = "--reasoning_parser"
    chat_template_flag = None
    engine_host = "127.0.0.1"
    engine_port = 8000
    metrics_path = None
    needs_local_model = True
    install_hint = "install it (pip install lightllm, or use its Docker image)"
    PARAMS = (
        Param("tp", "--tp", "int"),
        Param("dp", "--dp", "int"),
        Param("nnodes", "--nnodes", "int"),
        Param("node_rank", "--node_rank", "int"),
        Param("nccl_host", "--nccl_host", "str"),
        Param("nccl_port", "--nccl_port", "int"),
        Param("max_req_total_len", "--max_req_total_len", "int"),
        Param("max_total_token_num", "--max_total_token_num", "int"),
        Param("mem_fraction", "--mem_fraction", "float"),
        Param("running_max_req_size", "--running_max_req_size", "int"),
        Param("chunked_prefill_size", "--chunked_prefill_size", "int"),
        Param("disable_chunked_prefill", "--disable_chunked_prefill", "flag"),
        Param("llm_prefill_att_backend", "--llm_prefill_att_backend", "str"),
        Param("llm_decode_att_backend", "--llm_decode_att_backend", "str"),
        Param("graph_max_batch_size", "--graph_max_batch_size", "int"),
        Param("disable_cudagraph", "--disable_cudagraph", "flag"),
        Param("data_type", "--data_type", "str"),
        Param("quant_type", "--quant_type", "str"),
        Param("trust_remote_code", "--trust_remote_code", "flag"),
        Param("mtp_step", "--mtp_step", "int"),
        Param("mtp_mode", "--mtp_mode", "str", choices=("vanilla_with_att", "eagle_with_att")),
        Param("mtp_draft_model_dir", "--mtp_draft_model_dir", "path"),
    )
    ORDER = tuple(p.key for p in PARAMS[:19]) + (TOOL_CALL_PARSER, REASONING_PARSER, "mtp_step", "mtp_mode",
                                              "mtp_draft_model_dir", SERVED_NAME, HOST_PORT)
    REQUIRES = (("mtp_mode", "params.mtp_draft_model_dir", "LightLLM MTP needs mtp_draft_model_dir "
                 "(the checkpoint folder for the draft layers, often model_path itself)"),)

