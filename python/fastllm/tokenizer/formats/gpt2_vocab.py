"""GPT-2's vocabulary files and the byte map they (and HF ``tokenizer.json``) are written in.

``vocab.json`` maps token text to id and ``merges.txt`` holds one ``A B`` merge
per line, optionally after a ``#version`` line. Every token is stored as text,
each byte becoming one character: printable Latin-1 bytes map to themselves;
the other 68 bytes (controls, space, DEL, NBSP, soft hyphen) map in byte order
to U+0100, U+0101, ... so that no token text contains whitespace or control
characters.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from fastllm import _core
from fastllm.tokenizer.vocab import (
    ENDOFTEXT,
    VocabData,
    check_merges_follow_ranks,
    merge_order,
    rank_bpe_follows,
    tokens_by_id,
)

# ----- the byte map -----


def _printable_bytes() -> list[int]:
    return [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\u00a1"), ord("\u00ac") + 1),
        *range(ord("\u00ae"), ord("\u00ff") + 1),
    ]


def _build_table() -> list[str]:
    table = [""] * 256
    printable = set(_printable_bytes())
    shifted = 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


#: ``BYTE_TO_CHAR[b]`` is the character that stands for byte ``b``.
BYTE_TO_CHAR: tuple[str, ...] = tuple(_build_table())
#: The inverse of :data:`BYTE_TO_CHAR`.
CHAR_TO_BYTE: dict[str, int] = {char: byte for byte, char in enumerate(BYTE_TO_CHAR)}


# str.translate tables: Latin-1 text of the bytes <-> GPT-2 text. Characters below 256
# that stand for no byte (space, controls, ...) map to U+FFFF so encoding them fails.
_TO_GPT2 = {byte: char for byte, char in enumerate(BYTE_TO_CHAR)}
_FROM_GPT2 = {**{code: 0xFFFF for code in range(256)}, **{ord(char): byte for char, byte in CHAR_TO_BYTE.items()}}


def bytes_to_text(data: bytes) -> str:
    """The GPT-2 text form of ``data`` (one character per byte)."""
    return data.decode("latin-1").translate(_TO_GPT2)


def text_to_bytes(text: str) -> bytes:
    """The bytes that a GPT-2 token text stands for.

    Raises ValueError naming the first character that is not in the map.
    """
    try:
        return text.translate(_FROM_GPT2).encode("latin-1")
    except UnicodeEncodeError:
        bad = next(c for c in text if c not in CHAR_TO_BYTE)
        raise ValueError(
            f"{text!r} is not GPT-2 byte-level text: character {bad!r} (U+{ord(bad):04X}) does not stand for a byte"
        ) from None


# ----- vocab.json and merges.txt -----


def read_gpt2_vocab(
    vocab_path: str | os.PathLike,
    merges_path: str | os.PathLike,
    special_tokens: tuple[str, ...] = (ENDOFTEXT,),
) -> VocabData:
    """Reads ``vocab.json`` + ``merges.txt``; entries named in ``special_tokens`` become specials.

    The split pattern is GPT-2's. Raises ValueError naming the file (and line)
    for malformed content. Ids in another order than the merges are fine, and merges that
    rank-based BPE cannot follow are merged by as a list (see :func:`merge_rule`).
    """
    vocab_source = str(vocab_path)
    try:
        vocab = json.loads(Path(vocab_path).read_bytes())
    except (ValueError, RecursionError) as exc:  # not UTF-8 or JSON, an int of too many digits, nesting too deep
        raise ValueError(f"{vocab_source}: not a valid JSON vocabulary: {exc}") from None
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{vocab_source}: expected a non-empty JSON object of token -> id")
    specials = {text: vocab[text] for text in special_tokens if text in vocab}
    for text, token_id in specials.items():
        _check_id(text, token_id, vocab_source)
    merges_text = _merges_text(merges_path)
    # The core reads files with nothing unusual in them (rust/src/hf_vocab.rs), as the Python
    # below would; anything else goes to the Python, which names the problem and its line.
    merges = [line for _, line in _merge_lines(merges_text)]
    added = [(text, token_id, True) for text, token_id in specials.items()]
    plain = _core.read_hf_vocab_plain(vocab, merges, added, True)  # no ignore_merges (BPE.from_file)
    if plain is not None:
        tokens, listed = plain
        return VocabData(tokens, specials, "gpt2", merges=listed, ignore_merges=listed is None)
    special_ids = set(specials.values())
    tokens, ids = tokens_from_text_vocab(vocab, special_ids, vocab_source)
    # Merges are checked on the token texts: the text map is one character per byte.
    rank_of_text = {text: token_id for text, token_id in vocab.items() if token_id not in special_ids}
    merges = list(_read_merges(merges_text, merges_path))  # a generator: its line errors raise here
    # tokenizers' BPE.from_file, the reference here, has no ignore_merges.
    tokens, ids, listed = merge_rule(tokens, ids, rank_of_text, merges, False, str(merges_path))
    return VocabData(tokens, specials, "gpt2", ids=ids, merges=listed, ignore_merges=listed is None)


def tokens_from_text_vocab(vocab: dict, special_ids: set[int], source: str) -> tuple[list[bytes], list[int] | None]:
    """The token bytes in id order of a GPT-2 text vocabulary (text -> id), leaving out
    ``special_ids``, and their ids where those are not 0..n-1 (see :func:`tokens_by_id`)."""
    by_id: dict[int, bytes] = {}
    for text, token_id in vocab.items():
        _check_id(text, token_id, source)
        if token_id in special_ids:
            continue
        if token_id in by_id:  # ids may have gaps, so a shared one would leave no hole to notice
            raise ValueError(f"{source}: vocab entries {bytes_to_text(by_id[token_id])!r} and {text!r} share id {token_id}")
        try:
            by_id[token_id] = text_to_bytes(text)
        except ValueError as exc:
            raise ValueError(f"{source}: vocab entry {text!r} is not byte-level ({exc})") from None
    return tokens_by_id(by_id, source)


def merge_rule(
    tokens: list[bytes],
    ids: list[int] | None,
    id_of: dict[str, int],
    merges: list[tuple[str, str]],
    ignore_merges: bool,
    source: str,
) -> tuple[list[bytes], list[int] | None, list[tuple[bytes, bytes]] | None]:
    """How a vocabulary read from a merges-based file merges, as ``tokenizers`` does:
    ``(tokens, ids, None)`` ranked for rank-based BPE where that gives tokenizers' ids (see
    :func:`fastllm.tokenizer.vocab.derive_merges`), else ``(tokens, ids, merge list)`` as
    given, for the core to merge by the list. ``tokens``/``ids`` as
    :func:`tokens_from_text_vocab` gave them, ``id_of`` text -> id; ValueError naming
    ``source`` for a merge whose part or result is not in the vocabulary."""
    listed = listed_merges(merges, id_of, source)
    ranked = _ranked_by_merges(tokens, ids, id_of, merges, source)
    if ranked is not None and rank_bpe_follows(ranked[0], listed, ignore_merges):
        return ranked[0], ranked[1], None
    return tokens, ids, listed


def _ranked_by_merges(
    tokens: list[bytes], ids: list[int] | None, id_of: dict[str, int], merges: list[tuple[str, str]], source: str
) -> tuple[list[bytes], list[int] | None] | None:
    """``(tokens, ids)`` as given where the merges follow the ids; else ranked by the merges
    (RoBERTa numbers GPT-2's tokens by frequency); None where the merges cannot be ranks
    (several merges for one token, a part built after what it builds)."""
    try:
        check_merges_follow_ranks(merges, id_of, source)
        return tokens, ids
    except ValueError:
        order = merge_order(id_of, merges)
        try:
            check_merges_follow_ranks(merges, {text: rank for rank, text in enumerate(order)}, source)
        except ValueError:
            return None
    return [text_to_bytes(text) for text in order], [id_of[text] for text in order]


def listed_merges(merges: list[tuple[str, str]], id_of: dict[str, int], source: str) -> list[tuple[bytes, bytes]]:
    """``merges`` (byte-level texts) as token bytes; ValueError naming ``source`` and the
    first merge whose part or result is not in the vocabulary (``id_of``: text -> id),
    which tokenizers refuses too."""
    pairs = []
    as_bytes: dict[str, bytes] = {}  # parts recur: each text converted once
    for number, (left, right) in enumerate(merges, start=1):
        for text in (left, right, left + right):
            if text not in id_of:
                what = "builds" if text == left + right else "uses"
                raise ValueError(f"{source}: merge {number} ({left!r}, {right!r}) {what} {text!r}, which is not in the vocabulary")
        left_bytes = as_bytes.get(left) or as_bytes.setdefault(left, text_to_bytes(left))
        right_bytes = as_bytes.get(right) or as_bytes.setdefault(right, text_to_bytes(right))
        pairs.append((left_bytes, right_bytes))
    return pairs


def _check_id(text: str, token_id: object, source: str) -> None:
    if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
        raise ValueError(f"{source}: vocab entry {text!r} has invalid id {token_id!r}")


def _merges_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from None


def _merge_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of each merge line of a ``merges.txt``: no line end, no blank
    lines, no ``#version`` header."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line and not (number == 1 and line.startswith("#version")):
            yield number, line


def _read_merges(text: str, path: str | os.PathLike):
    source = str(path)
    for number, line in _merge_lines(text):
        fields = line.split(" ")
        if len(fields) != 2 or not all(fields):
            raise ValueError(f"{source}, line {number}: expected 'A B', got {line[:60]!r}")
        yield fields[0], fields[1]
