"""The GPU engines beyond llama-server: vLLM, SGLang and LightLLM (they register on import).

See :mod:`tui.core.engines.served` for what they share and each module for its table.
"""

from tui.core.engines import lightllm, sglang, vllm  # noqa: F401  (registers)
