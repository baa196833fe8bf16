"""``cross_entropy``: the public function, its autograd Function and the dispatch."""

from __future__ import annotations

from typing import Optional

import torch

from . import checks
from .cross_entropy_reference import cross_entropy_reference
from .dispatch import select_backend


def _reduce(loss: torch.Tensor, n_valid: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / n_valid


def dloss_per_row(grad_output: torch.Tensor, n_valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """d(reduced loss)/d(row loss) times the incoming gradient, as fp32 (vector or 1-element)."""
    g = grad_output.float()
    if reduction == "mean":
        g = g / n_valid
    return g.reshape(-1)


class CrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, ignore_index, reduction, smoothing, z_loss, softcap, inplace_backward, block_v):
        from .cross_entropy_kernels import ce_forward

        loss, lse = ce_forward(logits, target, ignore_index, smoothing, z_loss, softcap, block_v)
        n_valid = (target != ignore_index).sum()
        ctx.save_for_backward(logits, target, lse, n_valid)
        ctx.params = (ignore_index, reduction, smoothing, z_loss, softcap, inplace_backward, block_v)
        return _reduce(loss, n_valid, reduction)

    @staticmethod
    def backward(ctx, grad_output):
        from .cross_entropy_kernels import ce_backward

        logits, target, lse, n_valid = ctx.saved_tensors
        ignore_index, reduction, smoothing, z_loss, softcap, inplace, block_v = ctx.params
        dloss = dloss_per_row(grad_output, n_valid, reduction)
        out = logits if inplace else None
        grad = ce_backward(logits, target, lse, dloss, ignore_index, smoothing, z_loss, softcap, out=out, block_v=block_v)
        if inplace:
            # the logits now hold their gradient: make any other autograd use of them fail loudly
            torch.autograd.graph.increment_version(logits)
        return grad, None, None, None, None, None, None, None, None


@torch.compiler.disable
def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    *,
    inplace_backward: bool = False,
    check_target: bool = True,
    block_v: Optional[int] = None,
) -> torch.Tensor:
    """Cross-entropy over ``(tokens, vocab)`` logits, equal to
    ``torch.nn.functional.cross_entropy`` plus optional z-loss and soft-capping.

    Per row: ``loss = lse(z) - (1 - eps) z[target] - eps * mean(z) + z_loss * lse(z)**2`` with
    ``z = softcap * tanh(logits / softcap)`` (or ``z = logits``) and ``eps = label_smoothing``;
    rows whose target is ``ignore_index`` contribute 0 and are excluded from the mean.
    The math runs in fp32 for every input dtype and the loss is returned in **float32**.

    ``inplace_backward=True`` writes the gradient over the logits' storage, so the backward
    needs no second logits-sized buffer. Use it only when nothing reads those logits after
    the backward (typical for ``cross_entropy(lm_head(h).view(-1, V), t)``); the logits'
    version counter is bumped, so another autograd use of them raises instead of silently
    reading gradients. ``check_target=False`` skips the target-range check (which costs a
    device synchronisation); out-of-range targets then give undefined results.
    """
    cap = checks.check_cross_entropy(logits, target, ignore_index, reduction, label_smoothing, z_loss, softcap, check_target)
    if block_v is not None and (block_v < 16 or block_v & (block_v - 1)):
        raise ValueError(f"block_v must be a power of two >= 16, got {block_v}")
    if select_backend(logits) == "reference":
        loss = cross_entropy_reference(logits, target, ignore_index, reduction, label_smoothing, z_loss, cap)
        return loss.float()
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    return CrossEntropyFunction.apply(
        logits, target.contiguous(), ignore_index, reduction, float(label_smoothing), float(z_loss), cap,
        bool(inplace_backward), block_v,
    )
