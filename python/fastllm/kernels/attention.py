"""``flash_attention``: the public entry point, its autograd Function and the dispatch.

Decode with a KV cache: pass the valid part of the cache and ``causal=True``; queries are
aligned to the end of the keys, so ``flash_attention(q, k_cache[:, :, :L], v_cache[:, :, :L],
causal=True)`` with ``q`` holding the last ``q_len`` positions is correct for prefill-with-cache
and for decode. When the query is short (``q_len * heads_per_kv_head <= 64``), no gradient is
needed and the cache is long, the split-KV decode kernel
(:func:`fastllm.kernels.flash_decode`) runs automatically.

Padded batches stay on the kernels: ``key_start``, ``key_end`` and ``query_end`` (one entry
per batch row) give each row its own keys and queries, so left padding (``key_start``),
right padding (``key_end`` and ``query_end``) and a KV cache filled to a different length per
row (``key_end``) need no mask. :func:`fastllm.kernels.padding.padded_rows` derives them from
a boolean padding mask.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from . import checks
from .attention_reference import attention_reference
from .dispatch import select_backend

Rows = Union[None, torch.Tensor, Sequence[int]]  # one entry per batch row

DECODE_MAX_ROWS = 64  # q_len * (heads / kv_heads) handled by one decode program
DECODE_MIN_KV = 512


class FlashAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale, window, softcap, config, rows=None):
        from .attention_fwd import attention_forward

        out, lse = attention_forward(q, k, v, scale, window, softcap, config, rows)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.params = (scale, window, softcap, config, rows)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        from .attention_bwd import attention_backward

        q, k, v, out, lse = ctx.saved_tensors
        scale, window, softcap, config, rows = ctx.params
        dq, dk, dv = attention_backward(dout, q, k, v, out, lse, scale, window, softcap, config, rows)
        return dq, dk, dv, None, None, None, None, None


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


@torch.compiler.disable
def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: Optional[float] = None,
    window: checks.Window = None,
    softcap: Optional[float] = None,
    return_lse: bool = False,
    *,
    key_start: Rows = None,
    key_end: Rows = None,
    query_end: Rows = None,
    check_rows: bool = True,
    config=None,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Exact attention ``softmax(q k^T * scale) v`` without materialising the score matrix.

    Args:
        q: ``(batch, heads, q_len, head_dim)``, float16/bfloat16/float32, any strides.
        k, v: ``(batch, kv_heads, kv_len, head_dim)``; ``kv_heads`` must divide ``heads``
            (GQA/MQA). ``q_len`` may differ from ``kv_len``.
        causal: mask keys after the query, aligned bottom-right: query ``i`` is at key
            position ``i + kv_len - q_len`` (FlashAttention >= 2.1 convention). Queries with
            no visible key (``q_len > kv_len``) output zeros.
        scale: score scale, default ``head_dim ** -0.5``.
        window: sliding window. An int ``w`` lets a query see keys at most ``w`` positions
            before it (and, when not causal, ``w`` after); ``(left, right)`` sets both sides,
            ``-1`` meaning unbounded.
        softcap: if set, scores become ``softcap * tanh(scores / softcap)`` before softmax.
        return_lse: also return the float32 log-sum-exp of the (scaled, capped) scores,
            shape ``(batch, heads, q_len)``; not differentiable.
        key_start, key_end, query_end: a padded batch, each ``(batch,)`` integers (a tensor on
            q's device or a list; default 0, kv_len, q_len). Row ``b`` attends to keys
            ``[key_start[b], key_end[b])`` from queries ``[0, query_end[b])``, and the causal
            and window masks align its last query with its last key: query ``i`` sits at key
            position ``i + key_end[b] - query_end[b]``. Padding queries output zeros (and a
            zero gradient). Left padding: ``key_start``; right padding: ``key_end`` and
            ``query_end`` (FlashAttention's ``seqused_k`` / ``seqused_q``); a KV cache filled
            to different lengths: ``key_end``.
        check_rows: check the padded-batch values (one device synchronisation); the kernels
            clamp them into range regardless, so an unchecked bad value never reads outside
            the tensors.
        config: a :class:`fastllm.kernels.configs.AttnConfig` overriding the tile sizes.

    head_dim must be in [16, 256]. fp32 accumulation throughout; the backward recomputes
    the probabilities from the saved log-sum-exp.
    """
    scale, win, cap = checks.check_attention(q, k, v, scale, window, softcap, causal)
    rows = checks.check_rows(q, k, key_start, key_end, query_end, check_rows)
    backend = select_backend(q)
    if backend == "reference":
        out, lse = attention_reference(q, k, v, scale, win, cap, rows)
        lse = lse.float()
    elif (
        not _needs_grad(q, k, v)
        and q.shape[2] * (q.shape[1] // k.shape[1]) <= DECODE_MAX_ROWS
        and k.shape[2] >= DECODE_MIN_KV
    ):
        from .attention_decode import decode_forward

        out, lse = decode_forward(q, k, v, scale, win, cap, rows=rows)
    else:
        out, lse = FlashAttentionFunction.apply(q, k, v, scale, win, cap, config, rows)
    return (out, lse) if return_lse else out


@torch.compiler.disable
def flash_decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: Optional[float] = None,
    window: checks.Window = None,
    softcap: Optional[float] = None,
    return_lse: bool = False,
    *,
    key_start: Rows = None,
    key_end: Rows = None,
    query_end: Rows = None,
    check_rows: bool = True,
    num_splits: Optional[int] = None,
    config=None,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Inference-only attention for a few queries over a long KV cache (split-KV).

    Same arguments, masking and padded batches as :func:`flash_attention`; the KV length is
    split across ``num_splits`` programs per KV head (default: enough to fill the GPU) whose
    partial results are merged with their log-sum-exps. All query heads sharing a KV head are
    processed together, so each KV tile is read once per group. No autograd.
    """
    scale, win, cap = checks.check_attention(q, k, v, scale, window, softcap, causal)
    rows = checks.check_rows(q, k, key_start, key_end, query_end, check_rows)
    if num_splits is not None and (not isinstance(num_splits, int) or num_splits < 1):
        raise ValueError(f"num_splits must be a positive int, got {num_splits!r}")
    if select_backend(q) == "reference":
        with torch.no_grad():
            out, lse = attention_reference(q, k, v, scale, win, cap, rows)
        lse = lse.float()
    else:
        from .attention_decode import decode_forward

        out, lse = decode_forward(q, k, v, scale, win, cap, num_splits=num_splits, config=config, rows=rows)
    return (out, lse) if return_lse else out
