"""tiktoken's ``.tiktoken`` vocabulary format: one ``base64(token) rank`` line per token."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from fastllm import _core
from fastllm.files import write_bytes_atomic
from fastllm.tokenizer.vocab import tokens_in_rank_order


def parse_tiktoken(data: bytes, source: str = "<bytes>") -> list[bytes]:
    """Parses ``.tiktoken`` content into the token list in rank order (``tokens[rank]``).

    Lines may come in any order but the ranks must be exactly 0..n-1 and the
    tokens distinct. Every problem raises ValueError naming ``source`` and the
    1-based line number.
    """
    # The core reads files with nothing unusual in them (every official one) at a tenth of
    # the cost, with the same result; anything else is read here, where errors are explained.
    if isinstance(data, bytes):
        tokens = _core.read_tiktoken_plain(data)
        if tokens is not None:
            return tokens
    return _parse_in_python(data, source)


def _parse_in_python(data: bytes, source: str) -> list[bytes]:
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
    return tokens_in_rank_order(by_rank, source)


def read_tiktoken(path: str | os.PathLike) -> list[bytes]:
    """Reads a ``.tiktoken`` file; see :func:`parse_tiktoken`."""
    return parse_tiktoken(Path(path).read_bytes(), source=str(path))


def format_tiktoken(tokens: list[bytes]) -> bytes:
    """The ``.tiktoken`` text of ``tokens`` (``tokens[rank]``), one line per rank."""
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in enumerate(tokens))


def write_tiktoken(path: str | os.PathLike, tokens: list[bytes]) -> Path:
    """Writes ``tokens`` (in rank order) as a ``.tiktoken`` file, atomically."""
    return write_bytes_atomic(path, format_tiktoken(tokens))


def _show(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
