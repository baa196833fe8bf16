"""The on-disk format of a prepared corpus.

A data directory holds headerless little-endian token arrays, ``train_000000.bin``,
``val_000000.bin``, ... (``uint16`` when every id fits, else ``uint32``), the tokenizer
that produced them, and ``meta.json`` describing it all. ``meta.json`` is written last,
so a directory without it is an unfinished (or interrupted) preparation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FORMAT = "fastllm-token-shards"
VERSION = 1
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.fastllm.json"
SPLITS = ("train", "val")


def token_dtype(n_vocab: int) -> np.dtype:
    """The narrowest unsigned dtype holding every id below ``n_vocab``."""
    if n_vocab <= 0:
        raise ValueError(f"vocabulary size must be positive, got {n_vocab}")
    return np.dtype("<u2") if n_vocab <= 2**16 else np.dtype("<u4")


class ShardWriter:
    """Appends token arrays to ``{split}_NNNNNN.bin`` files of at most ``shard_tokens`` tokens.

    Only the array being written is in memory, never a whole shard.
    """

    def __init__(self, out_dir: Path, split: str, dtype: np.dtype, shard_tokens: int):
        if shard_tokens <= 0:
            raise ValueError(f"shard_tokens must be positive, got {shard_tokens}")
        self.out_dir = Path(out_dir)
        self.split = split
        self.dtype = np.dtype(dtype)
        self.shard_tokens = shard_tokens
        self.shards: list[dict] = []
        self._file = None
        self._in_shard = 0

    def _open_next(self) -> None:
        self._close_current()
        name = f"{self.split}_{len(self.shards):06d}.bin"
        self._file = open(self.out_dir / name, "wb")
        self.shards.append({"file": name, "tokens": 0})
        self._in_shard = 0

    def _close_current(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens).astype(self.dtype, copy=False)
        start = 0
        while start < len(tokens):
            if self._file is None or self._in_shard == self.shard_tokens:
                self._open_next()
            take = min(self.shard_tokens - self._in_shard, len(tokens) - start)
            self._file.write(tokens[start : start + take].tobytes())
            self._in_shard += take
            self.shards[-1]["tokens"] += take
            start += take

    @property
    def tokens(self) -> int:
        return sum(shard["tokens"] for shard in self.shards)

    def close(self) -> list[dict]:
        self._close_current()
        return self.shards


def write_meta(out_dir: Path, meta: dict) -> None:
    """Writes ``meta.json`` atomically (temporary file, then rename)."""
    out_dir = Path(out_dir)
    tmp = out_dir / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / META_FILE)


def read_meta(data_dir: str | Path) -> dict:
    """Reads and checks ``meta.json`` of a prepared data directory (clear errors)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {data_dir} does not exist")
    path = data_dir / META_FILE
    if not path.is_file():
        raise ValueError(
            f"{data_dir} has no {META_FILE}: it is not a prepared data directory "
            "(run `fastllm prepare --tokenizer TOK --out DIR FILES...` first)"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} metadata file")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path} has format version {meta.get('version')}, expected {VERSION}")
    for split in SPLITS:
        for shard in meta["splits"][split]["shards"]:
            file = data_dir / shard["file"]
            itemsize = np.dtype(meta["dtype"]).itemsize
            if not file.is_file() or file.stat().st_size != shard["tokens"] * itemsize:
                raise ValueError(
                    f"shard {file} is missing or has the wrong size "
                    f"(expected {shard['tokens']} tokens of {meta['dtype']})"
                )
    return meta


def open_split(data_dir: str | Path, split: str) -> tuple[dict, list[np.ndarray]]:
    """The metadata and read-only memory maps of one split's shards, in order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    arrays = [
        np.memmap(data_dir / shard["file"], dtype=meta["dtype"], mode="r")
        for shard in meta["splits"][split]["shards"]
        if shard["tokens"] > 0
    ]
    if not arrays:
        raise ValueError(f"{data_dir} has no {split} tokens: the {split} split is empty")
    return meta, arrays
