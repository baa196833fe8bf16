"""What a GPT computes for one prompt, gathered for people to look at.

One forward pass (the model's own ``forward``, watched by hooks) gives the attention
probabilities, the residual stream entering the first block and leaving each block, the
logits, and the shape of every module's output; from those come the architecture with its
parameter counts, the top-k next-token predictions, and the logit lens (each layer's residual
stream decoded by the final LayerNorm and the output layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from ..generate import eval_mode


@dataclass
class PromptTrace:
    """One prompt through the model (float32, on the CPU).

    ``attentions`` ``(layers, heads, seq, seq)``; ``residuals`` ``(layers + 1, seq, n_embd)``:
    the stream entering block 0, then leaving each block; ``logits`` ``(seq, vocab)``;
    ``output_shapes`` maps module names to the shape of their (first) output.
    """

    ids: List[int]
    attentions: torch.Tensor
    residuals: torch.Tensor
    logits: torch.Tensor
    output_shapes: Dict[str, Tuple[int, ...]]


def _first_tensor(output):
    if isinstance(output, (tuple, list)):
        output = output[0] if output else None
    return output if isinstance(output, torch.Tensor) else None


@torch.no_grad()
def trace_prompt(model, ids: Sequence[int]) -> PromptTrace:
    """Runs ``ids`` through ``model`` once and records what the report shows."""
    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError("the prompt is empty: at least one token is needed")
    if len(ids) > model.config.block_size:
        raise ValueError(f"the prompt has {len(ids)} tokens, longer than the context of {model.config.block_size}")
    shapes: Dict[str, Tuple[int, ...]] = {}
    streams: Dict[str, torch.Tensor] = {}
    stream_names = {"transformer.drop"} | {f"transformer.h.{i}" for i in range(model.config.n_layer)}

    def record(name):
        def hook(_module, _inputs, output):
            tensor = _first_tensor(output)
            if tensor is not None:
                shapes[name] = tuple(tensor.shape)
                if name in stream_names:
                    streams[name] = tensor[0].float().cpu()
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules() if name]
    device = next(model.parameters()).device
    try:
        with eval_mode(model):
            out = model(torch.tensor([ids], device=device), return_attention=True)
    finally:
        for handle in handles:
            handle.remove()
    residuals = torch.stack([streams["transformer.drop"]] + [streams[f"transformer.h.{i}"] for i in range(model.config.n_layer)])
    return PromptTrace(
        ids=ids,
        attentions=torch.stack([a[0] for a in out.attentions]).float().cpu(),
        residuals=residuals,
        logits=out.logits[0].float().cpu(),
        output_shapes=shapes,
    )


def top_predictions(logits: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(probs, ids)``, each ``(..., k)``: the ``k`` most likely tokens of each row of ``logits``."""
    probs = torch.softmax(logits.float(), dim=-1)
    top = torch.topk(probs, min(k, probs.shape[-1]), dim=-1)
    return top.values, top.indices


@torch.no_grad()
def logit_lens(model, residuals: torch.Tensor, k: int = 3) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(probs, ids)`` ``(layers + 1, seq, k)``: the top ``k`` tokens each residual stream would
    predict if the model stopped there (final LayerNorm, then the output layer)."""
    param = next(model.parameters())
    with eval_mode(model):
        logits = model.lm_head(model.transformer.ln_f(residuals.to(device=param.device, dtype=param.dtype)))
    probs, ids = top_predictions(logits.float().cpu(), k)
    return probs, ids


def _parameters(module, prefix: str, owners: Dict[int, str]) -> List[dict]:
    params = []
    for name, param in module.named_parameters(remove_duplicate=False):
        full = f"{prefix}.{name}"
        owner = owners[id(param)]
        params.append({"name": name, "shape": list(param.shape), "count": param.numel(),
                       "tied_to": owner if owner != full else None})
    return params


def architecture(model, output_shapes: Dict[str, Tuple[int, ...]]) -> dict:
    """The parts of the model in order (embeddings, blocks, final norm, output layer), each with
    its parameters' shapes and counts (a tied parameter counts once, where it is first named)
    and its output's shape for the traced prompt."""
    owners: Dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), name)

    def part(title: str, name: str, kind: str) -> dict:
        module = model.get_submodule(name)
        params = _parameters(module, name, owners)
        return {"title": title, "module": name, "kind": kind, "params": params,
                "count": sum(p["count"] for p in params if p["tied_to"] is None),
                "output": list(output_shapes.get(name, ()))}

    cfg = model.config
    blocks = []
    for i in range(cfg.n_layer):
        at = f"transformer.h.{i}"
        parts = [
            part("LayerNorm", f"{at}.ln_1", "norm"),
            part("attention: q, k, v", f"{at}.attn.c_attn", "attention"),
            part("attention: output", f"{at}.attn.c_proj", "attention"),
            part("LayerNorm", f"{at}.ln_2", "norm"),
            part("MLP: up, GELU", f"{at}.mlp.c_fc", "mlp"),
            part("MLP: down", f"{at}.mlp.c_proj", "mlp"),
        ]
        blocks.append({"index": i, "module": at, "count": sum(p["count"] for p in parts), "parts": parts,
                       "output": list(output_shapes.get(at, ()))})
    embeddings = [part("token embedding", "transformer.wte", "embedding"),
                  part("position embedding", "transformer.wpe", "embedding")]
    head = [part("final LayerNorm", "transformer.ln_f", "norm"), part("output layer (logits)", "lm_head", "head")]
    total = sum(p["count"] for p in embeddings + head) + sum(b["count"] for b in blocks)
    every = sum(p.numel() for p in model.parameters())
    if total != every:  # a part this description does not know of (a new module in GPT)
        raise RuntimeError(f"the architecture lists {total} parameters but the model has {every}")
    return {
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd, "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size, "block_size": cfg.block_size,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "total": total, "embeddings": embeddings, "blocks": blocks, "head": head,
    }
