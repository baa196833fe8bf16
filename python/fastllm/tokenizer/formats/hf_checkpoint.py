"""The tokenizer files of a HF checkpoint directory: ``tokenizer.json``, or GPT-2's
``vocab.json`` + ``merges.txt`` (+ ``added_tokens.json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastllm.tokenizer.formats.gpt2_vocab import read_gpt2_vocab
from fastllm.tokenizer.formats.hf_json import read_hf_json
from fastllm.tokenizer.vocab import ENDOFTEXT, VocabData

#: The file a HF checkpoint keeps its whole tokenizer in.
HF_TOKENIZER_FILE = "tokenizer.json"


def read_pretrained_vocab(path: str | os.PathLike, known_patterns: dict[str, str] | None = None) -> VocabData:
    """The vocabulary of a checkpoint directory (or of a ``tokenizer.json`` file itself).

    Prefers ``tokenizer.json``; otherwise reads GPT-2's ``vocab.json`` +
    ``merges.txt``, with ``<|endoftext|>`` and the entries of
    ``added_tokens.json`` (when present) as special tokens.
    """
    root = Path(path)
    if root.is_file():
        return read_hf_json(root, known_patterns)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such checkpoint directory or tokenizer.json file")
    if (root / HF_TOKENIZER_FILE).is_file():
        return read_hf_json(root / HF_TOKENIZER_FILE, known_patterns)
    vocab, merges = root / "vocab.json", root / "merges.txt"
    if vocab.is_file() and merges.is_file():
        return read_gpt2_vocab(vocab, merges, special_tokens=(ENDOFTEXT, *_added_tokens(root)))
    raise FileNotFoundError(f"{root}: no tokenizer found (expected tokenizer.json, or vocab.json and merges.txt)")


def _added_tokens(root: Path) -> tuple[str, ...]:
    added = root / "added_tokens.json"
    if not added.is_file():
        return ()
    try:
        entries = json.loads(added.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8 or JSON, an int of too many digits, nesting too deep
        raise ValueError(f"{added}: not valid JSON: {exc}") from None
    if not isinstance(entries, dict):
        raise ValueError(f"{added}: expected a JSON object of token -> id")
    return tuple(entries)
