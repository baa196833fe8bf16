"""Token-for-token parity with tiktoken on the real vocabularies, real corpora and generated text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.encodings import CORPORA, ENCODINGS
from tests.support.text_strategies import text_strategy

NAMES = list(ENCODINGS)


@pytest.mark.parametrize("name", NAMES)
def test_known_ids(name, fastllm_encoding):
    expected = {"gpt2": [31373, 995], "cl100k_base": [15339, 1917], "o200k_base": [24912, 2375]}[name]
    assert fastllm_encoding(name).encode("hello world") == expected


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("name", NAMES)
def test_corpus_parity(name, corpus, shared_data, fastllm_encoding, reference_encoding):
    text = (shared_data / corpus).read_text(encoding="utf-8")
    ours = fastllm_encoding(name).encode_ordinary(text)
    theirs = reference_encoding(name).encode_ordinary(text)
    assert len(ours) == len(theirs)
    assert ours == theirs


@pytest.mark.parametrize("name", NAMES)
def test_corpus_lines_batch_parity(name, shared_data, fastllm_encoding, reference_encoding):
    lines = (shared_data / "multilingual.txt").read_text(encoding="utf-8").splitlines(keepends=True)[::7]
    assert fastllm_encoding(name).encode_ordinary_batch(lines) == reference_encoding(name).encode_ordinary_batch(lines)
    assert fastllm_encoding(name).encode_batch(lines, num_threads=2) == reference_encoding(name).encode_batch(lines)


@pytest.mark.parametrize("name", NAMES)
@given(text=text_strategy)
@settings(max_examples=150, deadline=None)
def test_generated_text_parity(name, text, fastllm_encoding, reference_encoding):
    ours, ref = fastllm_encoding(name), reference_encoding(name)
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert ours.decode(ours.encode_ordinary(text)) == text


@pytest.mark.parametrize("name", NAMES)
@given(words=st.lists(text_strategy, min_size=1, max_size=12), order=st.lists(st.integers(0, 11), min_size=50, max_size=400))
@settings(max_examples=40, deadline=None)
def test_long_text_with_repeats_parity(name, words, order, fastllm_encoding, reference_encoding):
    """Texts of 4 KB and more go through the encoder's cache of recently merged pieces: the same
    pieces recurring among others (and colliding in the cache) must still give tiktoken's tokens."""
    text = " ".join(words[i % len(words)] for i in order) + "\n"
    text *= -(-4096 // max(1, len(text.encode("utf-8", "surrogatepass"))))
    ours, ref = fastllm_encoding(name), reference_encoding(name)
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")


@pytest.mark.parametrize("name", NAMES)
@given(text=text_strategy, data=st.data())
@settings(max_examples=60, deadline=None)
def test_special_token_policy_parity(name, text, data, fastllm_encoding, reference_encoding):
    ours, ref = fastllm_encoding(name), reference_encoding(name)
    specials = sorted(ref.special_tokens_set)
    allowed = data.draw(st.sets(st.sampled_from(specials)))
    expected = _outcome(lambda: ref.encode(text, allowed_special=allowed))
    got = _outcome(lambda: ours.encode(text, allowed_special=allowed))
    assert got == expected
    # Nothing disallowed: every special string in the text is ordinary text.
    assert ours.encode(text, allowed_special=allowed, disallowed_special=()) == ref.encode(
        text, allowed_special=allowed, disallowed_special=()
    )


def _outcome(call):
    try:
        return call()
    except ValueError:
        return ValueError


@pytest.mark.parametrize("name", NAMES)
def test_worst_case_inputs_parity(name, fastllm_encoding, reference_encoding):
    ours, ref = fastllm_encoding(name), reference_encoding(name)
    for text in ["^" * 20_000, "a" * 20_000, "\u00e9" * 10_000, " " * 20_000, "1" * 20_001, "👍" * 5_000]:
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text), text[:3]
