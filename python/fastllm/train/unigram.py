"""The unigram baseline: the loss of a model that ignores context.

A model that predicts every token with the split's own token frequencies gets a
cross-entropy equal to the entropy of that distribution; a language model is learning
something about context only when its loss is below it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loader import TokenStream


def unigram_entropy(data_dir: str | Path, split: str = "val", block: int = 1 << 24) -> float:
    """Entropy in nats of the token unigram distribution of ``split`` (streamed in blocks)."""
    stream = TokenStream(data_dir, split)
    counts = np.zeros(stream.meta["vocab_size"], dtype=np.int64)
    for shard in stream.shards:
        for start in range(0, len(shard), block):
            counts += np.bincount(np.asarray(shard[start : start + block]), minlength=len(counts))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
