"""Plan a download: the exact files of a quant at a pinned commit, their sizes and hashes,
split-shard groups, what is already on disk, the disk-space verdict and the model's GGUF
header read remotely with ``Range`` requests — all before a byte of weights moves.

Decisions where the issue is silent:

* **Which files make a quant.** The quant's ``files`` (exact repo paths) if given, else its
  ``pattern`` (fnmatch on the repo path, e.g. ``UD-IQ2_XXS/*.gguf``), else the folder named
  like the quant (every ``.gguf`` under it), else the root ``.gguf`` files whose name carries
  the quant (``…-Q4_K_M.gguf``). ``mmproj`` files are taken only when a pattern or list names
  them. A quant not in models.json may be named: it follows the last two rules.
* **Layout.** Files land flat in ``modelfiles.quant_dir`` (``models/<Repo-name>/<QUANT>/``)
  under their base name, as the seed's ``download_models.sh`` does.
* **Pinning.** ``model_info(repo).sha`` is resolved once; listing, HEADs and content all use
  that commit, so every shard comes from the same revision even if the repo moves meanwhile.
* **Disk check.** ``need = Σ(size − bytes already on disk)`` over files not yet complete,
  against ``shutil.disk_usage`` of the nearest existing ancestor of the target folder, keeping
  :data:`DISK_MARGIN` free. Partial files live beside their final names, so no 2× space.
* **Header.** Shard 1's header is read from disk when its file (or ``.part``) holds it, else
  fetched remotely: 1 MiB, then doubling (up to :data:`HEADER_MAX`) while the parser says it
  needs more. A header that cannot be read is reported, not fatal.
* A **manifest** ``.llmdeck-download.json`` (repo, commit, files, sizes, hashes) is written in
  the quant folder when a download starts, so ``llmdeck list`` can tell partial from complete
  without the network (:func:`tui.core.modelfiles.download_status`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core import modelfiles
from tui.core.downloads import gguf, hub
from tui.core.downloads.errors import DownloadError, HubError, NotEnoughSpace
from tui.core.verbs import download_refusal

if TYPE_CHECKING:
    from tui.core.registry import Model, Registry

DISK_MARGIN = 512 * 1024 * 1024  # bytes left free after the download
HEADER_FIRST = 1 << 20
HEADER_MAX = 64 << 20


@dataclass
class PlanFile:
    path: str  # path in the repo
    size: int
    sha256: str | None  # the LFS sha256 (None for small non-LFS files)
    blob_id: str | None  # git blob sha1 (what non-LFS files are checked against)
    dest: Path  # final local path
    have: int = 0  # bytes on disk: size when present, the .part's size when partial
    state: str = "missing"  # "present" | "partial" | "missing"

    @property
    def name(self) -> str:
        return self.dest.name

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + modelfiles.PARTIAL_SUFFIX)

    @property
    def need(self) -> int:
        return 0 if self.state == "present" else max(0, self.size - self.have)

    def refresh(self) -> None:
        """Re-read what is on disk for this file."""
        if self.dest.is_file() and self.dest.stat().st_size == self.size:
            self.have, self.state = self.size, "present"
        elif self.part.is_file():
            self.have = min(self.part.stat().st_size, self.size)
            self.state = "partial"
        else:
            self.have, self.state = 0, "missing"


@dataclass
class ShardGroup:
    prefix: str
    count: int
    names: list[str]  # local names present in the plan, in order
    missing: list[str]  # shard names the repo lacks (a broken upload)


@dataclass
class Plan:
    model: str
    repo_id: str
    quant: str
    revision: str  # the pinned commit sha
    endpoint: str
    target: Path  # the quant folder
    files: list[PlanFile]
    groups: list[ShardGroup] = field(default_factory=list)
    free_bytes: int | None = None
    header: gguf.GGUFHeader | None = None
    header_error: str | None = None
    header_source: str | None = None  # "local" | "remote"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def have_bytes(self) -> int:
        return sum(f.have for f in self.files)

    @property
    def need_bytes(self) -> int:
        return sum(f.need for f in self.files)

    @property
    def first(self) -> PlanFile | None:
        """The file to read metadata from and hand to llama-server (shard 1)."""
        for f in self.files:
            m = modelfiles.SPLIT_RE.match(f.name)
            if m and int(m["idx"]) == 1:
                return f
        for f in self.files:
            if f.name.endswith(".gguf") and not f.name.startswith("mmproj"):
                return f
        return None

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.need_bytes + (DISK_MARGIN if self.need_bytes else 0) <= self.free_bytes

    @property
    def complete(self) -> bool:
        return all(f.state == "present" for f in self.files)

    def refresh(self) -> None:
        for f in self.files:
            f.refresh()
        self.free_bytes = free_space(self.target)

    def check_space(self) -> None:
        """Raise :class:`NotEnoughSpace` unless the remaining bytes fit (plus the margin)."""
        if not self.fits:
            raise NotEnoughSpace(
                f"{self.model} {self.quant}: needs {_size(self.need_bytes)} more but {_existing(self.target)} "
                f"has {_size(self.free_bytes or 0)} free (keeping {_size(DISK_MARGIN)} spare): free some space, "
                "set models_dir in models.json to a bigger disk, or pass --force",
                self.need_bytes, self.free_bytes or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "repo_id": self.repo_id, "quant": self.quant, "revision": self.revision,
            "target": str(self.target), "total_bytes": self.total_bytes, "have_bytes": self.have_bytes,
            "need_bytes": self.need_bytes, "free_bytes": self.free_bytes, "fits": self.fits,
            "files": [{"path": f.path, "name": f.name, "size": f.size, "sha256": f.sha256, "state": f.state,
                       "have": f.have} for f in self.files],
            "shard_groups": [{"prefix": g.prefix, "count": g.count, "missing": g.missing} for g in self.groups],
            "header": self.header.summary() if self.header else None,
            "header_error": self.header_error,
        }

    def manifest(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "revision": self.revision, "quant": self.quant,
                "total_bytes": self.total_bytes,
                "files": [{"path": f.path, "name": f.name, "size": f.size, "sha256": f.sha256}
                          for f in self.files]}

    def write_manifest(self) -> None:
        import json

        from tui.core.registry import atomic_write_text

        path = self.target / modelfiles.MANIFEST_NAME
        atomic_write_text(path, json.dumps(self.manifest(), indent=1) + "\n")
        with contextlib.suppress(OSError):
            path.chmod(0o644)  # like the model files beside it (the temp file was 0600)


def _size(n: float) -> str:
    """Bytes in binary units, like the CLI's ``human_bytes`` (the core cannot import the CLI)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_space(target: Path) -> int:
    """Free bytes on the filesystem that will hold ``target`` (it need not exist yet)."""
    return shutil.disk_usage(_existing(target)).free


