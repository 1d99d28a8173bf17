"""How to reach a model's server: the lines a user pastes, here and from their laptop.

The inference box is usually reached over SSH and its servers listen on 127.0.0.1, so the
useful answer to "how do I use glm-5 from my laptop" is an ``ssh -L`` line plus the base URL it
gives, and a ``curl`` to try it. ``llmdeck connect MODEL`` prints them and the TUI's details
screen shows them (``ctrl+o`` copies them over OSC 52). The API key is never printed: the lines
read it from the model's ``api_key_env`` variable.
"""

from __future__ import annotations

import getpass
import json
import shlex
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from tui.core.registry import Model, is_loopback


@dataclass(frozen=True)
class Connect:
    model: str
    served_name: str
    base_url: str  # as reached on this machine
    port: int | None
    local: bool  # the server listens on loopback only (a tunnel is the way in from outside)
    ssh: str | None  # the tunnel line to run on the laptop (None for an external engine)
    laptop_base_url: str | None
    direct_url: str | None  # listening beyond loopback: reachable without a tunnel
    curl: str
    env: str  # OpenAI SDK environment for the laptop (or here)

    def lines(self) -> list[str]:
        out = [f"# {self.model} (model name in requests: {self.served_name})",
               f"base URL here: {self.base_url}"]
        if self.ssh:
            out += ["# from your laptop, keep this running:", self.ssh,
                    f"base URL there: {self.laptop_base_url}"]
        if self.direct_url:
            out.append(f"or directly (it listens on {urlsplit(self.direct_url).netloc}): {self.direct_url}")
        out += ["# try it:", self.curl, "# OpenAI SDKs:", self.env]
        return out


def connect(model: Model, base_url: str, *, ssh_host: str | None = None) -> Connect:
    """The lines for ``model`` whose OpenAI base URL (ending in /v1) is ``base_url``."""
    u = urlsplit(base_url)
    port = u.port
    host = (model.host or "127.0.0.1").strip("[]")
    local = is_loopback(host)
    ssh = laptop = direct = None
    if model.engine != "external" and port:
        name = socket.gethostname()
        target = ssh_host or f"{getpass.getuser()}@{name}"
        ssh = f"ssh -N -L {port}:127.0.0.1:{port} {target}"
        laptop = f"http://127.0.0.1:{port}/v1"
        if not local:
            where = name if host in ("0.0.0.0", "::", "") else host
            direct = f"http://{where}:{port}/v1"
    body = json.dumps({"model": model.served_name, "messages": [{"role": "user", "content": "Say hello."}],
                       "max_tokens": 64})
    curl = f"curl -sS {base_url.rstrip('/')}/chat/completions -H 'Content-Type: application/json'"
    key = f"${model.api_key_env}" if model.api_key_env else None
    if key:
        curl += f' -H "Authorization: Bearer {key}"'
    curl += f" -d {shlex.quote(body)}"
    secret = f"<the value of {key} on the server>" if key else "none"
    env = f"OPENAI_BASE_URL={laptop or base_url} OPENAI_API_KEY={secret}"
    return Connect(model.name, model.served_name, base_url, port, local, ssh, laptop, direct, curl, env)
