"""The real encodings and corpora the tokenizer tests compare on: one row per encoding."""

from __future__ import annotations

from typing import NamedTuple


class Encoding(NamedTuple):
    name: str  # fastllm encoding name (get_encoding)
    tiktoken_ctor: str  # constructor in tiktoken_ext.openai_public
    vocab_file: str  # file in the shared data folder
    pattern: str  # fastllm built-in pattern name (also the CoreBPE pattern name)


#: fastllm encoding name -> Encoding
ENCODINGS: dict[str, Encoding] = {
    e.name: e
    for e in (
        Encoding("gpt2", "r50k_base", "gpt2.tiktoken", "gpt2"),
        Encoding("cl100k_base", "cl100k_base", "cl100k_base.tiktoken", "cl100k"),
        Encoding("o200k_base", "o200k_base", "o200k_base.tiktoken", "o200k"),
    )
}
#: The pattern names, in table order (the core tests key by these).
PATTERNS: tuple[str, ...] = tuple(e.pattern for e in ENCODINGS.values())
CORPORA = ("tinyshakespeare.txt", "multilingual.txt")


def by_pattern(pattern: str) -> Encoding:
    """The encoding whose built-in pattern is ``pattern``."""
    return next(e for e in ENCODINGS.values() if e.pattern == pattern)