# --- choosing the files ----------------------------------------------------------------------

def _static_prefix(pattern: str) -> str:
    """The folder part of a glob before any wildcard: ``UD-IQ2_XXS/*.gguf`` → ``UD-IQ2_XXS``."""
    parts = pattern.split("/")[:-1]
    out = []
    for p in parts:
        if any(c in p for c in "*?["):
            break
        out.append(p)
    return "/".join(out)


def _quant_in_name(quant: str, name: str) -> bool:
    return re.search(rf"(^|[-_.]){re.escape(quant)}([-_.]|$)", name, re.IGNORECASE) is not None


def select_files(entries: list[Any], quant: str, q) -> list[Any]:
    """The repo files (``RepoFile``-like: ``.path``) making up ``quant`` (see module docstring)."""
    files = [e for e in entries if getattr(e, "size", None) is not None]  # RepoFolder has no size
    if q is not None and q.files:
        wanted = [f.strip("/") for f in q.files]
        by_path = {f.path: f for f in files}
        return [by_path[w] for w in wanted if w in by_path]
    if q is not None and q.pattern:
        return [f for f in files if fnmatch.fnmatchcase(f.path, q.pattern)]
    in_folder = [f for f in files if f.path.startswith(quant + "/") and f.path.endswith(".gguf")
                 and not f.path.rsplit("/", 1)[-1].startswith("mmproj")]
    if in_folder:
        return in_folder
    return [f for f in files if "/" not in f.path and f.path.endswith(".gguf")
            and not f.path.startswith("mmproj") and _quant_in_name(quant, f.path[:-5])]


