"""What every vocabulary file format decodes to."""

from __future__ import annotations

from typing import NamedTuple


class VocabData(NamedTuple):
    """A byte-level BPE vocabulary: everything needed to build a Tokenizer."""

    #: ``tokens[rank]`` are the bytes of the mergeable token with that rank (= id).
    tokens: list[bytes]
    #: Special token text -> id (ids above the mergeable ranks).
    special_tokens: dict[str, int]
    #: A built-in pattern name (``gpt2``, ``cl100k``, ``o200k``) or a regex.
    pattern: str


def tokens_in_rank_order(by_rank: dict[int, bytes], source: str) -> list[bytes]:
    """``[by_rank[0], by_rank[1], ...]``; ValueError naming ``source`` unless the ranks are 0..n-1."""
    if not by_rank:
        raise ValueError(f"{source}: no tokens (empty vocabulary)")
    count = len(by_rank)
    if max(by_rank) != count - 1:
        missing = next(rank for rank in range(count) if rank not in by_rank)
        raise ValueError(
            f"{source}: token ranks (= ids) must be 0..{count - 1} without gaps, special tokens above them; "
            f"rank {missing} is missing (largest rank {max(by_rank)})"
        )
    return [by_rank[rank] for rank in range(count)]
