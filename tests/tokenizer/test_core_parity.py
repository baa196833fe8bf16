"""Token-for-token parity of CoreBPE with tiktoken on the real vocabularies."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fastllm.tokenizer import ENDOFTEXT

from tests.support.text_strategies import tricky_text

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("corpus", ["tinyshakespeare.txt", "multilingual.txt"])
def test_corpus_parity(pair, corpora, corpus):
    text = corpora[corpus]
    ours = pair.core.encode_ordinary(text)
    ref = pair.ref.encode_ordinary(text)
    assert len(ours) == len(ref)
    assert ours == ref


def test_corpus_lines_parity_in_batch(pair, corpora):
    lines = corpora["multilingual.txt"].splitlines(keepends=True)[:4000]
    assert pair.core.encode_ordinary_batch(lines) == pair.ref.encode_ordinary_batch(lines)
    assert pair.core.encode_ordinary_batch(lines, num_threads=2) == [pair.ref.encode_ordinary(x) for x in lines]


@SETTINGS
@given(text=tricky_text)
def test_generated_text_parity(pairs, text):
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name


@SETTINGS
@given(text=tricky_text)
def test_generated_text_parity_with_specials(pairs, text):
    for p in pairs.values():
        specials = sorted(p.special_tokens)
        mixed = specials[0] + text + specials[-1] + text[: len(text) // 2] + specials[0]
        assert p.core.encode(mixed, allowed_special="all") == p.ref.encode(mixed, allowed_special="all")
        one = {specials[-1]}
        assert p.core.encode(mixed, allowed_special=one, disallowed_special=()) == p.ref.encode(
            mixed, allowed_special=one, disallowed_special=()
        )
        assert p.core.encode(text, allowed_special=set(), disallowed_special=set()) == p.ref.encode(
            text, disallowed_special=()
        )


def test_known_ids(pairs):
    # From shared/data/README.md.
    assert pairs["gpt2"].core.encode_ordinary("hello world") == [31373, 995]
    assert pairs["cl100k"].core.encode_ordinary("hello world") == [15339, 1917]
    assert pairs["o200k"].core.encode_ordinary("hello world") == [24912, 2375]


def test_special_tokens_policy_matches_tiktoken(pair):
    eot = ENDOFTEXT
    text = f"a{eot}b <|endoftext|x {eot}"
    assert pair.core.encode(text, allowed_special={eot}) == pair.ref.encode(text, allowed_special={eot})
    assert pair.core.encode(text, allowed_special="all") == pair.ref.encode(text, allowed_special="all")
    # Neither allowed nor disallowed: plain text.
    assert pair.core.encode(text, set(), set()) == pair.ref.encode(text, disallowed_special=())
    # Default: every special is disallowed.
    with pytest.raises(ValueError, match="disallowed special token") as err:
        pair.core.encode(text)
    assert eot in str(err.value) and "allowed_special" in str(err.value)
    with pytest.raises(ValueError):
        pair.ref.encode(text)
    with pytest.raises(ValueError, match="disallowed"):
        pair.core.encode_batch(["fine", text])
    with pytest.raises(ValueError, match="disallowed"):
        pair.core.encode_to_u32_bytes(text)


def test_encode_to_u32_bytes(pair, corpora):
    np = pytest.importorskip("numpy")
    text = corpora["tinyshakespeare.txt"][:20000] + ENDOFTEXT
    raw = pair.core.encode_to_u32_bytes(text, allowed_special="all")
    arr = np.frombuffer(raw, dtype="<u4")
    assert arr.tolist() == pair.ref.encode(text, allowed_special="all")
