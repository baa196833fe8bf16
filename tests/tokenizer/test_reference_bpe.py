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


# ----- the merge list that merges-based files store (derive_merges, done by the core) ---------


def _merges_by_reference(tokens: list[bytes]) -> list[tuple[bytes, bytes]]:
    rank_of = {token: rank for rank, token in enumerate(tokens)}
    merges = []
    for rank, token in enumerate(tokens):
        parts = bpe_parts(token, rank_of, rank) if len(token) >= 2 else []
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return merges


def test_derived_merges_equal_the_reference_on_gpt2(shared_data):
    from fastllm.tokenizer.vocab import derive_merges

    tokens = Tokenizer.from_tiktoken(shared_data / "gpt2.tiktoken", pattern="gpt2").mergeable_tokens()
    merges = derive_merges(tokens)
    assert merges == _merges_by_reference(tokens)
    assert len(merges) == len(tokens) - 256  # gpt2: one merge per token past the bytes


@given(st.lists(st.binary(min_size=1, max_size=5).map(lambda b: bytes(c % 4 + 97 for c in b)), max_size=60))
@settings(max_examples=200, deadline=None)
def test_derived_merges_equal_the_reference_on_random_vocabularies(extra):
    # Random order over a 4-letter alphabet: many tokens are not built from lower ranks,
    # duplicates rank as their last listing.
    from fastllm.tokenizer.vocab import derive_merges

    tokens = [bytes([b]) for b in b"abcd"] + extra
    assert derive_merges(tokens) == _merges_by_reference(tokens)