def available_quants(entries: list[Any]) -> list[str]:
    """What a user could pass as --quant: top folders holding GGUFs and root single-file quants."""
    out: list[str] = []
    for e in entries:
        path = getattr(e, "path", "")
        if not path.endswith(".gguf"):
            continue
        if "/" in path:
            top = path.split("/", 1)[0]
            if top not in out:
                out.append(top)
        elif not path.startswith("mmproj"):
            tag = quant_tag(path[:-5]) or path
            if tag not in out:
                out.append(tag)
    return out


_TAG_RE = re.compile(r"[-_.]((?:UD-)?(?:I?Q\d[A-Z0-9_]*|[BF]F?16|F32|TQ\d_\d|MXFP4[A-Z_]*))$", re.IGNORECASE)


def quant_tag(stem: str) -> str | None:
    """The quant a root file's name carries: ``GLM-5-UD-Q4_K_XL`` → ``UD-Q4_K_XL`` (a split
    suffix ``-00001-of-00003`` is ignored), or None."""
    m = _TAG_RE.search(re.sub(r"-\d{5}-of-\d{5}$", "", stem))
    return m[1] if m else None


def group_shards(names: list[str]) -> list[ShardGroup]:
    groups: dict[tuple[str, int], list[int]] = {}
    for n in names:
        m = modelfiles.SPLIT_RE.match(n)
        if m:
            groups.setdefault((m["prefix"], int(m["count"])), []).append(int(m["idx"]))
    out = []
    for (prefix, count), idxs in sorted(groups.items()):
        have = set(idxs)
        out.append(ShardGroup(prefix, count,
                              [f"{prefix}-{i:05d}-of-{count:05d}.gguf" for i in sorted(have)],
                              [f"{prefix}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)
                               if i not in have]))
    return out


# --- the plan --------------------------------------------------------------------------------

