"""A tiny HTTP/1.1 server on 127.0.0.1 that plays canned responses, so the real httpx client
code reads streams recorded from llama-server or built from the documented vLLM, SGLang and
LightLLM shapes.

Each request to a path takes the next :class:`Reply` queued for it (or the path's default).
A reply's body goes out in the pieces given (one HTTP chunk each, Nagle off, optional delay
between pieces), so tests control how the bytes are split on the wire. ``abort`` closes the
connection without the final chunk (a server that died mid-stream). Requests are recorded
(``server.requests``) with their JSON bodies, and a write that fails because the client went
away is recorded in ``server.disconnects``.

Also runnable as a process for the benchmark (``python tests/streamserver.py --file F``): it
serves F's bytes for every POST, as fast as the socket takes them, and prints its port.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes | list[bytes] = b""
    content_type: str = "text/event-stream"
    delay: float = 0.0          # seconds between pieces
    abort: bool = False         # close without the terminating chunk
    chunked: bool = True
    headers: dict[str, str] = field(default_factory=dict)

    def pieces(self) -> list[bytes]:
        return [self.body] if isinstance(self.body, bytes) else list(self.body)


def split_every(data: bytes, n: int) -> list[bytes]:
    return [data[i:i + n] for i in range(0, len(data), n)] or [b""]


def json_reply(obj, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(obj).encode(), content_type="application/json", chunked=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _serve(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        owner = self.server.owner
        owner.requests.append({"method": self.command, "path": self.path,
                               "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body})
        reply = owner.next_reply(self.path.split("?")[0])
        if reply is None:
            reply = json_reply({"error": {"code": 404, "message": f"no reply for {self.path}",
                                          "type": "not_found_error"}}, 404)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        pieces = reply.pieces()
        if not reply.chunked:
            data = b"".join(pieces)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i, p in enumerate(pieces):
                if i and reply.delay:
                    time.sleep(reply.delay)
                if p:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            if reply.abort:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            owner.disconnects.append(self.path)
            self.close_connection = True

    do_GET = do_POST = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        # a client that hangs up (a cancel, a closed keep-alive connection) is not an error here
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class StreamServer:
    """``with StreamServer() as s: s.queue("/v1/chat/completions", Reply(...)); s.base_url``"""

    def __init__(self) -> None:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.base_url = self.base + "/v1"
        self.requests: list[dict] = []
        self.disconnects: list[str] = []
        self._queues: dict[str, deque] = defaultdict(deque)
        self._defaults: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def queue(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._queues[path].extend(replies)

    def default(self, path: str, reply: Reply) -> None:
        self._defaults[path] = reply

    def next_reply(self, path: str) -> Reply | None:
        with self._lock:
            q = self._queues.get(path)
            if q:
                return q.popleft()
        return self._defaults.get(path)

    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def __enter__(self) -> "StreamServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# --- the benchmark's server process ---------------------------------------------------------

def _serve_file(path: str, piece: int) -> None:
    """Serve one body for every POST, chunked in ``piece``-byte HTTP chunks, pre-framed."""
    data = open(path, "rb").read()
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in split_every(data, piece)) + b"0\r\n\r\n"
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n")
    models = json.dumps({"object": "list", "data": [{"id": "bench", "object": "model"}]}).encode()
    models_resp = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(models), models))

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(srv.getsockname()[1], flush=True)

    def handle(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                got = conn.recv(65536)
                if not got:
                    return
                buf += got
            head_end = buf.index(b"\r\n\r\n") + 4
            hdrs = buf[:head_end].decode("latin-1").lower()
            n = 0
            for line in hdrs.split("\r\n"):
                if line.startswith("content-length:"):
                    n = int(line.split(":", 1)[1])
            rest = len(buf) - head_end
            while rest < n:
                got = conn.recv(65536)
                if not got:
                    return
                rest += len(got)
            try:
                if hdrs.startswith("get") and "/models" in hdrs.split("\r\n", 1)[0]:
                    conn.sendall(models_resp)
                else:
                    conn.sendall(head + framed)
            except OSError:
                pass

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", required=True, help="the response body to serve")
    ap.add_argument("--piece", type=int, default=65536, help="HTTP chunk size in bytes")
    a = ap.parse_args()
    try:
        _serve_file(a.file, a.piece)
    except KeyboardInterrupt:
        sys.exit(0)
