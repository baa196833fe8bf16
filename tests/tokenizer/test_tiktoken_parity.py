"""Token-for-token parity with tiktoken on the real vocabularies, real corpora and generated text."""

from __future__ import annotations

import pytest
from encoding_table import CORPORA, ENCODINGS
from hypothesis import given, settings
from hypothesis import strategies as st

NAMES = list(ENCODINGS)

# Pieces that stress the split patterns: contractions in any case, digit runs,
# whitespace runs with \r\n, emoji with ZWJ / skin tones / flags, combining marks, CJK.
_FRAGMENTS = [
    "'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL", "'d", "'D",
    " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u00a0", "\u3000", "\u2028", "\x0b", "\x0c",
    "0", "12", "123", "1234", "12345678901", "٣٤٥", "²", "Ⅻ",
    "👍", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "❤️", "\u200d", "\ufe0f",
    "e\u0301", "\u0301", "a\u0308\u0323", "ñ", "ǅ", "ß", "İ", "Σ",
    "中文", "日本語の", "한국어", "ｶﾀｶﾅ", "ไทย", "العربية", "עברית", "हिन्दी",
    "Hello", "HELLO", "hello", "McDonald", "x", "/", "//", "...", "!?", "$", "<|", "|>", "<|endoftext|>",
    "<|endofprompt|>", "<|fim_prefix|>", "\x00", "\x7f", "\ufffd", "\U0010ffff",
]
text_strategy = st.one_of(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=24).map("".join),
    st.text(max_size=40),
    st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=4)), max_size=16).map("".join),
)


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
