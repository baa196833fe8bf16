"""Memory-mapped ``(x, y)`` batches from prepared shards, sharded across DDP ranks.

The split's shards are read as one token stream. Each call takes the next
``world_size * batch_size`` windows of ``seq_len + 1`` tokens (overlapping by one
token, so every token is a target once), and rank ``r`` keeps rows
``r*batch_size .. (r+1)*batch_size - 1``. A single process with batch ``B*N`` thus
sees exactly the rows of ``N`` ranks with batch ``B``. The position in the stream is
a pair of integers, saved in checkpoints for exact resume; at the end of the
stream the loader wraps around and counts an epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .shards import open_split


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
        self.step_tokens = world_size * batch_size * seq_len
        if self.step_tokens + 1 > self.stream.total:
            raise ValueError(
                f"the {split} split has {self.stream.total} tokens, fewer than one global batch "
                f"({world_size} ranks x {batch_size} rows x {seq_len} + 1): use a smaller batch or "
                "sequence length, or more data"
            )
        self.position = 0
        self.epoch = 0

    def state_dict(self) -> dict:
        return {"position": self.position, "epoch": self.epoch, "split": self.split,
                "step_tokens": self.step_tokens}

    def load_state_dict(self, state: dict) -> None:
        if state.get("step_tokens", self.step_tokens) != self.step_tokens:
            raise ValueError(
                f"the checkpoint's data position is for {state['step_tokens']} tokens per step, "
                f"this run takes {self.step_tokens}: resume with the same batch size, "
                "sequence length and number of processes"
            )
        self.position = int(state["position"])
        self.epoch = int(state["epoch"])

    def reset(self) -> None:
        self.position, self.epoch = 0, 0

    def next_batch(self):
        import torch

        if self.position + self.step_tokens + 1 > self.stream.total:
            self.position = 0
            self.epoch += 1
        rows = self.batch_size * self.seq_len
        start = self.position + self.rank * rows
        tokens = self.stream.read(start, rows + 1)
        self.position += self.step_tokens
        x = torch.from_numpy(tokens[:-1].reshape(self.batch_size, self.seq_len))
        y = torch.from_numpy(tokens[1:].reshape(self.batch_size, self.seq_len))
        if str(self.device) != "cpu":
            x = x.pin_memory().to(self.device, non_blocking=True)
            y = y.pin_memory().to(self.device, non_blocking=True)
        return x, y

    def __iter__(self):
        while True:
            yield self.next_batch()
