"""Token data on disk and in memory: the shard format, the batch loader, and JSON Lines records.

A prepared data directory holds headerless little-endian token arrays (``train_000000.bin``,
``val_000000.bin``, ...; ``uint16`` when every id fits, else ``uint32``), the tokenizer that
produced them, and ``meta.json``. ``BatchLoader`` streams (x, y) batches from it with exact
resume and data-parallel sharding; ``read_jsonl`` reads the fine-tuning data sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from fastllm.files import write_text_atomic
from fastllm.tokenizer import TOKENIZER_FILE


# -- shards --------------------------------------------------------------------------------
FORMAT = "fastllm-token-shards"
VERSION = 1
META_FILE = "meta.json"
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
    """Writes ``meta.json`` atomically."""
    write_text_atomic(Path(out_dir) / META_FILE, json.dumps(meta, indent=2) + "\n")


def _inside(data_dir: Path, name, what: str, meta_path: Path) -> Path:
    """``data_dir / name`` for a plain file name; anything that could leave the directory is refused."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"{meta_path}: {what} {name!r} is not a plain file name inside {data_dir}")
    return data_dir / name


def read_meta(data_dir: str | Path) -> dict:
    """Reads and checks ``meta.json`` of a prepared data directory (clear errors).

    Every file it names must be a plain file name inside the directory, and every shard must
    exist with the size it records.
    """
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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} metadata file")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path} has format version {meta.get('version')}, expected {VERSION}")
    try:
        itemsize = np.dtype(meta["dtype"]).itemsize
        vocab_size = meta["vocab_size"]
        if meta["dtype"] not in ("<u2", "<u4") or isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError
        meta.setdefault("tokenizer", TOKENIZER_FILE)
        _inside(data_dir, meta["tokenizer"], "tokenizer file", path)
        for split in SPLITS:
            for shard in meta["splits"][split]["shards"]:
                file = _inside(data_dir, shard["file"], "shard", path)
                if not isinstance(shard["tokens"], int) or shard["tokens"] < 0:
                    raise TypeError
                if not file.is_file() or file.stat().st_size != shard["tokens"] * itemsize:
                    raise ValueError(
                        f"shard {file} is missing or has the wrong size "
                        f"(expected {shard['tokens']} tokens of {meta['dtype']})"
                    )
    except (KeyError, TypeError, AttributeError):
        raise ValueError(f"{path} is malformed: dtype, vocab_size or the splits' shards are missing or wrong") from None
    return meta


def check_shard_ids(file: Path, tokens: np.ndarray, vocab_size: int, block: int = 1 << 24) -> None:
    """Refuses a shard holding an id outside the vocabulary, naming the file and the token offset.

    A vectorised max per block: a bad id would otherwise surface only when a batch draws it.
    """
    for start in range(0, len(tokens), block):
        part = np.asarray(tokens[start : start + block])
        if len(part) and int(part.max()) >= vocab_size:
            offset = start + int(np.argmax(part >= vocab_size))
            raise ValueError(
                f"shard {file} holds token id {int(part[offset - start])} at token offset {offset} "
                f"(byte {offset * part.itemsize}), outside the vocabulary of {vocab_size}: "
                "the shard is corrupt or was prepared with another tokenizer"
            )


