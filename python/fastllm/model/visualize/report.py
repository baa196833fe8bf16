"""The interactive report of one prompt through a model: one self-contained HTML file.

It shows the architecture (shapes and parameter counts from the loaded model), the prompt's
tokens coloured as ``fastllm tokenizer show`` colours them, every layer's and head's attention,
the top-k next-token predictions at each position, and the logit lens. The numbers come from
:mod:`.internals`; the drawing is ``assets/report.js`` with Plotly.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from fastllm.files import write_text_atomic
from fastllm.tokenizer.display import CSS_BACKGROUNDS, token_label, token_pieces, visible

from ..generate import encode_prompt
from .internals import architecture, logit_lens, top_predictions, trace_prompt
from .page import render_page

DEFAULT_TOP_K = 5
LENS_TOP_K = 3  # tokens per cell of the logit lens (the first is drawn, all three on hover)
# Attention is stored in full (every layer, head and query): layers * heads * seq^2 / 2 floats.
# 128 tokens keep GPT-2 small's report near 5 MB of attention.
DEFAULT_MAX_TOKENS = 128


def pack_attention(attentions: torch.Tensor) -> str:
    """``(layers, heads, seq, seq)`` causal probabilities as base64 float32 little-endian, keeping
    each query's row up to the diagonal (the rest is zero by causality): layer, head, query order."""
    seq = attentions.shape[-1]
    rows, cols = torch.tril_indices(seq, seq)
    packed = attentions[..., rows, cols].contiguous().numpy().astype("<f4")
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _round(values: torch.Tensor) -> list:
    # 7 decimals: far finer than the 4 the page shows, and about half the JSON of a float's repr
    return np.round(values.double().numpy(), 7).tolist()


def report_data(
    model,
    tokenizer,
    prompt: Union[str, Sequence[int]],
    top_k: int = DEFAULT_TOP_K,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    model_name: Optional[str] = None,
) -> dict:
    """Everything the report page draws, as JSON-ready values."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    ids = encode_prompt(tokenizer, prompt)
    if len(ids) > max_tokens:
        raise ValueError(
            f"the prompt has {len(ids)} tokens; the report shows at most {max_tokens} (raise max_tokens / --max-tokens)"
        )
    trace = trace_prompt(model, ids)
    probs, top_ids = top_predictions(trace.logits, top_k)
    lens_probs, lens_ids = logit_lens(model, trace.residuals, LENS_TOP_K)
    full = torch.softmax(trace.logits, dim=-1)
    actual = torch.tensor(ids[1:], dtype=torch.long)
    next_probs = full[:-1].gather(1, actual[:, None])[:, 0]
    next_ranks = (full[:-1] > next_probs[:, None]).sum(1) + 1
    entropy = -(full * torch.log(full.clamp_min(1e-45))).sum(-1)

    shown = set(ids) | set(top_ids.flatten().tolist()) | set(lens_ids.flatten().tolist())
    text = prompt if isinstance(prompt, str) else tokenizer.decode(ids)
    return {
        "model": model_name,
        "prompt": text,
        "architecture": architecture(model, trace.output_shapes),
        "tokens": ids,
        "labels": {str(token): token_label(tokenizer, token) for token in sorted(shown)},
        "pieces": [[visible(p.text), p.start, p.end] for p in token_pieces(tokenizer, ids)],
        "piece_colours": list(CSS_BACKGROUNDS),
        "attention": {
            "layers": trace.attentions.shape[0], "heads": trace.attentions.shape[1], "seq": len(ids),
            "packed": pack_attention(trace.attentions),
        },
        "predictions": {
            "ids": top_ids.tolist(), "probs": _round(probs),
            "next_probs": _round(next_probs), "next_ranks": next_ranks.tolist(), "entropy": _round(entropy),
        },
        "lens": {"ids": lens_ids.tolist(), "probs": _round(lens_probs)},
    }


def write_report(
    model,
    tokenizer,
    prompt: Union[str, Sequence[int]],
    path,
    top_k: int = DEFAULT_TOP_K,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    model_name: Optional[str] = None,
) -> Path:
    """Writes the report of ``prompt`` through ``model`` to ``path`` (one HTML file, atomically)."""
    data = report_data(model, tokenizer, prompt, top_k, max_tokens, model_name)
    title = f"fastllm report: {model_name}" if model_name else "fastllm report"
    return write_text_atomic(path, render_page(title, "report.html", "report.js", data))
