"""AdamW with decoupled weight decay on matrices only.

Weight decay pulls weights towards zero; it is applied to the linear layers' weight
matrices and never to biases, LayerNorm parameters or embeddings (token and
position), as in GPT-2/GPT-3 training practice. Tied parameters (the LM head shares
the token embedding) appear once, in the no-decay group.
"""

from __future__ import annotations

import torch
from torch import nn


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
