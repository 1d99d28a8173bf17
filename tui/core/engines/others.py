"""The GPU engines beyond llama-server: vLLM, SGLang and LightLLM (listed in OTHER_ENGINES for the table in __init__).

See :mod:`tui.core.engines.served` for what they share and each module for its table.
"""

from tui.core.engines import lightllm, sglang, vllm

#: in the order they were registered before the table was static (ENGINE_NAMES lists them so)
OTHER_ENGINES = (lightllm.LightLLM(), sglang.SGLang(), vllm.VLLM())
