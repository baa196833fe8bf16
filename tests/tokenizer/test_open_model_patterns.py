"""Open models' split patterns (tests/support/open_model_patterns.py) given as the pattern.

Each pattern must get a fast engine (a hand-written scanner, or the DFA-compiled matcher
for DeepSeek V3's number and CJK splits), and give exactly tiktoken's ids with the same pattern string
as ``pat_str`` and the same ranks: on the real corpora and on generated text, including
the edge cases the built-in scanners are tested with (tests/support/text_strategies.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer, _core

from tests.support.encodings import CORPORA, ENCODINGS
from tests.support.open_model_patterns import BY_NAME, LLAMA3, O200K, OPEN_PATTERNS, QWEN2, TEKKEN
from tests.support.text_strategies import FRAGMENTS, text_strategy, tricky_text

NAMES = [p.name for p in OPEN_PATTERNS]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BYTES = [bytes([b]) for b in range(256)]

ENGINES = {
    "llama3": "scanner:llama3",
    "qwen2": "scanner:qwen2",
    "llama4": "scanner:o200k",
    "gpt_oss": "scanner:o200k",
    "tekken": "scanner:tekken",
    "deepseek_v3_words": "scanner:deepseek_v3",
    "deepseek_v3_digits": "compiled",
    "deepseek_v3_cjk": "compiled",
}


@functools.lru_cache(maxsize=None)
def _ranks(vocab: str, data: str) -> dict[bytes, int]:
    from tiktoken.load import load_tiktoken_bpe

    return load_tiktoken_bpe(str(Path(data, ENCODINGS[vocab].vocab_file)))


@functools.lru_cache(maxsize=None)
def _pair(name: str, data: str):
    """(fastllm Tokenizer, tiktoken Encoding) with the pattern and its vocabulary's ranks."""
    tiktoken = pytest.importorskip("tiktoken")
    pattern = BY_NAME[name]
    ranks = _ranks(pattern.vocab, data)
    ours = Tokenizer(ranks, {}, pattern.regex)
    theirs = tiktoken.Encoding(f"ref_{name}", pat_str=pattern.regex, mergeable_ranks=ranks, special_tokens={})
    return ours, theirs


@pytest.fixture(scope="module")
def pairs(shared_data):
    return {name: _pair(name, str(shared_data)) for name in NAMES}


def test_the_patterns_are_the_models_own(openai_spec):
    # Llama 4's O200K_PATTERN and GPT-OSS's (tiktoken's o200k_harmony) are o200k_base's pat_str.
    assert O200K == openai_spec("o200k_base")["pat_str"] == openai_spec("o200k_harmony")["pat_str"]
    assert _core.builtin_patterns()["o200k"] == O200K
    # Qwen 2 is Llama 3 with single numbers; Tekken is o200k without contractions, single numbers.
    assert QWEN2 == LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
    contraction = "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    assert TEKKEN == O200K.replace(contraction, "").replace(r"\p{N}{1,3}", r"\p{N}")


@pytest.mark.parametrize("name", NAMES)
def test_each_pattern_gets_a_fast_engine(name):
    assert _core.testing.split_engine(BY_NAME[name].regex) == ENGINES[name]


def test_other_spellings_get_the_scanner_too():
    # A tokenizer.json may hold \r and \n as the characters themselves (DeepSeek's does).
    raw = LLAMA3.replace(r"\r", "\r").replace(r"\n", "\n")
    assert _core.testing.split_engine(raw) == "scanner:llama3"
    spelled = TEKKEN.replace(r"\p{N}|", r"\pN|").replace(r"[\r\n/]*", r"[\n\r/]*")
    assert _core.testing.split_engine(spelled) == "scanner:tekken"
    # One different alternative is a different pattern: compiled, not the scanner.
    assert _core.testing.split_engine(QWEN2.replace(r"\p{N}|", r"\p{N}{1,2}|")) == "compiled"


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("name", NAMES)
def test_corpus_ids_equal_tiktoken(pairs, corpora, name, corpus):
    ours, theirs = pairs[name]
    text = corpora[corpus]
    ids = ours.encode_ordinary(text)
    assert ids == theirs.encode_ordinary(text)
    assert ours.split(text) == _core.testing.split_regex(BY_NAME[name].regex, text)
    if "".join(_core.testing.split_regex(BY_NAME[name].regex, text)) == text:
        assert ours.decode(ids) == text


