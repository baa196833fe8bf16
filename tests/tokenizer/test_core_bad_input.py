"""Bad input to the core gives clear Python exceptions, never a crash."""

from __future__ import annotations

import pytest

from fastllm import _core

BYTES = [bytes([b]) for b in range(256)]


def test_duplicate_token():
    with pytest.raises(ValueError, match="duplicate mergeable token"):
        _core.CoreBPE(BYTES + [b"ab", b"ab"], {}, "gpt2")


def test_missing_single_byte():
    with pytest.raises(ValueError, match="0x41"):
        _core.CoreBPE(BYTES[:0x41] + BYTES[0x42:] + [b"xy"], {}, "gpt2")


def test_empty_token():
    with pytest.raises(ValueError, match="empty"):
        _core.CoreBPE(BYTES + [b""], {}, "gpt2")


def test_special_id_collisions():
    with pytest.raises(ValueError, match="already the rank"):
        _core.CoreBPE(BYTES, {"<s>": 12}, "gpt2")
    with pytest.raises(ValueError, match="share the id"):
        _core.CoreBPE(BYTES, {"<s>": 300, "</s>": 300}, "gpt2")
    with pytest.raises(ValueError, match="invalid id"):
        _core.CoreBPE(BYTES, {"<s>": -1}, "gpt2")
    with pytest.raises(ValueError, match="non-empty"):
        _core.CoreBPE(BYTES, {"": 400}, "gpt2")


def test_invalid_regex_names_the_error():
    with pytest.raises(ValueError, match="invalid split pattern"):
        _core.CoreBPE(BYTES, {}, r"(\p{L}+")
    with pytest.raises(ValueError, match="invalid split pattern"):
        _core.testing.split_regex(r"[a-", "abc")


def test_wrong_types():
    with pytest.raises(TypeError):
        _core.CoreBPE(["a", "b"], {}, "gpt2")
    with pytest.raises(TypeError):
        _core.CoreBPE(BYTES, {}, 42)
    core = _core.CoreBPE(BYTES, {"<|end|>": 256}, "gpt2")
    with pytest.raises(TypeError):
        core.encode_ordinary(b"bytes are not text")
    with pytest.raises(TypeError, match="not a single string"):
        core.encode("x", allowed_special="<|end|>")
    with pytest.raises(TypeError):
        core.encode("x", allowed_special={1, 2})
    with pytest.raises(TypeError, match="not a single string"):
        core.encode("x", disallowed_special="none")
    with pytest.raises(TypeError, match="not a single string"):
        core.encode_batch(["x"], allowed_special="All")


def test_lone_surrogates_are_an_error_not_a_crash():
    core = _core.CoreBPE(BYTES, {}, "gpt2")
    with pytest.raises(UnicodeEncodeError):
        core.encode_ordinary("a\ud800b")


def test_custom_pattern_with_lookaround(byte_core):
    core = _core.CoreBPE(BYTES + [b"ab"], {}, r"\w+(?=!)|\s+|.")
    assert core.split("ab! cd") == ["ab", "!", " ", "c", "d"]
    assert core.encode_ordinary("ab! cd") == [256, 33, 32, 99, 100]
    assert core.pattern == core.pattern_regex == r"\w+(?=!)|\s+|."


def test_properties(byte_core):
    assert byte_core.n_vocab == 302
    assert byte_core.special_tokens == {"<|end|>": 300, "<|pad|>": 301}
    assert byte_core.pattern == "gpt2"
    assert "\\p{L}" in byte_core.pattern_regex
    assert byte_core.mergeable_tokens()[256:] == [b"he", b"ll", b"hell", b"hello", b" w", b"or", b"ld"]
    assert "CoreBPE" in repr(byte_core)
    for alias in ("r50k_base", "cl100k_base", "o200k_base"):
        assert _core.CoreBPE(BYTES, {}, alias).pattern_regex == _core.CoreBPE(BYTES, {}, alias.split("_")[0]).pattern_regex
