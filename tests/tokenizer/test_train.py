"""Tokenizer.train: a trained vocabulary encodes identically in fastllm and in tiktoken
(through a .tiktoken file), and bad training input raises clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer

pytest.importorskip("fastllm.tokenizer.training")


@pytest.fixture(scope="module")
def trained(shared_data):
    text = (shared_data / "tinyshakespeare.txt").read_text()[:150_000]
    lines = text.splitlines(keepends=True)
    return Tokenizer.train(iter(lines), vocab_size=600, pattern="gpt2", special_tokens=["<|endoftext|>", "<|pad|>"], show_progress=False)


def _tiktoken_of(tok: Tokenizer, path):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    tok.save_tiktoken(path)
    return tiktoken.Encoding(
        "trained", pat_str=tok.pattern_regex, mergeable_ranks=load_tiktoken_bpe(str(path)), special_tokens=tok.special_tokens
    )


def test_trained_vocab_layout(trained):
    tokens = trained.mergeable_tokens()
    assert tokens[:256] == [bytes([b]) for b in range(256)]
    assert len(tokens) == 598 and trained.n_vocab == 600
    assert trained.special_tokens == {"<|endoftext|>": 598, "<|pad|>": 599}
    assert trained.eot_token == 598


def test_trained_vocab_through_tiktoken_file_encodes_identically(trained, tmp_path, shared_data):
    reference = _tiktoken_of(trained, tmp_path / "trained.tiktoken")
    for corpus in ("tinyshakespeare.txt", "multilingual.txt"):
        text = (shared_data / corpus).read_text()[-200_000:]
        assert trained.encode_ordinary(text) == reference.encode_ordinary(text), corpus
    sample = "First Citizen:<|endoftext|>You are all resolved<|pad|>"
    assert trained.encode(sample, allowed_special="all") == reference.encode(sample, allowed_special="all")
    again = Tokenizer.from_tiktoken(tmp_path / "trained.tiktoken", pattern="gpt2", special_tokens=trained.special_tokens)
    assert again.encode_ordinary(sample) == trained.encode_ordinary(sample)


@given(st.text(max_size=60))
@settings(max_examples=100, deadline=None)
def test_trained_vocab_generated_text(trained, tmp_path_factory, text):
    reference = _reference_cache(trained, tmp_path_factory)
    assert trained.encode_ordinary(text) == reference.encode_ordinary(text)
    assert trained.decode(trained.encode_ordinary(text)) == text


_cached = {}


def _reference_cache(trained, tmp_path_factory):
    if "enc" not in _cached:
        _cached["enc"] = _tiktoken_of(trained, tmp_path_factory.mktemp("tt") / "t.tiktoken")
    return _cached["enc"]


def test_train_from_files_and_save_load(tmp_path):
    corpus = tmp_path / "a.txt"
    corpus.write_text("low lower lowest newer newest wider " * 200, encoding="utf-8")
    tok = Tokenizer.train([str(corpus)], vocab_size=270, pattern="cl100k", show_progress=False)
    assert tok.n_vocab <= 270 and len(tok.encode("lowest newest")) < len("lowest newest")
    tok.save(tmp_path / "tok.json")
    assert Tokenizer.load(tmp_path / "tok.json").encode("lowest newest") == tok.encode("lowest newest")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"source": iter(["some text"]), "vocab_size": 255}, ValueError, "256"),
        ({"source": iter(["some text"]), "vocab_size": 257, "special_tokens": ["<a>", "<b>"]}, ValueError, ""),
        ({"source": iter([]), "vocab_size": 300}, ValueError, "empty"),
        ({"source": iter(["", ""]), "vocab_size": 300}, ValueError, "empty"),
        ({"source": iter(["text"]), "vocab_size": 300, "pattern": "(unclosed"}, ValueError, ""),
        ({"source": iter(["text"]), "vocab_size": 300, "special_tokens": "<a>"}, TypeError, "one string"),
        ({"source": iter(["text"]), "vocab_size": 300, "special_tokens": ["<a>", "<a>"]}, ValueError, "duplicates"),
    ],
)
def test_bad_training_input(kwargs, error, message):
    with pytest.raises(error, match=message or None):
        Tokenizer.train(show_progress=False, **kwargs)


def test_non_utf8_training_file_is_named(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\u00e9 ".encode("latin-1") * 10)
    with pytest.raises(ValueError, match="latin1.txt"):
        Tokenizer.train([str(bad)], vocab_size=300, show_progress=False)
