"""SSE framing by the spec: data with or without a space, comments and pings, CRLF/LF/CR,
several events per read, events and UTF-8 characters split across reads."""

from __future__ import annotations

import pytest
from chunking import random_pieces

from tui.core.chat.sse import SSEDecoder

pytestmark = pytest.mark.timeout(30)


def decode(chunks: list[bytes]) -> tuple[list[bytes], int]:
    d = SSEDecoder()
    out: list[bytes] = []
    for c in chunks:
        out += d.feed(c)
    out += d.close()
    return out, d.comments


CASES = {
    "with space": (b"data: a\n\n", [b"a"]),
    "without space": (b"data:a\n\n", [b"a"]),
    "only one space stripped": (b"data:  a\n\n", [b" a"]),
    "crlf": (b"data: a\r\n\r\ndata: b\r\n\r\n", [b"a", b"b"]),
    "lone cr": (b"data: a\r\rdata: b\r\r", [b"a", b"b"]),
    "several data lines join with newline": (b"data: a\ndata: b\n\n", [b"a\nb"]),
    "comments and pings": (b": ping\n\n:\n\ndata: x\n\n:\n\n", [b"x"]),
    "event and id fields ignored": (b"event: message\nid: 7\nretry: 10\ndata: y\n\n", [b"y"]),
    "no blank line before close": (b"data: last", [b"last"]),
    "utf-8": ("data: {\"c\":\"東京 ü\"}\n\n".encode(), ["{\"c\":\"東京 ü\"}".encode()]),
    "done marker": (b"data: {}\n\ndata: [DONE]\n\n", [b"{}", b"[DONE]"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_spec_cases_in_every_chunking(name):
    data, expected = CASES[name]
    assert decode([data]) [0] == expected
    assert decode([bytes([b]) for b in data])[0] == expected
    for i in range(len(data) + 1):
        assert decode([data[:i], data[i:]])[0] == expected, i
    for seed in range(20):
        assert decode(random_pieces(data, seed, 9))[0] == expected


def test_comment_count_and_several_events_per_read():
    data = b":\n\ndata: 1\n\ndata: 2\n\n: ping\n\ndata: 3\n\n"
    out, comments = decode([data])
    assert out == [b"1", b"2", b"3"]
    assert comments == 2


def test_crlf_split_between_cr_and_lf_is_one_line_end():
    # "data: a\r" | "\ndata: b\r\n\r\n": the LF after the split CR must not end the event early
    assert decode([b"data: a\r", b"\ndata: b\r\n\r\n"])[0] == [b"a\nb"]


def test_utf8_character_split_across_reads_is_whole_in_the_payload():
    data = "data: 思考中\n\n".encode()
    cut = data.index("考".encode()) + 1  # inside the 3-byte character
    out, _ = decode([data[:cut], data[cut:]])
    assert out[0].decode() == "思考中"
