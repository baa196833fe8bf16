"""Flash-attention forward kernel (Triton): online softmax, fp32 accumulation, saves only LSE.

Layout ``(batch, heads, seq, head_dim)`` with arbitrary strides. Causal masking and sliding
windows use bottom-right alignment: query ``i`` sits at key position ``i + kv_len - q_len``.
Padded batches (``VARLEN``): row ``b`` has keys ``[key_start[b], key_end[b])`` and queries
``[0, query_end[b])``, aligned on their ends; its other queries output zeros.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from . import checks, configs
from .dispatch import interpreting
from .tl_ops import LOG2E, LN2, dot, key_range, row_ranges, score_scale, tanh, window_mask


@triton.jit
def _fwd_tiles(
    acc, l_i, m_i, q, k_base, v_base, offs_m, offs_n, offs_d, d_ok, start, end,
    k_lo, k_hi, skn, skd, svn, svd, diag, left, right, qk_scale, softcap,
    BLOCK_N: tl.constexpr, HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
    MASKED: tl.constexpr, VARLEN: tl.constexpr, UPCAST: tl.constexpr, IEEE: tl.constexpr,
):
    """Online-softmax update over KV tiles [start, end), keys valid in [k_lo, k_hi) (``k_lo``
    is only read with ``VARLEN``). ``MASKED=False`` only for tiles that every row sees entirely
    (no bounds, padding, causal or window masks)."""
    for start_n in range(start, end, BLOCK_N):
        cols = start_n + offs_n
        n_ok = cols < k_hi
        if VARLEN:
            n_ok = n_ok & (cols >= k_lo)
        if MASKED:
            kt_mask = n_ok[None, :] & d_ok[:, None]
            v_mask = n_ok[:, None] & d_ok[None, :]
        else:
            kt_mask = d_ok[:, None]
            v_mask = d_ok[None, :]
        kt = tl.load(k_base + cols[None, :] * skn + offs_d[:, None] * skd, mask=kt_mask, other=0.0)
        s = dot(q, kt, UPCAST, IEEE) * qk_scale
        if HAS_SOFTCAP:
            s = tanh(s) * (softcap * LOG2E)
        if MASKED:
            valid = window_mask(n_ok[None, :], offs_m[:, None], cols[None, :], diag, left, right, HAS_LEFT, HAS_RIGHT)
            s = tl.where(valid, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        else:
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_safe = m_new
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_base + cols[:, None] * svn + offs_d[None, :] * svd, mask=v_mask, other=0.0)
        acc = acc * alpha[:, None] + dot(p.to(v.dtype), v, UPCAST, IEEE)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _finish(acc, l_i, m_i):
    """The normalised output and the natural-log LSE of an online softmax; rows that saw
    no key get 0 and an LSE of -inf."""
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    return acc / l_safe[:, None], (m_i + tl.log2(l_i)) * LN2


@triton.jit
def padding_rows_to_zero(out, lse, row_ok):
    """Padding queries (``row_ok`` False) output 0 with an LSE of -inf, as rows that see no key."""
    return tl.where(row_ok[:, None], out, 0.0), tl.where(row_ok, lse, float("-inf"))


@triton.jit
def attn_fwd_kernel(
    Q, K, V, O, LSE, KSTART, KEND, QEND,
    sqb, sqh, sqm, sqd,
    skb, skh, skn, skd,
    svb, svh, svn, svd,
    sob, soh, som, sod,
    H, GROUP, NQ, NK,
    scale, softcap, left, right,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr, HAS_SOFTCAP: tl.constexpr, VARLEN: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr,
):
    pid_m = tl.program_id(0)
    h = tl.program_id(1).to(tl.int64)
    b = tl.program_id(2).to(tl.int64)
    pid_bh = b * H + h
    hk = h // GROUP

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    m_ok = offs_m < NQ
    d_ok = offs_d < HEAD_DIM

    q = tl.load(
        Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
        mask=m_ok[:, None] & d_ok[None, :], other=0.0,
    )
    k_base = K + b * skb + hk * skh
    v_base = V + b * svb + hk * svh

    # this row's valid keys [k_lo, k_hi) and queries [0, q_hi); diag = key position of query 0
    k_lo, k_hi, q_hi, diag = row_ranges(KSTART, KEND, QEND, b, NQ, NK, VARLEN)
    m0 = pid_m * BLOCK_M
    lo, hi = key_range(m0, diag, k_hi, left, right, BLOCK_M, BLOCK_N, HAS_LEFT, HAS_RIGHT)
    if VARLEN:
        lo = tl.maximum(lo, (k_lo // BLOCK_N) * BLOCK_N)
        hi = tl.where(m0 < q_hi, hi, lo)  # a tile of padding queries reads no key

    qk_scale = score_scale(scale, softcap, HAS_SOFTCAP)

    # KV tiles [full_lo, full_hi) are visible to every row of this query tile and need no
    # mask; the tiles around them are masked.
    hi = tl.maximum(hi, lo)  # so that lo <= full_lo <= full_hi <= hi below
    m_last = tl.minimum(m0 + BLOCK_M, NQ) - 1
    full_lo = lo
    full_hi = (k_hi // BLOCK_N) * BLOCK_N
    if VARLEN:
        full_lo = tl.maximum(lo, ((k_lo + BLOCK_N - 1) // BLOCK_N) * BLOCK_N)
    if HAS_LEFT:
        full_lo = tl.maximum(full_lo, ((m_last + diag - left + BLOCK_N - 1) // BLOCK_N) * BLOCK_N)
    if HAS_RIGHT:
        full_hi = (tl.maximum(tl.minimum(k_hi, m0 + diag + right + 1), 0) // BLOCK_N) * BLOCK_N
    full_lo = tl.minimum(full_lo, hi)
    full_hi = tl.maximum(full_hi, full_lo)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, k_base, v_base, offs_m, offs_n, offs_d, d_ok, lo, full_lo,
        k_lo, k_hi, skn, skd, svn, svd, diag, left, right, qk_scale, softcap,
        BLOCK_N, HAS_LEFT, HAS_RIGHT, HAS_SOFTCAP, True, VARLEN, UPCAST, IEEE,
    )
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, k_base, v_base, offs_m, offs_n, offs_d, d_ok, full_lo, full_hi,
        k_lo, k_hi, skn, skd, svn, svd, diag, left, right, qk_scale, softcap,
        BLOCK_N, HAS_LEFT, HAS_RIGHT, HAS_SOFTCAP, False, VARLEN, UPCAST, IEEE,
    )
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, k_base, v_base, offs_m, offs_n, offs_d, d_ok, full_hi, hi,
        k_lo, k_hi, skn, skd, svn, svd, diag, left, right, qk_scale, softcap,
        BLOCK_N, HAS_LEFT, HAS_RIGHT, HAS_SOFTCAP, True, VARLEN, UPCAST, IEEE,
    )

    out, lse = _finish(acc, l_i, m_i)
    if VARLEN:
        out, lse = padding_rows_to_zero(out, lse, offs_m < q_hi)
    tl.store(
        O + b * sob + h * soh + offs_m[:, None] * som + offs_d[None, :] * sod,
        out.to(O.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :],
    )
    tl.store(LSE + pid_bh * NQ + offs_m, lse, mask=m_ok)


def kernel_flags(dtype: torch.dtype) -> Tuple[bool, bool]:
    """``(UPCAST, IEEE)`` for a dtype (see :func:`fastllm.kernels.tl_ops.dot`)."""
    upcast = dtype == torch.bfloat16 and interpreting()
    ieee = dtype == torch.float32
    return upcast, ieee


def row_pointers(rows: Optional[checks.Rows], device: torch.device) -> Tuple[torch.Tensor, ...]:
    """The ``KSTART, KEND, QEND`` arguments of the attention kernels: the padded batch's
    int32 rows, or a placeholder the kernels never read (``VARLEN=False``)."""
    if rows is not None:
        return rows
    dummy = _PLACEHOLDER.get(device)
    if dummy is None:
        dummy = _PLACEHOLDER[device] = torch.zeros(1, dtype=torch.int32, device=device)
    return (dummy, dummy, dummy)


_PLACEHOLDER: dict = {}


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    window: Tuple[Optional[int], Optional[int]],  # (left, right), None = unbounded
    softcap: float,
    config: Optional[configs.AttnConfig] = None,
    rows: Optional[checks.Rows] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel. Returns ``out`` (q's dtype, contiguous) and fp32 ``lse``.
    ``rows``: ``(key_start, key_end, query_end)`` int32 tensors of a padded batch."""
    b, h, nq, d = q.shape
    hk, nk = k.shape[1], k.shape[2]
    q, k, v = checks.triton_attention_inputs(q, k, v)
    cfg = configs.attn_config("attn_fwd_kernel", d, q.dtype, config)
    out = torch.empty((b, h, nq, d), dtype=q.dtype, device=q.device)
    lse = torch.empty((b, h, nq), dtype=torch.float32, device=q.device)
    left, right = window
    upcast, ieee = kernel_flags(q.dtype)
    grid = (triton.cdiv(nq, cfg.block_m), h, b)
    attn_fwd_kernel[grid](
        q, k, v, out, lse, *row_pointers(rows, q.device),
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        h, h // hk, nq, nk,
        scale, softcap if softcap > 0 else 1.0, left or 0, right or 0,
        HEAD_DIM=d, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=configs.padded_head_dim(d),
        HAS_LEFT=left is not None, HAS_RIGHT=right is not None, HAS_SOFTCAP=softcap > 0,
        VARLEN=rows is not None, UPCAST=upcast, IEEE=ieee,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return out, lse
