"""Pure-PyTorch cross-entropy with the exact semantics of the Triton kernels (differentiable)."""

from __future__ import annotations

import torch


def per_row_loss(logits, target, ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=0.0):
    """``(loss, lse, valid)`` per row, computed in float32 (float64 stays float64)."""
    compute = torch.float64 if logits.dtype == torch.float64 else torch.float32
    z = logits.to(compute)
    if softcap > 0:
        z = softcap * torch.tanh(z / softcap)
    lse = torch.logsumexp(z, dim=-1)
    valid = target != ignore_index
    safe_t = torch.where(valid, target, torch.zeros_like(target)).long()
    zt = z.gather(1, safe_t[:, None])[:, 0]
    loss = lse - (1.0 - label_smoothing) * zt
    if label_smoothing > 0:
        loss = loss - label_smoothing * z.mean(dim=-1)
    loss = loss + z_loss * lse * lse
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    return loss, lse, valid


def reduce_loss(loss: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


def cross_entropy_reference(logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0, z_loss=0.0, softcap=0.0):
    loss, _, valid = per_row_loss(logits, target, ignore_index, label_smoothing, z_loss, softcap)
    return reduce_loss(loss, valid, reduction)
