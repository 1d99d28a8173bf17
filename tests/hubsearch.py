"""The local Hub test server (:mod:`hubserver`) extended for ``llmdeck quants/search/add``:

* ``GET /api/models?search=…&filter=gguf&sort=downloads&limit=N`` — repo search (repo ids
  containing the text, case-insensitive; ``filter=gguf`` keeps repos with a ``.gguf`` file;
  ``downloads``/``likes``/``params`` from each repo's ``.hubmeta.json``);
* ``delay`` — seconds added to every request (the benchmark's 50 ms Hub);
* ``rate_limit`` — how many next requests (whose path contains ``rate_limit_path``) answer 429
  with ``Retry-After: <retry_after>``.

:func:`populate_glm` writes repos shaped like ``unsloth/GLM-5-GGUF`` (folder quants split in
shards, root-file quants one of them split, an ``mmproj``, non-GGUF files), a Qwen3 repo, a
repo of an unknown family, one with no GGUF files, plus the private and gated repos;
:func:`populate_many` a repo with N folder quants (the benchmark).
"""

from __future__ import annotations

import json
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hubserver import HubServer, _Handler, model_kv, write_gguf, write_split_model

KIB = 1024

#: quant -> (file_type, files): folder quants as (folder, shards), root quants as (None, shards)
GLM_QUANTS = {"UD-IQ2_XXS": (19, "UD-IQ2_XXS", 3), "UD-TQ1_0": (36, "UD-TQ1_0", 2),
              "Q4_K_M": (15, None, 1), "Q2_K": (10, None, 2)}


class _SearchHandler(_Handler):
    def do_GET(self) -> None:
        hub = self.hub
        if hub.delay:
            time.sleep(hub.delay)
        with hub._lock:
            limited = hub.rate_limit > 0 and hub.rate_limit_path in self.path
            if limited:
                hub.rate_limit -= 1
        if limited:
            return self._error(429, None, "You have exceeded our hourly quotas for action: api. Retry later.",
                               {"Retry-After": str(hub.retry_after)})
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/api/models":
            return self._search({k: v for k, v in parse_qs(url.query).items()})
        return super().do_GET()

    def _repo_or_error(self, repo_id: str):
        """``{"gated_files": true}``: gated as on the real Hub, where repo info and the listing
        are public and only the files answer 403 ``GatedRepo``."""
        repo = super()._repo_or_error(repo_id)
        if repo is not None and repo.meta.get("gated_files") and "/resolve/" in self.path:
            self._error(403, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to it "
                        "and be authenticated to access it. Please log in.")
            return None
        return repo

    def _search(self, q: dict[str, list[str]]) -> None:
        text = (q.get("search") or [""])[-1].lower()
        filters = q.get("filter", [])
        limit = int((q.get("limit") or ["1000"])[-1])
        out = []
        for ns in sorted(p for p in self.hub.root.iterdir() if p.is_dir()):
            for folder in sorted(p for p in ns.iterdir() if p.is_dir()):
                repo_id = f"{ns.name}/{folder.name}"
                if text not in repo_id.lower():
                    continue
                meta_path = folder / ".hubmeta.json"
                meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
                if meta.get("private"):
                    continue
                has_gguf = any(folder.rglob("*.gguf"))
                if "gguf" in filters and not has_gguf:
                    continue
                item = {"_id": repo_id, "id": repo_id, "modelId": repo_id, "downloads": meta.get("downloads", 0),
                        "likes": meta.get("likes", 0), "lastModified": "2026-02-11T10:00:00.000Z",
                        "private": False, "tags": ["gguf"] if has_gguf else []}
                if meta.get("params"):
                    item["gguf"] = {"total": meta["params"]}
                out.append(item)
        out.sort(key=lambda i: -i["downloads"])
        self._json(out[:limit])


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: with 30 header reads connecting at once the
    # kernel drops SYNs and the client retries after 1 s, a stall no real Hub has
    request_queue_size = 128


class SearchHubServer(HubServer):
    http_server = _Server
    handler = _SearchHandler

    def __init__(self, root: Path, **kw):
        super().__init__(root, **kw)
        self.delay = 0.0
        self.rate_limit = 0
        self.rate_limit_path = ""  # only requests whose path contains this are limited
        self.retry_after = 7

    def reset(self) -> "SearchHubServer":
        super().reset()
        self.delay = 0.0
        self.rate_limit = 0
        self.rate_limit_path = ""
        return self

    # The base server rescans (and stats every file of) a repo on every request, and every repo
    # for each CDN request: fine for download tests, but with 30 requests in flight that CPU,
    # not the client, would be what the benchmark measures. Repos here are written before the
    # server starts and never change, so scan each once.
    def repo(self, repo_id: str):
        cache = self.__dict__.setdefault("_repos", {})
        if repo_id not in cache:
            cache[repo_id] = super().repo(repo_id)
        return cache[repo_id]

    def _find_blob(self, sha: str):
        index = self.__dict__.get("_blobs")
        if index is None:
            index = {}
            for ns in self.root.iterdir():
                for name in (ns.iterdir() if ns.is_dir() and not ns.name.startswith(".") else ()):
                    r = self.repo(f"{ns.name}/{name.name}") if name.is_dir() else None
                    for f in (r.files.values() if r else ()):
                        if f.real is not None:
                            index.setdefault(f.sha256, f)
            self._blobs = index
        return index.get(sha)


