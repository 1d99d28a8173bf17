"""Header-only GGUF reader: metadata without reading the weights.

Works on a file on disk (memory-mapped, so only the header pages are read), on a partial
download (``.part``) and on the first bytes of a remote file fetched with a ``Range`` request.
When the bytes end before the header does, :class:`Truncated` says how many are needed
so the caller can fetch more (see :func:`tui.core.downloads.plan.remote_header`).

Decisions:

* Arrays are kept only when short (≤ :data:`SMALL_ARRAY` elements, e.g. per-layer head
  counts); long ones (the 150k-token vocabulary, 300k merges) keep only their length. String
  arrays must still be walked by their length prefixes; that walk is the whole cost
  (about 0.1–0.3 s for a 150k-token vocabulary) and is why this reader exists:
  ``gguf.GGUFReader`` builds one numpy view per element (≈20 s on the same file).
* The tensor-info section is parsed too when present (``tensors=True``), giving a histogram
  of ggml types by bytes: unsloth "UD-…" quants mix types and their ``general.file_type``
  is nominal.
* Split shards: only shard 1 (``-00001-of-``) carries model metadata; every shard carries
  ``split.no`` (0-based), ``split.count`` and ``split.tensors.count``.
* Big-endian files are recognised by their version field and read as such.

This module is stdlib-only and imports nothing from the UI.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
SMALL_ARRAY = 1024  # arrays up to this many elements are decoded; longer ones keep their length only

# value types
(T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY,
 T_UINT64, T_INT64, T_FLOAT64) = range(13)
_SCALAR_FMT = {T_UINT8: "B", T_INT8: "b", T_UINT16: "H", T_INT16: "h", T_UINT32: "I", T_INT32: "i",
               T_FLOAT32: "f", T_BOOL: "?", T_UINT64: "Q", T_INT64: "q", T_FLOAT64: "d"}
_SCALAR_SIZE = {t: struct.calcsize("<" + f) for t, f in _SCALAR_FMT.items()}

#: ggml tensor types: id -> (name, block size, bytes per block) (gguf-py constants.py)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
}

#: llama_ftype (general.file_type) -> the usual quant name (llama.h, without LLAMA_FTYPE_MOSTLY_)
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}


class GGUFError(ValueError):
    """Not a GGUF file, or a header we cannot read."""


class Truncated(GGUFError):
    """The bytes ended inside the header; ``need`` is a lower bound for the bytes required."""

    def __init__(self, need: int):
        self.need = need
        super().__init__(f"GGUF header continues past byte {need}")


@dataclass
class ArrayInfo:
    """A long array we did not decode: its element type and length."""

    type: int
    length: int


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: int
    offset: int

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.type, (f"type{self.type}", 1, 0))[0]

    @property
    def n_bytes(self) -> int | None:
        t = GGML_TYPES.get(self.type)
        if t is None:
            return None
        n = 1
        for d in self.shape:
            n *= d
        return n // t[1] * t[2]


@dataclass
class GGUFHeader:
    version: int
    tensor_count: int
    kv: dict[str, Any]
    header_size: int  # bytes up to the end of the KV section (or of tensor infos when parsed)
    tensors: list[TensorInfo] | None = None
    byteorder: str = "little"
    extra: dict[str, Any] = field(default_factory=dict)

    # -- the keys people ask about --------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.kv.get(key, default)

    def arch_key(self, suffix: str) -> Any:
        arch = self.architecture
        return self.kv.get(f"{arch}.{suffix}") if arch else None

    @property
    def architecture(self) -> str | None:
        return self.kv.get("general.architecture")

    @property
    def name(self) -> str | None:
        return self.kv.get("general.name")

    @property
    def size_label(self) -> str | None:
        return self.kv.get("general.size_label")

    @property
    def file_type(self) -> int | None:
        return self.kv.get("general.file_type")

    @property
    def file_type_name(self) -> str | None:
        ft = self.file_type
        return None if ft is None else FILE_TYPES.get(ft, f"ftype{ft}")

    @property
    def context_length(self) -> int | None:
        return self.arch_key("context_length")

    @property
    def block_count(self) -> int | None:
        return self.arch_key("block_count")

    @property
    def embedding_length(self) -> int | None:
        return self.arch_key("embedding_length")

    @property
    def expert_count(self) -> int | None:
        return self.arch_key("expert_count")

    @property
    def expert_used_count(self) -> int | None:
        return self.arch_key("expert_used_count")

    @property
    def vocab_size(self) -> int | None:
        toks = self.kv.get("tokenizer.ggml.tokens")
        if isinstance(toks, ArrayInfo):
            return toks.length
        return len(toks) if isinstance(toks, list) else None

    @property
    def split_no(self) -> int | None:
        """0-based shard number (``split.no``), None for an unsplit file."""
        return self.kv.get("split.no")

    @property
    def split_count(self) -> int | None:
        return self.kv.get("split.count")

    @property
    def has_chat_template(self) -> bool:
        return isinstance(self.kv.get("tokenizer.chat_template"), str)

    def type_histogram(self) -> dict[str, int]:
        """ggml type name -> bytes of this file's tensors of that type (largest first)."""
        if not self.tensors:
            return {}
        c: Counter[str] = Counter()
        for t in self.tensors:
            c[t.type_name] += t.n_bytes or 0
        return dict(c.most_common())

    def summary(self) -> dict[str, Any]:
        """The facts shown before a download, with None where the header does not say."""
        return {
            "architecture": self.architecture,
            "name": self.name,
            "size_label": self.size_label,
            "file_type": self.file_type_name,
            "context_length": self.context_length,
            "block_count": self.block_count,
            "embedding_length": self.embedding_length,
            "expert_count": self.expert_count,
            "expert_used_count": self.expert_used_count,
            "vocab_size": self.vocab_size,
            "split_count": self.split_count,
            "tensor_count": self.tensor_count,
            "tensor_types": self.type_histogram() or None,
        }


