"""Optimisation shared by every training loop: AdamW groups, the learning-rate schedule,
the optimizer step and the divergence check.

Weight decay applies to the linear layers' weight matrices, never to biases, LayerNorm
parameters or embeddings (token and position), as in GPT-2/GPT-3 training practice; tied
parameters (the LM head shares the token embedding) appear once, in the no-decay group.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


# -- optim ---------------------------------------------------------------------------------
def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW parameter groups: ``decay`` (linear weights) and ``no_decay`` (the rest)."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, (nn.Embedding, nn.LayerNorm)) or name == "bias" or param.ndim < 2:
                no_decay_ids.add(id(param))
    decay, no_decay, seen = [], [], set()
    for param in model.parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (no_decay if id(param) in no_decay_ids else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_adamw(model: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8):
    """AdamW over :func:`param_groups`; the fused CUDA implementation on GPU."""
    device_type = next(model.parameters()).device.type
    return torch.optim.AdamW(
        param_groups(model, weight_decay), lr=lr, betas=tuple(betas), eps=eps,
        fused=device_type == "cuda",
    )


# -- schedule ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WarmupCosine:
    """``lr(step)`` for 0-based optimizer steps.

    Warmup rises linearly to ``max_lr`` over ``warmup_steps`` (reaching it at step
    ``warmup_steps - 1``), cosine decays to ``min_lr`` at ``total_steps``, and stays
    there after. The schedule is a pure function of the step, so resuming needs only
    the step number; :meth:`state_dict` records the parameters for checkpoints.
    """

    max_lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int

    def __post_init__(self):
        if self.max_lr < 0 or self.min_lr < 0 or self.min_lr > self.max_lr:
            raise ValueError(f"need 0 <= min_lr <= max_lr, got min_lr={self.min_lr}, max_lr={self.max_lr}")
        if not 0 <= self.warmup_steps <= self.total_steps or self.total_steps <= 0:
            raise ValueError(
                f"need 0 <= warmup_steps <= total_steps, total_steps > 0; got {self.warmup_steps}, {self.total_steps}"
            )

    def __call__(self, step: int) -> float:
        if step >= self.total_steps:
            return self.min_lr
        if step < self.warmup_steps:
            return self.max_lr * (step + 1) / self.warmup_steps
        decay_steps = self.total_steps - self.warmup_steps
        progress = (step - self.warmup_steps) / decay_steps
        return self.min_lr + 0.5 * (self.max_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def state_dict(self) -> dict:
        return asdict(self)


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# -- one optimizer step ------------------------------------------------------------------------
def check_finite(loss: float, step: int) -> None:
    """The divergence check every loop runs: a loss that is NaN or infinite stops the run."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"the loss became {loss} at step {step}; lower --lr")


def optimizer_step(model: nn.Module, optimizer, lr: float, grad_clip: float) -> float:
    """Applies the accumulated gradients at learning rate ``lr``, clipping their global norm to
    ``grad_clip`` (0 disables clipping), and clears them. Returns the norm before clipping."""
    set_lr(optimizer, lr)
    params = [p for p in model.parameters() if p.grad is not None]
    if grad_clip > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
    elif params:
        grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
    else:
        grad_norm = 0.0
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm
