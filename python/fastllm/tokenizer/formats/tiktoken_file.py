"""tiktoken's ``.tiktoken`` vocabulary format: one ``base64(token) rank`` line per token."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from fastllm import _core
from fastllm.files import write_bytes_atomic
from fastllm.tokenizer.vocab import tokens_by_id


def parse_tiktoken(data: bytes, source: str = "<bytes>") -> tuple[list[bytes], list[int] | None]:
    """Parses ``.tiktoken`` content into ``(tokens, ids)``: the tokens in rank order, and
    their ranks (tiktoken's ids) where those are not 0..n-1 (None where they are).

    Lines may come in any order, ranks may have gaps (as in tiktoken), tokens and
    ranks must be distinct. Every problem raises ValueError naming ``source`` and the
    1-based line number.
    """
    # The core reads files with nothing unusual in them (every official one) at a tenth of
    # the cost, with the same result; anything else is read here, where errors are explained.
    if isinstance(data, bytes):
        tokens = _core.read_tiktoken_plain(data)
        if tokens is not None:
            return tokens, None
    return _parse_in_python(data, source)


def _parse_in_python(data: bytes, source: str) -> tuple[list[bytes], list[int] | None]:
    by_rank: dict[int, bytes] = {}
    line_of_token: dict[bytes, int] = {}
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(
                f"{source}, line {number}: expected 'BASE64TOKEN RANK', got {_show(line)} "
                "(the file may be truncated or corrupt)"
            )
        encoded, rank_text = fields
        try:
            token = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{source}, line {number}: {_show(encoded)} is not valid base64") from None
        if not rank_text.isdigit():
            raise ValueError(f"{source}, line {number}: rank {_show(rank_text)} is not a non-negative integer")
        if len(rank_text) > 18:  # no vocabulary comes near; int() refuses 4300 digits and more
            raise ValueError(f"{source}, line {number}: rank {_show(rank_text)} is too large")
        rank = int(rank_text)
        if not token:
            raise ValueError(f"{source}, line {number}: empty token")
        if rank in by_rank:
            raise ValueError(f"{source}, line {number}: rank {rank} appears twice")
        if token in line_of_token:
            raise ValueError(
                f"{source}, line {number}: token {token!r} already has a rank (line {line_of_token[token]})"
            )
        by_rank[rank] = token
        line_of_token[token] = number
    return tokens_by_id(by_rank, source)


def read_tiktoken(path: str | os.PathLike) -> tuple[list[bytes], list[int] | None]:
    """Reads a ``.tiktoken`` file; see :func:`parse_tiktoken`."""
    return parse_tiktoken(Path(path).read_bytes(), source=str(path))


def format_tiktoken(tokens: list[bytes], ids: list[int] | None = None) -> bytes:
    """The ``.tiktoken`` text of ``tokens`` (``tokens[rank]``), one line per token, with
    its rank, or its id from ``ids`` (rising) where given."""
    ranks = range(len(tokens)) if ids is None else ids
    if ids is not None and any(b <= a for a, b in zip(ids, ids[1:])):
        # tiktoken merges by these numbers: ids out of the merge order would merge otherwise.
        raise ValueError(
            "a .tiktoken file's ranks are both the ids and the merge order; this vocabulary's ids do not "
            "follow its merges (as RoBERTa's), so it has no .tiktoken form (save() or to_hf_json() keep it)"
        )
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in zip(ranks, tokens))


def write_tiktoken(path: str | os.PathLike, tokens: list[bytes], ids: list[int] | None = None) -> Path:
    """Writes ``tokens`` (in rank order; ``ids``: see :func:`format_tiktoken`) as a
    ``.tiktoken`` file, atomically."""
    return write_bytes_atomic(path, format_tiktoken(tokens, ids))


def _show(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