class _Reader:
    __slots__ = ("buf", "pos", "end", "e", "u32", "u64")

    def __init__(self, buf, byteorder: str):
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.e = "<" if byteorder == "little" else ">"
        self.u32 = struct.Struct(self.e + "I")
        self.u64 = struct.Struct(self.e + "Q")

    def need(self, n: int) -> None:
        if self.pos + n > self.end:
            raise Truncated(self.pos + n)

    def read_u32(self) -> int:
        self.need(4)
        v = self.u32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def read_u64(self) -> int:
        self.need(8)
        v = self.u64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def read_str(self) -> str:
        n = self.read_u64()
        self.need(n)
        s = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def read_scalar(self, t: int) -> Any:
        size = _SCALAR_SIZE[t]
        self.need(size)
        v = struct.unpack_from(self.e + _SCALAR_FMT[t], self.buf, self.pos)[0]
        self.pos += size
        return v

    def read_value(self, t: int) -> Any:
        if t == T_STRING:
            return self.read_str()
        if t == T_ARRAY:
            et = self.read_u32()
            n = self.read_u64()
            return self.read_array(et, n)
        if t in _SCALAR_FMT:
            return self.read_scalar(t)
        raise GGUFError(f"unknown GGUF value type {t} at byte {self.pos}")

    def read_array(self, et: int, n: int) -> Any:
        if et in _SCALAR_FMT:
            size = _SCALAR_SIZE[et] * n
            self.need(size)
            if n <= SMALL_ARRAY:
                v = list(struct.unpack_from(f"{self.e}{n}{_SCALAR_FMT[et]}", self.buf, self.pos))
                self.pos += size
                return v
            self.pos += size
            return ArrayInfo(et, n)
        if et == T_STRING:
            if n <= SMALL_ARRAY:
                return [self.read_str() for _ in range(n)]
            # the hot loop: walk length prefixes without decoding
            unpack = self.u64.unpack_from
            buf, pos, end = self.buf, self.pos, self.end
            for _ in range(n):
                if pos + 8 > end:
                    raise Truncated(pos + 8)
                pos += 8 + unpack(buf, pos)[0]
            if pos > end:
                raise Truncated(pos)
            self.pos = pos
            return ArrayInfo(et, n)
        if et == T_ARRAY:  # arrays of arrays: legal, never seen in practice
            items = [self.read_value(T_ARRAY) for _ in range(n)]
            return items if n <= SMALL_ARRAY else ArrayInfo(et, n)
        raise GGUFError(f"unknown GGUF array element type {et} at byte {self.pos}")