def open_split(data_dir: str | Path, split: str) -> tuple[dict, list[np.ndarray]]:
    """The metadata and read-only memory maps of one split's shards, in order, each checked
    against the vocabulary."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    arrays = []
    for shard in meta["splits"][split]["shards"]:
        if shard["tokens"] == 0:
            continue
        file = data_dir / shard["file"]
        tokens = np.memmap(file, dtype=meta["dtype"], mode="r")
        check_shard_ids(file, tokens, meta["vocab_size"])
        arrays.append(tokens)
    if not arrays:
        raise ValueError(f"{data_dir} has no {split} tokens: the {split} split is empty")
    return meta, arrays


# -- loader --------------------------------------------------------------------------------
class TokenStream:
    """Read-only view of a split's shards as one concatenated token array."""

    def __init__(self, data_dir: str | Path, split: str):
        self.meta, self.shards = open_split(data_dir, split)
        self.offsets = np.cumsum([0] + [len(s) for s in self.shards])
        self.total = int(self.offsets[-1])

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens ``[start, start + length)`` as int64, across shard boundaries."""
        if start < 0 or start + length > self.total:
            raise IndexError(f"tokens [{start}, {start + length}) outside the stream of {self.total}")
        parts = []
        shard = int(np.searchsorted(self.offsets, start, side="right")) - 1
        while length > 0:
            local = start - int(self.offsets[shard])
            take = min(length, len(self.shards[shard]) - local)
            parts.append(np.asarray(self.shards[shard][local : local + take], dtype=np.int64))
            start += take
            length -= take
            shard += 1
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class BatchLoader:
    """Yields ``(x, y)`` int64 tensors of shape ``(batch_size, seq_len)`` for one rank."""

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        batch_size: int,
        seq_len: int,
        rank: int = 0,
        world_size: int = 1,
        device="cpu",
        shuffle: bool = False,
        seed: int = 0,
    ):
        if batch_size <= 0 or seq_len <= 0:
            raise ValueError(f"batch_size and seq_len must be positive, got {batch_size}, {seq_len}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.stream = TokenStream(data_dir, split)
        self.split = split
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.rank = rank
        self.world_size = world_size
        self.device = device
        self.shuffle = shuffle
        self.seed = seed
        self.windows = (self.stream.total - 1) // seq_len
        self.step_windows = world_size * batch_size
        if self.step_windows > self.windows:
            raise ValueError(
                f"the {split} split has {self.stream.total} tokens, fewer than one global batch "
                f"({world_size} ranks x {batch_size} rows x {seq_len} + 1): use a smaller batch or "
                "sequence length, or more data"
            )
        self.position = 0
        self.epoch = 0
        self._order = None

    @property
    def step_tokens(self) -> int:
        return self.step_windows * self.seq_len

    def _epoch_order(self) -> np.ndarray:
        if self._order is None or self._order[0] != self.epoch:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch])
                order = rng.permutation(self.windows).astype(np.int64)
            else:
                order = np.arange(self.windows, dtype=np.int64)
            self._order = (self.epoch, order)
        return self._order[1]

    def state_dict(self) -> dict:
        return {"position": self.position, "epoch": self.epoch, "split": self.split,
                "step_tokens": self.step_tokens, "shuffle": self.shuffle, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("step_tokens", self.step_tokens) != self.step_tokens:
            raise ValueError(
                f"the checkpoint's data position is for {state['step_tokens']} tokens per step, "
                f"this run takes {self.step_tokens}: resume with the same batch size, "
                "sequence length and number of processes"
            )
        self.position = int(state["position"])
        self.epoch = int(state["epoch"])
        self.shuffle = bool(state.get("shuffle", self.shuffle))
        self.seed = int(state.get("seed", self.seed))
        self._order = None

    def reset(self) -> None:
        self.position, self.epoch = 0, 0

    def next_batch(self):
        import torch

        if self.position + self.step_windows > self.windows:
            self.position = 0
            self.epoch += 1
        start = self.position + self.rank * self.batch_size
        rows = self._epoch_order()[start : start + self.batch_size]
        self.position += self.step_windows
        if not self.shuffle:  # consecutive windows: one contiguous read
            tokens = self.stream.read(int(rows[0]) * self.seq_len, self.batch_size * self.seq_len + 1)
            x = tokens[:-1].reshape(self.batch_size, self.seq_len)
            y = tokens[1:].reshape(self.batch_size, self.seq_len)
        else:
            windows = np.stack([self.stream.read(int(i) * self.seq_len, self.seq_len + 1) for i in rows])
            x, y = windows[:, :-1], windows[:, 1:]
        x, y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
        if str(self.device) != "cpu":
            x = x.pin_memory().to(self.device, non_blocking=True)
            y = y.pin_memory().to(self.device, non_blocking=True)
        return x, y

    def __iter__(self):
        while True:
            yield self.next_batch()


# -- jsonl ---------------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """Yields ``(line_number, record)`` for each non-blank line (1-based numbers).

    A malformed line raises ``ValueError("FILE:LINE: ...")``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    # Binary lines end at b"\n" only (a bare \r is JSON whitespace), and each is decoded on
    # its own, so a UTF-8 error is reported on its own line, not where read-ahead met it.
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            raw = raw.removesuffix(b"\n").removesuffix(b"\r")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                column = len(raw[: exc.start].decode("utf-8")) + 1
                raise ValueError(f"{path}:{line_no}: not valid UTF-8 ({exc.reason} at column {column})") from None
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                # The line holds no newline, so pos + 1 is the character column (json's colno
                # said 1 for an error at the end of the line, counting the newline).
                what = exc.msg.removesuffix(" at")  # "Unterminated string starting at"
                raise ValueError(f"{path}:{line_no}: malformed JSON ({what} at column {exc.pos + 1})") from None


def load_jsonl(path: str | Path) -> list[tuple[int, object]]:
    """All records of a JSONL file; an empty file is an error."""
    records = list(read_jsonl(path))
    if not records:
        raise ValueError(f"{path} holds no records")
    return records
