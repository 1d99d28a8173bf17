"""The header-only GGUF reader: the real SmolLM2 file, a 150k-token vocabulary under 0.5 s,
split shards (metadata in shard 1 only), partial files and byte buffers cut short."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from hubserver import gguf_bytes, model_kv, split_gguf, write_gguf, write_split_model
from tui.core.downloads import gguf

pytestmark = pytest.mark.timeout(60)


def test_real_smollm2_header(smollm_gguf: Path):
    h = gguf.read_file(smollm_gguf)
    assert h.version == 3
    assert h.architecture == "llama"
    assert h.block_count == 30
    assert h.context_length == 8192
    assert h.embedding_length == 576
    assert h.file_type_name == "Q4_1"
    assert h.vocab_size == 49152
    assert h.expert_count is None and h.split_count is None
    assert h.tensor_count == len(h.tensors) == 272
    # the tensor table accounts for every byte of the file: offsets, shapes and type sizes are right
    align = h.get("general.alignment", 32)
    data_start = (h.header_size + align - 1) // align * align
    last = max(h.tensors, key=lambda t: t.offset)
    assert data_start + last.offset + last.n_bytes == smollm_gguf.stat().st_size
    hist = h.type_histogram()
    assert list(hist)[0] == "Q4_1" and set(hist) == {"Q4_1", "Q8_0", "F32"}
    assert h.summary()["tensor_types"] == hist


def test_150k_vocabulary_reads_under_half_a_second(tmp_path: Path):
    # a GLM-sized tokenizer: 151,552 tokens, their types, 318,088 merges, a chat template
    kv = model_kv(vocab=151_552, merges=318_088)
    p = write_gguf(tmp_path / "big-vocab.gguf", kv, [("token_embd.weight", (64, 16), 0, bytes(64 * 16 * 4))])
    assert p.stat().st_size > 5_000_000
    best = min(_timed(lambda: gguf.read_file(p)) for _ in range(3))
    h = gguf.read_file(p)
    assert h.vocab_size == 151_552
    assert isinstance(h.kv["tokenizer.ggml.merges"], gguf.ArrayInfo)
    assert h.kv["tokenizer.ggml.merges"].length == 318_088
    assert h.kv["glm4moe.attention.head_count"] == [8, 8, 8, 8]  # short arrays are decoded
    assert h.has_chat_template
    assert best < 0.5, f"header read took {best:.3f}s"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_split_shards_metadata_lives_in_shard_one(tmp_path: Path):
    paths = write_split_model(tmp_path, "GLM-5-UD-IQ2_XXS", 3, shard_bytes=4096)
    one, two = gguf.read_file(paths[0]), gguf.read_file(paths[1])
    assert one.architecture == "glm4moe" and one.expert_count == 8 and one.file_type_name == "IQ2_XXS"
    assert (one.split_no, one.split_count) == (0, 3)
    assert two.architecture is None and (two.split_no, two.split_count) == (1, 3)
    # read_model maps any shard to shard 1 when it sits beside it
    assert gguf.read_model(paths[2]).architecture == "glm4moe"


def test_real_model_split_into_shards(smollm_gguf: Path, tmp_path: Path):
    shards = split_gguf(smollm_gguf, tmp_path, 2)
    one, two = gguf.read_file(shards[0]), gguf.read_file(shards[1])
    assert one.architecture == "llama" and one.block_count == 30
    assert two.architecture is None and two.split_no == 1
    assert len(one.tensors) + len(two.tensors) == 272


def test_partial_file_and_short_buffers(tmp_path: Path):
    data = gguf_bytes(model_kv(vocab=5000), [("w", (1024,), 0, bytes(4096))])
    h_full = gguf.parse(data)
    # a .part that holds the header (but not all tensor data) reads fine
    part = tmp_path / "x.gguf.part"
    part.write_bytes(data[:h_full.header_size + 10])
    assert gguf.read_file(part).vocab_size == 5000
    # cut inside the KV section: Truncated says how far to read
    with pytest.raises(gguf.Truncated) as t:
        gguf.parse(memoryview(data[:1000]))
    assert t.value.need > 1000
    # growing the buffer as asked converges
    n = 1000
    while True:
        try:
            h = gguf.parse(memoryview(data[:n]))
            break
        except gguf.Truncated as exc:
            n = max(exc.need, n * 2)
    assert h.vocab_size == 5000
    # tensor infos cut off: metadata still returned, tensors unknown
    h2 = gguf.parse(memoryview(data[:h_full.header_size - 5]))
    assert h2.tensors is None and h2.vocab_size == 5000
    # on disk, a file ending inside the KV section is an error naming the file
    short = tmp_path / "short.gguf.part"
    short.write_bytes(data[:500])
    with pytest.raises(gguf.GGUFError, match="short.gguf.part.*partial download"):
        gguf.read_file(short)


def test_not_gguf_and_bad_versions(tmp_path: Path):
    p = tmp_path / "model.gguf"
    p.write_text("<html>404</html>")
    with pytest.raises(gguf.GGUFError, match="not a GGUF file"):
        gguf.read_file(p)
    p.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    with pytest.raises(gguf.GGUFError, match="version 1"):
        gguf.read_file(p)
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(gguf.GGUFError, match="empty"):
        gguf.read_file(tmp_path / "empty.gguf")
    with pytest.raises(gguf.GGUFError, match="cannot read"):
        gguf.read_file(tmp_path / "absent.gguf")


def test_big_endian_file():
    le = gguf_bytes({"general.architecture": "llama", "llama.block_count": 7})
    # the same header written big-endian
    be = bytearray(b"GGUF" + struct.pack(">IQQ", 3, 0, 2))
    for k, t, v in (("general.architecture", 8, b"llama"), ("llama.block_count", 4, 7)):
        be += struct.pack(">Q", len(k)) + k.encode() + struct.pack(">I", t)
        be += struct.pack(">Q", len(v)) + v if t == 8 else struct.pack(">I", v)
    a, b = gguf.parse(le), gguf.parse(bytes(be))
    assert b.byteorder == "big" and a.byteorder == "little"
    assert (b.architecture, b.block_count) == (a.architecture, a.block_count) == ("llama", 7)
