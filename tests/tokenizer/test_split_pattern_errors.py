"""No silent loss with custom split patterns.

* A pattern the regex engine gives up on (fancy-regex's backtracking limit) raises
  ValueError naming the pattern and where, from every call that splits: encode (with
  and without special tokens), the batches, encode_to_numpy, split, and training from
  texts or files. (tiktoken panics on the same text.) It used to cut the text short.
* Text a pattern does not match is left out of the tokens exactly as tiktoken leaves
  it out (tiktoken's pieces are the regex's ``find_iter``, which skips such text); for
  every pattern here, wherever tiktoken keeps all the text, ``decode(encode(text))``
  gives it back.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from fastllm import Tokenizer, _core
from fastllm.tokenizer import training

from tests.support.open_model_patterns import DEEPSEEK_V3_WORDS, OPEN_PATTERNS
from tests.support.text_strategies import text_strategy

BYTES = [bytes([b]) for b in range(256)]
# Exponential backtracking on "aaaa...": the look-ahead keeps the pattern in the regex engine.
BACKTRACKS = r"(?:(?=a)a|a)*b|."
STUCK = "xé" + "a" * 40  # the engine gives up at character 2, byte 3
WHERE = re.escape(repr(BACKTRACKS).replace("'", '"'))

# Patterns that leave some text out, on each engine: compiled (DFAs) and regex (look-around).
PARTIAL = {
    "compiled": r"\d+|[a-z]+",
    "regex": r"\d+(?!x)|[a-z]+",
    "deepseek_v3_words": DEEPSEEK_V3_WORDS,
}
CUSTOM = [
    r"\w+|\s+",
    r"\p{L}+|\p{N}+|\s+(?!\S)|\s+|[^\s\p{L}\p{N}]+",
    r"(?i)[a-z]+|.",
    r"[a-z]+|[0-9]|\s+|[^a-z0-9\s]+",
    r" ?[A-Za-z]+| ?[0-9]{1,2}|\s+(?!\S)|\s|[^\sA-Za-z0-9]+",
    r"\d+(?!x)|[a-z]+|\s",
    r"\S+(?=\s)|\S+$|\s",
]
#: Every pattern these tests use, with tiktoken as the reference.
ALL_PATTERNS = [
    *_core.builtin_patterns().values(),
    *dict.fromkeys(p.regex for p in OPEN_PATTERNS),
    *PARTIAL.values(),
    *CUSTOM,
]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(BYTES, {"<|s|>": 256}, BACKTRACKS)


def test_the_pattern_runs_on_the_regex_engine():
    assert _core.testing.split_engine(BACKTRACKS) == "regex"


def test_encode_and_split_raise_naming_pattern_and_position(tok):
    where = rf"{WHERE} at character 2 \(byte 3\)"
    for call in (tok.encode, tok.encode_ordinary, tok.encode_to_numpy, tok.encode_ordinary_to_numpy, tok.split):
        with pytest.raises(ValueError, match=where):
            call(STUCK)
    # Positions count from the start of the text, special tokens included.
    with pytest.raises(ValueError, match=rf"{WHERE} at character 7 \(byte 8\)"):
        tok.encode("<|s|>" + STUCK, allowed_special="all")
    # Short texts are fine.
    assert tok.decode(tok.encode("xéab")) == "xéab"


def test_batches_name_the_text(tok):
    for call in (tok.encode_batch, tok.encode_ordinary_batch):
        with pytest.raises(ValueError, match=rf"text 1 of the batch: .*{WHERE} at character 2"):
            call(["fine", STUCK], num_threads=2)


def test_training_from_texts_names_the_text(monkeypatch):
    with pytest.raises(ValueError, match=rf"training text 1: .*{WHERE} at character 2"):
        Tokenizer.train(iter(["fine", STUCK]), vocab_size=300, pattern=BACKTRACKS)
    # Texts are counted in batches; the index is the text's place in the whole stream.
    monkeypatch.setattr(training, "BATCH_TEXTS", 2)
    with pytest.raises(ValueError, match=rf"training text 3: .*{WHERE}"):
        training.train_ranks(iter(["a", "b", "c", STUCK]), vocab_size=300, pattern=BACKTRACKS)


def test_training_from_a_file_names_the_file_and_byte(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("ok\n" + STUCK + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"corpus.txt: .*{WHERE} at byte 6 of the file"):
        training.train_ranks(str(path), vocab_size=300, pattern=BACKTRACKS)


def test_tiktoken_panics_where_we_raise(shared_data):
    tiktoken = pytest.importorskip("tiktoken")
    ref = tiktoken.Encoding("stuck", pat_str=BACKTRACKS, mergeable_ranks=_ranks(str(shared_data)), special_tokens={})
    with pytest.raises(BaseException) as info:
        ref.encode_ordinary(STUCK)
    assert not isinstance(info.value, Exception)  # pyo3's PanicException


@functools.lru_cache(maxsize=None)
def _ranks(data: str) -> dict[bytes, int]:
    from tiktoken.load import load_tiktoken_bpe

    return load_tiktoken_bpe(str(Path(data, "cl100k_base.tiktoken")))


@functools.lru_cache(maxsize=None)
def _pair(pattern: str, data: str):
    tiktoken = pytest.importorskip("tiktoken")
    ranks = _ranks(data)
    reference = tiktoken.Encoding("ref", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
    return Tokenizer(ranks, {}, pattern), reference


@pytest.mark.parametrize("engine", PARTIAL)
def test_unmatched_text_is_left_out_as_tiktoken_leaves_it(shared_data, engine):
    pattern = PARTIAL[engine]
    if engine in ("compiled", "regex"):
        assert _core.testing.split_engine(pattern) == engine
    ours, theirs = _pair(pattern, str(shared_data))
    text = "ab 12,cd 3x\n"
    ids = ours.encode_ordinary(text)
    assert ids == theirs.encode_ordinary(text)
    assert ours.decode(ids) == theirs.decode(ids) != text
    assert ours.split(text) == _core.testing.split_regex(pattern, text)
    assert "".join(ours.split(text)) == ours.decode(ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=text_strategy)
def test_roundtrip_wherever_tiktoken_keeps_all_text(shared_data, text):
    for pattern in ALL_PATTERNS:
        ours, theirs = _pair(pattern, str(shared_data))
        ids = ours.encode_ordinary(text)
        assert ids == theirs.encode_ordinary(text), pattern
        if theirs.decode(ids) == text:
            assert ours.decode(ids) == text, pattern
        assert "".join(ours.split(text)) == ours.decode(ids), pattern
