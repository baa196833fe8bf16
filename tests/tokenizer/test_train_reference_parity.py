"""The Rust trainer learns exactly the merges of the pure-Python reference trainer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fastllm import _core
from fastllm.tokenizer.training import train_ranks

from tests.support import reference_bpe_trainer as reference

# Letters (upper/lower, Latin/Cyrillic/Greek/CJK/Kana/Hangul), a combining mark,
# digits (ASCII and Arabic-Indic), apostrophes, punctuation, emoji and many kinds of
# whitespace: the characters the split patterns treat differently.
ALPHABET = "abcAB'sdtlvreéßЖжλΣ中文かナ한\u0301019٣ .,!?-/\n\r\t\u00a0\u3000🙂👍🏽"
CUSTOM_PATTERNS = [
    r"[a-z]+|[0-9]|\s+|[^a-z0-9\s]+",
    r" ?[A-Za-z]+| ?[0-9]{1,2}|\s+(?!\S)|\s|[^\sA-Za-z0-9]+",
]
PATTERNS = ["gpt2", "cl100k", "o200k", *CUSTOM_PATTERNS]
SPECIAL_POOL = ["<|eot|>", "<s>", "ab", "a", "\n\n", "<|eot|>x"]

words = st.text(alphabet=ALPHABET, min_size=1, max_size=6)


@st.composite
def corpora(draw):
    """A few documents made of words from a small lexicon, so that pairs repeat."""
    lexicon = draw(st.lists(words, min_size=1, max_size=8))
    specials = draw(st.lists(st.sampled_from(SPECIAL_POOL), max_size=3, unique=True))
    pieces = st.sampled_from(lexicon + specials + [" ", "\n"])
    docs = draw(st.lists(st.lists(pieces, max_size=30).map("".join), min_size=1, max_size=6))
    return docs, specials


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    corpus=corpora(),
    pattern=st.sampled_from(PATTERNS),
    extra=st.integers(0, 80),
    min_frequency=st.integers(0, 4),
)
def test_same_merges_as_the_reference(corpus, pattern, extra, min_frequency):
    docs, specials = corpus
    vocab_size = 256 + len(specials) + extra
    expected = reference.train(docs, vocab_size, pattern, specials, min_frequency)
    event(f"learned merges: {'none' if len(expected) == 256 else 'some'}")
    if len(expected) == 256 and not reference.pieces(docs, pattern, specials):
        with pytest.raises(ValueError, match="empty"):
            train_ranks(iter(docs), vocab_size, pattern, specials, min_frequency)
        return
    got = train_ranks(iter(docs), vocab_size, pattern, specials, min_frequency)
    assert got == expected


@settings(max_examples=150, deadline=None)
@given(
    corpus=corpora(),
    pattern=st.sampled_from(["gpt2", "cl100k", "o200k"]),
    chunk_bytes=st.integers(1, 64),
)
def test_files_in_chunks_give_the_pieces_of_the_whole_file(tmp_path_factory, corpus, pattern, chunk_bytes):
    """Chunk boundaries never change pieces for the built-in patterns."""
    docs, specials = corpus
    text = "\n".join(docs)
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    expected = reference.train([text], 256 + len(specials) + 40, pattern, specials, 1)
    trainer = _core.BpeTrainer(pattern, specials, None)
    trainer.add_files([str(path)], False, chunk_bytes)
    if len(expected) == 256 and not reference.pieces([text], pattern, specials):
        return
    assert trainer.train(256 + len(specials) + 40, 1, False) == expected


def test_tie_break_takes_the_smallest_pair_ids():
    # "ab", "cd" and "ba" all occur twice; (a, b) = (97, 98) is the smallest pair.
    texts = ["ab cd", "ab cd", "ba ba"]
    tokens = train_ranks(iter(texts), 300, pattern=r"\S+", min_frequency=1)
    assert tokens[256:259] == [b"ab", b"ba", b"cd"]
    assert tokens == reference.train(texts, 300, r"\S+", (), 1)


def test_counts_overlapping_pairs_like_the_reference():
    texts = ["aaaa aaa aa", "aaaaaaa"]
    assert train_ranks(iter(texts), 270, "gpt2", min_frequency=1) == reference.train(texts, 270, "gpt2", (), 1)


@pytest.fixture(scope="module")
def shakespeare(shared_data):
    return (shared_data / "tinyshakespeare.txt").read_text("utf-8")


def test_thread_count_does_not_change_the_result(shakespeare, tmp_path):
    lines = shakespeare.splitlines(keepends=True)[:8000]
    one = train_ranks(iter(lines), 700, num_threads=1)
    three = train_ranks(iter(lines), 700, num_threads=3)
    assert one == three
    path = tmp_path / "part.txt"
    path.write_text("".join(lines), "utf-8")
    files = []
    for threads in (1, 3):
        trainer = _core.BpeTrainer("cl100k", [], threads)
        trainer.add_files([str(path)], False, 4096)
        files.append(trainer.train(700, 2, False))
    assert files[0] == files[1]


def test_real_text_matches_the_reference(shakespeare):
    text = shakespeare[:60_000]
    assert train_ranks(iter([text]), 400, "gpt2") == reference.train([text], 400, "gpt2")


def test_a_file_trains_like_its_text(shakespeare, shared_data):
    path = shared_data / "tinyshakespeare.txt"
    assert train_ranks(path, 600) == train_ranks(iter([shakespeare]), 600)
    assert train_ranks([path, str(path)], 600) == train_ranks(iter([shakespeare, shakespeare]), 600)
