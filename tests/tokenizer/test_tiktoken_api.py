"""tiktoken's whole public surface on fastllm (``import fastllm as tiktoken``), against tiktoken.

Real vocabularies from the shared data folder; tiktoken Encodings built from the same files.
"""

from __future__ import annotations

import inspect
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastllm
from fastllm.tokenizer import encodings

from tests.support.encodings import ENCODINGS
from tests.support.text_strategies import text_strategy

tiktoken = pytest.importorskip("tiktoken")
NAMES = list(ENCODINGS)


def test_every_public_name_of_tiktoken_is_there():
    """The module functions, and every public method and property of tiktoken.Encoding (plus
    the attributes its documented extension recipe reads) on a fastllm Tokenizer."""
    functions = {n for n in dir(tiktoken) if not n.startswith("_") and inspect.isfunction(getattr(tiktoken, n))}
    assert functions == {"encoding_for_model", "encoding_name_for_model", "get_encoding", "list_encoding_names"}
    for name in sorted(functions) + ["Encoding"]:
        assert callable(getattr(fastllm, name)), name
    surface = [n for n in dir(tiktoken.Encoding) if not n.startswith("_")]
    surface += ["name", "max_token_value", "_pat_str", "_mergeable_ranks", "_special_tokens"]  # instance attributes
    tok = fastllm.Tokenizer([bytes([b]) for b in range(256)])
    assert [n for n in surface if not hasattr(tok, n)] == []
    assert isinstance(tok, fastllm.Encoding)


@pytest.mark.parametrize("name", NAMES)
def test_properties_and_single_tokens(name, fastllm_encoding, reference_encoding):
    ours, ref = fastllm_encoding(name), reference_encoding(name)
    for attr in ("name", "n_vocab", "max_token_value", "eot_token"):
        assert getattr(ours, attr) == getattr(ref, attr), attr
    assert ours.special_tokens_set == ref.special_tokens_set
    assert ours._special_tokens == ref._special_tokens and ours._pat_str == ref._pat_str
    assert ours.token_byte_values() == ref.token_byte_values()
    assert ours._mergeable_ranks == ref._mergeable_ranks
    ids = list(range(0, ref.n_vocab, 997)) + sorted(ref._special_tokens.values())
    ids = [i for i in ids if i in ref._special_token_values or i < len(ref._mergeable_ranks)]
    for token in ids:
        raw = ref.decode_single_token_bytes(token)
        assert ours.decode_single_token_bytes(token) == raw
        assert ours.encode_single_token(raw) == ref.encode_single_token(raw) == token
        assert ours.is_special_token(token) == ref.is_special_token(token)
    assert ours.decode_tokens_bytes(ids) == ref.decode_tokens_bytes(ids)
    for text in ("<|endoftext|>", "hello"):
        assert ours.encode_single_token(text) == ref.encode_single_token(text)
    for bad in (b"\xff\xfe not a token", "no such token here", b""):
        with pytest.raises(KeyError) as theirs:
            ref.encode_single_token(bad)
        with pytest.raises(KeyError) as mine:
            ours.encode_single_token(bad)
        assert mine.value.args == theirs.value.args
    unknown = ref.n_vocab + 5
    for call in (lambda e: e.decode_single_token_bytes(unknown), lambda e: e.decode([1, unknown]),
                 lambda e: e.decode_bytes([unknown])):
        with pytest.raises(KeyError):
            call(ref)
        with pytest.raises(KeyError):
            call(ours)
        with pytest.raises(ValueError):  # fastllm's own contract too
            call(ours)


@pytest.mark.parametrize("name", NAMES)
@given(texts=st.lists(text_strategy, min_size=1, max_size=4))
@settings(max_examples=25, deadline=None)
def test_decoding_parity(name, texts, fastllm_encoding, reference_encoding):
    ours, ref = fastllm_encoding(name), reference_encoding(name)
    batch = ref.encode_batch(texts, allowed_special="all")
    assert ours.decode_batch(batch) == ref.decode_batch(batch)
    assert ours.decode_bytes_batch(batch) == ref.decode_bytes_batch(batch)
    for ids in batch:
        if _strict_text(ref, ids):
            assert ours.decode_with_offsets(ids) == ref.decode_with_offsets(ids)


def _strict_text(ref, ids) -> bool:
    try:
        ref.decode_bytes(ids).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_decode_with_offsets_inside_characters(fastllm_encoding, reference_encoding):
    """GPT-2 splits many characters over two tokens: offsets point at the character."""
    ours, ref = fastllm_encoding("gpt2"), reference_encoding("gpt2")
    text = "naïve 中文 👍🏽 dés"
    ids = ref.encode(text)
    assert any(0x80 <= ref.decode_single_token_bytes(t)[0] < 0xC0 for t in ids)  # a token starts mid-character
    assert ours.decode_with_offsets(ids) == ref.decode_with_offsets(ids)
    with pytest.raises(UnicodeDecodeError):
        ours.decode_with_offsets(ids[:-3] + ids[-2:-1])


UNSTABLE_TEXTS = [
    "hello fanta", "hello world", "hello world ", "trailing spaces   ", "line\n", "two\n\n", "tab\t", "x  !",
    "naïve", "中文", "emoji 👍", "12345", "a" * 40, "<|endoftext|>", "hello<|endoftext|>", "<|endoftext|> and more",
    "", " ", "don't", "The quick brown fox's", "numbers 1,234.5", "\u00a0nbsp\u3000",
]


