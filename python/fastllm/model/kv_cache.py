"""A preallocated key/value cache for incremental decoding."""

from __future__ import annotations

from typing import Optional, Tuple

import torch


class KVCache:
    """Keys and values of every layer, ``(layers, batch, heads, max_len, head_dim)``, filled left to right.

    ``append`` writes a layer's new keys/values after the ``length`` already cached and returns
    the valid prefix (cached + new) to attend over; ``advance`` moves ``length`` on once every
    layer has appended.
    """

    def __init__(
        self,
        n_layer: int,
        batch: int,
        n_head: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: Optional[torch.device] = None,
    ) -> None:
        shape = (n_layer, batch, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0

    @classmethod
    def for_model(cls, model, batch: int, max_len: int) -> "KVCache":
        cfg = model.config
        param = next(model.parameters())
        return cls(cfg.n_layer, batch, cfg.n_head, max_len, cfg.head_dim, param.dtype, param.device)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} positions needed, {self.max_len} allocated")
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, steps: int) -> None:
        self.length += steps

    def reset(self) -> None:
        self.length = 0