@pytest.mark.parametrize("name", NAMES)
def test_corpus_lines_batch_equal_tiktoken(pairs, corpora, name):
    ours, theirs = pairs[name]
    lines = corpora["multilingual.txt"].splitlines(keepends=True)[::11]
    assert ours.encode_ordinary_batch(lines, num_threads=2) == theirs.encode_ordinary_batch(lines)


@SETTINGS
@given(text=st.one_of(tricky_text, text_strategy, st.text(st.characters(exclude_categories=("Cs",)))))
def test_generated_text_ids_equal_tiktoken(pairs, text):
    for name, (ours, theirs) in pairs.items():
        pieces = ours.split(text)
        assert pieces == _core.testing.split_regex(BY_NAME[name].regex, text), name
        ids = ours.encode_ordinary(text)
        assert ids == theirs.encode_ordinary(text), name
        # Where tiktoken keeps all the text (DeepSeek's splits match only some), so do we.
        if theirs.decode(theirs.encode_ordinary(text)) == text:
            assert "".join(pieces) == text, name
            assert ours.decode(ids) == text, name
        elif _core.pattern_matches_all_text(BY_NAME[name].regex):
            pytest.fail(f"{name} left text out: {text!r}")


@SETTINGS
@given(fragments=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=40))
def test_fragment_soup_equals_tiktoken(pairs, fragments):
    text = "".join(fragments)
    for name, (ours, theirs) in pairs.items():
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text), name


def test_known_splits():
    def split(name, text):
        return _core.CoreBPE(BYTES, {}, BY_NAME[name].regex).split(text)

    # A whitespace run that ends the text: cl100k keeps it whole, Llama 3 stops after the newline.
    assert split("llama3", "I'LL go 12345\n  ") == ["I", "'LL", " go", " ", "123", "45", "\n", "  "]
    assert split("qwen2", "it'ſ 2024") == ["it", "'ſ", " ", "2", "0", "2", "4"]
    assert split("tekken", "HTTPServer's iPhone//\n 42") == ["HTTPServer", "'s", " i", "Phone", "//\n", " ", "4", "2"]
    assert split("deepseek_v3_words", "Hello,world! 中文 x1") == ["Hello", ",world", "!", " 中文", " x"]
    # A run of ASCII whitespace that goes on through U+00A0 to a newline is one piece, however long.
    run = "\n" + " " * 20 + "\u00a0\n"
    for name in ("llama3", "qwen2", "llama4", "tekken", "deepseek_v3_words"):
        assert split(name, "ab" + run + "z") == ["ab", run, "z"], name


# Letters and newlines (where chunks are cut), spaces, digits, marks, apostrophes and anything else.
_lines_text = st.lists(
    st.one_of(
        st.sampled_from(list("abZж日\n\n\n \t\r.1'/") + ["\u0301", "\r\n", "'s"]),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=300,
).map("".join)


@SETTINGS
@given(text=st.one_of(_lines_text, tricky_text), chunk_bytes=st.integers(min_value=1, max_value=40))
def test_chunks_keep_the_pieces(text, chunk_bytes):
    """Training and ``fastllm prepare`` cut files where the built-in patterns never see a
    difference (before a newline that follows a letter); so do the open models' patterns."""
    for name in ("llama3", "qwen2", "tekken", "deepseek_v3_words"):
        core = _core.CoreBPE(BYTES, {}, BY_NAME[name].regex)
        chunks = _core.text_chunks(text, chunk_bytes, BY_NAME[name].regex, [])
        assert "".join(chunks) == text
        assert [p for c in chunks for p in core.split(c)] == core.split(text), name
