"""atheris: random tokenizer.json pipelines and added tokens, against HF tokenizers.

The input draws a pipeline the way real files spell one: a normalizer (none, NFC, an
empty or NFC Sequence), up to three pre-tokenizer steps (Split with a model's regex or a
short one or a plain string, any behavior, inverted or not; Digits), ByteLevel with or
without its regex and prefix space, and up to four added tokens from a pool of contents
with random special/lstrip/rstrip/single_word/normalized flags, over a vocabulary trained
here. ``tokenizers`` builds and saves that file; fastllm reads it (or refuses it with a
ValueError naming the file). Then texts made of runs of characters the flags and splits
tell apart (whitespace of each kind, letters, digits, marks, CJK, the added tokens' own
text) are encoded by both: ``encode(allowed_special="all")`` against ``encode``,
``encode_ordinary`` against ``encode`` with ``encode_special_tokens``, batches against
single calls, and ``decode`` against tokenizers' decoder where no added token is in the
ids. Where tokenizers panics (a match ending inside whitespace an earlier one swallowed:
"AddedVocabulary bad split") there is no reference.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("FASTLLM_OFFLINE", "1")

import atheris  # noqa: E402
import numpy  # noqa: E402, F401  (imported before instrumenting: not under test)
import tokenizers  # noqa: E402
from tokenizers import AddedToken, Regex, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers as pt  # noqa: E402

with atheris.instrument_imports():
    from fastllm import Tokenizer
    from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text
    from fastllm.tokenizer.vocab import derive_merges

from _harness import Finding, check_error, scratch_dir  # noqa: E402

CORPUS = [
    "Hello, world! It's 2024: we'll see 12345 things. The the the THE tHe Hello Hello",
    "日本語の文章です。中文 한국어 Ελληνικά русский текст e\u0301\u0301 👋🏽 🇫🇷!! ½² ١٢٣",
    "  tabs\tand\r\nnewlines\n\n  \n x a/b//c/\n/\r\n def f(x):\n    return x ** 2\n\n\n",
]
_TOK = Tokenizer.train(iter(CORPUS * 4), vocab_size=500, pattern="cl100k", min_frequency=2)
_TOKENS = _TOK.mergeable_tokens()
VOCAB = {bytes_to_text(t): rank for rank, t in enumerate(_TOKENS)}
MERGES = [(bytes_to_text(a), bytes_to_text(b)) for a, b in derive_merges(_TOKENS)]

# Split regexes in tokenizer.json's (Oniguruma) spelling: the open models' and short ones.
PATTERNS = [
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    r"\s+", r"\p{N}", r"[a-z]+", r"\p{L}+|[^\p{L}]", r"\s+|\p{N}", r"\d{1,2}", r" ?\p{L}+", r"[\r\n]+", r"\p{P}",
    r"\w+", r"[^\s]+",
]
STRINGS = [" ", "ab", "\n", "é", "1", "  "]
BEHAVIORS = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]
NORMALIZERS = [None, normalizers.NFC, lambda: normalizers.Sequence([]), lambda: normalizers.Sequence([normalizers.NFC()])]
ADDED = ["<x>", " Hello", "ab", "\n\n", "é", "e\u0301", "12", "<|end|>", " ", "Hello", "日本", "<tool>", "a b", "\t", "  "]
#: What texts are made of: runs of each of these.
UNITS = [
    " ", "\t", "\n", "\r\n", "\r", "a", "Z", "1", ".", "'", "'s", "\u00a0", "\u3000", "\u0085", "é", "Ж", "日", "の",
    "\u0301", "😀", "٣", "!", "-", "_", "ǅ", "ß", "\u2028", "\x0b", *ADDED,
]


class Draw:
    def __init__(self, data: bytes):
        self.fdp = atheris.FuzzedDataProvider(data)

    def int(self, n: int) -> int:
        return self.fdp.ConsumeIntInRange(0, n - 1)

    def flag(self, one_in: int) -> bool:
        return self.int(one_in) == 0

    def config(self) -> tuple:
        """A hashable description of a pipeline and its added tokens."""
        steps = []
        for _ in range(self.int(4)):
            if self.flag(5):
                steps.append(("digits", self.flag(2)))
            elif self.flag(7):
                steps.append(("string", self.int(len(STRINGS)), self.int(len(BEHAVIORS)), self.flag(3)))
            else:
                steps.append(("regex", self.int(len(PATTERNS)), self.int(len(BEHAVIORS)), self.flag(3)))
        byte_level = (self.flag(3), self.flag(2), self.flag(2))  # prefix space, its regex, alone (no Sequence)
        added = tuple(
            (self.int(len(ADDED)), self.flag(2), self.flag(3), self.flag(3), self.flag(4), self.flag(2))
            for _ in range(self.int(5))
        )
        return self.int(len(NORMALIZERS)), tuple(steps), byte_level, added

    def text(self) -> str:
        if self.flag(6):
            return self.fdp.ConsumeUnicodeNoSurrogates(self.int(64))
        parts = []
        for _ in range(1 + self.int(10)):
            unit = UNITS[self.int(len(UNITS))]
            parts.append(unit * (1 + self.int(3) if self.int(4) else 4 + self.int(40)))
        return "".join(parts)


def _pre_tokenizer(steps, byte_level):
    prefix, regex, alone = byte_level
    made = []
    for step in steps:
        if step[0] == "digits":
            made.append(pt.Digits(individual_digits=step[1]))
        else:
            pattern = STRINGS[step[1]] if step[0] == "string" else Regex(PATTERNS[step[1]])
            made.append(pt.Split(pattern, BEHAVIORS[step[2]], invert=step[3]))
    made.append(pt.ByteLevel(add_prefix_space=prefix, use_regex=regex))
    return made[0] if alone and len(made) == 1 else pt.Sequence(made)


_WORK = scratch_dir()
_BUILT: dict = {}


def _build(config):
    """(tokenizers, fastllm) for ``config``, or None where fastllm refuses the file."""
    if config in _BUILT:
        return _BUILT[config]
    if len(_BUILT) >= 256:
        _BUILT.clear()
    normalizer, steps, byte_level, added = config
    hf = tokenizers.Tokenizer(models.BPE(VOCAB, MERGES, ignore_merges=True))
    if NORMALIZERS[normalizer] is not None:
        hf.normalizer = NORMALIZERS[normalizer]()
    hf.pre_tokenizer = _pre_tokenizer(steps, byte_level)
    hf.decoder = decoders.ByteLevel()
    tokens = {}
    for content, special, lstrip, rstrip, single_word, normalized in added:
        tokens.setdefault(ADDED[content], AddedToken(
            ADDED[content], special=special, lstrip=lstrip, rstrip=rstrip, single_word=single_word, normalized=normalized
        ))
    if special := [t for t in tokens.values() if t.special]:
        hf.add_special_tokens(special)
    if plain := [t for t in tokens.values() if not t.special]:
        hf.add_tokens(plain)
    path = _WORK / f"pipeline{len(_BUILT)}.json"
    hf.save(str(path))
    hf = tokenizers.Tokenizer.from_file(str(path))
    try:
        ours = Tokenizer.from_hf_json(path)
    except Exception as exc:
        check_error(exc, str(path))
        ours = None
    _BUILT[config] = (hf, ours) if ours is not None else None
    return _BUILT[config]


def _reference(hf, text, encode_special_tokens=False):
    """tokenizers' ids, or None where it panics."""
    hf.encode_special_tokens = encode_special_tokens
    try:
        return hf.encode(text, add_special_tokens=False).ids
    except BaseException as exc:
        if type(exc).__name__ == "PanicException" and "bad split" in str(exc):
            return None
        raise
    finally:
        hf.encode_special_tokens = False


def one_input(data: bytes) -> None:
    draw = Draw(data)
    config = draw.config()
    built = _build(config)
    if built is None:
        return
    hf, ours = built
    texts = [draw.text() for _ in range(1 + draw.int(4))]
    n_model = len(_TOKENS)
    for text in texts:
        expected = _reference(hf, text)
        if expected is not None:
            got = ours.encode(text, allowed_special="all")
            if got != expected:
                raise Finding(f"{config}: encode({text!r}) = {got}, tokenizers {expected}")
            if all(i < n_model for i in got) and ours.decode(got) != hf.decode(got, skip_special_tokens=False):
                raise Finding(f"{config}: decode({got}) = {ours.decode(got)!r}, tokenizers {hf.decode(got)!r}")
        expected = _reference(hf, text, encode_special_tokens=True)
        if expected is not None and ours.encode_ordinary(text) != expected:
            raise Finding(f"{config}: encode_ordinary({text!r}) = {ours.encode_ordinary(text)}, tokenizers {expected}")
    if draw.flag(3):
        batch = ours.encode_batch(texts, allowed_special="all")
        if batch != [ours.encode(t, allowed_special="all") for t in texts]:
            raise Finding(f"{config}: encode_batch({texts!r}) != encode of each")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
