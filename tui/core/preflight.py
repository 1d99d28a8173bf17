"""What a start checks before anything is written: the launch the model's engine builds, the
port, the binary. ``llmdeck start --dry-run`` runs these and prints the command.
"""

from __future__ import annotations

import errno
import socket
import subprocess

import psutil

from tui.core import engines
from tui.core.engines.base import LaunchError, LaunchSpec
from tui.core.errors import SupervisorError
from tui.core.registry import Model, Registry

#: a model as the supervisor's functions take it: the :class:`Model` a caller already looked up
#: (the CLI looks it up once per command), or its name (looked up here; an unknown one raises
#: :class:`~tui.core.registry.UnknownModel`)
ModelRef = Model | str


def model_of(registry: Registry, ref: ModelRef) -> Model:
    return ref if isinstance(ref, Model) else registry.get(ref)


def launch_spec(registry: Registry, ref: ModelRef, *, quant: str | None = None, port: int | None = None,
                binary: str | None = None, cpp_dir: str | None = None, dry_run: bool = False) -> LaunchSpec:
    model = model_of(registry, ref)
    name = model.name
    engine = engines.get_engine(model.engine)
    if engine is None:
        raise LaunchError(f"model '{name}': unknown engine '{model.engine}'")
    if model.engine == "external":
        raise LaunchError(f"model '{name}' is engine 'external' ({model.base_url}): llmdeck does not start it")
    return engine.launch(registry, model, quant=quant, port=port, binary=binary, cpp_dir=cpp_dir, dry_run=dry_run)


def _port_owner(port: int) -> str:
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                try:
                    return f" by pid {c.pid} ({psutil.Process(c.pid).name()})"
                except psutil.Error:
                    return f" by pid {c.pid}"
    except (psutil.Error, OSError):
        pass
    return ""


def check_port_free(host: str, port: int) -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        # as servers do: TIME_WAIT leftovers of a stopped server must not count as "in use"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SupervisorError(f"port {port} on {host} is already in use{_port_owner(port)}: "
                                      "stop that process or pass --port") from None
            raise SupervisorError(f"cannot bind {host}:{port}: {exc.strerror}") from None
        except OverflowError:
            raise SupervisorError(f"port {port} is not a port (0-65535): pass another --port") from None


def check_binary(argv0: str) -> None:
    """The binary runs (``--version``); a broken build or wrong architecture fails here."""
    try:
        p = subprocess.run([argv0, "--version"], capture_output=True, timeout=20)
    except OSError as exc:
        raise SupervisorError(f"{argv0} does not run: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise SupervisorError(f"{argv0} --version did not answer within 20 s") from None
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise SupervisorError(f"{argv0} --version failed (exit {p.returncode}): {tail[0]}")
