"""The vocabulary every file format decodes to, and how its ranks relate to BPE merges.

tiktoken-style vocabularies store only ranks; merge-based formats (HF
``tokenizer.json``, GPT-2 ``merges.txt``) store the pair each token is built
from. The pair for the token of rank ``r`` is what byte-pair merging of its own
bytes, with only the tokens of rank below ``r``, leaves: exactly two parts.
A token that merging cannot build that way (more than two parts left) gets no
merge; it is only reached when a whole pre-tokenized piece equals it, which
``ignore_merges`` covers in HF and the whole-piece lookup covers in tiktoken.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple, Optional, TypeVar

from fastllm import _core

if TYPE_CHECKING:
    from fastllm.tokenizer.pipeline import Pipeline

#: The end-of-text special token, when a vocabulary has one.
ENDOFTEXT = "<|endoftext|>"

T = TypeVar("T", bytes, str)


class VocabData(NamedTuple):
    """A byte-level BPE vocabulary: everything needed to build a Tokenizer."""

    #: ``tokens[rank]`` are the bytes of the mergeable token with that rank.
    tokens: list[bytes]
    #: Special token text -> id (ids no mergeable token has).
    special_tokens: dict[str, int]
    #: A built-in pattern name (``gpt2``, ``cl100k``, ``o200k``) or a regex.
    pattern: str
    #: What a HF ``tokenizer.json`` adds (normalizer, several split steps, added
    #: tokens, BOS/EOS); None for a plain split pattern.
    pipeline: Optional["Pipeline"] = None
    #: ``ids[rank]``: the id of the token of that rank (distinct), where the ids are not
    #: the ranks (special tokens first, as HF's trainer numbers them; ranks left out; ids
    #: in another order than the merges, as RoBERTa's); None: every id is its rank.
    ids: Optional[list[int]] = None
    #: A merge list to merge by, HF ``tokenizers``' way (``(left, right)`` token bytes,
    #: earliest first), where a file's merges cannot be read as ranks: several merges
    #: for one token (files converted from tiktoken ranks, as Llama 3's), or a merge
    #: whose part only a later merge builds; the ranks are then only the token order.
    #: None: rank-based BPE, tiktoken's way.
    merges: Optional[list[tuple[bytes, bytes]]] = None
    #: With ``merges``: a piece that is a token is that token, whatever the merges
    #: make (``tokenizer.json``'s ``ignore_merges``). Rank-based BPE always does this.
    ignore_merges: bool = True


def tokens_by_id(by_id: dict[int, bytes], source: str) -> tuple[list[bytes], Optional[list[int]]]:
    """The tokens in the order of their ids, and the ids (None when they are 0..n-1, the
    ranks themselves); ValueError naming ``source`` for an empty vocabulary."""
    if not by_id:
        raise ValueError(f"{source}: no tokens (empty vocabulary)")
    count = len(by_id)
    if max(by_id) == count - 1:  # distinct keys: exactly 0..n-1
        return [by_id[rank] for rank in range(count)], None
    ids = sorted(by_id)
    return [by_id[token_id] for token_id in ids], ids


def merge_order(id_of: dict[T, int], merges: list[tuple[T, T]]) -> list[T]:
    """The tokens of ``id_of`` (token -> id) in an order their merges follow, for a
    vocabulary whose ids do not (RoBERTa numbers GPT-2's tokens by frequency): the single
    bytes (in id order), then what each merge builds, in merge order, then any token no
    merge builds (in id order). tokenizers merges by the merges' order, which BPE by these
    ranks reproduces; :func:`check_merges_follow_ranks` says whether it does."""
    by_id = sorted(id_of, key=id_of.__getitem__)
    order = [token for token in by_id if len(token) == 1]
    placed = set(order)
    for left, right in merges:
        built = left + right
        if built in id_of and built not in placed:
            order.append(built)
            placed.add(built)
    return order + [token for token in by_id if token not in placed]


def bpe_parts(token: bytes, rank_of: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Byte-pair merges ``token`` using only tokens of rank below ``max_rank``.

    The plain quadratic algorithm: repeatedly merge the adjacent pair whose
    concatenation has the lowest rank (leftmost on ties). Tokens are short.
    """
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best_index = -1
        best_rank = max_rank
        for i in range(len(parts) - 1):
            rank = rank_of.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_index, best_rank = i, rank
        if best_index < 0:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    return parts


def derive_merges(tokens: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The merge pairs of a rank-ordered vocabulary, in rank order of the tokens they build:
    for each token whose :func:`bpe_parts` below its own rank are two, those two. (The core
    does it, on all cores; the tests hold it to ``bpe_parts``.)"""
    return [(token[:cut], token[cut:]) for token, cut in zip(tokens, _core.merge_splits(tokens)) if cut is not None]


def rank_bpe_follows(tokens: list[bytes], merges: list[tuple[bytes, bytes]], ignore_merges: bool) -> bool:
    """Whether rank-based BPE on the ranks ``tokens`` gives exactly the ids ``tokenizers``
    gives merging by the list ``merges``: the list is what rank-based BPE joins
    (:func:`derive_merges`; tokenizers joins only listed pairs, rank-based BPE any two parts
    that make a token), and, without ``ignore_merges``, a merge builds every token of several
    bytes (rank-based BPE emits a piece that is a token as that token, tokenizers then only
    what merges build)."""
    # At most one join per token of several bytes: longer lists (several merges for one
    # token, as converted files have) are settled without deriving the joins, most of them
    # by the count of tokens alone (no sweep over the tokens).
    if len(merges) > len(tokens) or len(merges) > sum(len(token) > 1 for token in tokens) or derive_merges(tokens) != merges:
        return False
    built = {left + right for left, right in merges}
    return ignore_merges or all(len(token) == 1 or token in built for token in tokens)


def check_merges_follow_ranks(merges: Iterable[tuple[T, T]], rank_of: dict[T, int], source: str) -> None:
    """Checks that a merge list can be read as ranks: merge ``i`` builds a token ranked above
    its parts that are merged tokens themselves, and above the token merge ``i-1`` builds.
    (A single byte may rank anywhere: merging starts from the bytes, whatever their ranks,
    in tiktoken and in ``tokenizers`` alike.) Tokens are bytes, or texts in a
    one-character-per-byte form (concatenation must mean the same).

    Raises ValueError naming the first merge that breaks this: such a vocabulary
    merges in an order that rank-based BPE (fastllm, tiktoken) cannot reproduce.
    """
    previous = -1
    for number, (left, right) in enumerate(merges, start=1):
        for part in (left, right):
            if part not in rank_of:
                raise ValueError(f"{source}: merge {number} ({left!r}, {right!r}) uses {part!r}, which is not in the vocabulary")
        merged = left + right
        rank = rank_of.get(merged)
        if rank is None:
            raise ValueError(f"{source}: merge {number} ({left!r}, {right!r}) builds {merged!r}, which is not in the vocabulary")
        if rank <= previous or any(len(part) > 1 and rank <= rank_of[part] for part in (left, right)):
            raise ValueError(
                f"{source}: merge {number} ({left!r}, {right!r}) builds id {rank}, out of merge order; "
                "fastllm needs token ids that follow the merge order (rank-based BPE)"
            )
        previous = rank
