"""GPT-2's original vocabulary files: ``vocab.json`` (token text -> id, in GPT-2's
byte-to-unicode text) and ``merges.txt`` (one ``A B`` merge per line, optionally
after a ``#version`` line)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastllm.bpe_merges import check_merges_follow_ranks
from fastllm.gpt2_bytes import text_to_bytes
from fastllm.vocab_data import VocabData, tokens_in_rank_order

#: GPT-2's one special token, when the vocabulary has it.
ENDOFTEXT = "<|endoftext|>"


def read_gpt2_vocab(
    vocab_path: str | os.PathLike,
    merges_path: str | os.PathLike,
    special_tokens: tuple[str, ...] = (ENDOFTEXT,),
) -> VocabData:
    """Reads ``vocab.json`` + ``merges.txt``; entries named in ``special_tokens`` become specials.

    The split pattern is GPT-2's. Raises ValueError naming the file (and line)
    for malformed content and for vocabularies whose ids do not follow the merge order.
    """
    vocab_source = str(vocab_path)
    try:
        vocab = json.loads(Path(vocab_path).read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{vocab_source}: not a valid JSON vocabulary: {exc}") from None
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{vocab_source}: expected a non-empty JSON object of token -> id")
    specials = {text: vocab[text] for text in special_tokens if text in vocab}
    special_ids = set(specials.values())
    tokens = tokens_from_text_vocab(vocab, special_ids, vocab_source)
    # Merges are checked on the token texts: the text map is one character per byte.
    rank_of_text = {text: token_id for text, token_id in vocab.items() if token_id not in special_ids}
    check_merges_follow_ranks(_read_merges(merges_path), rank_of_text, str(merges_path))
    return VocabData(tokens, specials, "gpt2")


def tokens_from_text_vocab(vocab: dict, special_ids: set[int], source: str) -> list[bytes]:
    """The token bytes in id order of a GPT-2 text vocabulary (text -> id), leaving out ``special_ids``."""
    by_id: dict[int, bytes] = {}
    for text, token_id in vocab.items():
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise ValueError(f"{source}: vocab entry {text!r} has invalid id {token_id!r}")
        if token_id in special_ids:
            continue
        try:
            by_id[token_id] = text_to_bytes(text)
        except ValueError as exc:
            raise ValueError(f"{source}: vocab entry {text!r} is not byte-level ({exc})") from None
    return tokens_in_rank_order(by_id, source)


def _read_merges(path: str | os.PathLike):
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text ({exc})") from None
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line or (number == 1 and line.startswith("#version")):
            continue
        fields = line.split(" ")
        if len(fields) != 2 or not all(fields):
            raise ValueError(f"{source}, line {number}: expected 'A B', got {line[:60]!r}")
        yield fields[0], fields[1]
