"""The quant table of a Hub repo: every quant at the repo's current commit with its files,
exact bytes, split shards, the GGUF header of its first shard and the memory verdict for
this machine — what ``llmdeck quants``, ``llmdeck add REPO`` and the TUI's add screen show.

Decisions where the issue is silent:

* **One listing.** The commit is pinned (``model_info(repo).sha``) and the whole repo is
  listed once, recursively, at that commit; every header is read at the same commit.
* **Grouping.** A ``.gguf`` under a top folder belongs to the quant named like the folder
  (``UD-IQ2_XXS/…-00001-of-00003.gguf``). A root ``.gguf`` belongs to the quant its name
  carries (``GLM-5-Q4_K_M.gguf`` → ``Q4_K_M``, :func:`plan.quant_tag`; split root files are one
  quant); a root name carrying no known quant tag, or the tag of a folder quant, is a quant
  named by its stem (``M-Q8_0`` beside a ``Q8_0/`` folder). Files whose
  name starts with ``mmproj`` are vision projectors, listed apart and never part of a quant.
  Other files (README, config, safetensors) are counted as "other".
* **Headers** are read with ``Range`` requests (:func:`plan.remote_header`) concurrently, up
  to :data:`HEADER_WORKERS` at once, so a repo with 30 quants lists in about the time of its
  slowest request. Only up to the vocabulary (``gguf.parse(until_vocab=True)``): the facts
  shown come before it, and a big model's vocabulary and merges are megabytes per quant, so
  the first 256 KiB usually suffice; the download plan still reads the whole header. They are cached per commit in ``~/.cache/llmdeck/hub-headers/`` (a commit
  never changes, so the cache is never stale); a header that cannot be read is shown as
  such and does not fail the table.
* **Memory**: :func:`tui.core.memfit.estimate` with no params, i.e. weights + the KV cache at
  the model's own context length, against free VRAM and RAM now.
* A repo without GGUF files is an error (one line): llmdeck runs GGUF models with
  llama-server; other formats go in by hand with an engine entry (vllm, sglang).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core import memfit, modelfiles
from tui.core.downloads import gguf, hub
from tui.core.downloads.errors import DownloadError, HubError
from tui.core.downloads.plan import group_shards, quant_tag, remote_header

HEADER_WORKERS = 32
FACTS_FIRST = 256 << 10  # the first Range request per quant; more only while the facts need it
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_repo(text: str) -> tuple[str, str | None]:
    """``org/name``, ``hf.co/org/name``, ``https://huggingface.co/org/name[/tree/…]``, each with
    an optional ``:QUANT`` → (repo id, quant or None). Raises :class:`DownloadError`."""
    s = text.strip()
    s = re.sub(r"^https?://", "", s)
    s = re.sub(r"^(www\.)?(hf\.co|huggingface\.co)/", "", s)
    quant = None
    if ":" in s:
        s, _, quant = s.partition(":")
        quant = quant.strip() or None
    parts = [p for p in s.split("/") if p]
    if len(parts) >= 2:
        s = "/".join(parts[:2])
    if not _REPO_RE.match(s):
        raise DownloadError(f"'{text}' is not a Hub repo id: write org/name (e.g. unsloth/GLM-5-GGUF), "
                            "optionally with :QUANT")
    return s, quant


@dataclass
class QuantRow:
    quant: str
    files: list[str]  # repo paths, in order
    sizes: list[int]
    folder: str | None  # the top folder of a folder quant; None for root-file quants
    shards: int  # how many files (1 for an unsplit file)
    missing: list[str] = field(default_factory=list)  # shards a split set lacks in the repo
    header: gguf.GGUFHeader | None = None
    header_error: str | None = None
    fit: memfit.Fit | None = None

    @property
    def size_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def first(self) -> str:
        """The repo path whose header describes the model (shard 1, or the only file)."""
        for p in self.files:
            m = modelfiles.SPLIT_RE.match(p.rsplit("/", 1)[-1])
            if m and int(m["idx"]) == 1:
                return p
        return self.files[0]

    @property
    def pattern(self) -> str:
        """The models.json ``pattern`` selecting exactly these files (see ``plan.select_files``)."""
        if self.folder is not None:
            return f"{self.folder}/*.gguf"
        if len(self.files) == 1:
            return self.files[0]
        m = modelfiles.SPLIT_RE.match(self.first)
        return f"{m['prefix']}-*-of-{m['count']}.gguf" if m else self.files[0]

    def facts(self) -> dict[str, Any]:
        return self.header.summary() if self.header is not None else {}

    def to_json(self) -> dict[str, Any]:
        return {"quant": self.quant, "files": list(self.files), "sizes": list(self.sizes),
                "size_bytes": self.size_bytes, "shards": self.shards, "missing_shards": self.missing,
                "pattern": self.pattern, "header": self.header.summary() if self.header else None,
                "header_read_until": self.header.extra.get("stopped_at") if self.header else None,
                "header_error": self.header_error, "memory": self.fit.to_json() if self.fit else None}


@dataclass
class QuantTable:
    repo_id: str
    revision: str
    endpoint: str
    quants: list[QuantRow]
    mmproj: list[tuple[str, int]]
    other: list[tuple[str, int]]
    machine: memfit.Machine | None = None
    seconds: float = 0.0
    cached_headers: int = 0

    def row(self, quant: str) -> QuantRow | None:
        for r in self.quants:
            if r.quant == quant:
                return r
        for r in self.quants:  # the user typed the case differently
            if r.quant.lower() == quant.lower():
                return r
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.quants]


def group(entries: list[Any]) -> tuple[list[QuantRow], list[tuple[str, int]], list[tuple[str, int]]]:
    """Repo files (``RepoFile``-like: ``.path``, ``.size``) → (quants, mmproj files, other files)."""
    by_quant: dict[str, tuple[str | None, list[tuple[str, int]]]] = {}
    mmproj: list[tuple[str, int]] = []
    other: list[tuple[str, int]] = []
    # folders first: a folder quant keeps the bare name when a root file carries the same quant
    for e in sorted((e for e in entries if getattr(e, "size", None) is not None),
                    key=lambda e: ("/" not in e.path, e.path)):
        path, size = e.path, int(e.size)
        base = path.rsplit("/", 1)[-1]
        if not base.endswith(".gguf"):
            other.append((path, size))
            continue
        if base.lower().startswith("mmproj"):
            mmproj.append((path, size))
            continue
        if "/" in path:
            folder = path.split("/", 1)[0]
            key, where = folder, folder
        else:
            key, where = quant_tag(base[:-5]) or re.sub(r"-\d{5}-of-\d{5}$", "", base[:-5]), None
        prev = by_quant.get(key)
        if prev is not None and prev[0] != where:  # a root file and a folder with the same name
            key = re.sub(r"-\d{5}-of-\d{5}$", "", base[:-5])
        by_quant.setdefault(key, (where, []))[1].append((path, size))
    rows = []
    for key, (folder, files) in sorted(by_quant.items(), key=lambda kv: -sum(s for _, s in kv[1][1])):
        names = [p.rsplit("/", 1)[-1] for p, _ in files]
        groups = group_shards(names)
        rows.append(QuantRow(key, [p for p, _ in files], [s for _, s in files], folder, len(files),
                             missing=[m for g in groups for m in g.missing]))
    return rows, mmproj, other


# --- the header cache (per commit) -----------------------------------------------------------

def cache_dir() -> Path:
    from tui.core.provision import cache_dir as base

    return base() / "hub-headers"


def _enc(v: Any) -> Any:
    if isinstance(v, gguf.ArrayInfo):
        return {"__array__": [v.type, v.length]}
    return v


def _dec(v: Any) -> Any:
    if isinstance(v, dict) and "__array__" in v:
        return gguf.ArrayInfo(*v["__array__"])
    return v


def header_to_json(h: gguf.GGUFHeader) -> dict[str, Any]:
    return {"version": h.version, "tensor_count": h.tensor_count, "header_size": h.header_size,
            "byteorder": h.byteorder, "stopped_at": h.extra.get("stopped_at"),
            "kv": {k: _enc(v) for k, v in h.kv.items()},
            "tensors": [[t.name, list(t.shape), t.type, t.offset] for t in h.tensors]
            if h.tensors is not None else None}


def header_from_json(d: dict[str, Any]) -> gguf.GGUFHeader:
    tensors = d.get("tensors")
    h = gguf.GGUFHeader(d["version"], d["tensor_count"], {k: _dec(v) for k, v in d["kv"].items()},
                        d["header_size"],
                        [gguf.TensorInfo(n, tuple(s), t, o) for n, s, t, o in tensors]
                        if tensors is not None else None, d.get("byteorder", "little"))
    if d.get("stopped_at"):
        h.extra["stopped_at"] = d["stopped_at"]
    return h


def _cache_file(cache: Path, repo_id: str, revision: str) -> Path:
    return cache / repo_id.replace("/", "--") / f"{revision}.json"


def _load_cache(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path | None, data: dict[str, Any]) -> None:
    if path is None:
        return
    from tui.core.registry import atomic_write_text

    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        atomic_write_text(path, json.dumps(data))


# --- the table -------------------------------------------------------------------------------

def list_entries(repo_id: str, *, endpoint: str | None = None, token: str | None = None
                 ) -> tuple[str, str, str | None, list[Any]]:
    """(endpoint, pinned commit, token, every file of the repo at that commit)."""
    ep = hub.endpoint(endpoint)
    tok = hub.token() if token is None else (token or None)
    api = hub.api(ep, tok)
    try:
        revision = api.model_info(repo_id).sha
    except Exception as exc:
        err = hub.translate(exc, repo_id, ep, tok)
        if isinstance(err, HubError) and err.status == 404:
            err = HubError(f"{repo_id}: no such model repo on {ep} (404): check the name "
                           "(`llmdeck search TEXT` finds GGUF repos)", 404)
        raise err from None
    if not revision:
        raise HubError(f"{repo_id}: the Hub gave no commit sha for the repo", None)
    try:
        entries = _tree(repo_id, revision, ep, tok)
    except Exception as exc:
        raise hub.translate(exc, repo_id, ep, tok, revision=revision) from None
    return ep, revision, tok, entries


def _get(url: str, params: dict | None, tok: str | None, timeout: float = 10.0):
    """One GET to the Hub API, its error raised as huggingface_hub's. ``HfApi``'s listings page
    through ``http_backoff``, which sleeps out each 429's ``Retry-After`` up to 5 times (minutes,
    with log lines on stderr); here a refusal is answered at once, in one line."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    r = get_session().get(url, params=params, timeout=timeout,
                          headers=build_hf_headers(token=tok or False, library_name="llmdeck"))
    hf_raise_for_status(r)
    return r


