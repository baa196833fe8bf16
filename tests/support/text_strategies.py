"""Hypothesis strategies for text that stresses split patterns and BPE."""

from __future__ import annotations

from hypothesis import strategies as st

EMOJI = ["👋", "👋🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "☺︎", "🧑🏿‍🚀", "1️⃣", "#️⃣", "🫠"]
COMBINING = [chr(c) for c in (0x0300, 0x0301, 0x0308, 0x0327, 0x0336, 0x20DD, 0x0903, 0x093F, 0x0E31, 0x1AB0)]
CJK = "日本語の文章です。中文字符串，한국어 텍스트ひらがなカタカナ〜ー"
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u0085", "\u000b", "\u000c", "\u2028"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'ſ", "’s"]
WORDS = ["hello", "World", "HTTPServer", "iPhone", "naïve", "ÉCOLE", "ǅemal", "ﬁne", "straße", "Ωμέγα", "привет", "الْعَرَبِيَّة", "हिन्दी"]
PUNCT = list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'") + ["...", "—", "«»", "¿", "/\n", "//"]


def _random_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flags: "".join(c.upper() if f else c for c, f in zip(word, flags))
    )


contraction = st.sampled_from(CONTRACTIONS).flatmap(_random_case)
digits = st.text(alphabet="0123456789٠١٢٣½²Ⅻ", min_size=1, max_size=9)
whitespace_run = st.lists(st.sampled_from(WHITESPACE), min_size=1, max_size=5).map("".join)
word = st.one_of(st.sampled_from(WORDS).flatmap(_random_case), st.text(alphabet="abcxyzABCXYZ", min_size=1, max_size=8))
emoji = st.sampled_from(EMOJI)
combining = st.tuples(st.sampled_from("aeoAEOnı가"), st.lists(st.sampled_from(COMBINING), min_size=1, max_size=3)).map(
    lambda t: t[0] + "".join(t[1])
)
cjk = st.text(alphabet=CJK, min_size=1, max_size=6)
punct = st.sampled_from(PUNCT)
# Any code point except surrogates (not encodable as UTF-8).
anything = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=6)

# Long runs of one character: the scanners decide most of such a run from its ASCII bytes alone.
long_run = st.tuples(st.sampled_from([" ", "\t", "\n", "a", "Z", "1", "."]), st.integers(10, 80)).map(lambda t: t[0] * t[1])

piece = st.one_of(contraction, digits, whitespace_run, long_run, word, emoji, combining, cjk, punct, anything)

#: A mix of the above, glued together without separators.
tricky_text = st.lists(piece, max_size=24).map("".join)

# Pieces that stress the split patterns: contractions in any case, digit runs,
# whitespace runs with \r\n, emoji with ZWJ / skin tones / flags, combining marks, CJK.
FRAGMENTS = [
    "'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL", "'d", "'D",
    " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u00a0", "\u3000", "\u2028", "\x0b", "\x0c",
    "0", "12", "123", "1234", "12345678901", "٣٤٥", "²", "Ⅻ",
    "👍", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "❤️", "\u200d", "\ufe0f",
    "e\u0301", "\u0301", "a\u0308\u0323", "ñ", "ǅ", "ß", "İ", "Σ",
    "中文", "日本語の", "한국어", "ｶﾀｶﾅ", "ไทย", "العربية", "עברית", "हिन्दी",
    "Hello", "HELLO", "hello", "McDonald", "x", "/", "//", "...", "!?", "$", "<|", "|>", "<|endoftext|>",
    "<|endofprompt|>", "<|fim_prefix|>", "\x00", "\x7f", "\ufffd", "\U0010ffff",
]
#: Those fragments mixed with arbitrary text.
text_strategy = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=24).map("".join),
    st.text(max_size=40),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=16).map("".join),
)
