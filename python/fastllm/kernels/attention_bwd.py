"""Flash-attention backward kernels (Triton), recomputing probabilities from the saved LSE.

Three launches: ``delta = rowsum(dO * O)``; one program per KV tile accumulating dK and dV
over every query head of its GQA group (no atomics); one program per query tile for dQ.
Padded batches (``VARLEN``) as the forward: keys outside a row's range and its padding
queries get zero gradients.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from . import checks, configs
from .attention_fwd import kernel_flags, row_pointers
from .tl_ops import LOG2E, dot, key_range, row_ranges, score_scale, tanh, window_mask


@triton.jit
def attn_bwd_delta_kernel(
    O, DO, DELTA,
    sob, soh, som, sod,
    sdb, sdh, sdm, sdd,
    H, NQ,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_m = tl.program_id(0)
    h = tl.program_id(1).to(tl.int64)
    b = tl.program_id(2).to(tl.int64)
    pid_bh = b * H + h
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_m < NQ)[:, None] & (offs_d < HEAD_DIM)[None, :]
    o = tl.load(O + b * sob + h * soh + offs_m[:, None] * som + offs_d[None, :] * sod, mask=mask, other=0.0)
    do = tl.load(DO + b * sdb + h * sdh + offs_m[:, None] * sdm + offs_d[None, :] * sdd, mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + pid_bh * NQ + offs_m, delta, mask=offs_m < NQ)


@triton.jit
def attn_bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, KSTART, KEND, QEND,
    sqb, sqh, sqm, sqd,
    skb, skh, skn, skd,
    svb, svh, svn, svd,
    sdb, sdh, sdm, sdd,
    H, GROUP, NQ, NK,
    scale, softcap, left, right,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr, HAS_SOFTCAP: tl.constexpr, VARLEN: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr,
):
    # DK/DV are contiguous (B, HK, NK, D).
    pid_n = tl.program_id(0)
    hk = tl.program_id(1).to(tl.int64)
    b = tl.program_id(2).to(tl.int64)
    HK = H // GROUP

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    k_lo, k_hi, q_hi, diag = row_ranges(KSTART, KEND, QEND, b, NQ, NK, VARLEN)
    # the keys of this tile that exist and are not padding (padding keys load as zeros, get
    # zero gradients, and a single mask stays live in the loop)
    n_ok = offs_n < k_hi
    if VARLEN:
        n_ok = n_ok & (offs_n >= k_lo)
    d_ok = offs_d < HEAD_DIM
    nd_mask = n_ok[:, None] & d_ok[None, :]
    k = tl.load(K + b * skb + hk * skh + offs_n[:, None] * skn + offs_d[None, :] * skd, mask=nd_mask, other=0.0)
    v = tl.load(V + b * svb + hk * svh + offs_n[:, None] * svn + offs_d[None, :] * svd, mask=nd_mask, other=0.0)

    n0 = pid_n * BLOCK_N
    lo = 0
    hi = q_hi
    if HAS_RIGHT:  # query i sees key j only if j <= i + diag + right
        lo = tl.maximum(n0 - diag - right, 0)
        lo = (lo // BLOCK_M) * BLOCK_M
    if HAS_LEFT:  # ... and j >= i + diag - left
        hi = tl.minimum(n0 + BLOCK_N - diag + left, q_hi)
    if VARLEN:  # a tile of padding keys is seen by no query
        hi = tl.where((n0 < k_hi) & (n0 + BLOCK_N > k_lo), hi, lo)

    qk_scale = score_scale(scale, softcap, HAS_SOFTCAP)

    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for g in range(0, GROUP):
        h = hk * GROUP + g
        q_base = Q + b * sqb + h * sqh
        do_base = DO + b * sdb + h * sdh
        row_base = (b * H + h) * NQ
        for start_m in range(lo, hi, BLOCK_M):
            rows = start_m + offs_m
            m_ok = rows < q_hi
            md_mask = m_ok[:, None] & d_ok[None, :]
            q = tl.load(q_base + rows[:, None] * sqm + offs_d[None, :] * sqd, mask=md_mask, other=0.0)
            lse = tl.load(LSE + row_base + rows, mask=m_ok, other=0.0)
            # transposed scores: (BLOCK_N, BLOCK_M)
            st = dot(k, tl.trans(q), UPCAST, IEEE) * qk_scale
            if HAS_SOFTCAP:
                t = tanh(st)
                st = t * (softcap * LOG2E)
            valid = window_mask(m_ok[None, :] & n_ok[:, None], rows[None, :], offs_n[:, None], diag, left, right,
                                HAS_LEFT, HAS_RIGHT)
            pt = tl.where(valid, tl.exp2(st - lse[None, :] * LOG2E), 0.0)
            do = tl.load(do_base + rows[:, None] * sdm + offs_d[None, :] * sdd, mask=md_mask, other=0.0)
            dv += dot(pt.to(do.dtype), do, UPCAST, IEEE)
            dpt = dot(v, tl.trans(do), UPCAST, IEEE)
            delta = tl.load(DELTA + row_base + rows, mask=m_ok, other=0.0)
            dst = pt * (dpt - delta[None, :])
            if HAS_SOFTCAP:
                dst = dst * (1.0 - t * t)
            dk += dot(dst.to(q.dtype), q, UPCAST, IEEE)

    out_off = (b * HK + hk) * NK * HEAD_DIM + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
    out_mask = (offs_n < NK)[:, None] & d_ok[None, :]  # padding keys included: their zeros
    tl.store(DK + out_off, (dk * scale).to(DK.dtype.element_ty), mask=out_mask)
    tl.store(DV + out_off, dv.to(DV.dtype.element_ty), mask=out_mask)


@triton.jit
def attn_bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, KSTART, KEND, QEND,
    sqb, sqh, sqm, sqd,
    skb, skh, skn, skd,
    svb, svh, svn, svd,
    sdb, sdh, sdm, sdd,
    H, GROUP, NQ, NK,
    scale, softcap, left, right,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr, HAS_SOFTCAP: tl.constexpr, VARLEN: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr,
):
    # DQ is contiguous (B, H, NQ, D).
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
    md_mask = m_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd, mask=md_mask, other=0.0)
    do = tl.load(DO + b * sdb + h * sdh + offs_m[:, None] * sdm + offs_d[None, :] * sdd, mask=md_mask, other=0.0)
    row_base = pid_bh * NQ
    lse = tl.load(LSE + row_base + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(DELTA + row_base + offs_m, mask=m_ok, other=0.0)
    k_base = K + b * skb + hk * skh
    v_base = V + b * svb + hk * svh

    k_lo, k_hi, q_hi, diag = row_ranges(KSTART, KEND, QEND, b, NQ, NK, VARLEN)
    m0 = pid_m * BLOCK_M
    lo, hi = key_range(m0, diag, k_hi, left, right, BLOCK_M, BLOCK_N, HAS_LEFT, HAS_RIGHT)
    query_ok = m_ok
    if VARLEN:
        query_ok = offs_m < q_hi
        lo = tl.maximum(lo, (k_lo // BLOCK_N) * BLOCK_N)
        hi = tl.where(m0 < q_hi, hi, lo)

    qk_scale = score_scale(scale, softcap, HAS_SOFTCAP)

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        n_ok = cols < k_hi
        if VARLEN:
            n_ok = n_ok & (cols >= k_lo)
        kt = tl.load(k_base + cols[None, :] * skn + offs_d[:, None] * skd, mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        s = dot(q, kt, UPCAST, IEEE) * qk_scale
        if HAS_SOFTCAP:
            t = tanh(s)
            s = t * (softcap * LOG2E)
        valid = window_mask(n_ok[None, :] & query_ok[:, None], offs_m[:, None], cols[None, :], diag, left, right,
                            HAS_LEFT, HAS_RIGHT)
        p = tl.where(valid, tl.exp2(s - lse[:, None] * LOG2E), 0.0)
        vt = tl.load(v_base + cols[None, :] * svn + offs_d[:, None] * svd, mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        dp = dot(do, vt, UPCAST, IEEE)
        ds = p * (dp - delta[:, None])
        if HAS_SOFTCAP:
            ds = ds * (1.0 - t * t)
        k = tl.trans(kt)
        dq += dot(ds.to(k.dtype), k, UPCAST, IEEE)

    tl.store(
        DQ + row_base * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
        (dq * scale).to(DQ.dtype.element_ty), mask=md_mask,
    )


def attention_backward(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
    window: Tuple[Optional[int], Optional[int]],  # (left, right), None = unbounded
    softcap: float,
    config: Optional[configs.AttnConfig] = None,
    rows: Optional[checks.Rows] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dq, dk, dv)`` (contiguous, input dtype) for the forward's ``out``/``lse``;
    ``rows`` as the forward's."""
    do, q, k, v = (checks.int32_addressable(n, t) for n, t in (("dout", do), ("q", q), ("k", k), ("v", v)))
    b, h, nq, d = q.shape
    hk, nk = k.shape[1], k.shape[2]
    group = h // hk
    cfg = configs.attn_config("attn_bwd_dq_kernel", d, q.dtype, config)
    cfg_kv = configs.attn_config("attn_bwd_dkdv_kernel", d, q.dtype, config)
    block_d = configs.padded_head_dim(d)
    upcast, ieee = kernel_flags(q.dtype)
    left, right = window

    delta = torch.empty((b, h, nq), dtype=torch.float32, device=q.device)
    attn_bwd_delta_kernel[(triton.cdiv(nq, cfg.block_m), h, b)](
        out, do, delta, *out.stride(), *do.stride(), h, nq,
        HEAD_DIM=d, BLOCK_M=cfg.block_m, BLOCK_D=block_d, num_warps=4,
    )
    dq = torch.empty((b, h, nq, d), dtype=q.dtype, device=q.device)
    dk = torch.empty((b, hk, nk, d), dtype=k.dtype, device=q.device)
    dv = torch.empty((b, hk, nk, d), dtype=v.dtype, device=q.device)
    common = dict(
        HEAD_DIM=d, BLOCK_D=block_d, HAS_LEFT=left is not None, HAS_RIGHT=right is not None,
        HAS_SOFTCAP=softcap > 0, VARLEN=rows is not None, UPCAST=upcast, IEEE=ieee,
    )
    row_args = row_pointers(rows, q.device)
    scalars = (h, group, nq, nk, scale, softcap if softcap > 0 else 1.0, left or 0, right or 0)
    strides = (*q.stride(), *k.stride(), *v.stride(), *do.stride())
    attn_bwd_dkdv_kernel[(triton.cdiv(nk, cfg_kv.block_n), hk, b)](
        q, k, v, do, lse, delta, dk, dv, *row_args, *strides, *scalars, **common,
        BLOCK_M=cfg_kv.block_m, BLOCK_N=cfg_kv.block_n, num_warps=cfg_kv.num_warps, num_stages=cfg_kv.num_stages,
    )
    attn_bwd_dq_kernel[(triton.cdiv(nq, cfg.block_m), h, b)](
        q, k, v, do, lse, delta, dq, *row_args, *strides, *scalars, **common,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return dq, dk, dv