def _tree(repo_id: str, revision: str, ep: str, tok: str | None) -> list[Any]:
    """``HfApi.list_repo_tree(repo, recursive=True, revision=…)``: the same request and
    objects, following the ``Link: rel="next"`` pages, without the retry loop (see :func:`_get`)."""
    from urllib.parse import quote

    from huggingface_hub.hf_api import RepoFile, RepoFolder

    url: str | None = f"{ep}/api/models/{repo_id}/tree/{quote(revision, safe='')}"
    params: dict | None = {"recursive": "true", "expand": "false"}
    out: list[Any] = []
    while url:
        r = _get(url, params, tok)
        out += [RepoFile(**e) if e.get("type") == "file" else RepoFolder(**e) for e in r.json()]
        url, params = r.links.get("next", {}).get("url"), None  # the next link carries the query
    return out


def quant_table(repo_id: str, *, endpoint: str | None = None, token: str | None = None,
                headers: bool = True, machine: memfit.Machine | None = None,
                cache: Path | None | bool = True, workers: int = HEADER_WORKERS,
                timeout: float = 10.0) -> QuantTable:
    """Every quant of ``repo_id`` (see the module docstring). ``token``: None = the user's
    (``HF_TOKEN`` or the token file), "" = none. ``cache``: True = the default folder, a path,
    or False/None for none. ``machine``: free memory to judge against (default: read now).
    Raises :class:`DownloadError` (one line)."""
    t0 = time.monotonic()
    ep, revision, tok, entries = list_entries(repo_id, endpoint=endpoint, token=token)
    rows, mmproj, other = group(entries)
    if not rows:
        what = f"{len(mmproj)} mmproj file(s) only" if mmproj else \
            f"{len(other)} file(s), none .gguf" if other else "no files"
        raise DownloadError(f"{repo_id}: no GGUF model files at {revision[:12]} ({what}): llmdeck adds GGUF "
                            "repos (search with `llmdeck search TEXT`); add other formats by hand with an "
                            "engine entry (vllm, sglang)")
    table = QuantTable(repo_id, revision, ep, rows, mmproj, other)
    if headers:
        cpath = None if cache is False or cache is None else _cache_file(
            cache_dir() if cache is True else Path(cache), repo_id, revision)
        cached = _load_cache(cpath)
        todo = []
        for r in rows:
            c = cached.get(r.first)
            if c is not None:
                with contextlib.suppress(Exception):
                    r.header = header_from_json(c)
                    table.cached_headers += 1
                    continue
            todo.append(r)

        refused: list[HubError] = []

        def read(r: QuantRow) -> None:
            try:
                r.header = remote_header(repo_id, r.first, revision, ep, tok, timeout=timeout,
                                         first=FACTS_FIRST, until_vocab=True)
            except (DownloadError, gguf.GGUFError, OSError) as exc:
                r.header_error = str(exc)
                if isinstance(exc, HubError) and exc.status in (401, 403):
                    refused.append(exc)

        if todo:
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo))),
                                    thread_name_prefix="gguf-header") as pool:
                list(pool.map(read, todo))
            if len(refused) == len(todo):  # a gated/private repo whose listing is public (as on the Hub)
                raise refused[0]
            fresh = {r.first: header_to_json(r.header) for r in todo if r.header is not None}
            if fresh:
                _save_cache(cpath, {**cached, **fresh})
    mach = machine if machine is not None else memfit.machine()
    table.machine = mach
    for r in rows:
        r.fit = memfit.estimate(r.size_bytes, r.header, None, mach)
    table.seconds = time.monotonic() - t0
    return table


