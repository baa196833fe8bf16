"""``nn.Module`` wrappers of the fused losses (options fixed, and checked, at construction)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from . import checks
from .cross_entropy import cross_entropy
from .linear_cross_entropy import linear_cross_entropy


class _LossOptions(nn.Module):
    """The options both losses share; the reduction is :mod:`fastllm.kernels.loss_reduction`'s."""

    def __init__(self, ignore_index: int, reduction: str, label_smoothing: float, z_loss: float, softcap: Optional[float]):
        super().__init__()
        checks.check_loss_options(reduction, label_smoothing, z_loss)
        checks.check_softcap(softcap)
        self.ignore_index, self.reduction = ignore_index, reduction
        self.label_smoothing, self.z_loss, self.softcap = label_smoothing, z_loss, softcap

    def extra_repr(self) -> str:
        return (
            f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, label_smoothing={self.label_smoothing}, "
            f"z_loss={self.z_loss}, softcap={self.softcap}"
        )


class CrossEntropyLoss(_LossOptions):
    """Module form of :func:`fastllm.kernels.cross_entropy`; call as ``loss(logits, target)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: Optional[float] = None,
        inplace_backward: bool = False,
    ):
        super().__init__(ignore_index, reduction, label_smoothing, z_loss, softcap)
        self.inplace_backward = inplace_backward

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(
            logits, target, self.ignore_index, self.reduction, self.label_smoothing, self.z_loss, self.softcap,
            inplace_backward=self.inplace_backward,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, inplace_backward={self.inplace_backward}"


class LinearCrossEntropyLoss(_LossOptions):
    """Module form of :func:`fastllm.kernels.linear_cross_entropy`; holds no parameters:
    call as ``loss(hidden, lm_head.weight, target, bias=None)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: Optional[float] = None,
        chunk_size: Optional[int] = None,
        accum_dtype: Optional[torch.dtype] = torch.float32,
    ):
        super().__init__(ignore_index, reduction, label_smoothing, z_loss, softcap)
        self.chunk_size, self.accum_dtype = chunk_size, accum_dtype

    def forward(self, hidden, weight, target, bias=None) -> torch.Tensor:
        return linear_cross_entropy(
            hidden, weight, target, bias, self.ignore_index, self.reduction, self.label_smoothing, self.z_loss,
            self.softcap, self.chunk_size, accum_dtype=self.accum_dtype,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, chunk_size={self.chunk_size}"
