"""Bad training input gets a clear Python exception."""

from __future__ import annotations

import pytest

from fastllm import _core
from fastllm.tokenizer.training import train_ranks

TEXTS = ["hello world", "hello there"]


def test_vocab_size_too_small_names_the_minimum():
    with pytest.raises(ValueError, match=r"at least 258"):
        train_ranks(iter(TEXTS), 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(ValueError, match=r"at least 256"):
        train_ranks(iter(TEXTS), 0)
    with pytest.raises(ValueError, match=r"-5 is too small"):
        train_ranks(iter(TEXTS), -5)
    assert len(train_ranks(iter(TEXTS), 258, special_tokens=["<a>", "<b>"])) == 256


@pytest.mark.parametrize("texts", [[], [""], ["", ""], ["<eot><eot>"]])
def test_empty_corpus(texts):
    with pytest.raises(ValueError, match="empty"):
        train_ranks(iter(texts), 300, special_tokens=["<eot>"])


def test_empty_file_is_an_empty_corpus(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        train_ranks(path, 300)


def test_text_without_pairs_gives_just_the_bytes():
    assert train_ranks(iter(["a b c"]), 300, pattern=r"\S") == [bytes([b]) for b in range(256)]


@pytest.mark.parametrize("pattern", ["(unclosed", "[z-a]", "*a", r"\p{Bogus}"])
def test_invalid_pattern(pattern):
    with pytest.raises(ValueError, match="pattern"):
        train_ranks(iter(TEXTS), 300, pattern=pattern)


@pytest.mark.parametrize("chunk_bytes", [3, 1 << 20])
def test_non_utf8_file_names_file_and_offset(tmp_path, chunk_bytes):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("hello world\n" * 50).encode() + "café\n".encode("latin-1"))
    trainer = _core.BpeTrainer("cl100k", [], None)
    with pytest.raises(ValueError, match=r"latin1\.txt.*UTF-8.*offset 603"):
        trainer.add_files([str(path)], False, chunk_bytes)
    with pytest.raises(ValueError, match=r"latin1\.txt.*offset 603"):
        train_ranks([path], 300)


def test_truncated_utf8_at_end_of_file(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes("abc ж".encode()[:-1])
    with pytest.raises(ValueError, match="offset 4"):
        train_ranks(path, 300)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        train_ranks(tmp_path / "nope.txt", 300)
    with pytest.raises(FileNotFoundError):
        train_ranks(["hello world"], 300)  # a list holds paths, not texts


def test_directory_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        train_ranks(tmp_path, 300)


@pytest.mark.parametrize(
    "source",
    [123, None, b"bytes", bytearray(b"x"), [1, 2], ["ok.txt", None], (b"path",)],
)
def test_source_of_wrong_type(source):
    with pytest.raises(TypeError):
        train_ranks(source, 300)


def test_iterator_items_must_be_str():
    with pytest.raises(TypeError, match="item 1"):
        train_ranks(iter(["ok", b"bytes"]), 300)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vocab_size": "300"},
        {"vocab_size": 300.0},
        {"vocab_size": True},
        {"min_frequency": 1.5},
        {"pattern": 5},
        {"special_tokens": "<eot>"},
        {"special_tokens": [b"<eot>"]},
        {"special_tokens": 3},
        {"num_threads": "2"},
    ],
)
def test_arguments_of_wrong_type(kwargs):
    args = {"vocab_size": 300, **kwargs}
    with pytest.raises(TypeError):
        train_ranks(iter(TEXTS), **args)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_frequency": -1},
        {"num_threads": 0},
        {"num_threads": -3},
        {"special_tokens": [""]},
        {"special_tokens": ["<a>", "<a>"]},
    ],
)
def test_bad_values(kwargs):
    with pytest.raises(ValueError):
        train_ranks(iter(TEXTS), 300, **kwargs)


def test_huge_vocab_size_just_stops_when_no_pairs_remain():
    tokens = train_ranks(iter(["abcabc abc"]), 10**30, min_frequency=1)
    assert tokens[256:] == [b"ab", b"abc", b" abc", b"abcabc"]


def test_huge_min_frequency_learns_nothing():
    assert len(train_ranks(iter(TEXTS), 300, min_frequency=10**30)) == 256


def test_pattern_matching_empty_strings_counts_no_empty_pieces():
    # "a*" matches the empty string before each b: those matches are no pieces, while the
    # b's the pattern does not match are pieces of their own (HF's Split(Isolated)).
    tokens = train_ranks(iter(["bbb aab"]), 300, pattern="a*", min_frequency=1)
    assert tokens[256:] == [b"aa"]
