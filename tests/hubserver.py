"""A local server speaking the Hugging Face Hub's HTTP protocol, for tests and benchmarks.

Each ``<root>/<ns>/<name>/`` folder is a model repo (dot-files hidden). It answers what the
real ``huggingface_hub`` client asks (``/work/shared/notes/huggingface-downloads.md`` §14):

* ``GET /api/models/{repo}[/revision/{rev}]`` — repo info (``sha``, ``siblings``; sizes and
  LFS hashes with ``?blobs=true``; an optional ``gguf`` dict);
* ``GET /api/models/{repo}/tree/{rev}[/{path}]`` — listing with LFS metadata, recursive or not,
  paginated with an absolute ``Link: <…>; rel="next"``;
* ``POST /api/models/{repo}/paths-info/{rev}`` — form-encoded ``paths``;
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` — LFS files (``*.gguf`` or ≥ 1 MiB) answer
  302 to a second origin (``http://localhost:<port>/cdn/<sha256>?…``, the "CDN") with
  ``X-Repo-Commit``, ``X-Linked-Etag`` and ``X-Linked-Size`` on the 302; small files answer 200;
* ``GET /cdn/<sha256>`` — content with ``Range`` (206, ``Content-Range``; 416 out of range).

Errors carry ``X-Error-Code`` like the Hub: a missing repo 404 ``RepoNotFound``, a private repo
without the right token 401 ``RepoNotFound``, a gated one 403 ``GatedRepo``, a missing file 404
``EntryNotFound``, an unknown revision 404 ``RevisionNotFound``.

Per-repo options live in ``<repo>/.hubmeta.json``: ``{"private": true}`` (needs
:attr:`HubServer.token`), ``{"gated": true}``, ``{"gguf": {...}}`` merged into repo info, and
``{"virtual": {"<path>": {"size": N, "sha256": "…"}}}`` — files that are listed with their size
but have no content (for the disk-full refusal: a listed size no disk has).

Test switches (attributes, changeable while running): ``throttle_bps`` (bytes/s per
response), ``cut_after`` + ``cuts_left`` (the next ``cuts_left`` content responses close the
connection after ``cut_after`` bytes), ``corrupt`` (repo paths whose served bytes have one
byte flipped), ``ignore_range`` (answer 200 to ``Range``). Every request is logged in
:attr:`HubServer.log` as :class:`Req` (method, path, range, status, whether an Authorization
header came, host) so tests can assert that ``Range`` was used and the CDN got no token.

Also here: :func:`gguf_bytes` / :func:`write_gguf` / :func:`write_split_model`, a small GGUF
writer used to fill test repos with valid (tiny) models.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_MIN = 1 << 20
CHUNK = 64 * 1024


# --- GGUF writer (test data) ---------------------------------------------------------------

_T = {"u8": (0, "B"), "i8": (1, "b"), "u16": (2, "H"), "i16": (3, "h"), "u32": (4, "I"), "i32": (5, "i"),
      "f32": (6, "f"), "bool": (7, "?"), "u64": (10, "Q"), "i64": (11, "q"), "f64": (12, "d")}


def _gstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def _gvalue(v: Any) -> bytes:
    """Type id + payload. Tuples ``("u64", 5)`` choose the type; else bool/int(u32)/float/str/list."""
    if isinstance(v, tuple):
        tname, val = v
        if tname == "str":
            return struct.pack("<I", 8) + _gstr(val)
        tid, fmt = _T[tname]
        return struct.pack("<I", tid) + struct.pack("<" + fmt, val)
    if isinstance(v, bool):
        return struct.pack("<I?", 7, v)
    if isinstance(v, int):
        return struct.pack("<II", 4, v) if 0 <= v < 2**32 else struct.pack("<Iq", 11, v)
    if isinstance(v, float):
        return struct.pack("<If", 6, v)
    if isinstance(v, str):
        return struct.pack("<I", 8) + _gstr(v)
    if isinstance(v, list):
        if all(isinstance(x, str) for x in v):
            return struct.pack("<IIQ", 9, 8, len(v)) + b"".join(_gstr(x) for x in v)
        if all(isinstance(x, int) for x in v):
            return struct.pack("<IIQ", 9, 5, len(v)) + struct.pack(f"<{len(v)}i", *v)
        return struct.pack("<IIQ", 9, 6, len(v)) + struct.pack(f"<{len(v)}f", *v)
    raise TypeError(f"cannot encode {v!r}")


def gguf_bytes(kv: dict[str, Any], tensors: list[tuple[str, tuple[int, ...], int, bytes]] = (),
               alignment: int = 32) -> bytes:
    """A GGUF v3 file: ``kv`` metadata and ``tensors`` as (name, shape, ggml type, data)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)))
    for k, v in kv.items():
        out += _gstr(k) + _gvalue(v)
    offset = 0
    offsets = []
    for name, shape, ttype, data in tensors:
        out += _gstr(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
        out += struct.pack("<IQ", ttype, offset)
        offsets.append(offset)
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for (_, _, _, data), off in zip(tensors, offsets):
        out += data + b"\0" * (-len(data) % alignment)
    return bytes(out)


def write_gguf(path: Path, kv: dict[str, Any], tensors=(), alignment: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gguf_bytes(kv, list(tensors), alignment))
    return path


def model_kv(arch: str = "glm4moe", *, name: str = "Tiny", ctx: int = 202752, layers: int = 4,
             experts: int = 8, used: int = 2, file_type: int = 19, vocab: int = 64,
             merges: int = 0) -> dict[str, Any]:
    """Metadata resembling a GLM-style MoE model's shard 1 (vocabulary size configurable)."""
    kv: dict[str, Any] = {
        "general.architecture": arch, "general.name": name, "general.size_label": "744B-A40B",
        "general.file_type": file_type, "general.quantization_version": 2,
        f"{arch}.context_length": ctx, f"{arch}.block_count": layers, f"{arch}.embedding_length": 64,
        f"{arch}.expert_count": experts, f"{arch}.expert_used_count": used,
        f"{arch}.attention.head_count": [8] * layers,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": [f"tok{i}" for i in range(vocab)],
        "tokenizer.ggml.token_type": [1] * vocab,
        "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
    }
    if merges:
        kv["tokenizer.ggml.merges"] = [f"t{i} k{i}" for i in range(merges)]
    return kv


def write_split_model(folder: Path, prefix: str, count: int, *, shard_bytes: int = 1 << 20,
                      kv: dict[str, Any] | None = None, seed: int = 0) -> list[Path]:
    """``<prefix>-0000i-of-0000N.gguf`` shards; shard 1 carries ``kv``, all carry ``split.*``.
    Each shard holds one F32 tensor of random bytes so files are about ``shard_bytes`` each."""
    kv = kv if kv is not None else model_kv()
    rnd = _rand(seed)
    paths = []
    n_f32 = max(8, shard_bytes // 4)
    for i in range(count):
        data = rnd(n_f32 * 4)
        split = {"split.no": ("u16", i), "split.count": ("u16", count), "split.tensors.count": ("i32", count)}
        meta = {**(kv if i == 0 else {}), **split}
        p = folder / f"{prefix}-{i + 1:05d}-of-{count:05d}.gguf"
        paths.append(write_gguf(p, meta, [(f"blk.{i}.ffn.weight", (n_f32,), 0, data)]))
    return paths


def _rand(seed: int):
    """Fast deterministic pseudo-random bytes (sha256 in counter mode is too slow for MBs)."""
    import random

    r = random.Random(seed)
    return lambda n: r.randbytes(n)


# --- the server ----------------------------------------------------------------------------

@dataclass
class Req:
    method: str
    path: str
    range: str | None
    status: int
    auth: bool
    host: str


@dataclass
class _File:
    path: str  # repo path
    real: Path | None
    size: int
    sha256: str
    oid: str  # git blob sha1 (of the LFS pointer for LFS files)
    lfs: bool
    pointer_size: int = 0


def _git_oid(data_len: int, chunks) -> str:
    h = hashlib.sha1(f"blob {data_len}\0".encode())
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _pointer(sha: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n".encode()


class _Repo:
    def __init__(self, server: "HubServer", repo_id: str, folder: Path):
        self.id = repo_id
        self.folder = folder
        meta_path = folder / ".hubmeta.json"
        self.meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.files: dict[str, _File] = {}
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts) or not p.is_file():
                continue
            self.files[rel.as_posix()] = server._file_info(rel.as_posix(), p)
        for path, v in self.meta.get("virtual", {}).items():
            sha, size = v["sha256"], int(v["size"])
            ptr = _pointer(sha, size)
            self.files[path] = _File(path, None, size, sha, _git_oid(len(ptr), [ptr]), True, len(ptr))
        h = hashlib.sha1()
        for f in sorted(self.files.values(), key=lambda f: f.path):
            h.update(f"{f.path} {f.oid}\n".encode())
        self.sha = h.hexdigest()

    def dirs(self) -> set[str]:
        out = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out


class HubServer:
    """Start with :meth:`start` (or as a context manager); ``endpoint`` is the Hub URL.
    A subclass serves more by its own ``handler`` and ``http_server`` (tests/hubsearch.py)."""

    http_server: type[ThreadingHTTPServer] = ThreadingHTTPServer
    handler: type | None = None  # None: _Handler, the Hub protocol below

    def __init__(self, root: Path, *, page_size: int = 1000):
        self.root = Path(root)
        self._default_page_size = page_size
        self.token: str | None = None
        self.log: list[Req] = []
        self.reset()
        self._lock = threading.Lock()
        self._hash_cache: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def reset(self) -> "HubServer":
        """Every switch back to normal (no throttle, cut, corruption; Range honoured) and the
        request log emptied: what each test starts from when the server is shared."""
        self.page_size = self._default_page_size
        self.throttle_bps: float | None = None
        self.cut_after: int | None = None
        self.cuts_left = 0
        self.corrupt: set[str] = set()
        self.ignore_range = False
        self.log.clear()
        return self

    # -- lifecycle
    def start(self) -> "HubServer":
        server = self

        class Handler(self.handler or _Handler):
            hub = server

        self._httpd = self.http_server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="hubserver")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn(self) -> str:
        """The second origin file content is redirected to (same socket, another host name)."""
        return f"http://localhost:{self.port}"

    # -- helpers for tests
    def requests(self, method: str | None = None, contains: str = "") -> list[Req]:
        with self._lock:
            return [r for r in self.log if (method is None or r.method == method) and contains in r.path]

    def repo(self, repo_id: str) -> _Repo | None:
        folder = self.root / repo_id
        if repo_id.count("/") != 1 or not folder.is_dir():
            return None
        return _Repo(self, repo_id, folder)

    def file_sha256(self, repo_id: str, path: str) -> str:
        return self.repo(repo_id).files[path].sha256

    def _file_info(self, rel: str, p: Path) -> _File:
        st = p.stat()
        key = (str(p), st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._hash_cache.get(key)
        lfs = rel.endswith(".gguf") or st.st_size >= LFS_MIN
        if cached is None:
            sha = hashlib.sha256()
            git = hashlib.sha1(f"blob {st.st_size}\0".encode())
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    sha.update(chunk)
                    git.update(chunk)
            cached = (sha.hexdigest(), git.hexdigest())
            with self._lock:
                self._hash_cache[key] = cached
        sha, git_oid = cached
        if lfs:
            ptr = _pointer(sha, st.st_size)
            return _File(rel, p, st.st_size, sha, _git_oid(len(ptr), [ptr]), True, len(ptr))
        return _File(rel, p, st.st_size, sha, git_oid, False)

    def _find_blob(self, sha: str) -> _File | None:
        for ns in self.root.iterdir():
            if not ns.is_dir() or ns.name.startswith("."):
                continue
            for name in ns.iterdir():
                if name.is_dir():
                    for f in _Repo(self, f"{ns.name}/{name.name}", name).files.values():
                        if f.sha256 == sha and f.real is not None:
                            return f
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubServer

    def log_message(self, *args) -> None:  # quiet
        pass

    # -- plumbing
    def _log(self, status: int) -> None:
        with self.hub._lock:
            self.hub.log.append(Req(self.command, urlsplit(self.path).path, self.headers.get("Range"), status,
                                    "authorization" in {k.lower() for k in self.headers.keys()},
                                    self.headers.get("Host", "")))

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               ctype: str = "application/json") -> None:
        self._log(status)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or "Content-Length" not in (headers or {}):
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._reply(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None) -> None:
        h = {"X-Error-Message": message, **(extra or {})}
        if code:
            h["X-Error-Code"] = code
        self._json({"error": message}, status, h)

    def _repo_or_error(self, repo_id: str) -> _Repo | None:
        repo = self.hub.repo(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        if repo.meta.get("private"):
            auth = self.headers.get("Authorization", "")
            if not self.hub.token or auth != f"Bearer {self.hub.token}":
                self._error(401, "RepoNotFound", "Invalid username or password.")
                return None
        if repo.meta.get("gated"):
            self._error(403, "GatedRepo", f"Access to model {repo_id} is restricted.")
            return None
        return repo

    def _rev_ok(self, repo: _Repo, rev: str) -> bool:
        if rev in ("main", repo.sha):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return False

    @staticmethod
    def _entry(f: _File) -> dict[str, Any]:
        e: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
        if f.lfs:
            e["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
        return e

    # -- routes
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        raw_parts = url.path.split("/")[1:]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if raw_parts[:2] == ["api", "models"] and len(raw_parts) >= 4:
                return self._api_get(raw_parts[2:], query, url)
            if raw_parts and raw_parts[0] == "cdn" and len(raw_parts) == 2:
                return self._cdn(raw_parts[1])
            if len(raw_parts) >= 5 and raw_parts[2] == "resolve":
                return self._resolve(f"{unquote(raw_parts[0])}/{unquote(raw_parts[1])}", unquote(raw_parts[3]),
                                     "/".join(unquote(p) for p in raw_parts[4:]))
            self._error(404, None, f"no route {url.path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.split("/")[1:]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "paths-info":
            repo = self._repo_or_error(f"{unquote(parts[2])}/{unquote(parts[3])}")
            if repo is None or not self._rev_ok(repo, unquote(parts[5])):
                return
            wanted = parse_qs(body).get("paths", [])
            dirs = repo.dirs()
            out = []
            for p in wanted:
                p = p.strip("/")
                if p in repo.files:
                    out.append(self._entry(repo.files[p]))
                elif p in dirs:
                    out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "path": p})
            return self._json(out)
        self._error(404, None, f"no route {url.path}")

    def _api_get(self, parts: list[str], query: dict[str, str], url) -> None:
        repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
        repo = self._repo_or_error(repo_id)
        if repo is None:
            return
        rest = parts[2:]
        if not rest or rest[0] == "revision":
            if rest and (len(rest) < 2 or not self._rev_ok(repo, unquote(rest[1]))):
                return
            blobs = query.get("blobs") == "true"
            siblings = []
            for f in repo.files.values():
                s: dict[str, Any] = {"rfilename": f.path}
                if blobs:
                    s.update(size=f.size, blobId=f.oid)
                    if f.lfs:
                        s["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
                siblings.append(s)
            info = {"_id": repo.sha[:24], "id": repo_id, "modelId": repo_id, "sha": repo.sha,
                    "private": bool(repo.meta.get("private")), "gated": bool(repo.meta.get("gated")),
                    "disabled": False, "downloads": 0, "likes": 0, "tags": ["gguf"],
                    "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
                    "siblings": siblings}
            if "gguf" in repo.meta:
                info["gguf"] = repo.meta["gguf"]
            return self._json(info)
        if rest[0] == "tree" and len(rest) >= 2:
            if not self._rev_ok(repo, unquote(rest[1])):
                return
            base = "/".join(unquote(p) for p in rest[2:]).strip("/")
            recursive = query.get("recursive") == "true"
            dirs = repo.dirs()
            if base and base not in dirs:
                if base in repo.files:  # a file path: the Hub lists the file itself
                    return self._json([self._entry(repo.files[base])])
                return self._error(404, "EntryNotFound", f"{base} does not exist on {rest[1]}",
                                   {"X-Repo-Commit": repo.sha})
            prefix = base + "/" if base else ""
            entries: list[dict[str, Any]] = []
            for d in sorted(dirs):
                if d.startswith(prefix) and (recursive or "/" not in d[len(prefix):]):
                    entries.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "path": d})
            for f in sorted(repo.files.values(), key=lambda f: f.path):
                if f.path.startswith(prefix) and (recursive or "/" not in f.path[len(prefix):]):
                    entries.append(self._entry(f))
            entries.sort(key=lambda e: e["path"])
            start = int(query.get("cursor", 0))
            page = entries[start:start + self.hub.page_size]
            headers = {}
            if start + self.hub.page_size < len(entries):
                q = dict(query, cursor=str(start + self.hub.page_size))
                nxt = f"{self.hub.endpoint}{url.path}?" + "&".join(f"{k}={quote(str(v))}" for k, v in q.items())
                headers["Link"] = f'<{nxt}>; rel="next"'
            return self._json(page, headers=headers)
        self._error(404, None, f"no route {url.path}")

    def _resolve(self, repo_id: str, rev: str, path: str) -> None:
        repo = self._repo_or_error(repo_id)
        if repo is None or not self._rev_ok(repo, rev):
            return
        f = repo.files.get(path)
        if f is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", {"X-Repo-Commit": repo.sha})
        common = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes",
                  "Content-Disposition": f'attachment; filename="{path.rsplit("/", 1)[-1]}"'}
        if f.lfs:
            sig = base64.urlsafe_b64encode(os.urandom(12)).decode()
            loc = f"{self.hub.cdn}/cdn/{f.sha256}?X-Amz-Signature={sig}&X-Amz-Expires=3600"
            return self._reply(302, b"", {**common, "Location": loc, "X-Linked-Etag": f'"{f.sha256}"',
                                          "X-Linked-Size": str(f.size), "ETag": f'"{f.oid}"',
                                          "Content-Length": "0"})
        return self._content(f, {**common, "ETag": f'"{f.oid}"'}, f"{repo_id}/{path}")

    def _cdn(self, sha: str) -> None:
        f = self.hub._find_blob(sha)
        if f is None:
            return self._error(404, None, "no such blob")
        repo_path = None
        for rp in self.hub.corrupt:
            if rp.endswith("/" + f.path) or rp == f.path:
                repo_path = rp
        self._content(f, {"ETag": f'"{sha}"', "Accept-Ranges": "bytes",
                          "Content-Type": "application/octet-stream"}, repo_path)

    def _content(self, f: _File, headers: dict[str, str], repo_path: str | None) -> None:
        """Serve a file's bytes honouring Range and the test switches."""
        hub = self.hub
        size = f.size
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng and not hub.ignore_range and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a) if a else max(0, size - int(b))
            end = min(int(b), size - 1) if (a and b) else size - 1
            if start >= size:
                return self._reply(416, b"", {**headers, "Content-Range": f"bytes */{size}", "Content-Length": "0"})
            status = 206
        length = end - start + 1
        h = {**headers, "Content-Length": str(length)}
        if status == 206:
            h["Content-Range"] = f"bytes {start}-{end}/{size}"
        h.setdefault("Content-Type", "application/octet-stream")
        self._log(status)
        self.send_response(status)
        for k, v in h.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = None
        with hub._lock:
            if hub.cut_after is not None and hub.cuts_left > 0:
                hub.cuts_left -= 1
                cut = hub.cut_after
        corrupt = repo_path is not None and repo_path in hub.corrupt
        throttle = hub.throttle_bps
        with open(f.real, "rb") as fh:
            if cut is None and not corrupt and not throttle:
                sent, sock = 0, self.connection.fileno()
                while sent < length:
                    n = os.sendfile(sock, fh.fileno(), start + sent, length - sent)
                    if n == 0:
                        break
                    sent += n
                return
            fh.seek(start)
            sent = 0
            t0 = time.monotonic()
            flip_at = size // 2  # the byte that is wrong when corrupt
            while sent < length:
                chunk = bytearray(fh.read(min(CHUNK, length - sent)))
                pos = start + sent
                if corrupt and pos <= flip_at < pos + len(chunk):
                    chunk[flip_at - pos] ^= 0xFF
                if cut is not None and sent + len(chunk) > cut:
                    self.wfile.write(chunk[:max(0, cut - sent)])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                throttle = hub.throttle_bps
                if throttle:
                    ahead = sent / throttle - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)


