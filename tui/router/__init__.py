"""The front door on :8888 (``llmdeck serve``): one OpenAI-compatible address for every running model.

* :mod:`tui.router.backends` — which models are running and where (from the supervisor).
* :mod:`tui.router.proxy` — forwarding one request, streaming the answer through as it arrives.
* :mod:`tui.router.app` — the routes, the API key, and running the server.

The router is aiohttp (server and client): both ends of a stream stay in one event loop with
C-accelerated HTTP parsing and no per-chunk thread hops, which is what keeps the added
time-to-first-token and the throughput loss small (see ``benchmarks/bench_router.py``).
"""
