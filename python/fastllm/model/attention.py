"""Causal self-attention, with every attention computation routed through :func:`attend`.

:func:`attend` is the single place that picks the backend: ``fastllm.kernels.flash_attention``
(Triton on CUDA, its PyTorch reference on the CPU) whenever it can serve the call, and
``torch.nn.functional.scaled_dot_product_attention`` for what the kernels do not do (padding
masks of batched prompts, attention dropout while training, head sizes outside the kernels'
range). :func:`attention_probs` is the explicit ``softmax(q k^T)`` path behind
``return_attention=True``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GPTConfig

if TYPE_CHECKING:
    from .kv_cache import KVCache

try:
    from fastllm.kernels import flash_attention as _flash_attention
    from fastllm.kernels.checks import FLOAT_DTYPES as _KERNEL_DTYPES
    from fastllm.kernels.checks import MAX_HEAD_DIM as _KERNEL_MAX_D
    from fastllm.kernels.checks import MIN_HEAD_DIM as _KERNEL_MIN_D
except ImportError:  # pragma: no cover - the kernels ship with the package
    _flash_attention = None


def kernels_can_run(q: torch.Tensor) -> bool:
    """Whether ``fastllm.kernels.flash_attention`` accepts queries shaped and typed like ``q``."""
    return (
        _flash_attention is not None
        and q.dtype in _KERNEL_DTYPES
        and _KERNEL_MIN_D <= q.shape[-1] <= _KERNEL_MAX_D
    )


def visibility_mask(q_len: int, key_mask: Optional[torch.Tensor], kv_len: int, device) -> torch.Tensor:
    """Boolean ``(batch or 1, 1, q_len, kv_len)``: which keys each query may attend to.

    Causal with the queries aligned to the end of the keys (query ``i`` sits at key position
    ``i + kv_len - q_len``). ``key_mask`` ``(batch, kv_len)`` marks real tokens (padding is
    False); a query always sees itself, so padding rows stay finite.
    """
    i = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
    j = torch.arange(kv_len, device=device)[None, :]
    allowed = (j <= i)[None, None]
    if key_mask is not None:
        allowed = (allowed & key_mask.bool()[:, None, None, :]) | (j == i)[None, None]
    return allowed


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: Optional[torch.Tensor] = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Causal attention of ``q`` ``(B, H, Tq, D)`` over ``k``, ``v`` ``(B, H, Tk, D)``, ``Tq <= Tk``.

    ``key_mask`` ``(B, Tk)`` is True for real tokens, False for padding (``None``: no padding).
    """
    if key_mask is None and dropout_p == 0.0 and kernels_can_run(q):
        return _flash_attention(q, k, v, causal=True)
    mask = visibility_mask(q.shape[2], key_mask, k.shape[2], q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def attention_probs(q: torch.Tensor, k: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The attention probabilities ``softmax(q k^T / sqrt(D))`` ``(B, H, Tq, Tk)``, computed explicitly."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = visibility_mask(q.shape[2], key_mask, k.shape[2], q.device)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with GPT-2's packed ``[q | k | v]`` projection."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        key_mask: Optional[torch.Tensor] = None,
        cache: Optional["KVCache"] = None,
        layer: int = 0,
        return_attention: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        batch, seq, width = x.shape
        heads = self.c_attn(x).view(batch, seq, 3, self.n_head, width // self.n_head)
        q, k, v = heads.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, D)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        probs = None
        if return_attention:
            probs = attention_probs(q, k, key_mask)
            y = torch.matmul(probs, v)
        else:
            y = attend(q, k, v, key_mask, self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(batch, seq, width)
        return self.resid_dropout(self.c_proj(y)), probs
