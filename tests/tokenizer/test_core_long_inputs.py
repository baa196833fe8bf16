"""Pieces the split pattern cannot break up: exact, and no quadratic blow-up."""

from __future__ import annotations

import re
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MB = 1_000_000
# Generous: a quadratic merge needs minutes on a megabyte; ours about a second
# even on a loaded 2-core machine. This catches blow-ups, not slowdowns.
SANITY_SECONDS = 20.0


def _timed(f, *args):
    start = time.perf_counter()
    result = f(*args)
    return result, time.perf_counter() - start


def test_megabyte_of_one_symbol(pair):
    text = "^" * MB
    ours, seconds = _timed(pair.core.encode_ordinary, text)
    assert seconds < SANITY_SECONDS
    assert ours == pair.ref.encode_ordinary(text)
    assert pair.core.decode_bytes(ours) == text.encode()


def test_megabyte_of_letters_without_spaces(pair, corpora):
    letters = re.sub(r"[^A-Za-z]", "", corpora["tinyshakespeare.txt"])
    text = (letters * (MB // len(letters) + 1))[:MB]
    ours, seconds = _timed(pair.core.encode_ordinary, text)
    assert seconds < SANITY_SECONDS
    assert len(pair.core.split(text)) < 50_000  # mostly long pieces (o200k splits at capitals)
    assert ours == pair.ref.encode_ordinary(text)


@SETTINGS
@given(
    text=st.text(alphabet=st.sampled_from("aab^éx日"), min_size=128, max_size=3000),
)
def test_long_pieces_match_tiktoken(pairs, text):
    # Pieces of 128 bytes and more take the queue-based merge.
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name


@SETTINGS
@given(
    runs=st.lists(
        st.tuples(st.sampled_from("=-*a ^\n\t.#é日"), st.integers(min_value=1, max_value=400)), min_size=1, max_size=6
    ),
)
def test_pieces_of_a_few_runs_match_tiktoken(pairs, runs):
    # Rules under headings, runs of spaces: merged run by run (`bpe/runs.rs`).
    text = "".join(ch * n for ch, n in runs)
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name


@SETTINGS
@given(
    fill=st.sampled_from("-=~*."),
    widths=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=8),
    lead=st.sampled_from(["", " ", "\t"]),
    tail=st.sampled_from(["", "\n", "\n\n"]),
)
def test_table_borders_match_tiktoken(pairs, fill, widths, lead, tail):
    # Up to 19 runs, some long: merged run by run when one of the first four is long (up to 16).
    text = lead + "+" + "+".join(fill * n for n in widths) + "+" + tail
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name


def test_long_runs_of_letters_spaces_and_rules(pair):
    # tiktoken's regex engine overflows its stack on a megabyte of spaces: 100 KB for those.
    for text in ("a" * MB, " " * 100_000 + "x", "=" * 50_000 + "\n\n" + "-" * 50_000):
        ours, seconds = _timed(pair.core.encode_ordinary, text)
        assert seconds < SANITY_SECONDS
        assert ours == pair.ref.encode_ordinary(text)