def parse(buf, *, tensors: bool = True, until_vocab: bool = False) -> GGUFHeader:
    """Parse a GGUF header from bytes/memoryview/mmap ``buf`` (the file's first bytes).

    Raises :class:`Truncated` when ``buf`` ends inside the KV section, :class:`GGUFError` when
    it is not GGUF. With ``tensors=True`` the tensor infos are parsed too; if they are cut off
    the header is returned without them (``tensors=None``) rather than failing.

    ``until_vocab``: stop at the first long string array (the vocabulary) once the architecture
    is known, keeping only its length, and return what was read (``extra["stopped_at"]`` names
    the key). The model's facts (architecture, context, layers, heads, experts, file type) come
    before the tokenizer in converted files; the vocabulary and merges behind it are most of a
    big header (several MB), so a quant table reads ~0.1 MB per quant instead. Keys after it
    (merges, the chat template, ``split.*``) and the tensor infos are then absent.
    """
    if len(buf) < 4:
        raise Truncated(24)
    if bytes(buf[:4]) != MAGIC:
        raise GGUFError(f"not a GGUF file (starts with {bytes(buf[:4])!r})")
    if len(buf) < 24:
        raise Truncated(24)
    version = struct.unpack_from("<I", buf, 4)[0]
    byteorder = "little"
    if version & 0xFFFF == 0 and version != 0:  # a big-endian file read as little-endian
        byteorder = "big"
        version = struct.unpack_from(">I", buf, 4)[0]
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version} (llmdeck reads versions 2 and 3)")
    r = _Reader(buf, byteorder)
    r.pos = 8
    n_tensors = r.read_u64()
    n_kv = r.read_u64()
    if n_kv > 1_000_000 or n_tensors > 10_000_000:
        raise GGUFError(f"implausible GGUF header (kv={n_kv}, tensors={n_tensors}): corrupt file?")
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.read_str()
        t = r.read_u32()
        if until_vocab and t == T_ARRAY and "general.architecture" in kv:
            at = r.pos
            et, n = r.read_u32(), r.read_u64()
            if et == T_STRING and n > SMALL_ARRAY:
                kv[key] = ArrayInfo(et, n)
                header = GGUFHeader(version=version, tensor_count=n_tensors, kv=kv, header_size=r.pos,
                                    byteorder=byteorder)
                header.extra["stopped_at"] = key
                return header
            r.pos = at
        kv[key] = r.read_value(t)
    header = GGUFHeader(version=version, tensor_count=n_tensors, kv=kv, header_size=r.pos,
                        byteorder=byteorder)
    if tensors:
        try:
            infos = []
            for _ in range(n_tensors):
                name = r.read_str()
                nd = r.read_u32()
                if nd > 8:
                    raise GGUFError(f"tensor {name!r} has {nd} dimensions: corrupt header?")
                r.need(8 * nd)
                shape = struct.unpack_from(f"{r.e}{nd}Q", r.buf, r.pos)
                r.pos += 8 * nd
                ttype = r.read_u32()
                off = r.read_u64()
                infos.append(TensorInfo(name, tuple(shape), ttype, off))
            header.tensors = infos
            header.header_size = r.pos
        except Truncated as exc:
            header.extra["tensors_truncated_at"] = exc.need
    return header


def read_file(path: str | os.PathLike, *, tensors: bool = True) -> GGUFHeader:
    """Read the header of a local GGUF file (complete or partial).

    The file is memory-mapped, so only the pages the header touches are read from disk.
    Raises :class:`GGUFError` with the file name when the file is not GGUF or too short.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise GGUFError(f"{p}: empty file, not GGUF")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                try:
                    return parse(mm, tensors=tensors)
                except Truncated:
                    raise GGUFError(f"{p}: the file ends inside the GGUF header "
                                    f"({size} bytes; a partial download?)") from None
                except GGUFError as exc:
                    raise GGUFError(f"{p}: {exc}") from None
    except OSError as exc:
        raise GGUFError(f"{p}: cannot read: {exc.strerror or exc}") from None


def read_model(first_shard: str | os.PathLike, *, tensors: bool = False) -> GGUFHeader:
    """Header of a model given its first file: for split models this is shard 1, which carries
    the metadata. A later shard is mapped back to shard 1 when it exists next to it."""
    from tui.core.modelfiles import SPLIT_RE

    p = Path(first_shard)
    m = SPLIT_RE.match(p.name)
    if m and int(m["idx"]) != 1:
        one = p.with_name(f"{m['prefix']}-00001-of-{m['count']}.gguf")
        if one.exists():
            p = one
    return read_file(p, tensors=tensors)
