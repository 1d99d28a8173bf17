"""Seeded random chunking for the streaming parsers' tests: the same bytes or text, cut at
random places, must give the same events (SSE, chat deltas, raw reasoning/tool tags, the
bench's HTTP/1.1 reader)."""

from __future__ import annotations

import itertools
import random


def random_pieces(data, rng: random.Random | int, most: int = 40) -> list:
    """``data`` (str or bytes) in consecutive pieces of 1 to ``most`` items, their lengths drawn
    from ``rng`` (a ``random.Random`` to go on drawing from, or a seed)."""
    if not isinstance(rng, random.Random):
        rng = random.Random(rng)
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, most)
        out.append(data[i:i + n])
        i += n
    return out


def cuts(pieces: list) -> list[int]:
    """Where ``pieces`` cut their whole: the offset after each piece."""
    return list(itertools.accumulate(len(p) for p in pieces))