def split_gguf(src: Path, folder: Path, count: int) -> list[Path]:
    """Split a real GGUF model into ``count`` shards the way ``llama-gguf-split`` does: shard 1
    keeps every KV pair, all shards get ``split.no`` (u16, 0-based), ``split.count`` (u16) and
    ``split.tensors.count`` (i32), tensors are dealt out in order with offsets re-based."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tui.core.downloads import gguf

    raw = src.read_bytes()
    h = gguf.parse(memoryview(raw), tensors=True)
    align = h.get("general.alignment", 32)
    kv_end = gguf.parse(memoryview(raw), tensors=False).header_size
    data_start = (h.header_size + align - 1) // align * align
    n_kv = struct.unpack_from("<Q", raw, 16)[0]
    tensors = h.tensors
    per = (len(tensors) + count - 1) // count
    stem = src.name[:-5]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        part = tensors[i * per:(i + 1) * per]
        split_kv = (_gstr("split.no") + struct.pack("<IH", 2, i) + _gstr("split.count") + struct.pack("<IH", 2, count)
                    + _gstr("split.tensors.count") + struct.pack("<Ii", 5, len(tensors)))
        if i == 0:
            head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(part), n_kv + 3)) + raw[24:kv_end] + split_kv
        else:
            head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(part), 3)) + split_kv
            if align != 32:
                head += _gstr("general.alignment") + struct.pack("<II", 4, align)
                struct.pack_into("<Q", head, 16, 4)
        blobs, off = [], 0
        for t in part:
            n = t.n_bytes
            head += _gstr(t.name) + struct.pack("<I", len(t.shape)) + struct.pack(f"<{len(t.shape)}Q", *t.shape)
            head += struct.pack("<IQ", t.type, off)
            blob = raw[data_start + t.offset:data_start + t.offset + n]
            blobs.append(blob + b"\0" * (-len(blob) % align))
            off += len(blobs[-1])
        head += b"\0" * (-len(head) % align)
        p = folder / f"{stem}-{i + 1:05d}-of-{count:05d}.gguf"
        with open(p, "wb") as fh:
            fh.write(head)
            for b in blobs:
                fh.write(b)
        out.append(p)
    return out


# --- the repos the download tests and the benchmark use ----------------------------------------

MIB = 1 << 20


def populate(root: Path, *, smollm: Path | None = None) -> dict[str, str]:
    """Fill ``root`` with test repos; returns model name -> repo id.

    * ``unsloth/Tiny-GGUF``: ``Q4_K_M/`` 3 shards, ``UD-IQ2_XXS/`` 2 shards, root ``Tiny-Q8_0.gguf``
      and ``mmproj-F16.gguf``, README/config, and a virtual 1 PB ``Huge/`` quant.
    * ``unsloth/Big-GGUF``: one 8 MiB file in ``Q4_K_M/`` (for kill/cancel mid-file).
    * ``secret/Private-GGUF``: private (needs the server's token); ``gated/Gated-GGUF``: gated (403).
    * ``HuggingFaceTB/SmolLM2-GGUF``: the real SmolLM2 split in 2 shards (when ``smollm`` is given).
    """
    tiny = root / "unsloth" / "Tiny-GGUF"
    write_split_model(tiny / "Q4_K_M", "Tiny-Q4_K_M", 3, shard_bytes=3 * MIB // 2, seed=1)
    write_split_model(tiny / "UD-IQ2_XXS", "Tiny-UD-IQ2_XXS", 2, shard_bytes=MIB, seed=2)
    write_gguf(tiny / "Tiny-Q8_0.gguf", model_kv(file_type=7), [("w", (1 << 18,), 0, _rand(3)(1 << 20))])
    write_gguf(tiny / "mmproj-F16.gguf", {"general.architecture": "clip"}, [("v", (64,), 0, bytes(256))])
    (tiny / "README.md").write_text("# Tiny\n")
    (tiny / "config.json").write_text('{"model_type": "glm4_moe"}\n')
    huge = {f"Huge/Tiny-Huge-0000{i}-of-00002.gguf": {"size": 10**15 // 2, "sha256": f"{i:064x}"} for i in (1, 2)}
    (tiny / ".hubmeta.json").write_text(json.dumps({"virtual": huge, "gguf": {"architecture": "glm4moe"}}))

    big = root / "unsloth" / "Big-GGUF"
    write_gguf(big / "Q4_K_M" / "Big-Q4_K_M.gguf", model_kv(), [("w", (2 * MIB,), 0, _rand(4)(8 * MIB))])

    private = root / "secret" / "Private-GGUF"
    write_gguf(private / "Q4_0" / "Private-Q4_0.gguf", model_kv(), [("w", (1024,), 0, _rand(5)(4096))])
    (private / ".hubmeta.json").write_text('{"private": true}')

    gated = root / "gated" / "Gated-GGUF"
    write_gguf(gated / "Q4_0" / "Gated-Q4_0.gguf", model_kv())
    (gated / ".hubmeta.json").write_text('{"gated": true}')

    repos = {"tiny": "unsloth/Tiny-GGUF", "big": "unsloth/Big-GGUF", "private": "secret/Private-GGUF",
             "gated": "gated/Gated-GGUF"}
    if smollm is not None:
        split_gguf(smollm, root / "HuggingFaceTB" / "SmolLM2-GGUF" / "Q4_1", 2)
        repos["smollm"] = "HuggingFaceTB/SmolLM2-GGUF"
    return repos


@dataclass(frozen=True)
class HubSpec:
    """What a test module's ``hub`` fixture (tests/conftest.py) serves: ``populate(root)`` fills
    the repos (its result is the server's ``repos``), ``server`` serves them, with ``token`` as
    the one the private repo wants. A module overrides the ``hub_spec`` fixture to change it."""

    populate: Any = populate
    server: type = HubServer
    token: str | None = None


def hub_environ(hub: HubServer, tmp_path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (os.environ) with every HF_*/HUGGING* variable dropped (the user's token and
    endpoint never reach a test), then HF_ENDPOINT at ``hub``, HF_HOME in ``tmp_path`` and no
    telemetry."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1")
    return env


def registry_json(models_dir: Path) -> dict[str, Any]:
    """models.json for :func:`populate`'s repos (plus a repo that does not exist)."""
    return {
        "settings": {"models_dir": str(models_dir)},
        "models": {
            "tiny": {"repo_id": "unsloth/Tiny-GGUF", "default_quant": "Q4_K_M",
                     "quants": {"Q4_K_M": {"pattern": "Q4_K_M/*.gguf", "size_gb": 0.005},
                                "UD-IQ2_XXS": {"size_gb": 0.002}, "Q8_0": {},
                                "Huge": {"pattern": "Huge/*.gguf", "size_gb": 1000000},
                                "Extras": {"files": ["README.md", "config.json"]}}},
            "big": {"repo_id": "unsloth/Big-GGUF", "default_quant": "Q4_K_M", "quants": {"Q4_K_M": {}}},
            "private": {"repo_id": "secret/Private-GGUF", "default_quant": "Q4_0", "quants": {"Q4_0": {}}},
            "ghost": {"repo_id": "unsloth/Nope-GGUF", "default_quant": "Q4_0", "quants": {"Q4_0": {}}},
            "gated": {"repo_id": "gated/Gated-GGUF", "default_quant": "Q4_0", "quants": {"Q4_0": {}}},
            "smollm": {"repo_id": "HuggingFaceTB/SmolLM2-GGUF", "default_quant": "Q4_1",
                       "quants": {"Q4_1": {"pattern": "Q4_1/*.gguf"}}},
        },
    }
