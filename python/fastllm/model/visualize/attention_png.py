"""Attention maps as a picture: the probabilities of one layer for a prompt, one heatmap per head (PNG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Sequence, Union

import torch

from fastllm.tokenizer.display import token_label

from ..generate import encode_prompt, eval_mode

MAX_TICK_LABELS = 48  # beyond this many tokens the axes are left unlabeled


@torch.no_grad()
def attention_maps(model, ids: Union[torch.Tensor, Sequence[int]], layer: int) -> torch.Tensor:
    """The attention probabilities ``(heads, seq, seq)`` of ``layer`` for one prompt (reference path).

    ``layer`` counts from 0; negative values count from the end, as in Python.
    """
    n_layer = model.config.n_layer
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n_layer <= layer < n_layer:
        raise ValueError(f"layer must be an int in [0, {n_layer}) (or negative from the end), got {layer!r}")
    device = next(model.parameters()).device
    ids = torch.as_tensor(ids, dtype=torch.long, device=device).reshape(1, -1)
    with eval_mode(model):
        maps = model(ids, return_attention=True).attentions
    return maps[layer][0].float().cpu()


def token_labels(tokenizer, ids: Sequence[int]) -> List[str]:
    """A short printable label per token (see :func:`fastllm.tokenizer.display.token_label`)."""
    return [token_label(tokenizer, token) for token in ids]


def plot_attention(probs: torch.Tensor, labels: Sequence[str], title: str = ""):
    """A matplotlib ``Figure`` (Agg canvas, no GUI) with one heatmap per head: rows are queries,
    columns keys, the prompt's tokens on both axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heads, seq, _ = probs.shape
    cols = math.ceil(math.sqrt(heads))
    rows = math.ceil(heads / cols)
    side = max(2.5, min(0.25 * seq, 8.0))
    fig = Figure(figsize=(cols * side + 1, rows * side + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    show_ticks = seq <= MAX_TICK_LABELS
    image = None
    for head, ax in enumerate(axes.flat):
        if head >= heads:
            ax.axis("off")
            continue
        image = ax.imshow(probs[head].numpy(), cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"head {head}", fontsize=9)
        if show_ticks:
            ax.set_xticks(range(seq), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(seq), labels, fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="attention probability")
    if title:
        fig.suptitle(title)
    return fig


def save_attention_map(model, tokenizer, prompt: Union[str, Sequence[int]], layer: int, path) -> Path:
    """Write a PNG grid of the attention heatmaps of ``layer`` for ``prompt``; returns the path."""
    ids = encode_prompt(tokenizer, prompt)
    if len(ids) > model.config.block_size:
        raise ValueError(f"the prompt has {len(ids)} tokens, longer than the context of {model.config.block_size}")
    probs = attention_maps(model, ids, layer)
    shown = layer if layer >= 0 else model.config.n_layer + layer
    fig = plot_attention(probs, token_labels(tokenizer, ids), title=f"layer {shown}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
