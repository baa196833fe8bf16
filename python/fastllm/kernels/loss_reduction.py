"""The one place per-row losses become the returned loss, used by every cross-entropy path.

``reduction``: ``"mean"`` over the rows whose target is not ``ignore_index`` (NaN when every
row is ignored, as in torch), ``"sum"`` or ``"none"``; ignored rows always contribute 0.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def reduce_loss(row_loss: torch.Tensor, target: torch.Tensor, ignore_index: int, reduction: str) -> torch.Tensor:
    """Per-row losses ``(rows,)`` -> the loss (differentiable). Ignored rows are zeroed here,
    whatever their per-row value."""
    valid = target != ignore_index
    row_loss = torch.where(valid, row_loss, torch.zeros((), dtype=row_loss.dtype, device=row_loss.device))
    if reduction == "none":
        return row_loss
    total = row_loss.sum()
    return total if reduction == "sum" else total / valid.sum()


def reduce_loss_backward(grad_output: torch.Tensor, target: torch.Tensor, ignore_index: int, reduction: str) -> torch.Tensor:
    """``grad_output * d reduce_loss / d row_loss`` in float32: one element broadcast to every
    row (``"mean"``, ``"sum"``) or one per row (``"none"``). It is not zeroed on ignored rows:
    the kernels that take it do that."""
    g = grad_output.float()
    if reduction == "mean":
        g = g / (target != ignore_index).sum()
    return g.reshape(-1)