def _meta(folder: Path, **meta) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".hubmeta.json").write_text(json.dumps(meta))


def populate_glm(root: Path) -> dict[str, str]:
    """The repos for the add/quants/search tests; returns a short key -> repo id."""
    glm = root / "unsloth" / "GLM-5-GGUF"
    for i, (q, (ft, folder, n)) in enumerate(GLM_QUANTS.items()):
        # a 20,000-token vocabulary: shard 1's header (~0.4 MB) is larger than the table's first read
        base = model_kv("glm4moe", name="GLM-5", file_type=ft, layers=6, experts=16, used=4, ctx=202752,
                        vocab=20000)
        kv = {k: v for k, v in base.items() if not k.startswith("tokenizer.")}
        kv.update({"general.basename": "GLM-5", "glm4moe.attention.head_count_kv": 2})
        kv.update({k: v for k, v in base.items() if k.startswith("tokenizer.")})  # the tokenizer last, as converted
        size = (96 + 32 * i) * KIB
        if folder:
            write_split_model(glm / folder, f"GLM-5-{q}", n, shard_bytes=size, kv=kv, seed=10 + i)
        elif n > 1:
            write_split_model(glm, f"GLM-5-{q}", n, shard_bytes=size, kv=kv, seed=10 + i)
        else:
            write_gguf(glm / f"GLM-5-{q}.gguf", kv, [("w", (size // 4,), 0, bytes(size))])
    write_gguf(glm / "mmproj-F16.gguf", {"general.architecture": "clip"}, [("v", (64,), 0, bytes(256))])
    (glm / "README.md").write_text("# GLM-5 GGUF (test copy)\n")
    (glm / "config.json").write_text('{"model_type": "glm_moe_dsa"}\n')
    (glm / "imatrix_unsloth.gguf_file").write_bytes(b"\0" * 4096)
    _meta(glm, downloads=91234, likes=512, params=744_000_000_000)

    glm47 = root / "unsloth" / "GLM-4.7-Flash-GGUF"
    write_gguf(glm47 / "GLM-4.7-Flash-Q4_K_M.gguf", model_kv("deepseek2", name="GLM-4.7-Flash"))
    _meta(glm47, downloads=50000, likes=300, params=30_000_000_000)

    qwen = root / "Qwen" / "Qwen3-8B-GGUF"
    write_gguf(qwen / "Qwen3-8B-Q4_K_M.gguf", model_kv("qwen3", name="Qwen3 8B", experts=0, used=0),
               [("w", (1024,), 0, bytes(4096))])
    _meta(qwen, downloads=70000, likes=400, params=8_190_000_000)

    odd = root / "acme" / "Mystery-GGUF"
    write_gguf(odd / "Mystery-Q8_0.gguf", model_kv("mysterynet", name="Mystery", file_type=7))
    _meta(odd, downloads=3, likes=0)

    st = root / "acme" / "Safetensors-Only"
    st.mkdir(parents=True, exist_ok=True)
    (st / "model.safetensors").write_bytes(b"\0" * 2048)
    (st / "config.json").write_text("{}\n")

    private = root / "secret" / "Private-GGUF"
    write_gguf(private / "Q4_0" / "Private-Q4_0.gguf", model_kv())
    _meta(private, private=True)
    gated = root / "gated" / "Gated-GGUF"
    write_gguf(gated / "Q4_0" / "Gated-Q4_0.gguf", model_kv())
    _meta(gated, gated=True)
    hubgated = root / "meta-llama" / "Llama-Gated-GGUF"
    write_split_model(hubgated / "Q4_K_M", "Llama-Gated-Q4_K_M", 2, shard_bytes=8 * KIB)
    _meta(hubgated, gated_files=True)
    return {"hubgated": "meta-llama/Llama-Gated-GGUF", "glm": "unsloth/GLM-5-GGUF", "glm47": "unsloth/GLM-4.7-Flash-GGUF", "qwen": "Qwen/Qwen3-8B-GGUF",
            "odd": "acme/Mystery-GGUF", "st": "acme/Safetensors-Only", "private": "secret/Private-GGUF",
            "gated": "gated/Gated-GGUF"}


def populate_many(root: Path, n: int = 30, repo: str = "bench/Many-GGUF") -> str:
    """A repo with ``n`` folder quants of 2 shards each (shard 1 carries a 2000-token vocabulary)."""
    base = root / repo
    for i in range(n):
        q = f"Q{i:02d}_K"
        kv = model_kv("glm4moe", name="Many", vocab=2000)
        write_split_model(base / q, f"Many-{q}", 2, shard_bytes=16 * KIB, kv=kv, seed=100 + i)
    return repo
