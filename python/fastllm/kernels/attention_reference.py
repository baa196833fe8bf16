"""Pure-PyTorch attention with the exact semantics of the Triton kernels.

Materialises the full score matrix, so it is meant for CPUs, small problems and as the
float64 oracle of the tests. Computes in float32 for half-precision inputs (float64 stays
float64) and returns ``out`` in the input dtype plus the log-sum-exp in the compute dtype.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .checks import Window, normalize_window

Offsets = Tuple[Optional[int], Optional[int]]  # (left, right) as normalize_window returns them


def window_keep_mask(q_len: int, kv_len: int, offsets: Offsets, device=None) -> torch.Tensor:
    """Boolean ``(q_len, kv_len)``: query ``i`` sees key ``j`` iff
    ``i + d - left <= j <= i + d + right`` with ``d = kv_len - q_len`` (bottom-right aligned);
    ``None`` offsets are unbounded, and they may be negative."""
    left, right = offsets
    i = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
    j = torch.arange(kv_len, device=device)[None, :]
    ok = torch.ones((q_len, kv_len), dtype=torch.bool, device=device)
    if left is not None:
        ok &= j >= i - left
    if right is not None:
        ok &= j <= i + right
    return ok


def attention_mask(q_len: int, kv_len: int, causal: bool, window: Window = None, device=None) -> torch.Tensor:
    """The boolean keep-mask ``(q_len, kv_len)`` (True = attend) of :func:`flash_attention`'s
    ``causal`` and ``window`` arguments: queries aligned to the end of the keys (query ``i`` at
    key position ``i + kv_len - q_len``). Usable as SDPA's ``attn_mask``."""
    return window_keep_mask(q_len, kv_len, normalize_window(window, causal), device)


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    window: Offsets = (None, None),
    softcap: float = 0.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Differentiable reference. ``window`` is ``(left, right)``, ``None`` = unbounded; causal
    is ``right = 0`` (offsets may be negative). Rows that see no key produce zeros and ``lse = -inf``."""
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    h, hk = q.shape[1], k.shape[1]
    kc, vc = k.to(compute), v.to(compute)
    if hk != h:
        kc = kc.repeat_interleave(h // hk, dim=1)
        vc = vc.repeat_interleave(h // hk, dim=1)
    s = torch.matmul(q.to(compute), kc.transpose(-1, -2)) * scale
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    ok = window_keep_mask(q.shape[2], k.shape[2], window, q.device)
    s = s.masked_fill(~ok, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    finite = torch.isfinite(lse)
    p = torch.exp(s - torch.where(finite, lse, torch.zeros_like(lse)).unsqueeze(-1))
    out = torch.matmul(p, vc)
    return out.to(q.dtype), lse
