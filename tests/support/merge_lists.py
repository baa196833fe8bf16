"""Merge lists as tokenizer.json files converted from tiktoken ranks hold them (Llama 3's,
Llama 4's, GPT-OSS's, Tekken's on the HF hub): for the tests and benches of merging by a
list (``rust/src/bpe/listed_merges.rs``)."""

from __future__ import annotations


def converter_merges(tokens: list[bytes]) -> list[tuple[bytes, bytes]]:
    """What transformers' ``TikTokenConverter`` lists for ranks ``tokens``: every split of each
    token into two tokens, by the token's rank, then the left part's, then the right's."""
    rank = {token: r for r, token in enumerate(tokens)}
    merges = []
    for token in tokens:
        splits = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in rank and token[i:] in rank]
        merges.extend(sorted(splits, key=lambda pair: (rank[pair[0]], rank[pair[1]])))
    return merges
