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


# ----- decoding fast: tokens of every length, lists read in place, numpy arrays packed ---------

# Mergeable tokens around the 16-byte block the decoder copies short tokens with, and longer.
_LONG_TOKENS = [b"ab" * 7, b"ab" * 8, b"ab" * 8 + b"c", bytes(range(65, 80)), bytes(range(65, 81)),
                bytes(range(65, 82)), "é€🦀".encode() * 5, b"z" * 100, b"\xff\xfe", "€".encode()[:2]]
_SPECIALS = {"<|end|>": 300, "<|a rather long special token|>": 301}


@pytest.fixture(scope="module")
def long_tokenizer():
    from fastllm import Tokenizer

    return Tokenizer([bytes([b]) for b in range(256)] + _LONG_TOKENS, _SPECIALS, "gpt2")


def _token_bytes(i: int) -> bytes:
    if i < 256:
        return bytes([i])
    if i < 256 + len(_LONG_TOKENS):
        return _LONG_TOKENS[i - 256]
    return next(name for name, sid in _SPECIALS.items() if sid == i).encode()


_VALID_IDS = st.one_of(st.integers(0, 255 + len(_LONG_TOKENS)), st.sampled_from(sorted(_SPECIALS.values())))
_INT_DTYPES = ["uint16", "int16", "uint32", "int32", "uint64", "int64"]


@SETTINGS
@given(ids=st.lists(_VALID_IDS, max_size=60), dtype=st.sampled_from(_INT_DTYPES))
def test_decode_equals_the_tokens_bytes_joined(long_tokenizer, ids, dtype):
    np = pytest.importorskip("numpy")
    expected = b"".join(_token_bytes(i) for i in ids)
    array = np.array(ids, dtype=dtype)
    assert long_tokenizer.decode_bytes(ids) == expected
    assert long_tokenizer.decode_bytes(array) == expected
    assert long_tokenizer.decode_bytes(tuple(ids)) == expected
    assert long_tokenizer.decode_tokens_bytes(ids) == long_tokenizer.decode_tokens_bytes(array) == [_token_bytes(i) for i in ids]
    assert [long_tokenizer.decode_single_token_bytes(i) for i in ids] == [_token_bytes(i) for i in ids]
    for errors in ("replace", "ignore", "backslashreplace"):
        assert long_tokenizer.decode(ids, errors) == expected.decode("utf-8", errors)
        assert long_tokenizer.decode(array, errors) == expected.decode("utf-8", errors)
    try:
        text = expected.decode("utf-8")
    except UnicodeDecodeError:
        for given_ids in (ids, array):
            with pytest.raises(UnicodeDecodeError):
                long_tokenizer.decode(given_ids, "strict")
    else:
        assert long_tokenizer.decode(ids, "strict") == long_tokenizer.decode(array, "strict") == text


def test_decode_numpy_ids_that_are_no_token_name_their_position(long_tokenizer):
    np = pytest.importorskip("numpy")
    from fastllm.tokenizer import UnknownTokenError

    unknown = 256 + len(_LONG_TOKENS)  # between the mergeable tokens and the specials
    for dtype in _INT_DTYPES:
        with pytest.raises(UnknownTokenError, match=rf"unknown token id {unknown} at position 2"):
            long_tokenizer.decode_bytes(np.array([1, 2, unknown, 3], dtype=dtype))
        with pytest.raises(UnknownTokenError, match=rf"unknown token id {unknown} at position 1"):
            long_tokenizer.decode(np.array([1, unknown], dtype=dtype))
    with pytest.raises(ValueError, match="invalid token id -5 at position 1"):
        long_tokenizer.decode(np.array([1, -5, 2], dtype=np.int32))
    with pytest.raises(UnknownTokenError, match=rf"unknown token id {unknown} at position 1"):
        long_tokenizer.decode_tokens_bytes(np.array([1, unknown], dtype=np.int64))
    with pytest.raises(UnknownTokenError, match=rf"unknown token id {2**70} at position 2"):
        long_tokenizer.decode_tokens_bytes([1, 2, 2**70])
    with pytest.raises(UnknownTokenError, match=rf"unknown token id {unknown}"):
        long_tokenizer.decode_single_token_bytes(unknown)
    with pytest.raises(UnknownTokenError, match=rf"unknown token id {2**70}"):
        long_tokenizer.decode_single_token_bytes(2**70)
    with pytest.raises(TypeError):
        long_tokenizer.decode_single_token_bytes(1.0)
    assert long_tokenizer.decode_single_token_bytes(np.int64(66)) == b"B"
    with pytest.raises(UnknownTokenError, match=rf"unknown token id {2**40} at position 1"):
        long_tokenizer.decode(np.array([1, 2**40], dtype=np.uint64))
    with pytest.raises(UnknownTokenError, match=rf"unknown token id {2**32} at position 0"):
        long_tokenizer.decode_bytes([2**32])
    with pytest.raises(TypeError):
        long_tokenizer.decode(np.array([[65, 66]], dtype=np.int64))
    with pytest.raises(TypeError):
        long_tokenizer.decode(np.array([65.0, 66.0]))
    assert long_tokenizer.decode(np.array([], dtype=np.int64)) == ""
    assert long_tokenizer.decode(np.array([72, 105], dtype=np.int64)[::-1]) == "iH"  # strided


def test_decode_lists_of_other_int_kinds(long_tokenizer):
    import enum

    np = pytest.importorskip("numpy")

    class Letter(enum.IntEnum):
        A = 65

    class Index:
        def __index__(self):
            return 66

    assert long_tokenizer.decode([Letter.A, Index(), np.int64(67), np.uint32(68), True, 69]) == "ABCD\x01E"
    with pytest.raises(TypeError):
        long_tokenizer.decode([65, "B"])
    with pytest.raises(TypeError):
        long_tokenizer.decode([65, 66.0])


def test_decode_survives_a_list_changed_while_read(long_tokenizer):
    # An item's __index__ runs Python code that empties the list being decoded: the items
    # after it are fetched one at a time, so the decoder sees the list as it now is.
    ids = [65, 66]

    class Clears:
        def __index__(self):
            ids.clear()
            return 67

    ids += [Clears(), 68, 69]
    assert long_tokenizer.decode_bytes(ids) == b"ABC"


def test_core_packed_ids_are_checked(byte_core):
    assert byte_core.decode_bytes((104).to_bytes(4, "little") + (300).to_bytes(4, "little"), packed=True) == b"h<|end|>"
    assert byte_core.decode(b"", packed=True) == ""
    with pytest.raises(ValueError, match="4 bytes each; got 5"):
        byte_core.decode_bytes(b"\x00" * 5, packed=True)
    with pytest.raises(TypeError, match="packed ids must be bytes"):
        byte_core.decode_bytes([1, 2], packed=True)
    with pytest.raises(ValueError, match="unknown token id 4294967295 at position 0"):
        byte_core.decode(b"\xff" * 4, packed=True)
