"""Where a model's files are on disk, and whether they are complete.

Seed layout: ``<models_dir>/<Repo-name>/<QUANT>/<file>.gguf`` — e.g.
``models/GLM-5-GGUF/UD-IQ2_XXS/GLM-5-UD-IQ2_XXS-00001-of-00006.gguf``. A ``model_path`` in the
entry (a file, or a folder of GGUF files) is used instead. Split GGUFs are named
``<prefix>-00001-of-0000N.gguf``; llama-server is given shard 1 and finds the others itself,
so we check every shard is present first. Partial downloads have a ``.part`` suffix.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui.core.registry import Model, Registry

SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<idx>\d{5})-of-(?P<count>\d{5})\.gguf$")
PARTIAL_SUFFIX = ".part"


def repo_folder(repo_id: str) -> str:
    """``unsloth/GLM-5-GGUF`` → ``GLM-5-GGUF``."""
    return repo_id.rstrip("/").split("/")[-1]


def quant_dir(registry: "Registry", model: "Model", quant: str) -> Path:
    base = repo_folder(model.repo_id) if model.repo_id else model.name
    return registry.models_dir / base / quant


@dataclass
class LocalFiles:
    """What is on disk for one model/quant."""

    status: str  # "present", "partial", "missing", "incomplete" (shards missing)
    first: Path | None = None  # the file to pass to the server (shard 1)
    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    partial_bytes: int = 0
    bytes: int = 0
    where: Path | None = None


def _match(path: Path, pattern: str | None) -> bool:
    if not pattern:
        return path.suffix == ".gguf"
    return fnmatch.fnmatch(path.name, pattern.rsplit("/", 1)[-1])


def check_shards(files: list[Path]) -> tuple[Path | None, list[str]]:
    """The first file to load and the names of missing shards of any split set."""
    ggufs = sorted(f for f in files if f.suffix == ".gguf")
    if not ggufs:
        return None, []
    groups: dict[tuple[str, int], set[int]] = {}
    singles: list[Path] = []
    for f in ggufs:
        m = SPLIT_RE.match(f.name)
        if m:
            groups.setdefault((m["prefix"], int(m["count"])), set()).add(int(m["idx"]))
        elif not f.name.startswith("mmproj"):
            singles.append(f)
    missing: list[str] = []
    first: Path | None = None
    for (prefix, count), idxs in sorted(groups.items()):
        for i in range(1, count + 1):
            if i not in idxs:
                missing.append(f"{prefix}-{i:05d}-of-{count:05d}.gguf")
        if first is None:
            first = ggufs[0].parent / f"{prefix}-00001-of-{count:05d}.gguf"
    if first is None and singles:
        first = singles[0]
    return first, missing


def local_files(registry: "Registry", model: "Model", quant: str | None = None) -> LocalFiles:
    if model.model_path:
        p = registry.resolve(model.model_path)
        if p.is_dir():
            files = sorted(x for x in p.iterdir() if x.is_file())
            where = p
        elif p.exists():
            files = sorted(x for x in p.parent.iterdir() if x.is_file() and x.suffix == ".gguf") \
                if SPLIT_RE.match(p.name) else [p]
            where = p.parent
        else:
            return LocalFiles("missing", where=p, missing=[str(p)])
        first, missing = check_shards(files)
        if p.is_file() and not SPLIT_RE.match(p.name):
            first = p
        gg = [f for f in files if f.suffix == ".gguf"]
        if not gg and p.is_file():
            gg = [p]
            first = p
        return LocalFiles("incomplete" if missing else ("present" if first else "missing"),
                          first=first, files=gg, missing=missing, where=where,
                          bytes=sum(f.stat().st_size for f in gg))
    q = model.quant(quant)
    qname = quant or model.default_quant
    if qname is None:
        return LocalFiles("missing")
    d = quant_dir(registry, model, qname)
    if not d.is_dir():
        return LocalFiles("missing", where=d)
    pattern = q.pattern if q else None
    files = [f for f in sorted(d.iterdir()) if f.is_file() and _match(f, pattern)]
    partials = [f for f in sorted(d.iterdir()) if f.name.endswith(PARTIAL_SUFFIX)]
    first, missing = check_shards(files)
    if q and q.files:
        names = {f.name for f in files}
        missing += [n.rsplit("/", 1)[-1] for n in q.files if n.rsplit("/", 1)[-1] not in names]
    pbytes = sum(f.stat().st_size for f in partials)
    status = "present" if first and not missing else ("partial" if partials else
                                                      ("incomplete" if files else "missing"))
    return LocalFiles(status, first=first, files=files, missing=sorted(set(missing)),
                      partial_bytes=pbytes, bytes=sum(f.stat().st_size for f in files), where=d)


#: written in a quant folder by ``llmdeck download``: repo, commit, and every file with its size
MANIFEST_NAME = ".llmdeck-download.json"


@dataclass
class QuantDownload:
    """How much of one quant is on disk (for ``llmdeck list`` and the TUI)."""

    status: str  # "present" (complete), "partial" (some bytes or some files), "missing"
    bytes_done: int
    bytes_total: int | None  # exact when a download was planned here, else from size_gb, else None

    def as_dict(self) -> dict:
        return {"status": self.status, "bytes_done": self.bytes_done, "bytes_total": self.bytes_total}


def _manifest(d: Path) -> dict | None:
    import json

    try:
        m = json.loads((d / MANIFEST_NAME).read_text())
        return m if isinstance(m, dict) and isinstance(m.get("files"), list) else None
    except (OSError, ValueError):
        return None


def quant_download(registry: "Registry", model: "Model", quant: str) -> QuantDownload:
    """Download state of one quant, from the disk only (no network).

    With the manifest a download left: each listed file counts its final size when complete,
    else its ``.part`` bytes. Without one (files put there by hand or another tool):
    :func:`local_files` decides, and the total comes from the quant's ``size_gb``.
    """
    d = quant_dir(registry, model, quant)
    q = model.quant(quant)
    m = _manifest(d) if d.is_dir() else None
    if m is not None:
        done, complete = 0, True
        total = 0
        for f in m["files"]:
            try:
                name, size = str(f["name"]), int(f["size"])
            except (KeyError, TypeError, ValueError):
                m = None
                break
            total += size
            final, part = d / name, d / (name + PARTIAL_SUFFIX)
            if final.is_file() and final.stat().st_size == size:
                done += size
                continue
            complete = False
            if part.is_file():
                done += min(part.stat().st_size, size)
        if m is not None:
            status = "present" if complete else ("partial" if done else "missing")
            return QuantDownload(status, done, total)
    lf = local_files(registry, model, quant)
    done = lf.bytes + lf.partial_bytes
    total = int(q.size_gb * 1e9) if q and q.size_gb else (lf.bytes if lf.status == "present" else None)
    status = "present" if lf.status == "present" else ("partial" if done else "missing")
    return QuantDownload(status, done, total)


def download_status(registry: "Registry", model: "Model") -> dict[str, dict]:
    """Per quant of ``model``: ``{"status", "bytes_done", "bytes_total"}`` (see :func:`quant_download`).

    Covers the registered quants and any other quant folder a download left a manifest in.
    Models with ``model_path`` (files managed by the user) have no downloads: ``{}``.
    """
    if model.model_path:
        return {}
    names = list(model.quants)
    base = quant_dir(registry, model, "x").parent
    if base.is_dir():
        for d in sorted(base.iterdir()):
            if d.is_dir() and d.name not in names and (d / MANIFEST_NAME).is_file():
                names.append(d.name)
    return {q: quant_download(registry, model, q).as_dict() for q in names}


def deletable_files(registry: "Registry", model: "Model", quant: str) -> list[Path]:
    """What deleting a quant removes: its files in ``quant_dir`` (those its pattern matches),
    partial downloads (``.part`` and their locks) and the download manifest. Nothing else in the
    folder, and never a ``model_path`` (those files are the user's)."""
    if model.model_path:
        return []
    d = quant_dir(registry, model, quant)
    if not d.is_dir():
        return []
    q = model.quant(quant)
    pattern = q.pattern if q else None
    out = []
    for f in sorted(d.iterdir()):
        if not f.is_file() or f.is_symlink():
            continue
        if (_match(f, pattern) or f.name.endswith(PARTIAL_SUFFIX) or f.name.endswith(PARTIAL_SUFFIX + ".lock")
                or f.name == MANIFEST_NAME):
            out.append(f)
    return out


def delete_quant(registry: "Registry", model: "Model", quant: str) -> tuple[list[Path], int]:
    """Remove :func:`deletable_files`; the quant folder (and the repo folder) go when left empty.
    Returns the files removed and their bytes. The caller checks no server uses them."""
    files = deletable_files(registry, model, quant)
    total = 0
    for f in files:
        try:
            total += f.stat().st_size
            f.unlink()
        except FileNotFoundError:
            pass
    d = quant_dir(registry, model, quant)
    for folder in (d, d.parent):
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break
    return files, total
