"""Finding and reading the tokenizer files of a HF checkpoint directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastllm.gpt2_vocab_files import ENDOFTEXT, read_gpt2_vocab
from fastllm.hf_tokenizer_json import read_hf_json
from fastllm.vocab_data import VocabData


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
    if (root / "tokenizer.json").is_file():
        return read_hf_json(root / "tokenizer.json", known_patterns)
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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{added}: not valid JSON: {exc}") from None
    if not isinstance(entries, dict):
        raise ValueError(f"{added}: expected a JSON object of token -> id")
    return tuple(entries)
