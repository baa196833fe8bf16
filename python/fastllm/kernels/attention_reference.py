"""Pure-PyTorch attention with the exact semantics of the Triton kernels.

Materialises the full score matrix, so it is meant for CPUs, small problems and as the
float64 oracle of the tests. Computes in float32 for half-precision inputs (float64 stays
float64) and returns ``out`` in the input dtype plus the log-sum-exp in the compute dtype.
"""

from __future__ import annotations

from typing import Optional, Tuple

Window = Tuple[Optional[int], Optional[int]]

import torch


def visible(nq: int, nk: int, window: Window, device) -> torch.Tensor:
    """Boolean ``(nq, nk)``: query ``i`` sees key ``j`` (bottom-right aligned window)."""
    left, right = window
    i = torch.arange(nq, device=device)[:, None] + (nk - nq)
    j = torch.arange(nk, device=device)[None, :]
    ok = torch.ones((nq, nk), dtype=torch.bool, device=device)
    if left is not None:
        ok &= j >= i - left
    if right is not None:
        ok &= j <= i + right
    return ok


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    window: Window = (None, None),
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
    ok = visible(q.shape[2], k.shape[2], window, q.device)
    s = s.masked_fill(~ok, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    finite = torch.isfinite(lse)
    p = torch.exp(s - torch.where(finite, lse, torch.zeros_like(lse)).unsqueeze(-1))
    out = torch.matmul(p, vc)
    return out.to(q.dtype), lse
