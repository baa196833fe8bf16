"""The Rust chunker (``_core.FileChunks``, ``_core.text_chunks``): chunks give back the
text exactly, a cut never changes the pieces of a built-in pattern, and bad files
fail with the path and the exact offset."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastllm import _core

from tests.support.text_strategies import tricky_text

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = ("gpt2", "cl100k", "o200k")
BYTES = [bytes([b]) for b in range(256)]
SPECIAL = "<|endoftext|>"

# Letters and newlines (where chunks are cut), spaces, digits, marks and any other character.
lines_text = st.lists(
    st.one_of(
        st.sampled_from(list("abZж日\n\n\n \t\r.1'") + ["\u0301", "\r\n", SPECIAL]),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=400,
).map("".join)
any_text = st.one_of(lines_text, tricky_text)
chunk_sizes = st.integers(min_value=1, max_value=40)


@pytest.fixture(scope="module")
def cores():
    return {name: _core.CoreBPE(BYTES, {}, name) for name in NAMES}


def pieces(core, text: str, specials: list[str]) -> list[str]:
    """The pieces of ``text`` with the specials cut out, as the trainer and encoder see them."""
    if not specials:
        return core.split(text)
    out: list[str] = []
    for segment in re.split("|".join(map(re.escape, specials)), text):
        out += core.split(segment)
    return out


def check_chunks(core, text: str, chunks: list[str], specials: list[str]) -> None:
    assert "".join(chunks) == text
    assert all(chunks), "no empty chunks"
    for special in specials:
        assert sum(c.count(special) for c in chunks) == text.count(special), "a special token was cut"
    assert [p for c in chunks for p in pieces(core, c, specials)] == pieces(core, text, specials)


def file_chunks(path, chunk_bytes: int, pattern: str, specials: list[str]) -> list[tuple[str, int]]:
    return list(_core.FileChunks(str(path), chunk_bytes, pattern, specials))


@SETTINGS
@given(text=any_text, chunk_bytes=chunk_sizes, with_special=st.booleans())
def test_text_chunks_keep_text_and_pieces(cores, text, chunk_bytes, with_special):
    specials = [SPECIAL] if with_special else []
    for name, core in cores.items():
        check_chunks(core, text, _core.text_chunks(text, chunk_bytes, name, specials), specials)


@SETTINGS
@given(text=any_text, chunk_bytes=chunk_sizes)
def test_file_chunks_equal_text_chunks(cores, tmp_path_factory, text, chunk_bytes):
    path = tmp_path_factory.mktemp("chunks") / "text.txt"
    data = text.encode("utf-8")
    path.write_bytes(data)
    for name, core in cores.items():
        got = file_chunks(path, chunk_bytes, name, [SPECIAL])
        chunks = [c for c, _ in got]
        check_chunks(core, text, chunks, [SPECIAL])
        assert chunks == _core.text_chunks(text, chunk_bytes, name, [SPECIAL])
        offsets = [len("".join(chunks[:i]).encode("utf-8")) for i in range(len(chunks))]
        assert [offset for _, offset in got] == offsets


def test_corpus_chunks_encode_like_the_whole(pairs, corpora):
    for corpus in ("tinyshakespeare.txt", "multilingual.txt"):
        text = corpora[corpus][:300_000]
        for pair in pairs.values():
            chunks = _core.text_chunks(text, 4096, pair.name, [])
            assert len(chunks) > 10
            assert "".join(chunks) == text
            ids = [i for part in pair.core.encode_ordinary_batch(chunks) for i in part]
            assert ids == pair.core.encode_ordinary(text), (corpus, pair.name)


def test_offsets_and_progress(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo\nwörld\n" * 100, encoding="utf-8")
    reader = _core.FileChunks(str(path), 16, "cl100k", [])
    assert iter(reader) is reader and reader.offset == 0
    seen = 0
    for chunk, offset in reader:
        assert offset == seen
        seen += len(chunk.encode("utf-8"))
        assert reader.offset == seen
    assert seen == path.stat().st_size
    assert next(reader, None) is None


@pytest.mark.parametrize("chunk_bytes", [1, 13, 4096, 1 << 22])
def test_invalid_utf8_late_in_a_file_names_file_and_exact_offset(tmp_path, chunk_bytes):
    path = tmp_path / "latin1.txt"
    head = ("some words\n" * 20_000).encode("utf-8") + "naïve ".encode("utf-8")
    path.write_bytes(head + b"caf\xe9\nmore text\n")
    bad = len(head) + 3
    reader = _core.FileChunks(str(path), chunk_bytes, "gpt2", [])
    text = ""
    with pytest.raises(ValueError, match=rf"latin1\.txt is not valid UTF-8 \(first bad byte at offset {bad}\)$"):
        for chunk, _ in reader:
            text += chunk
    assert head.decode("utf-8").startswith(text)
    assert next(reader, None) is None, "a failed reader is used up"


def test_truncated_character_at_the_end(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes(b"abc\n" + "€".encode("utf-8")[:2])
    with pytest.raises(ValueError, match=r"offset 4\)"):
        file_chunks(path, 2, "cl100k", [])


def test_missing_file_and_unreadable_path(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        _core.FileChunks(str(missing), 1024, "gpt2", [])
    with pytest.raises(OSError, match=re.escape(str(tmp_path))):
        file_chunks(tmp_path, 1024, "gpt2", [])  # a directory opens but cannot be read


def test_bad_arguments(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abc", encoding="utf-8")
    for bad in [(0, "gpt2", []), (8, r"(\p{L}", []), (8, "gpt2", [""]), (8, "gpt2", ["x", "x"])]:
        with pytest.raises(ValueError):
            _core.FileChunks(str(path), *bad)
        with pytest.raises(ValueError):
            _core.text_chunks("abc", *bad)
    with pytest.raises(TypeError):
        _core.text_chunks(b"abc", 8, "gpt2", [])


def test_empty_inputs(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert file_chunks(path, 8, "gpt2", []) == []
    assert _core.text_chunks("", 8, "gpt2", []) == []


def test_builtin_patterns_are_the_core_patterns():
    patterns = _core.builtin_patterns()
    assert list(patterns) == list(NAMES)
    for name, regex in patterns.items():
        assert regex == _core.CoreBPE(BYTES, {}, name).pattern_regex
        assert _core.CoreBPE(BYTES, {}, regex).pattern_regex == regex


def test_testing_helpers_live_in_their_own_module():
    assert not hasattr(_core, "split_regex")
    from fastllm._core import testing

    assert testing.split_regex("gpt2", "hi there") == ["hi", " there"]