@pytest.mark.parametrize("name", NAMES)
def test_encode_with_unstable_parity(name, fastllm_encoding, reference_encoding):
    ours, ref = fastllm_encoding(name), reference_encoding(name)
    for text in UNSTABLE_TEXTS:
        expected_stable, expected = ref.encode_with_unstable(text, allowed_special="all")
        stable, completions = ours.encode_with_unstable(text, allowed_special="all")
        assert stable == expected_stable, text
        assert {tuple(c) for c in completions} == {tuple(c) for c in expected}, text
        assert len(completions) == len(expected)
    with pytest.raises(ValueError):
        ref.encode_with_unstable("x<|endoftext|>")
    with pytest.raises(ValueError):
        ours.encode_with_unstable("x<|endoftext|>")


@pytest.mark.parametrize("name", ["cl100k_base"])
@given(text=text_strategy)
@settings(max_examples=20, deadline=None)
def test_encode_with_unstable_generated(name, text, fastllm_encoding, reference_encoding):
    ours, ref = fastllm_encoding(name), reference_encoding(name)
    text = text[-12:]  # the completions come from the end; short tails keep it fast
    expected_stable, expected = ref.encode_with_unstable(text, disallowed_special=())
    stable, completions = ours.encode_with_unstable(text, disallowed_special=())
    assert stable == expected_stable
    assert {tuple(c) for c in completions} == {tuple(c) for c in expected}


def test_encoding_constructor_extends_like_tiktoken(fastllm_encoding, reference_encoding):
    """tiktoken's documented recipe: a new Encoding from a base's private attributes."""
    base_ours, base_ref = fastllm_encoding("cl100k_base"), reference_encoding("cl100k_base")
    extra = {"<|im_start|>": 100264, "<|im_end|>": 100265}
    ref = tiktoken.Encoding("cl100k_im", pat_str=base_ref._pat_str, mergeable_ranks=base_ref._mergeable_ranks,
                            special_tokens={**base_ref._special_tokens, **extra})
    ours = fastllm.Encoding("cl100k_im", pat_str=base_ours._pat_str, mergeable_ranks=base_ours._mergeable_ranks,
                            special_tokens={**base_ours._special_tokens, **extra})
    assert ours.pattern == "cl100k"  # tiktoken's regex runs the built-in scanner
    text = "<|im_start|>user\nhi there<|im_end|> naïve 中文"
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert (ours.name, ours.n_vocab) == (ref.name, ref.n_vocab)
    assert isinstance(ours, fastllm.Encoding) and isinstance(base_ours, fastllm.Encoding)
    assert pickle.loads(pickle.dumps(ours)).encode(text, allowed_special="all") == ours.encode(text, allowed_special="all")
    with pytest.raises(ValueError, match="explicit_n_vocab"):
        fastllm.Encoding("x", pat_str=base_ours._pat_str, mergeable_ranks=base_ours._mergeable_ranks,
                         special_tokens={}, explicit_n_vocab=7)
    # Ranks with a hole (tiktoken's p50k layout): the ranks stay the ids, as in tiktoken.
    holed = {token: rank + (rank > 1000) for token, rank in base_ref._mergeable_ranks.items()}
    specials = {"<|endoftext|>": 1001, "<|fim|>": 200_000}
    ref = tiktoken.Encoding("holed", pat_str=base_ref._pat_str, mergeable_ranks=holed, special_tokens=specials)
    ours = fastllm.Encoding("holed", pat_str=base_ours._pat_str, mergeable_ranks=holed, special_tokens=specials)
    text += " <|endoftext|> the government of the people" * 3
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert ours._mergeable_ranks == holed and (ours.n_vocab, ours.eot_token) == (ref.n_vocab, ref.eot_token)


def test_model_table_is_tiktokens():
    from tiktoken import model

    for name in list(model.MODEL_TO_ENCODING) + [p + "2099-01-01" for p in model.MODEL_PREFIX_TO_ENCODING]:
        assert fastllm.encoding_name_for_model(name) == tiktoken.encoding_name_for_model(name), name
    assert encodings.MODEL_TO_ENCODING == model.MODEL_TO_ENCODING
    assert list(encodings.MODEL_PREFIX_TO_ENCODING.items()) == list(model.MODEL_PREFIX_TO_ENCODING.items())
    with pytest.raises(KeyError, match="Could not automatically map gpt-9000"):
        fastllm.encoding_name_for_model("gpt-9000")
    with pytest.raises(KeyError):
        tiktoken.encoding_name_for_model("gpt-9000")


def test_encoding_names_are_tiktokens():
    names = fastllm.list_encoding_names()
    assert set(names) <= set(tiktoken.list_encoding_names())
    assert set(tiktoken.list_encoding_names()) - set(names) == set(encodings.NOT_PROVIDED)
    for name in encodings.NOT_PROVIDED:
        with pytest.raises(ValueError, match=f"'{name}' encoding is not provided by fastllm"):
            fastllm.get_encoding(name)
    with pytest.raises(ValueError, match="o200k_harmony"):
        fastllm.encoding_for_model("gpt-oss-120b")


def test_encoding_for_model_loads_the_named_encoding(tmp_path, monkeypatch, shared_data):
    cache = tmp_path / "encodings"
    cache.mkdir()
    (cache / "r50k_base.tiktoken").write_bytes((shared_data / "gpt2.tiktoken").read_bytes())
    monkeypatch.setenv("FASTLLM_CACHE", str(tmp_path))
    monkeypatch.setenv("FASTLLM_OFFLINE", "1")
    enc = fastllm.encoding_for_model("davinci")
    assert enc.name == "r50k_base" and enc.encode("hello world") == [31373, 995]
    assert fastllm.encoding_for_model("gpt2").name == "gpt2"
