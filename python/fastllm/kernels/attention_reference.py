"""Pure-PyTorch attention with the exact semantics of the Triton kernels.

Materialises the full score matrix, so it is meant for CPUs, small problems and as the
float64 oracle of the tests. Computes in float32 for half-precision inputs (float64 stays
float64) and returns ``out`` in the input dtype plus the log-sum-exp in the compute dtype.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .checks import Rows, Window, normalize_window

Offsets = Tuple[Optional[int], Optional[int]]  # (left, right) as normalize_window returns them


def window_keep_mask(q_len: int, kv_len: int, offsets: Offsets, device=None) -> torch.Tensor:
    """Boolean ``(q_len, kv_len)``: query ``i`` sees key ``j`` iff
    ``i + d - left <= j <= i + d + right`` with ``d = kv_len - q_len`` (bottom-right aligned);
    ``None`` offsets are unbounded, and they may be negative."""
    left, right = offsets
    i = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
    j = torch.arange(kv_len, device=device)[None, :]
    ok = torch.ones((q_len, kv_len), dtype=torch.bool, device=device)
    if left is not None:
        ok &= j >= i - left
    if right is not None:
        ok &= j <= i + right
    return ok


def padded_keep_mask(q_len: int, kv_len: int, offsets: Offsets, rows: Rows) -> torch.Tensor:
    """Boolean ``(batch, 1, q_len, kv_len)`` of a padded batch: row ``b`` sees keys
    ``[key_start[b], key_end[b])`` from queries ``[0, query_end[b])``, query ``i`` at key position
    ``i + key_end[b] - query_end[b]`` (each row's last query aligned with its last key), then the
    ``(left, right)`` offsets as :func:`window_keep_mask`. Out-of-range rows are clamped as the
    kernels do."""
    ks, ke, qe = (t.long() for t in rows)
    ke = ke.clamp(0, kv_len)
    ks = torch.minimum(ks.clamp(min=0), ke)
    qe = qe.clamp(0, q_len)
    device = ks.device
    i = torch.arange(q_len, device=device)[None, :, None]
    j = torch.arange(kv_len, device=device)[None, None, :]
    ks, ke, qe = ks[:, None, None], ke[:, None, None], qe[:, None, None]
    pos = i + (ke - qe)
    ok = (j >= ks) & (j < ke) & (i < qe)
    left, right = offsets
    if left is not None:
        ok &= j >= pos - left
    if right is not None:
        ok &= j <= pos + right
    return ok[:, None]


def attention_mask(
    q_len: int,
    kv_len: int,
    causal: bool,
    window: Window = None,
    device=None,
    *,
    key_start=None,
    key_end=None,
    query_end=None,
) -> torch.Tensor:
    """The boolean keep-mask (True = attend) of :func:`flash_attention`'s ``causal``, ``window``
    and padding arguments: ``(q_len, kv_len)`` with queries aligned to the end of the keys (query
    ``i`` at key position ``i + kv_len - q_len``); with any of ``key_start``, ``key_end``,
    ``query_end`` (``(batch,)`` integer tensors), ``(batch, 1, q_len, kv_len)`` as
    :func:`padded_keep_mask`. Usable as SDPA's ``attn_mask``."""
    offsets = normalize_window(window, causal)
    given = [t for t in (key_start, key_end, query_end) if t is not None]
    if not given:
        return window_keep_mask(q_len, kv_len, offsets, device)
    batch, device = len(given[0]), given[0].device
    rows = (
        key_start if key_start is not None else torch.zeros(batch, dtype=torch.long, device=device),
        key_end if key_end is not None else torch.full((batch,), kv_len, device=device),
        query_end if query_end is not None else torch.full((batch,), q_len, device=device),
    )
    return padded_keep_mask(q_len, kv_len, offsets, rows)


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    window: Offsets = (None, None),
    softcap: float = 0.0,
    rows: Optional[Rows] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Differentiable reference. ``window`` is ``(left, right)``, ``None`` = unbounded; causal
    is ``right = 0`` (offsets may be negative). ``rows``: ``(key_start, key_end, query_end)`` of
    a padded batch (see :func:`padded_keep_mask`). Rows that see no key produce zeros and
    ``lse = -inf``."""
    if rows is None:
        keep = window_keep_mask(q.shape[2], k.shape[2], window, q.device)
    else:
        keep = padded_keep_mask(q.shape[2], k.shape[2], window, rows)
    return masked_attention(q, k, v, scale, keep, softcap)


def masked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    keep: Optional[torch.Tensor] = None,
    softcap: float = 0.0,
    bias: Optional[torch.Tensor] = None,
    dropout_p: float = 0.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``softmax(cap(q k^T * scale) + bias) v`` over the keys ``keep`` allows (a boolean mask
    broadcasting to ``(batch, heads, q_len, kv_len)``), with dropout on the probabilities; the
    kernels' reference, and the path for masks and dropout the kernels do not take. GQA when
    k/v have fewer heads. Returns ``out`` (q's dtype) and the log-sum-exp (compute dtype);
    rows that see no key produce zeros and ``lse = -inf``."""
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    h, hk = q.shape[1], k.shape[1]
    kc, vc = k.to(compute), v.to(compute)
    if hk != h:
        kc = kc.repeat_interleave(h // hk, dim=1)
        vc = vc.repeat_interleave(h // hk, dim=1)
    s = torch.matmul(q.to(compute), kc.transpose(-1, -2)) * scale
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    if bias is not None:
        s = s + bias.to(compute)
    if keep is not None:
        s = s.masked_fill(~keep, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    finite = torch.isfinite(lse)
    p = torch.exp(s - torch.where(finite, lse, torch.zeros_like(lse)).unsqueeze(-1))
    if dropout_p > 0:
        p = torch.nn.functional.dropout(p, dropout_p)
    out = torch.matmul(p, vc)
    return out.to(q.dtype), lse