# --- search ----------------------------------------------------------------------------------

@dataclass
class SearchHit:
    repo_id: str
    downloads: int | None
    likes: int | None
    last_modified: str | None
    params: int | None  # parameter count when the Hub reports it

    def to_json(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "downloads": self.downloads, "likes": self.likes,
                "last_modified": self.last_modified, "params": self.params}


def search(text: str, *, limit: int = 20, endpoint: str | None = None, token: str | None = None,
           timeout: float = 10.0) -> list[SearchHit]:
    """GGUF repos matching ``text``, most downloaded first: the request ``HfApi.list_models``
    sends (``/api/models?search=…&filter=gguf&sort=downloads``), made once (see :func:`_get`)."""
    from huggingface_hub.hf_api import ModelInfo

    ep = hub.endpoint(endpoint)
    tok = hub.token() if token is None else (token or None)
    params = {"search": text, "filter": "gguf", "sort": "downloads", "limit": limit,
              "expand": ["downloads", "likes", "lastModified", "gguf", "safetensors"]}
    out = []
    try:
        r = _get(f"{ep}/api/models", params, tok, timeout)
        for item in r.json()[:limit]:
            m = ModelInfo(**{"siblings": None, **item})
            params = None
            g = getattr(m, "gguf", None)
            if isinstance(g, dict) and isinstance(g.get("total"), int):
                params = g["total"]
            st = getattr(m, "safetensors", None)
            if params is None and st is not None and isinstance(getattr(st, "total", None), int):
                params = st.total
            lm = getattr(m, "last_modified", None)
            out.append(SearchHit(m.id, getattr(m, "downloads", None), getattr(m, "likes", None),
                                 lm.isoformat() if hasattr(lm, "isoformat") else (str(lm) if lm else None),
                                 params))
    except Exception as exc:
        raise hub.translate(exc, f"search '{text}'", ep, tok) from None
    return out
