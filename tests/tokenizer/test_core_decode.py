"""Decoding: round trips, the streaming decoder, unknown ids."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastllm.tokenizer import ENDOFTEXT

from tests.support.text_strategies import tricky_text

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(text=st.one_of(tricky_text, st.text()).filter(lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s)))
def test_round_trip(pairs, text):
    for p in pairs.values():
        ids = p.core.encode_ordinary(text)
        assert p.core.decode_bytes(ids).decode("utf-8") == text


def _stream(dec, ids, chunk):
    out = []
    for i in range(0, len(ids), chunk):
        if chunk == 1:
            out.append(dec.add(ids[i]))
        else:
            out.append(dec.add_many(ids[i : i + chunk]))
    out.append(dec.flush())
    return out


@SETTINGS
@given(ids=st.lists(st.integers(0, 100_000), max_size=40), chunk=st.integers(1, 4))
def test_incremental_decoder_equals_decode(pairs, ids, chunk):
    # Arbitrary id sequences split characters across tokens and contain bytes
    # that can never form valid UTF-8.
    p = pairs["cl100k"]
    ids = [i for i in ids if i < 100_256]
    expected = p.core.decode_bytes(ids).decode("utf-8", "replace")
    parts = _stream(p.core.incremental_decoder(), ids, chunk)
    assert "".join(parts) == expected
    for part in parts[:-1]:
        # Only complete characters are ever emitted before flush.
        part.encode("utf-8")


def test_incremental_decoder_holds_back_partial_characters(pairs):
    p = pairs["gpt2"]
    ids = p.core.encode_ordinary("🦀")  # several byte-level tokens in gpt2
    assert len(ids) > 1
    dec = p.core.incremental_decoder()
    emitted = [dec.add(i) for i in ids]
    assert emitted[:-1] == [""] * (len(ids) - 1)
    assert emitted[-1] == "🦀"
    assert dec.flush() == ""
    # A dangling partial character becomes U+FFFD on flush; reset forgets it.
    dec.add(ids[0])
    assert dec.pending == p.core.decode_single_token_bytes(ids[0])
    assert dec.flush() == "\ufffd"
    dec.add(ids[0])
    dec.reset()
    assert dec.flush() == ""


def test_decode_specials_and_single_tokens(pair):
    eot = ENDOFTEXT
    ids = pair.core.encode(f"hi{eot}", allowed_special={eot})
    assert pair.core.decode_bytes(ids) == f"hi{eot}".encode()
    eot_id = pair.special_tokens[eot]
    assert pair.core.decode_single_token_bytes(eot_id) == eot.encode()
    for i in (0, 255, 1000, len(pair.mergeable) - 1):
        assert pair.core.decode_single_token_bytes(i) == pair.ref.decode_single_token_bytes(i)


def test_unknown_and_negative_ids_raise(pair):
    n = pair.core.n_vocab
    with pytest.raises(ValueError, match=rf"unknown token id {n} at position 2"):
        pair.core.decode_bytes([1, 2, n, 3])
    with pytest.raises(ValueError, match="position 1"):
        pair.core.decode_bytes([1, -5])
    with pytest.raises((ValueError, OverflowError)):
        pair.core.decode_bytes([2**70])
    with pytest.raises(ValueError, match="unknown token id"):
        pair.core.decode_single_token_bytes(n)
    with pytest.raises(ValueError):
        pair.core.decode_single_token_bytes(-1)
    with pytest.raises(TypeError):
        pair.core.decode_bytes("abc")
    dec = pair.core.incremental_decoder()
    with pytest.raises(ValueError, match="unknown token id"):
        dec.add(n)
    with pytest.raises(ValueError, match="position 1"):
        dec.add_many([1, n])
    assert dec.flush() == ""


def test_decode_accepts_numpy_ids(pair):
    np = pytest.importorskip("numpy")
    ids = pair.core.encode_ordinary("numpy ids decode too")
    assert pair.core.decode_bytes(np.array(ids, dtype=np.uint32)) == b"numpy ids decode too"
