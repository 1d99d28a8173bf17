"""Probing a server's HTTP endpoints with the standard library (fast to import).

``/health`` answers: connection refused (not bound yet), 503 (loading), 200 (ready). Status
is keyed on the HTTP code, never the body. ``/health`` needs no API key on llama-server, but
the key is sent when the model has one (other engines may want it).
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Probe:
    status: int | None  # HTTP status, or None when no HTTP answer came
    error: str | None = None  # "refused", "timeout", or a short description
    body: bytes = b""

    @property
    def refused(self) -> bool:
        return self.error == "refused"


def get(url: str, *, api_key: str | None = None, timeout: float = 1.0, max_body: int = 4 << 20) -> Probe:
    u = urlsplit(url)
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = cls(u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80), timeout=timeout)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(max_body)
        return Probe(resp.status, None, body)
    except ConnectionRefusedError:
        return Probe(None, "refused")
    except (socket.timeout, TimeoutError):
        return Probe(None, "timeout")
    except OSError as exc:
        return Probe(None, exc.strerror or type(exc).__name__)
    except http.client.HTTPException as exc:
        return Probe(None, f"bad HTTP answer ({type(exc).__name__})")
    finally:
        conn.close()


def health(url: str, *, api_key: str | None = None, timeout: float = 1.0) -> Probe:
    return get(url, api_key=api_key, timeout=timeout, max_body=64 << 10)
