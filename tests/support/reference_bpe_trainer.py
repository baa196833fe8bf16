"""A small, obviously correct byte-level BPE trainer: the reference for fastllm's.

It recounts every pair from scratch before each merge and picks the best pair with
``max``; pieces come from the third-party ``regex`` module, special tokens are cut out
with ``re``. Same rules as ``fastllm.tokenizer.training.train_ranks``:

* each text is a document: it is split at special tokens (leftmost, longest first),
  each stretch between them is split into pieces by the pattern;
* a pair's count is the number of adjacent positions holding it, summed over all
  pieces (weighted by how often each piece occurs);
* the best pair has the highest count, then the smallest left id, then the smallest
  right id; merging stops when the vocabulary is full or the best count is below
  ``max(min_frequency, 1)``.
"""

from __future__ import annotations

import re
from collections import Counter

import regex

PATTERNS = {
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
    "cl100k": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    "o200k": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}


def pieces(texts, pattern, special_tokens=()):
    """Counter of the pieces (as bytes) of all texts."""
    split = regex.compile(PATTERNS.get(pattern, pattern))
    specials = sorted(special_tokens, key=len, reverse=True)
    cut = re.compile("|".join(map(re.escape, specials))) if specials else None
    counts = Counter()
    for text in texts:
        for segment in cut.split(text) if cut else [text]:
            for piece in split.findall(segment):
                if piece:
                    counts[piece.encode("utf-8")] += 1
    return counts


def merge(word, pair, new_id):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train(texts, vocab_size, pattern="cl100k", special_tokens=(), min_frequency=2):
    """The mergeable tokens in rank order (same contract as train_ranks)."""
    words = {tuple(p): n for p, n in pieces(texts, pattern, special_tokens).items()}
    tokens = [bytes([b]) for b in range(256)]
    while len(tokens) < vocab_size - len(special_tokens):
        pair_counts = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pair_counts[pair] += n
        if not pair_counts:
            break
        best, count = max(pair_counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        if count < max(min_frequency, 1):
            break
        new_id = len(tokens)
        tokens.append(tokens[best[0]] + tokens[best[1]])
        merged = Counter()
        for word, n in words.items():
            merged[merge(word, best, new_id)] += n
        words = merged
    return tokens
