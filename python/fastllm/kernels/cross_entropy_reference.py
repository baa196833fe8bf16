"""Pure-PyTorch cross-entropy with the exact semantics of the Triton kernels (differentiable)."""

from __future__ import annotations

import torch

from .loss_reduction import reduce_loss


def per_row_loss(logits, target, ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=0.0) -> torch.Tensor:
    """The loss of each row, computed in float32 (float64 stays float64). An ignored row gets
    its loss against class 0: :func:`reduce_loss` zeroes it."""
    compute = torch.float64 if logits.dtype == torch.float64 else torch.float32
    z = logits.to(compute)
    if softcap > 0:
        z = softcap * torch.tanh(z / softcap)
    lse = torch.logsumexp(z, dim=-1)
    safe_t = torch.where(target != ignore_index, target, torch.zeros_like(target)).long()
    zt = z.gather(1, safe_t[:, None])[:, 0]
    loss = lse - (1.0 - label_smoothing) * zt
    if label_smoothing > 0:
        loss = loss - label_smoothing * z.mean(dim=-1)
    loss = loss + z_loss * lse * lse
    return loss


def cross_entropy_reference(logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0, z_loss=0.0, softcap=0.0):
    loss = per_row_loss(logits, target, ignore_index, label_smoothing, z_loss, softcap)
    return reduce_loss(loss, target, ignore_index, reduction)
