"""The long-piece merge (pieces of 128 bytes and more: linked parts, a rank
queue, prefetching, a bit filter in front of the vocabulary) against tiktoken
on text the split pattern leaves in long pieces, for all three real
vocabularies."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

LOWER = "abcdefghijklmnopqrstuvwxyz"
# Letters of one script each: the patterns keep a run of letters in one piece.
SCRIPTS = [
    LOWER,
    "абвгдежзийклмнопрстуфхцчшщъыьэюяё",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "日本語文章中字符串한국어텍스트ひらがなカタカナ",
    "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह्ािीुूेैोौं",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
]
SYMBOLS = "^~*=#-_+|<>/\\.:"

one_script = st.sampled_from(SCRIPTS).flatmap(lambda a: st.text(alphabet=a, min_size=64, max_size=2500))
# Tokens repeat in these: equal ranks all over the piece, ties broken leftmost.
repeated = st.tuples(
    st.text(alphabet=LOWER + "^é日я", min_size=1, max_size=9),
    st.integers(min_value=16, max_value=700),
).map(lambda t: t[0] * t[1])
symbol_run = st.text(alphabet=SYMBOLS, min_size=128, max_size=3000)
skewed_letters = st.text(alphabet=st.sampled_from("eeeeetttaaoinshrdlu"), min_size=128, max_size=4000)
mixture = st.lists(st.one_of(one_script, repeated, skewed_letters), min_size=1, max_size=4).map("".join)


@SETTINGS
@given(text=st.one_of(one_script, repeated, symbol_run, skewed_letters, mixture))
def test_long_pieces_match_tiktoken_on_all_vocabularies(pairs, text):
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name


def test_generated_pieces_are_long(pairs):
    """The strategies above do reach the long-piece merge."""
    p = pairs["o200k"]
    for text in (LOWER * 10, "^" * 300, "ab" * 200, SCRIPTS[1] * 5):
        assert max(len(piece.encode()) for piece in p.core.split(text)) >= 128


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), size=st.integers(min_value=20_000, max_value=120_000))
def test_large_random_letter_pieces_match_tiktoken(pairs, seed, size):
    import random

    rnd = random.Random(seed)
    alphabet = rnd.choice([LOWER, LOWER[:6], SCRIPTS[1], "^~"])
    text = "".join(rnd.choice(alphabet) for _ in range(size))
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name