def make_plan(registry: "Registry", model: "Model", quant: str | None = None, *,
              endpoint: str | None = None, token: str | None = None, read_header: bool = True,
              timeout: float = 10.0) -> Plan:
    """List the quant's files at the pinned commit and compare with the disk.

    ``token``: None means the user's token (``HF_TOKEN`` or the token file).
    Raises :class:`DownloadError` (one line) on a bad model/quant or a Hub refusal.
    """
    refusal = download_refusal(model, registry.path)  # external, model_path, no repo_id (tui.core.verbs)
    if refusal:
        raise DownloadError(refusal)
    qname = quant or model.default_quant
    if not qname:
        known = ", ".join(model.quants) or "none"
        raise DownloadError(f"model '{model.name}' has no default_quant: pass --quant (registered: {known})")
    q = model.quant(qname)
    ep = hub.endpoint(endpoint)
    tok = hub.token() if token is None else token
    api = hub.api(ep, tok)
    repo = model.repo_id
    try:
        revision = api.model_info(repo).sha
    except Exception as exc:
        raise hub.translate(exc, repo, ep, tok) from None
    if not revision:
        raise HubError(f"{repo}: the Hub gave no commit sha for the repo", None)

    folder = ""
    if q is not None and q.files:
        folder = _static_prefix(q.files[0]) if len({_static_prefix(f) for f in q.files}) == 1 else ""
    elif q is not None and q.pattern:
        folder = _static_prefix(q.pattern)
    entries = _list(api, repo, folder, revision, ep, tok)
    if entries is None:  # the folder does not exist: say what does
        entries = []
    chosen = select_files(entries, qname, q)
    if not chosen:
        root = entries if folder == "" else (_list(api, repo, "", revision, ep, tok) or [])
        avail = available_quants(root)
        what = (f"pattern '{q.pattern}'" if q and q.pattern else
                f"files {list(q.files)}" if q and q.files else f"quant '{qname}'")
        raise DownloadError(f"{repo}: no files match {what} at {revision[:12]}; "
                            f"quants in the repo: {', '.join(avail) or 'none'}")
    if q is not None and q.files:
        missing = [f for f in q.files if f.strip("/") not in {c.path for c in chosen}]
        if missing:
            raise DownloadError(f"{repo}: {', '.join(missing)} not in the repo at {revision[:12]} "
                                f"(models.{model.name}.quants.{qname}.files)")

    target = modelfiles.quant_dir(registry, model, qname)
    pfiles: list[PlanFile] = []
    seen: dict[str, str] = {}
    for e in chosen:
        base = e.path.rsplit("/", 1)[-1]
        if base in seen:
            raise DownloadError(f"{repo}: {seen[base]} and {e.path} would both be saved as {base}: "
                                f"narrow models.{model.name}.quants.{qname}.pattern")
        seen[base] = e.path
        lfs = getattr(e, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        pf = PlanFile(e.path, int(e.size), sha, getattr(e, "blob_id", None), target / base)
        pf.refresh()
        pfiles.append(pf)
    plan = Plan(model.name, repo, qname, revision, ep, target, pfiles,
                groups=group_shards([f.name for f in pfiles]), free_bytes=free_space(target))
    if read_header:
        _attach_header(plan, tok, timeout)
    return plan


def _list(api, repo: str, folder: str, revision: str, ep: str, tok: str | None) -> list[Any] | None:
    from huggingface_hub import errors as e

    try:
        return list(api.list_repo_tree(repo, path_in_repo=folder or None, recursive=True, revision=revision))
    except e.RemoteEntryNotFoundError:
        return None
    except e.EntryNotFoundError:
        return None
    except Exception as exc:
        raise hub.translate(exc, repo, ep, tok, path=folder or None, revision=revision) from None


def _attach_header(plan: Plan, tok: str | None, timeout: float) -> None:
    first = plan.first
    if first is None:
        return
    for local in (first.dest, first.part):
        if local.is_file():
            try:
                plan.header = gguf.read_file(local, tensors=True)
                plan.header_source = "local"
                return
            except gguf.GGUFError:
                pass  # too short a partial: read it remotely
    try:
        plan.header = remote_header(plan.repo_id, first.path, plan.revision, plan.endpoint, tok,
                                    timeout=timeout)
        plan.header_source = "remote"
    except (DownloadError, gguf.GGUFError, OSError) as exc:
        plan.header_error = str(exc)


def remote_header(repo_id: str, path: str, revision: str, ep: str, tok: str | None, *,
                  timeout: float = 10.0, first: int = HEADER_FIRST, limit: int = HEADER_MAX,
                  until_vocab: bool = False) -> gguf.GGUFHeader:
    """Read a GGUF header from the Hub with ``Range`` requests (1 MiB, then more as needed).
    ``until_vocab``: only the model's facts, up to the vocabulary (see :func:`gguf.parse`)."""
    from tui.core.downloads import fetch

    loc = hub.file_location(repo_id, path, revision, ep, tok)
    headers = hub.auth_headers(loc.url, ep, tok)
    size = loc.size
    buf = bytearray()
    want = first
    while True:
        if size is not None:
            want = min(want, size)
        if want > len(buf):
            try:
                buf += fetch.get_bytes(loc.url, len(buf), want - 1, headers=headers, timeout=timeout)
            except fetch.HTTPStatus as exc:
                raise HubError(f"{repo_id} ({path}): reading the GGUF header: HTTP {exc.status}", exc.status) \
                    from None
            except fetch.FetchError as exc:
                raise HubError(f"{repo_id} ({path}): reading the GGUF header: {exc}", None) from None
        try:
            h = gguf.parse(memoryview(buf), tensors=not until_vocab, until_vocab=until_vocab)
        except gguf.Truncated as t:
            if len(buf) >= limit or (size is not None and len(buf) >= size):
                raise gguf.GGUFError(f"{path}: GGUF header larger than {len(buf)} bytes") from None
            want = min(limit, max(t.need + 4096, len(buf) * 2))
            continue
        except gguf.GGUFError as exc:
            raise gguf.GGUFError(f"{path}: {exc}") from None
        # tensor infos cut off: fetch a little more once, they help name the quant
        cut = h.extra.get("tensors_truncated_at")
        if cut and len(buf) < limit and (size is None or len(buf) < size):
            want = min(limit, max(cut + 65536, len(buf) * 2))
            if want > len(buf):
                continue
        h.extra["bytes_read"] = len(buf)
        return h
