"""Benchmark prompts: a ShareGPT file, or a built-in seeded synthetic set.

Decisions (the issue is silent on them):

* **Token counts without a tokenizer.** Lengths are estimated as UTF-8 bytes / 4 (about right
  for English, and CJK's 3 bytes per character gives ~0.75 token per character). They only
  shape the workload; the reported token figures come from the server's ``usage``.
* **Output length.** Each prompt carries the length of its reply: ShareGPT's recorded answer,
  or a draw from the synthetic distribution. A request asks for that many tokens
  (``max_tokens``), capped by ``--max-tokens``.
* **ShareGPT filtering** follows vLLM's ``benchmark_serving``: the first human turn is the
  prompt, the next assistant turn the reply; conversations with a prompt or reply under 4
  tokens, a prompt over 1024 tokens or prompt + reply over 2048 are skipped.
* **Sampling** is a seeded reservoir sample of ``n`` usable conversations, so memory stays at
  ``n`` prompts however large the file (ShareGPT V3 is ~650 MB) and the same seed picks the same
  prompts. The file is read incrementally (a JSON array or JSON Lines).
* **Synthetic lengths** are log-normal, like ShareGPT's: input median 120 tokens (sigma 1.05,
  mean ~210), output median 140 (sigma 0.85, mean ~200), both clipped to 8..1024; ShareGPT V3
  as vLLM samples it averages ~215 input and ~200 output tokens. Prompts are built from a
  fixed word list with a seeded generator; each starts differently so the server's prompt
  cache cannot reuse one request's prefill for the next.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MIN_TOKENS = 4
MAX_PROMPT_TOKENS = 1024
MAX_TOTAL_TOKENS = 2048
MAX_RECORD_CHARS = 64 << 20  # one record larger than this is treated as invalid JSON


class PromptsError(ValueError):
    """The prompts file is unreadable or holds no usable conversation (one-line message)."""


@dataclass(frozen=True)
class Prompt:
    text: str
    input_tokens: int  # estimate
    output_tokens: int  # the reply length this prompt asks for (before the --max-tokens cap)


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.encode("utf-8")) / 4))


# --- synthetic ---------------------------------------------------------------------------

_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no what "
    "up out who them some could more time into only other about then its new two these may like "
    "first any my now over such our man me even most made after also did many before must through "
    "back years where much your way well down should because each just those people how too little "
    "state good very make world still own see men work long get here between both life being under "
    "never day same another know while last might us great old year off come since against go came "
    "right used take three system water energy market history model server memory network garden "
    "river mountain city music language science kitchen engine window question answer story letter "
    "design budget travel health school planet ocean forest winter summer theory method example"
).split()

_OPENERS = (
    "Explain", "Summarize", "Write a short story about", "Compare", "Translate into French:",
    "Give three reasons for", "Describe", "Write a poem about", "List the steps to", "Critique",
    "What is the history of", "Draft an email about", "Plan a trip involving", "Debug this idea:",
)

_BYTES_PER_WORD = sum(len(w) + 1 for w in _WORDS) / len(_WORDS)  # with its space

INPUT_MEDIAN, INPUT_SIGMA = 120, 1.05
OUTPUT_MEDIAN, OUTPUT_SIGMA = 140, 0.85
LEN_MIN, LEN_MAX = 8, 1024


def _lognormal(rng: random.Random, median: float, sigma: float) -> int:
    return int(min(max(round(rng.lognormvariate(math.log(median), sigma)), LEN_MIN), LEN_MAX))


def synthetic(n: int, seed: int = 0) -> list[Prompt]:
    """``n`` reproducible prompts with ShareGPT-like input and output lengths."""
    rng = random.Random(f"synthetic:{seed}")
    out = []
    for i in range(n):
        want_in = _lognormal(rng, INPUT_MEDIAN, INPUT_SIGMA)
        want_out = _lognormal(rng, OUTPUT_MEDIAN, OUTPUT_SIGMA)
        words = [f"#{i}", rng.choice(_OPENERS)]
        head = len(" ".join(words)) + 1
        words += rng.choices(_WORDS, k=max(1, round((want_in * 4 - head) / _BYTES_PER_WORD)))
        text = " ".join(words) + "."
        out.append(Prompt(text, estimate_tokens(text), want_out))
    return out


# --- ShareGPT ----------------------------------------------------------------------------

def iter_json_values(fh: IO[str], chunk: int = 1 << 20) -> Iterator[Any]:
    """The elements of a top-level JSON array, or successive values of JSON Lines, read
    ``chunk`` characters at a time (never the whole file)."""
    dec = json.JSONDecoder()
    buf = fh.read(chunk)
    eof = not buf
    pos = 0
    consumed = 0  # characters dropped from the front of buf (for error positions)
    in_array = None
    need_sep = False
    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n":
            pos += 1
        if pos >= len(buf):
            if eof:
                if in_array:
                    raise PromptsError(f"unexpected end of file inside the top-level list (character {consumed + pos})")
                return
            more = fh.read(chunk)
            eof = not more
            consumed += pos
            buf, pos = buf[pos:] + more, 0
            continue
        c = buf[pos]
        if in_array is None:
            in_array = c == "["
            if in_array:
                pos += 1
            continue
        if in_array and c == "]":
            return
        if need_sep:
            need_sep = False
            if c == ",":
                pos += 1
                continue
            if in_array:
                raise PromptsError(f"expected ',' or ']' at character {consumed + pos}")
        try:
            obj, end = dec.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if not eof and len(buf) - pos < MAX_RECORD_CHARS:
                more = fh.read(chunk)
                eof = not more
                consumed += pos
                buf, pos = buf[pos:] + more, 0
                continue
            raise PromptsError(f"invalid JSON at character {consumed + exc.pos}: {exc.msg}") from None
        yield obj
        pos = end
        need_sep = True


def _turns(obj: Any) -> list[tuple[str, str]] | None:
    if not isinstance(obj, dict):
        return None
    conv = obj.get("conversations", obj.get("conversation", obj.get("messages")))
    if not isinstance(conv, list):
        return None
    out = []
    for t in conv:
        if not isinstance(t, dict):
            return None
        who = t.get("from", t.get("role"))
        text = t.get("value", t.get("content"))
        if not isinstance(who, str) or not isinstance(text, str):
            return None
        out.append((who.lower(), text))
    return out


_HUMAN = ("human", "user")
_ASSISTANT = ("gpt", "assistant", "chatgpt", "bard", "bing", "model")


def prompt_from_sharegpt(obj: Any) -> Prompt | None:
    """A prompt from one ShareGPT record, or None when it does not pass the filter."""
    turns = _turns(obj)
    if not turns:
        return None
    for i, (who, text) in enumerate(turns[:-1]):
        if who in _HUMAN:
            nxt_who, reply = turns[i + 1]
            if nxt_who not in _ASSISTANT:
                return None
            p, o = estimate_tokens(text), estimate_tokens(reply)
            if p < MIN_TOKENS or o < MIN_TOKENS or p > MAX_PROMPT_TOKENS or p + o > MAX_TOTAL_TOKENS:
                return None
            return Prompt(text, p, o)
        if who != "system":
            return None
    return None


def load_sharegpt(path: str | Path, n: int, seed: int = 0) -> list[Prompt]:
    """``n`` prompts sampled (seeded reservoir) from a ShareGPT-format JSON or JSONL file."""
    p = Path(path).expanduser()
    rng = random.Random(f"sharegpt:{seed}")
    chosen: list[Prompt] = []
    seen = usable = 0
    try:
        with open(p, encoding="utf-8") as fh:
            for obj in iter_json_values(fh):
                seen += 1
                pr = prompt_from_sharegpt(obj)
                if pr is None:
                    continue
                usable += 1
                if len(chosen) < n:
                    chosen.append(pr)
                else:
                    j = rng.randrange(usable)
                    if j < n:
                        chosen[j] = pr
    except PromptsError as exc:
        raise PromptsError(f"{p}: {exc}") from None
    except FileNotFoundError:
        raise PromptsError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptsError(f"{p}: cannot read: {exc}") from None
    if not chosen:
        raise PromptsError(
            f"{p}: no usable conversation among {seen} record(s): expected ShareGPT format, a list of "
            '{"conversations": [{"from": "human", "value": …}, {"from": "gpt", "value": …}]} '
            f"with a prompt of {MIN_TOKENS}-{MAX_PROMPT_TOKENS} tokens")
    return chosen


def prompts_info(prompts: list[Prompt], source: str, seed: int) -> dict:
    """What the saved result records about the prompt set."""
    n = len(prompts)
    return {
        "source": source,
        "seed": seed,
        "count": n,
        "input_tokens_mean": round(sum(p.input_tokens for p in prompts) / n, 1) if n else None,
        "output_tokens_mean": round(sum(p.output_tokens for p in prompts) / n, 1) if n else None,
    }
