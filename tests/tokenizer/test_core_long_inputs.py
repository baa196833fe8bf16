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
