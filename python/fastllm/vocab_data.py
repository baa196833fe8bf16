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
