"""Cross-entropy kernels (Triton): online log-sum-exp over vocab tiles, fp32 math.

``ce_fwd_kernel``: one program per row, loops over the vocabulary; writes the per-row loss
and log-sum-exp. ``ce_bwd_kernel``: one program per (row, vocab tile); writes
``dloss * d loss / d logits`` and may write it over the logits themselves (each element is
read before the same program overwrites it).

Per-row loss with soft-cap ``z = c * tanh(x / c)`` (or ``z = x``), smoothing ``eps``::

    loss = lse(z) - (1 - eps) * z[target] - eps / V * sum(z) + z_loss * lse(z)**2
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from . import configs
from .dispatch import interpreting
from .tl_ops import tanh


@triton.jit
def ce_fwd_kernel(
    LOGITS, TARGET, LOSS, LSE,
    stride_row, V, ignore_index,
    smoothing, z_loss, softcap,
    BLOCK_V: tl.constexpr, HAS_SOFTCAP: tl.constexpr, HAS_SMOOTHING: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = LOGITS + row * stride_row
    target = tl.load(TARGET + row).to(tl.int64)
    cols = tl.arange(0, BLOCK_V)

    m = -float("inf")
    s = 0.0
    zsum = 0.0
    for start in range(0, V, BLOCK_V):
        idx = start + cols
        ok = idx < V
        z = tl.load(base + idx, mask=ok, other=0.0).to(tl.float32)
        if HAS_SOFTCAP:
            z = softcap * tanh(z / softcap)
        if HAS_SMOOTHING:
            zsum += tl.sum(tl.where(ok, z, 0.0), 0)
        z = tl.where(ok, z, -float("inf"))
        m_new = tl.maximum(m, tl.max(z, 0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new), 0)
        m = m_new
    lse = m + tl.log(s)

    ignored = target == ignore_index
    safe_t = tl.where(ignored, 0, target)
    zt = tl.load(base + safe_t).to(tl.float32)
    if HAS_SOFTCAP:
        zt = softcap * tanh(zt / softcap)
    loss = lse - (1.0 - smoothing) * zt
    if HAS_SMOOTHING:
        loss -= smoothing * zsum / V
    loss += z_loss * lse * lse
    tl.store(LOSS + row, tl.where(ignored, 0.0, loss))
    tl.store(LSE + row, lse)


@triton.jit
def ce_bwd_kernel(
    LOGITS, GRAD, TARGET, LSE, DLOSS,
    stride_row, stride_grad, stride_dloss, V, ignore_index,
    smoothing, z_loss, softcap,
    BLOCK_V: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    idx = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    ok = idx < V
    target = tl.load(TARGET + row).to(tl.int64)
    lse = tl.load(LSE + row)
    dloss = tl.load(DLOSS + row * stride_dloss).to(tl.float32)
    dloss = tl.where(target == ignore_index, 0.0, dloss)

    x = tl.load(LOGITS + row * stride_row + idx, mask=ok, other=0.0).to(tl.float32)
    if HAS_SOFTCAP:
        t = tanh(x / softcap)
        z = softcap * t
    else:
        z = x
    p = tl.exp(z - lse)
    g = p * (1.0 + 2.0 * z_loss * lse) - smoothing / V
    g = tl.where(idx == target, g - (1.0 - smoothing), g)
    if HAS_SOFTCAP:
        g = g * (1.0 - t * t)
    g = g * dloss
    tl.store(GRAD + row * stride_grad + idx, g.to(GRAD.dtype.element_ty), mask=ok)


def _cfg(cfg: configs.CEConfig, override: Optional[int]) -> configs.CEConfig:
    if override is not None:
        return configs.CEConfig(block_v=override, num_warps=cfg.num_warps)
    return configs.CE_INTERPRET if interpreting() else cfg


def ce_forward(logits, target, ignore_index, smoothing, z_loss, softcap, block_v=None):
    """Per-row ``(loss, lse)`` in fp32 for 2-D ``logits`` with unit stride along the vocab."""
    n, v = logits.shape
    cfg = _cfg(configs.CE_FWD, block_v)
    loss = torch.empty(n, dtype=torch.float32, device=logits.device)
    lse = torch.empty(n, dtype=torch.float32, device=logits.device)
    if n == 0:
        return loss, lse
    ce_fwd_kernel[(n,)](
        logits, target, loss, lse, logits.stride(0), v, ignore_index,
        float(smoothing), float(z_loss), softcap if softcap > 0 else 1.0,
        BLOCK_V=min(cfg.block_v, triton.next_power_of_2(v)), HAS_SOFTCAP=softcap > 0,
        HAS_SMOOTHING=smoothing > 0, num_warps=cfg.num_warps,
    )
    return loss, lse


def ce_backward(logits, target, lse, dloss, ignore_index, smoothing, z_loss, softcap, out=None, block_v=None):
    """Gradient w.r.t. ``logits`` scaled by ``dloss`` (a per-row vector, or a 0-d/1-element
    tensor broadcast to every row). ``out`` may be ``logits`` itself (in-place)."""
    n, v = logits.shape
    cfg = _cfg(configs.CE_BWD, block_v)
    grad = torch.empty_like(logits) if out is None else out
    if n == 0:
        return grad
    dloss = dloss.reshape(-1)
    stride_dloss = 0 if dloss.numel() == 1 else dloss.stride(0)
    block = min(cfg.block_v, triton.next_power_of_2(v))
    ce_bwd_kernel[(n, triton.cdiv(v, block))](
        logits, grad, target, lse, dloss, logits.stride(0), grad.stride(0), stride_dloss, v, ignore_index,
        float(smoothing), float(z_loss), softcap if softcap > 0 else 1.0,
        BLOCK_V=block, HAS_SOFTCAP=softcap > 0, num_warps=cfg.num_warps,
    )
    return grad
