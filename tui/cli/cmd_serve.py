"""``llmdeck serve``: the OpenAI-compatible front door for every running model (default :8888).

Binds 127.0.0.1 unless ``--host`` says otherwise; bound wider without ``--api-key-env`` it
warns once (anyone who reaches the port can use every running model). The key is read from
the environment variable named by ``--api-key-env`` — never taken on the command line, where
``ps`` shows it. The registry is re-read when models.json changes; the state of each model
comes from the supervisor, refreshed every second and on demand.

Without a key the router refuses (401) any model that has its own key (``api_key_env``): it
would otherwise hand that key to anyone who reaches the port. When every registered model has
one, ``serve`` does not start (exit 2) and says how to give the router a key; when some do, it
warns once, naming them. ``--max-body-mb`` caps a request body (default 32; over it → 413).

Models on demand (``on_demand``, ``ttl_s``, ``swap_group``, ``keep_loaded``, ``settings.preload``,
``settings.memory_limit_gib``): see :mod:`tui.router.ondemand`; what the router does is written
to ``run/router.json`` for ``llmdeck status`` and the TUI.
"""

from __future__ import annotations

import argparse
import os

from tui.cli.common import UsageError, registry_path
from tui.cli.output import EXIT_FAIL, EXIT_OK, error, info, warn

DEFAULT_PORT = 8888
DEFAULT_MAX_BODY_MB = 32


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the OpenAI-compatible router in front of every running model (:8888)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 = every interface, use a key then)")
    p.add_argument("--api-key-env", metavar="NAME",
                   help="name of the environment variable holding the key clients must send")
    p.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_MB, metavar="N",
                   help=f"largest request body in MB (default {DEFAULT_MAX_BODY_MB:g}; larger: 413)")
    p.set_defaults(func=cmd_serve)


def exposure_warning(host: str, port: int, key: str | None) -> str | None:
    """The warning for a router reachable beyond this machine without a key (None: no warning)."""
    from tui.core.registry import is_loopback

    if key or is_loopback(host):
        return None
    return (f"serving on {host}:{port} without an API key: anyone who can reach this port can use every "
            "running model; pass --api-key-env NAME")


def keyed_models_problem(models: dict, key: str | None) -> tuple[str | None, str | None]:
    """(error, warning) about models with their own key behind a keyless router."""
    if key or not models:
        return None, None
    keyed = [name for name, m in models.items() if m.api_key_env]
    if len(keyed) == len(models):
        return (f"every model in the registry has its own API key (api_key_env) and the router has none: it "
                f"would refuse them all; give it a key: 'llmdeck serve --api-key-env NAME'", None)
    if keyed:
        return None, (f"model{'s' if len(keyed) > 1 else ''} {', '.join(keyed)} ha{'ve' if len(keyed) > 1 else 's'} "
                      "an API key of its own: without --api-key-env the router refuses them (401) rather than "
                      "lend the key to anyone who reaches the port")
    return None, None


def cmd_serve(args: argparse.Namespace) -> int:
    from tui.router.app import make_app, run, serve
    from tui.router.backends import RegistryBackends

    if not (0 <= args.port <= 65535):
        raise UsageError(f"--port {args.port} is not a port (0-65535)")
    if not (0 < args.max_body_mb < float("inf")):
        raise UsageError(f"--max-body-mb {args.max_body_mb:g} is not a size: give megabytes above 0")
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env names ${args.api_key_env}, which is not set (or empty): export it first")
    provider = RegistryBackends(registry_path(args))
    problem, keyed_warning = keyed_models_problem(provider.registry().models, key)  # a bad registry raises
    if problem:
        raise UsageError(problem)
    for w in (exposure_warning(args.host, args.port, key), keyed_warning):
        if w:
            warn(w)

    def ready(addrs) -> None:
        host, port = addrs[0][:2] if addrs else (args.host, args.port)
        shown = f"[{host}]" if ":" in host else host
        from tui.router.ondemand import ONDEMAND

        app[ONDEMAND].address = f"http://{shown}:{port}"
        info(f"router listening on http://{shown}:{port} (OpenAI base http://{shown}:{port}/v1; "
             f"registry {provider.path}){' with an API key' if key else ''}")

    from tui.router.ondemand import RouterBusy

    try:
        app = make_app(provider, api_key=key, max_body=int(args.max_body_mb * (1 << 20)), host=args.host,
                       on_demand=True)
        run(serve(app, args.host, args.port, ready=ready))
    except RouterBusy as exc:  # another router serves this registry (run/router.lock)
        error(str(exc))
        return EXIT_FAIL
    except OSError as exc:
        error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
              + ("; is another 'llmdeck serve' running? pass --port" if exc.errno == 98 else ""))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
