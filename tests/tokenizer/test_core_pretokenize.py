"""The hand-written scanners for the built-in patterns equal the regex.

References: fancy-regex on the same pattern (``_core.testing.split_regex``, the engine
tiktoken uses) and, for the built-in patterns, the tiktoken pattern string
itself (the scanner is also chosen for it) and the ``regex`` module.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastllm import _core

from tests.support.text_strategies import tricky_text

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = ("gpt2", "cl100k", "o200k")
BYTES = [bytes([b]) for b in range(256)]


@pytest.fixture(scope="module")
def scanners():
    return {name: _core.CoreBPE(BYTES, {}, name) for name in NAMES}


@pytest.mark.parametrize("corpus", ["tinyshakespeare.txt", "multilingual.txt"])
def test_corpus_pieces_equal_regex(scanners, corpora, corpus):
    text = corpora[corpus]
    for name, core in scanners.items():
        assert core.split(text) == _core.testing.split_regex(name, text), name


@SETTINGS
@given(text=st.one_of(tricky_text, st.text(st.characters(exclude_categories=("Cs",)))))
def test_generated_pieces_equal_regex(scanners, text):
    for name, core in scanners.items():
        pieces = core.split(text)
        assert pieces == _core.testing.split_regex(name, text), name
        assert "".join(pieces) == text


def test_tiktoken_pattern_string_selects_the_same_split(pairs, corpora):
    text = corpora["multilingual.txt"][:200_000]
    for p in pairs.values():
        by_source = _core.CoreBPE(BYTES, {}, p.pat_str)
        assert by_source.pattern_regex == p.core.pattern_regex
        assert by_source.split(text) == p.core.split(text)


@SETTINGS
@given(text=tricky_text)
def test_agrees_with_the_regex_module(scanners, text):
    regex = pytest.importorskip("regex")
    # The regex module has its own Unicode tables; compare on text whose
    # characters both engines classify the same way (assigned in Unicode 15).
    for name, core in scanners.items():
        expected = regex.findall(core.pattern_regex, text)
        got = core.split(text)
        if got != expected and _unicode_versions_differ(text):
            continue
        assert got == expected, name


def _unicode_versions_differ(text: str) -> bool:
    import unicodedata

    return any(unicodedata.category(c) == "Cn" for c in text)


def test_known_splits(scanners):
    assert scanners["gpt2"].split("I'll  go 123abc\n\n") == ["I", "'ll", " ", " go", " 123", "abc", "\n\n"]
    assert scanners["cl100k"].split("I'LL go\r\n 12345") == ["I", "'LL", " go", "\r\n", " ", "123", "45"]
    assert scanners["o200k"].split("HTTPServer's iPhone//\n") == ["HTTPServer's", " i", "Phone", "//\n"]
    # Case folding reaches beyond ASCII: (?i:s) matches LATIN SMALL LETTER LONG S.
    assert scanners["cl100k"].split("it'ſ") == ["it", "'ſ"]
