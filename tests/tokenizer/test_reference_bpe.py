"""fastllm against a slow, obviously correct pure-Python BPE (the ``regex`` module for the
split, the textbook merge loop for each piece), with custom split patterns."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer
from fastllm.tokenizer.vocab import bpe_parts

PATTERNS = [
    r"\p{L}+|\p{N}|\s+|[^\s\p{L}\p{N}]+",
    r"\d+(?=px)|\w+|\s+(?!\S)|\s+|.",  # lookahead
    r"(?<=\s)\w+|\w+|\W",  # lookbehind
    r"(?i:the|and)|\p{Lu}?\p{Ll}+|\p{N}{1,2}+|[\s\S]",
]


def reference_encode(text: str, tokens: list[bytes], pattern: str) -> list[int]:
    rank_of = {token: rank for rank, token in enumerate(tokens)}
    ids = []
    for piece in regex.findall(pattern, text):
        data = piece.encode("utf-8")
        if data in rank_of:  # a whole piece that is a token stays one token (tiktoken's rule)
            ids.append(rank_of[data])
        else:
            ids.extend(rank_of[part] for part in bpe_parts(data, rank_of, len(tokens)))
    return ids


@pytest.fixture(scope="module")
def small_vocab(shared_data):
    """The first 3000 ranks of cl100k: every single byte plus common merges."""
    return Tokenizer.from_tiktoken(shared_data / "cl100k_base.tiktoken", pattern="cl100k").mergeable_tokens()[:3000]


@pytest.mark.parametrize("pattern", PATTERNS)
@given(text=st.text(alphabet=st.sampled_from("the and The px 12 34px é中👍\n\t  ,.!'sabcxyzAB"), max_size=60))
@settings(max_examples=60, deadline=None)
def test_custom_patterns_match_reference(pattern, text, small_vocab):
    tok = _tokenizer(small_vocab, pattern)
    assert tok.split(text) == regex.findall(pattern, text)
    assert tok.encode_ordinary(text) == reference_encode(text, small_vocab, pattern)


@pytest.mark.parametrize("pattern", PATTERNS[:2])
def test_custom_pattern_on_real_text(pattern, small_vocab, shared_data):
    text = (shared_data / "tinyshakespeare.txt").read_text()[:20_000]
    assert _tokenizer(small_vocab, pattern).encode_ordinary(text) == reference_encode(text, small_vocab, pattern)


_cache: dict = {}


def _tokenizer(tokens, pattern):
    if pattern not in _cache:
        _cache[pattern] = Tokenizer(tokens, {}, pattern)
    return _cache[pattern]
