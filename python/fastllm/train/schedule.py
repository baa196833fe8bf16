"""Learning-rate schedule: linear warmup, then cosine decay to a floor."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


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
