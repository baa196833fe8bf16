"""tiktoken's ``encode_with_unstable``: a text's stable tokens, and the token sequences its
unstable end may turn into once more text follows.

The tokens of the last split piece (with whitespace tokens before it: split patterns like
``\\s*[\\r\\n]`` can merge them with what follows) are unstable. Their bytes ``u`` may be
continued as: any single token starting with ``u``; for each cut of ``u`` into ``prefix +
suffix``, the tokens of ``prefix + t`` for every token ``t`` starting with ``suffix``, up to
the token that covers ``u``; and, when ``u`` ends in a whitespace character, ``u`` without
it and the character encoded apart (a split that appears once text follows). This is the
definition tiktoken gives its result; the tests compare with tiktoken itself.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import NamedTuple

# Unicode's White_Space characters (Rust's char::is_whitespace, which tiktoken uses)
_WHITE_SPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(c) for c in range(0x2000, 0x200B)))
_SPACE_BYTES = frozenset(b" \n\t")


class RankTables(NamedTuple):
    """A vocabulary's lookups in Python: token bytes -> rank, and every token's bytes sorted."""

    rank: dict[bytes, int]
    sorted_bytes: list[bytes]

    @classmethod
    def of(cls, tokens: Sequence[bytes]) -> RankTables:
        return cls({token: rank for rank, token in enumerate(tokens)}, sorted(tokens))


def byte_pair_encode(piece: bytes, rank: Mapping[bytes, int]) -> list[int]:
    """BPE of raw bytes without a split: merge the adjacent pair whose concatenation has the
    lowest rank (the leftmost of equals) until no pair is a token."""
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = rank.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at : at + 2] = [parts[at] + parts[at + 1]]
    return [rank[p] for p in parts]


def _last_char(data: bytes) -> tuple[str | None, int]:
    """The last UTF-8 character of ``data`` and its byte length, or ``(None, 1)`` when the
    bytes end in an invalid or incomplete sequence."""
    for size in range(1, min(4, len(data)) + 1):
        if data[-size] & 0xC0 != 0x80:  # a leading byte: the character starts here
            try:
                text = data[-size:].decode("utf-8")
            except UnicodeDecodeError:
                return None, 1
            return (text, size) if len(text) == 1 else (None, 1)
    return None, 1


def encode_with_unstable(tokenizer, tokens: list[int], tables: RankTables) -> tuple[list[int], list[list[int]]]:
    """Split ``tokens`` (a text's encoding) into its stable tokens and the possible
    completions of the rest (sorted lists of ids; see the module docstring)."""
    specials = set(tokenizer.special_tokens.values())
    if not tokens or tokens[-1] in specials:
        return tokens, []  # ends with a special token: nothing is unstable
    tail_start = max((i + 1 for i, t in enumerate(tokens) if t in specials), default=0)
    tail = tokenizer.decode_bytes(tokens[tail_start:]).decode("utf-8")
    unstable_len = len(tokenizer.encode_ordinary(tokenizer.split(tail)[-1]))

    def all_space(token: int) -> bool:
        return token not in specials and set(tokenizer.decode_single_token_bytes(token)) <= _SPACE_BYTES

    if all_space(tokens[-unstable_len]):
        while unstable_len < len(tokens) and all_space(tokens[-unstable_len - 1]):
            unstable_len += 1
    stable = tokens[: len(tokens) - unstable_len]
    unstable = tokenizer.decode_bytes(tokens[len(tokens) - unstable_len :])

    def starting_with(prefix: bytes):
        i = bisect.bisect_left(tables.sorted_bytes, prefix)
        while i < len(tables.sorted_bytes) and tables.sorted_bytes[i].startswith(prefix):
            yield tables.sorted_bytes[i]
            i += 1

    completions = {(tables.rank[token],) for token in starting_with(unstable)}
    for cut in range(1, len(unstable)):
        prefix, suffix = unstable[:cut], unstable[cut:]
        for token in starting_with(suffix):
            possibility = prefix + token
            try:  # text: split it as encoding would (a split can appear inside it)
                encoded = tokenizer.encode_ordinary(possibility.decode("utf-8"))
            except UnicodeDecodeError:
                encoded = byte_pair_encode(possibility, tables.rank)
            seq, covered = [], 0
            for t in encoded:
                seq.append(t)
                covered += len(tokenizer.decode_single_token_bytes(t))
                if covered >= len(unstable):
                    break
            completions.add(tuple(seq))
    if len(unstable) > 1:
        char, size = _last_char(unstable)
        if char is not None and char in _WHITE_SPACE and len(unstable) > size:
            completions.add(tuple(byte_pair_encode(unstable[:-size], tables.rank)
                                  + byte_pair_encode(unstable[-size:], tables.rank)))
    return stable, [list(c) for c in sorted(completions)]
