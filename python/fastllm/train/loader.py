"""Memory-mapped ``(x, y)`` batches from prepared shards, sharded across DDP ranks.

The split's shards are read as one token stream cut into windows of ``seq_len + 1``
tokens (window ``i`` starts at token ``i * seq_len``; ``y`` is ``x`` shifted by one).
Each call takes the next ``world_size * batch_size`` windows of the epoch's order and
rank ``r`` keeps rows ``r*batch_size .. (r+1)*batch_size - 1``, so a single process
with batch ``B*N`` sees exactly the rows of ``N`` ranks with batch ``B``. With
``shuffle`` the order is a permutation drawn from ``(seed, epoch)`` (one int per
window in memory); otherwise windows come in stream order. The position is two
integers (epoch, window), saved in checkpoints for exact resume.
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
