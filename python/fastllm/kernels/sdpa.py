"""Drop-in ``torch.nn.functional.scaled_dot_product_attention``.

``from fastllm.kernels import scaled_dot_product_attention`` and call it exactly like torch's.
The Triton kernel runs when the call is one it supports: 4-D ``(batch, heads, seq, dim)``
inputs of one float16/bfloat16/float32 dtype, equal q/k/v head dims in [16, 256], no
``attn_mask``, ``dropout_p == 0``, and GQA only with ``enable_gqa=True``. Everything else
(and every call the dispatch routes to the reference path, e.g. on CPU) goes to torch.

Note ``is_causal`` in torch's SDPA aligns the mask top-left (query ``i`` sees keys ``<= i``)
even when ``q_len != kv_len``; this function keeps that meaning. :func:`flash_attention`
uses the bottom-right convention instead.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import checks
from .dispatch import select_backend


def _supported(query, key, value, attn_mask, dropout_p, scale, enable_gqa) -> bool:
    if attn_mask is not None or dropout_p != 0.0:
        return False
    if scale is not None and not (isinstance(scale, (int, float)) and 0 < scale < float("inf")):
        return False
    if not all(isinstance(t, torch.Tensor) and not t.is_nested and t.dim() == 4 for t in (query, key, value)):
        return False
    if not (query.dtype == key.dtype == value.dtype) or query.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return False
    if not (query.device == key.device == value.device):
        return False
    d = query.shape[-1]
    if key.shape[-1] != d or value.shape != key.shape or not checks.MIN_HEAD_DIM <= d <= checks.MAX_HEAD_DIM:
        return False
    b, h, nq, _ = query.shape
    if key.shape[0] != b or nq == 0 or key.shape[2] == 0 or b == 0 or h == 0:
        return False
    if b > checks.MAX_GRID_YZ or h > checks.MAX_GRID_YZ:
        return False
    hk = key.shape[1]
    if hk != h and not (enable_gqa and hk > 0 and h % hk == 0):
        return False
    return select_backend(query) == "triton"


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: Optional[torch.Tensor] = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: Optional[float] = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    if not _supported(query, key, value, attn_mask, dropout_p, scale, enable_gqa):
        extra = {"enable_gqa": True} if enable_gqa else {}  # the keyword is new in torch 2.5
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, **extra
        )
    from .attention import FlashAttentionFunction

    scale_v, _, _ = checks.check_attention(query, key, value, scale, None, None, bool(is_causal))
    nq, nk = query.shape[2], key.shape[2]
    # top-left causal: key j visible iff j <= i, i.e. j <= i + (nk - nq) + right with right = nq - nk
    window = (None, nq - nk) if is_causal else (None, None)
    out, _ = FlashAttentionFunction.apply(query, key, value, scale_v, window, 0.0, None)
    return out
