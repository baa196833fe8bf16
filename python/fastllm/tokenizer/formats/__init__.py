"""Tokenizer file formats, one module each; every reader returns a
:class:`~fastllm.tokenizer.vocab.VocabData` and every writer takes one.

* :mod:`.fastllm_json`: fastllm's own JSON file (:meth:`Tokenizer.save` / :meth:`Tokenizer.load`).
* :mod:`.tiktoken_file`: tiktoken's ``.tiktoken`` ranks (no pattern, no special tokens).
* :mod:`.gpt2_vocab`: GPT-2's ``vocab.json`` + ``merges.txt`` and its byte-to-character map.
* :mod:`.hf_json`: HF ``tokenizer.json`` (byte-level BPE, with its normalizer, pre-tokenizer
  steps, added tokens and BOS/EOS).
* :mod:`.oniguruma`: split regexes between fastllm's dialect and Oniguruma's (``tokenizer.json``).
* :mod:`.hf_checkpoint`: which of those files a HF checkpoint directory holds.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for the block. Reading or writing a vocabulary
    makes hundreds of thousands of small lists, tuples and dicts, none in a cycle, and the
    collector, triggered by their number, scanned them again and again: a third of the time
    to read o200k's ``tokenizer.json``, a quarter of the time to write it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
